//! Model configuration: the architecture and every shape plcc needs, read from a
//! Hugging Face `config.json` (BERT family, GPT-2 or BART; `config_read`) or
//! given by a built-in model. Per-layer shapes may differ (a pruned student), so the
//! uniform numbers of `config.json` are expanded into `layers` on load. For an
//! encoder-decoder (BART), `layers` are the decoder's and `seq2seq` holds the
//! encoder's layers and the decoder's special tokens.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// BERT family encoders (BERT, MiniLM, ...): post-LN, erf GELU.
    Bert,
    /// GPT-2: pre-LN decoder, tanh GELU, Conv1D (transposed) weights.
    Gpt2,
    /// BART: post-LN encoder-decoder with cross-attention, one token
    /// embedding shared by both stacks and the output head.
    Bart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU with erf.
    Gelu,
    /// GELU with the tanh approximation (`gelu_new`).
    GeluTanh,
    Relu,
}

/// The shape of one transformer layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerShape {
    pub heads: usize,
    pub head_dim: usize,
    /// Intermediate (FFN) width.
    pub ffn: usize,
}

impl LayerShape {
    /// `heads` heads dividing `hidden` among them, an FFN `ffn` wide.
    pub fn even(hidden: usize, heads: usize, ffn: usize) -> Self {
        LayerShape {
            heads,
            head_dim: hidden / heads,
            ffn,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    /// `model_type` as written in config.json (`bert`, `gpt2`, ...).
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub max_positions: usize,
    /// Token type (segment) vocabulary; 0 for GPT-2.
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub pad_token_id: Option<u32>,
    /// One entry per layer, in order.
    pub layers: Vec<LayerShape>,
    /// Embedding factorization rank (vocab × r, r × hidden), if factorized.
    pub embedding_rank: Option<usize>,
    /// The encoder half of an encoder-decoder model; `layers` are then the
    /// decoder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq2seq: Option<Seq2Seq>,
    /// A sequence classifier's labels (config.json's `id2label`), in class
    /// order; absent for other models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<super::labels::LabelSet>,
}

/// What an encoder-decoder model (BART) has besides its decoder layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seq2Seq {
    /// The encoder's layers, in order.
    pub encoder_layers: Vec<LayerShape>,
    /// The first token fed to the decoder.
    pub decoder_start_token_id: u32,
    /// Begin and end of sequence (BART's `<s>` and `</s>`).
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    /// Whether token embeddings are multiplied by √hidden.
    pub scale_embedding: bool,
}

impl ModelConfig {
    /// The number of layers of the stack that ends in the model's output
    /// (the decoder of an encoder-decoder).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The encoder's layers of an encoder-decoder model, else none.
    pub fn encoder_layers(&self) -> &[LayerShape] {
        self.seq2seq
            .as_ref()
            .map_or(&[], |s| s.encoder_layers.as_slice())
    }
}
