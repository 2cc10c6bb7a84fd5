//! plcc's own model code on candle: BERT-family encoders and GPT-2, with
//! per-layer widths, exits and float / fake-quantized / packed linear layers.

pub mod builtin;
pub mod config;

pub use config::{Activation, Arch, LayerShape, ModelConfig};
