//! The BERT family (BERT, MiniLM, RoBERTa-style encoders): post-LN encoder
//! layers under `encoder.layer.{i}` with separate query, key and value
//! projections, word, position and token-type embeddings with a norm, a
//! pooler and a classifier. Checkpoints of `BertFor*` task models put
//! `bert.` before the encoder's names. Tensor names are Hugging Face's.

use super::{Block, Embeddings, Family, HeadNames, Linear, Role, Stack, Supports};
use crate::base::config::{Arch, LayerShape, ModelConfig};
use crate::base::config_json::{self, ConfigJson};
use crate::diag::Diag;

pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings";
pub const POSITION_EMBEDDINGS: &str = "embeddings.position_embeddings";
pub const TOKEN_TYPE_EMBEDDINGS: &str = "embeddings.token_type_embeddings";
pub const EMBEDDINGS_NORM: &str = "embeddings.LayerNorm";
/// Layer `i` is `encoder.layer.{i}`.
pub const LAYERS: &str = "encoder.layer.";
/// The attention block, under the layer.
pub const ATTENTION: &str = "attention";
/// The attention's linears, under the attention block.
pub const QUERY: &str = "self.query";
pub const KEY: &str = "self.key";
pub const VALUE: &str = "self.value";
pub const ATTENTION_OUT: &str = "output.dense";
/// The norms after each block's residual sum, under the layer.
pub const ATTENTION_NORM: &str = "attention.output.LayerNorm";
pub const FFN_NORM: &str = "output.LayerNorm";
/// The FFN's linears, directly under the layer.
pub const FFN_IN: &str = "intermediate.dense";
pub const FFN_OUT: &str = "output.dense";
pub const POOLER: &str = "pooler.dense";
pub const CLASSIFIER: &str = "classifier";

pub static FAMILY: Family = Family {
    arch: Arch::Bert,
    model_types: &[
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert-like",
        "minilm",
        "electra",
    ],
    read_config,
    base_prefix: "bert.",
    anchor: "embeddings.word_embeddings.weight",
    transposed_linears: false,
    embeddings: Embeddings {
        node: "embeddings",
        word: WORD_EMBEDDINGS,
        position: POSITION_EMBEDDINGS,
        position_offset: 0,
        token_types: Some(TOKEN_TYPE_EMBEDDINGS),
        norm: Some(EMBEDDINGS_NORM),
        decoder: None,
        prefixes: &["embeddings."],
        tied_head: false,
    },
    layers: Stack {
        root: LAYERS,
        attention: Block {
            name: ATTENTION,
            linears: &[
                Linear {
                    name: QUERY,
                    role: Role::Query,
                },
                Linear {
                    name: KEY,
                    role: Role::Key,
                },
                Linear {
                    name: VALUE,
                    role: Role::Value,
                },
                Linear {
                    name: ATTENTION_OUT,
                    role: Role::Output,
                },
            ],
            norm: ATTENTION_NORM,
        },
        cross_attention: None,
        ffn: Block {
            name: "",
            linears: &[
                Linear {
                    name: FFN_IN,
                    role: Role::Up,
                },
                Linear {
                    name: FFN_OUT,
                    role: Role::Down,
                },
            ],
            norm: FFN_NORM,
        },
        norm_first: false,
        causal: false,
    },
    encoder: None,
    head: HeadNames {
        final_norm: None,
        logits_bias: None,
        classifier: CLASSIFIER,
        pooler: Some(POOLER),
    },
    supports: Supports {
        language_model: None,
        classification: true,
    },
};

/// Reads a BERT-family `config.json` (already parsed as `json`); heads
/// recorded in `pruned_heads` are left out of their layers.
fn read_config(json: &ConfigJson<'_>, model_type: String) -> Result<ModelConfig, Diag> {
    let (hidden, heads) =
        json.width_and_heads(&["hidden_size"], &["num_attention_heads"], "hidden size")?;
    let layers = json.count(&["num_hidden_layers"], config_json::LAYERS)?;
    let vocab_size = json.count(&["vocab_size"], config_json::VOCAB)?;
    let activation = json.activation("hidden_act")?;
    let ffn = json.count(&["intermediate_size"], config_json::INTERMEDIATE)?;
    let pruned = json.pruned_heads(layers, heads)?;
    Ok(ModelConfig {
        arch: Arch::Bert,
        model_type,
        vocab_size,
        hidden_size: hidden,
        max_positions: json.count(&["max_position_embeddings"], config_json::POSITIONS)?,
        type_vocab_size: json.count_or(&["type_vocab_size"], 2, config_json::TYPE_VOCAB)?,
        layer_norm_eps: json.epsilon_or(&["layer_norm_eps"], 1e-12)?,
        activation,
        pad_token_id: json.token_id(&["pad_token_id"], vocab_size)?,
        layers: pruned
            .iter()
            .map(|p| LayerShape {
                heads: heads - p,
                ..LayerShape::even(hidden, heads, ffn)
            })
            .collect(),
        embedding_rank: None,
        seq2seq: None,
        labels: None,
    })
}
