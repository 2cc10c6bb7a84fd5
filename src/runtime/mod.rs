//! plcc's own model code on candle: BERT-family encoders, GPT-2 and BART, with
//! per-layer widths, exits and float / fake-quantized linear layers; loading
//! of checkpoints and built-in models; running them over text.

pub mod bart;
pub mod bert;
pub mod builtin_weights;
pub mod device;
pub mod early_exit;
pub mod error;
pub mod exit_rule;
pub mod from_artifact;
pub mod generate;
pub mod gpt2;
pub mod heads;
pub mod input_tap;
pub mod kernels;
pub mod layers;
pub mod linear;
pub mod linear_kernel;
pub mod loader;
pub mod output;
pub mod packed_table;
pub mod runner;
pub mod safetensors_check;
pub mod weights;

pub use bart::BartModel;
pub use bert::BertModel;
pub use error::tensor_error;
pub use exit_rule::ExitPolicy;
pub use gpt2::Gpt2Model;
pub use heads::Head;
pub use input_tap::InputTap;
pub use layers::Mode;
pub use linear::{Linear, LinearWeight, Quantizer, SymmetricIntPerRow};
pub use loader::{load_model, LoadedModel, ModelSource, Network};
pub use output::{EncoderOutput, ForwardOptions, Inputs, ModelOutput};
pub use weights::Checkpoint;
