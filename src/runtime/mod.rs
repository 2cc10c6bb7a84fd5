//! plcc's own model code on candle, in four parts:
//! - `model`: BERT-family encoders, GPT-2 and BART with per-layer widths and
//!   exits, and the layers they are built from (float / fake-quantized
//!   linears and their packed inference forms, heads, embedding tables);
//! - `load`: checkpoints, plcc artifacts and built-in models turned into a
//!   runnable `LoadedModel`;
//! - `run`: a loaded model over text: token rows, length-sorted batches,
//!   per-sample early exit (with the exit policies a `LoadedModel` carries),
//!   an encoder-decoder's generation;
//! - `kernels`: the CPU (and CUDA) kernels the model code runs on;
//! - `pool`: running that work on a thread of the kernels' own pool.

pub mod device;
pub mod error;
pub mod kernels;
pub mod load;
pub mod model;
pub mod pool;
pub mod run;

pub use error::tensor_error;
pub use load::loaded_model::{LoadedModel, Network};
pub use load::loader::{load_model, ModelSource};
pub use load::weights::Checkpoint;
pub use model::bart::BartModel;
pub use model::bert::BertModel;
pub use model::gpt2::Gpt2Model;
pub use model::heads::Head;
pub use model::input_tap::InputTap;
pub use model::layers::Mode;
pub use model::linear::{Linear, LinearWeight, Quantizer, SymmetricIntPerRow};
pub use model::output::{EncoderOutput, ForwardOptions, Inputs, ModelOutput};
pub use run::exit_rule::ExitPolicy;
