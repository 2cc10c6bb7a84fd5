//! Model configuration: the architecture and every shape plcc needs, read from a
//! Hugging Face `config.json` (BERT family or GPT-2) or given by a built-in
//! model. Per-layer shapes may differ (a pruned student), so the uniform
//! numbers of `config.json` are expanded into `layers` on load.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::diag::Diag;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// BERT family encoders (BERT, MiniLM, ...): post-LN, erf GELU.
    Bert,
    /// GPT-2: pre-LN decoder, tanh GELU, Conv1D (transposed) weights.
    Gpt2,
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
}

impl ModelConfig {
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Parses a Hugging Face `config.json`. `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, Diag> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            Diag::new(
                "plcc::checkpoint::bad-config",
                format!("`{}` is not valid JSON", path.display()),
            )
            .note(e.to_string())
        })?;
        let model_type = v
            .get("model_type")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string();
        let get = |keys: &[&str]| -> Option<&serde_json::Value> {
            keys.iter().find_map(|k| v.get(*k).filter(|x| !x.is_null()))
        };
        let need = |keys: &[&str]| -> Result<usize, Diag> {
            get(keys)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| {
                    Diag::new(
                        "plcc::checkpoint::bad-config",
                        format!("`{}` has no integer `{}`", path.display(), keys[0]),
                    )
                })
        };
        let arch = match model_type.as_str() {
            "bert" | "roberta" | "xlm-roberta" | "distilbert-like" | "minilm" | "electra" => {
                Arch::Bert
            }
            "gpt2" => Arch::Gpt2,
            other => {
                return Err(Diag::new(
                    "plcc::checkpoint::unsupported-model",
                    format!("unsupported model_type `{other}` in `{}`", path.display()),
                )
                .help("plcc supports BERT-family encoders (`bert`) and `gpt2`"))
            }
        };
        let cfg = match arch {
            Arch::Bert => {
                let hidden = need(&["hidden_size"])?;
                let heads = need(&["num_attention_heads"])?;
                let layers = need(&["num_hidden_layers"])?;
                let ffn = need(&["intermediate_size"])?;
                if heads == 0 || hidden % heads != 0 {
                    return Err(Diag::new(
                        "plcc::checkpoint::bad-config",
                        format!(
                            "hidden_size {hidden} is not divisible by num_attention_heads {heads}"
                        ),
                    ));
                }
                let act = match get(&["hidden_act"])
                    .and_then(|a| a.as_str())
                    .unwrap_or("gelu")
                {
                    "gelu" => Activation::Gelu,
                    "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
                    "relu" => Activation::Relu,
                    other => {
                        return Err(Diag::new(
                            "plcc::checkpoint::bad-config",
                            format!("unsupported hidden_act `{other}` in `{}`", path.display()),
                        ))
                    }
                };
                ModelConfig {
                    arch,
                    model_type,
                    vocab_size: need(&["vocab_size"])?,
                    hidden_size: hidden,
                    max_positions: need(&["max_position_embeddings"])?,
                    type_vocab_size: get(&["type_vocab_size"])
                        .and_then(|x| x.as_u64())
                        .unwrap_or(2) as usize,
                    layer_norm_eps: get(&["layer_norm_eps"])
                        .and_then(|x| x.as_f64())
                        .unwrap_or(1e-12),
                    activation: act,
                    pad_token_id: get(&["pad_token_id"])
                        .and_then(|x| x.as_u64())
                        .map(|x| x as u32),
                    layers: vec![
                        LayerShape {
                            heads,
                            head_dim: hidden / heads,
                            ffn
                        };
                        layers
                    ],
                    embedding_rank: None,
                }
            }
            Arch::Gpt2 => {
                let hidden = need(&["n_embd", "hidden_size"])?;
                let heads = need(&["n_head", "num_attention_heads"])?;
                let layers = need(&["n_layer", "num_hidden_layers"])?;
                let ffn = get(&["n_inner"])
                    .and_then(|x| x.as_u64())
                    .map(|x| x as usize)
                    .unwrap_or(4 * hidden);
                if heads == 0 || hidden % heads != 0 {
                    return Err(Diag::new(
                        "plcc::checkpoint::bad-config",
                        format!("n_embd {hidden} is not divisible by n_head {heads}"),
                    ));
                }
                ModelConfig {
                    arch,
                    model_type,
                    vocab_size: need(&["vocab_size"])?,
                    hidden_size: hidden,
                    max_positions: need(&["n_positions", "max_position_embeddings"])?,
                    type_vocab_size: 0,
                    layer_norm_eps: get(&["layer_norm_epsilon"])
                        .and_then(|x| x.as_f64())
                        .unwrap_or(1e-5),
                    activation: Activation::GeluTanh,
                    pad_token_id: None,
                    layers: vec![
                        LayerShape {
                            heads,
                            head_dim: hidden / heads,
                            ffn
                        };
                        layers
                    ],
                    embedding_rank: None,
                }
            }
        };
        Ok(cfg)
    }

    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, Diag> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diag::io(
                "plcc::checkpoint::missing-config",
                "read checkpoint config",
                &path,
                &e,
            )
        })?;
        Self::from_json_str(&text, &path)
    }
}
