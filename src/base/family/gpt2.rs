//! GPT-2: pre-LN decoder blocks under `h.{i}` with one fused query, key and
//! value projection (`attn.c_attn`, `3 × heads × head width` rows, q then k
//! then v), token and position tables (`wte`, `wpe`), a final norm and an
//! LM head tied to `wte`. Its projections are `Conv1D` weights stored
//! `[in, out]`. `GPT2LMHeadModel` checkpoints put `transformer.` before
//! these names. Tensor names are Hugging Face's.

use super::{Block, Embeddings, Family, HeadNames, Linear, Role, Stack, Supports};
use crate::base::config::{Activation, Arch, LayerShape, ModelConfig};
use crate::base::config_json::{self, ConfigJson};
use crate::base::task::Task;
use crate::diag::Diag;

pub const TOKEN_EMBEDDINGS: &str = "wte";
pub const POSITION_EMBEDDINGS: &str = "wpe";
/// Block `i` is `h.{i}`.
pub const LAYERS: &str = "h.";
/// The norms before each block, under the layer.
pub const ATTENTION_NORM: &str = "ln_1";
pub const FFN_NORM: &str = "ln_2";
/// The attention block and its linears.
pub const ATTENTION: &str = "attn";
pub const QKV: &str = "c_attn";
pub const ATTENTION_OUT: &str = "c_proj";
/// The FFN block and its linears.
pub const FFN: &str = "mlp";
pub const FFN_IN: &str = "c_fc";
pub const FFN_OUT: &str = "c_proj";
pub const FINAL_NORM: &str = "ln_f";

pub static FAMILY: Family = Family {
    arch: Arch::Gpt2,
    model_types: &["gpt2"],
    read_config,
    base_prefix: "transformer.",
    anchor: "wte.weight",
    transposed_linears: true,
    embeddings: Embeddings {
        node: TOKEN_EMBEDDINGS,
        word: TOKEN_EMBEDDINGS,
        position: POSITION_EMBEDDINGS,
        position_offset: 0,
        token_types: None,
        norm: None,
        decoder: None,
        prefixes: &[TOKEN_EMBEDDINGS, POSITION_EMBEDDINGS],
        tied_head: true,
    },
    layers: Stack {
        root: LAYERS,
        attention: Block {
            name: ATTENTION,
            linears: &[
                Linear {
                    name: QKV,
                    role: Role::QueryKeyValue,
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
            name: FFN,
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
        norm_first: true,
        causal: true,
    },
    encoder: None,
    head: HeadNames {
        final_norm: Some(FINAL_NORM),
        logits_bias: None,
        classifier: "score",
        pooler: None,
    },
    supports: Supports {
        language_model: Some(Task::CausalLm),
        classification: false,
    },
};

/// Reads a GPT-2 `config.json` (already parsed as `json`).
fn read_config(json: &ConfigJson<'_>, model_type: String) -> Result<ModelConfig, Diag> {
    let (hidden, heads) = json.width_and_heads(
        &["n_embd", "hidden_size"],
        &["n_head", "num_attention_heads"],
        "hidden size",
    )?;
    let layers = json.count(&["n_layer", "num_hidden_layers"], config_json::LAYERS)?;
    let vocab_size = json.count(&["vocab_size"], config_json::VOCAB)?;
    let ffn = json.count_or(&["n_inner"], 4 * hidden, config_json::INTERMEDIATE)?;
    Ok(ModelConfig {
        arch: Arch::Gpt2,
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
        layers: vec![LayerShape::even(hidden, heads, ffn); layers],
        embedding_rank: None,
        seq2seq: None,
        labels: None,
    })
}
