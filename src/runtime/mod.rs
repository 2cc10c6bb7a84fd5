//! plcc's own model code on candle: BERT-family encoders, GPT-2 and BART, with
//! per-layer widths, exits and float / fake-quantized linear layers; loading
//! of checkpoints and built-in models; running them over text.

pub mod device;
pub mod error;
pub mod kernels;
pub mod load;
pub mod model;
pub mod run;

pub use error::tensor_error;
pub use load::loader::{load_model, LoadedModel, ModelSource, Network};
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
