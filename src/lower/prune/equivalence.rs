//! The slicing check: the masked teacher-shaped layer and the physically
//! sliced layer must compute the same output on a probe batch (within
//! `TOLERANCE`), else the build stops naming the module that differs. Both are
//! run through the runtime's own layer code.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::base::{Arch, LayerShape, ModelConfig};
use crate::diag::Diag;
use crate::lower::prune::slice::with_prefix;
use crate::lower::teacher::Tensors;
use crate::runtime::load::weights::flip_conv1d;
use crate::runtime::model::bert::BertLayer;
use crate::runtime::model::gpt2::Gpt2Block;
use crate::runtime::model::layers::AttentionMask;
use crate::runtime::tensor_error;
use crate::runtime::Mode;

/// Largest absolute difference allowed between masked and sliced outputs.
pub const TOLERANCE: f32 = 1e-4;

/// One layer, run through the runtime's code.
#[derive(Clone)]
enum ProbeLayer {
    Bert(BertLayer),
    Gpt2(Gpt2Block),
}

impl ProbeLayer {
    fn load(layer: &Tensors, shape: LayerShape, cfg: &ModelConfig) -> Result<Self, Diag> {
        let stack = &cfg.arch.family().layers;
        let mut full = with_prefix(layer, &stack.prefix(0));
        flip_conv1d(cfg.arch, &mut full).map_err(tensor_error)?;
        let vb = VarBuilder::from_backend(Box::new(full), DType::F32, Device::Cpu);
        Ok(match cfg.arch {
            Arch::Bert => ProbeLayer::Bert(
                BertLayer::load(vb.pp(stack.layer(0)), shape, cfg).map_err(tensor_error)?,
            ),
            Arch::Gpt2 => ProbeLayer::Gpt2(
                Gpt2Block::load(vb.pp(stack.layer(0)), shape, cfg).map_err(tensor_error)?,
            ),
            Arch::Bart => {
                return Err(Diag::new(
                    "plcc::prune::unsupported-model",
                    "the pruning equivalence check is not implemented for BART layers",
                ))
            }
        })
    }

    fn forward(&self, x: &Tensor, mask: &AttentionMask) -> Result<Tensor, Diag> {
        match self {
            ProbeLayer::Bert(l) => l.forward(x, mask, Mode::Inference, false),
            ProbeLayer::Gpt2(l) => l.forward(x, mask, Mode::Inference, false),
        }
        .map(|(y, _)| y)
        .map_err(tensor_error)
    }

    /// This layer with the attention block of `other`.
    fn with_attention_of(&self, other: &ProbeLayer) -> ProbeLayer {
        match (self, other) {
            (ProbeLayer::Bert(a), ProbeLayer::Bert(b)) => {
                let mut h = a.clone();
                h.query = b.query.clone();
                h.key = b.key.clone();
                h.value = b.value.clone();
                h.attn_out = b.attn_out.clone();
                h.shape.heads = b.shape.heads;
                ProbeLayer::Bert(h)
            }
            (ProbeLayer::Gpt2(a), ProbeLayer::Gpt2(b)) => {
                let mut h = a.clone();
                h.qkv = b.qkv.clone();
                h.attn_out = b.attn_out.clone();
                h.shape.heads = b.shape.heads;
                ProbeLayer::Gpt2(h)
            }
            _ => self.clone(),
        }
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32, Diag> {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .map_err(tensor_error)
}

/// A deterministic probe batch `[2, 7, hidden]` with one padded row.
fn probe(cfg: &ModelConfig, seed: u64) -> Result<(Tensor, AttentionMask), Diag> {
    let (b, s, h) = (2usize, 7usize, cfg.hidden_size);
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let values: Vec<f32> = (0..b * s * h)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let x = Tensor::from_vec(values, (b, s, h), &Device::Cpu).map_err(tensor_error)?;
    let mask: Vec<u32> = (0..b * s).map(|i| u32::from(i < s || i % s < 4)).collect();
    let mask = Tensor::from_vec(mask, (b, s), &Device::Cpu).map_err(tensor_error)?;
    let mask = AttentionMask::new(&mask, cfg.arch.family().layers.causal).map_err(tensor_error)?;
    Ok((x, mask))
}

/// Names of a layer's attention and FFN modules, for messages.
pub struct LayerModules<'a> {
    pub attention: &'a str,
    pub ffn: &'a str,
}

/// Checks that `sliced` (student shape) computes what `masked` (teacher shape)
/// does; returns the largest difference seen.
pub fn check_layer(
    cfg: &ModelConfig,
    masked: (&Tensors, LayerShape),
    sliced: (&Tensors, LayerShape),
    modules: LayerModules<'_>,
) -> Result<f32, Diag> {
    let (x, mask) = probe(cfg, 7)?;
    let m = ProbeLayer::load(masked.0, masked.1, cfg)?;
    let s = ProbeLayer::load(sliced.0, sliced.1, cfg)?;
    let reference = m.forward(&x, &mask)?;
    let diff = max_diff(&reference, &s.forward(&x, &mask)?)?;
    if diff <= TOLERANCE && diff.is_finite() {
        return Ok(diff);
    }
    let attention_only = max_diff(&reference, &m.with_attention_of(&s).forward(&x, &mask)?)?;
    let module = if attention_only <= TOLERANCE {
        modules.ffn
    } else {
        modules.attention
    };
    Err(Diag::new(
        "plcc::build::slice-mismatch",
        format!(
            "the sliced `{module}` does not compute what the masked teacher module does \
             (largest difference {diff:.3e}, allowed {TOLERANCE:.0e})"
        ),
    )
    .note("the kept rows and columns do not match the structures the mask keeps")
    .help("this is a bug in plcc's width slicing; please report it with the recipe"))
}
