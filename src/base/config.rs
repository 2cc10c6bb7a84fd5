//! Model configuration: the architecture and every shape plcc needs, read from a
//! Hugging Face `config.json` (BERT family, GPT-2 or BART) or given by a
//! built-in model. Per-layer shapes may differ (a pruned student), so the
//! uniform numbers of `config.json` are expanded into `layers` on load. For an
//! encoder-decoder (BART), `layers` are the decoder's and `seq2seq` holds the
//! encoder's layers and the decoder's special tokens.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config_json::{self, ConfigJson};
use crate::diag::Diag;
use crate::fsio;

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

/// The activation named by `key` (`gelu` when absent).
pub(super) fn activation_of(json: &ConfigJson, key: &'static str) -> Result<Activation, Diag> {
    match json.str(&[key]).unwrap_or("gelu") {
        "gelu" => Ok(Activation::Gelu),
        "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
        "relu" => Ok(Activation::Relu),
        other => Err(json
            .at(
                config_json::BAD_CONFIG,
                key,
                format!("unsupported {key} `{other}`"),
            )
            .help("plcc supports `gelu`, `gelu_new`, `gelu_pytorch_tanh` and `relu`")),
    }
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

    /// Parses a Hugging Face `config.json`, every size within the limits of
    /// `config_json`. `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, Diag> {
        let json = ConfigJson::parse(text, path)?;
        let model_type = json.str(&["model_type"]).unwrap_or("").to_string();
        let arch = match model_type.as_str() {
            "bert" | "roberta" | "xlm-roberta" | "distilbert-like" | "minilm" | "electra" => {
                Arch::Bert
            }
            "gpt2" => Arch::Gpt2,
            "bart" => return super::config_bart::from_json(&json, model_type),
            other => {
                return Err(Diag::new(
                    "plcc::checkpoint::unsupported-model",
                    format!("unsupported model_type `{other}` in `{}`", path.display()),
                )
                .help("plcc supports BERT-family encoders (`bert`), `gpt2` and `bart`"))
            }
        };
        // BART returned above (`config_bart`): BERT or GPT-2 from here.
        let gpt2 = arch == Arch::Gpt2;
        let (hidden_keys, heads_keys, layers_keys): (&[&str], &[&str], &[&str]) = if gpt2 {
            (
                &["n_embd", "hidden_size"],
                &["n_head", "num_attention_heads"],
                &["n_layer", "num_hidden_layers"],
            )
        } else {
            (
                &["hidden_size"],
                &["num_attention_heads"],
                &["num_hidden_layers"],
            )
        };
        let hidden = json.count(hidden_keys, config_json::HIDDEN)?;
        let heads = json.count(heads_keys, config_json::HEADS)?;
        if hidden % heads != 0 {
            return Err(json
                .at(
                    config_json::OUT_OF_RANGE,
                    heads_keys[0],
                    format!(
                        "`{}` {hidden} is not divisible by `{}` {heads}",
                        hidden_keys[0], heads_keys[0]
                    ),
                )
                .help("every attention head has the same width: hidden size / heads"));
        }
        let layers = json.count(layers_keys, config_json::LAYERS)?;
        let vocab_size = json.count(&["vocab_size"], config_json::VOCAB)?;
        let layer = |ffn| LayerShape {
            heads,
            head_dim: hidden / heads,
            ffn,
        };
        let cfg = if !gpt2 {
            let act = activation_of(&json, "hidden_act")?;
            let ffn = json.count(&["intermediate_size"], config_json::INTERMEDIATE)?;
            let pruned = json.pruned_heads(layers, heads)?;
            ModelConfig {
                arch,
                model_type,
                vocab_size,
                hidden_size: hidden,
                max_positions: json.count(&["max_position_embeddings"], config_json::POSITIONS)?,
                type_vocab_size: json.count_or(&["type_vocab_size"], 2, config_json::TYPE_VOCAB)?,
                layer_norm_eps: json.epsilon_or(&["layer_norm_eps"], 1e-12)?,
                activation: act,
                pad_token_id: json.token_id(&["pad_token_id"], vocab_size)?,
                layers: pruned
                    .iter()
                    .map(|p| LayerShape {
                        heads: heads - p,
                        ..layer(ffn)
                    })
                    .collect(),
                embedding_rank: None,
                seq2seq: None,
            }
        } else {
            let ffn = json.count_or(&["n_inner"], 4 * hidden, config_json::INTERMEDIATE)?;
            ModelConfig {
                arch,
                model_type,
                vocab_size,
                hidden_size: hidden,
                max_positions: json.count(
                    &["n_positions", "max_position_embeddings"],
                    config_json::POSITIONS,
                )?,
                type_vocab_size: 0,
                layer_norm_eps: json.epsilon_or(&["layer_norm_epsilon"], 1e-5)?,
                activation: Activation::GeluTanh,
                pad_token_id: None,
                layers: vec![layer(ffn); layers],
                embedding_rank: None,
                seq2seq: None,
            }
        };
        Ok(cfg)
    }

    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, Diag> {
        let path = dir.join("config.json");
        let text = fsio::read_text(&path, &fsio::CONFIG)?;
        Self::from_json_str(&text, &path)
    }
}
