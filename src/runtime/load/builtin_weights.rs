//! The weights of the built-in seeded models: deterministic random numbers
//! made on demand, so the built-ins need no download.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::base::builtin::SEED;
use crate::runtime::load::weights::SeededWeights;

/// A `VarBuilder` that makes the built-in models' deterministic weights
/// (normal, std 0.02; layer norms 1 and 0; biases 0).
pub fn var_builder(device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(
        Box::new(SeededWeights { seed: SEED }),
        DType::F32,
        device.clone(),
    )
}
