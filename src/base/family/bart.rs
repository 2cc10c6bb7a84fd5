//! BART (`BartForConditionalGeneration`): a post-LN encoder
//! (`model.encoder.layers.{i}`) and decoder (`model.decoder.layers.{i}`)
//! sharing one token embedding (`model.shared`, also the output head, plus
//! `final_logits_bias`), learned positions offset by 2 with a norm on each
//! stack's embeddings, and in each decoder layer causal self-attention, then
//! cross-attention over the encoder's final states (`encoder_attn`), then
//! the FFN. Tensor names are Hugging Face's, the `model.` prefix kept.
//!
//! Its `config.json` may give encoder and decoder their own depth, heads
//! and FFN width; `layers` become the decoder's and `seq2seq` the
//! encoder's. Legacy layout flags (`normalize_before`,
//! `add_final_layer_norm`) are ignored, as transformers' BART ignores them.

use super::{
    Block, DecoderEmbeddings, Embeddings, Family, HeadNames, Linear, Role, Stack, Supports,
};
use crate::base::config::{Arch, LayerShape, ModelConfig, Seq2Seq};
use crate::base::config_json::{self, ConfigJson};
use crate::base::task::Task;
use crate::diag::Diag;

/// Everything but `final_logits_bias` is under `model.`.
pub const MODEL: &str = "model";
/// Under `model`: the shared token table and the two stacks.
pub const SHARED: &str = "shared";
pub const ENCODER: &str = "encoder";
pub const DECODER: &str = "decoder";
/// Under each stack: its position table, embedding norm and layers.
pub const POSITIONS: &str = "embed_positions";
pub const EMBEDDING_NORM: &str = "layernorm_embedding";
pub const STACK_LAYERS: &str = "layers";
/// A layer's attention blocks and their norms.
pub const SELF_ATTENTION: &str = "self_attn";
pub const SELF_ATTENTION_NORM: &str = "self_attn_layer_norm";
pub const CROSS_ATTENTION: &str = "encoder_attn";
pub const CROSS_ATTENTION_NORM: &str = "encoder_attn_layer_norm";
/// An attention block's linears.
pub const Q_PROJ: &str = "q_proj";
pub const K_PROJ: &str = "k_proj";
pub const V_PROJ: &str = "v_proj";
pub const OUT_PROJ: &str = "out_proj";
/// The FFN's linears (directly under the layer) and its norm.
pub const FC1: &str = "fc1";
pub const FC2: &str = "fc2";
pub const FFN_NORM: &str = "final_layer_norm";
/// Added to the LM logits, at the checkpoint's root.
pub const LOGITS_BIAS: &str = "final_logits_bias";

/// BART's learned position tables have two rows before position 0.
pub const POSITION_OFFSET: usize = 2;

const ATTENTION_LINEARS: &[Linear] = &[
    Linear {
        name: Q_PROJ,
        role: Role::Query,
    },
    Linear {
        name: K_PROJ,
        role: Role::Key,
    },
    Linear {
        name: V_PROJ,
        role: Role::Value,
    },
    Linear {
        name: OUT_PROJ,
        role: Role::Output,
    },
];

const SELF_ATTENTION_BLOCK: Block = Block {
    name: SELF_ATTENTION,
    linears: ATTENTION_LINEARS,
    norm: SELF_ATTENTION_NORM,
};

const FFN_BLOCK: Block = Block {
    name: "",
    linears: &[
        Linear {
            name: FC1,
            role: Role::Up,
        },
        Linear {
            name: FC2,
            role: Role::Down,
        },
    ],
    norm: FFN_NORM,
};

pub static FAMILY: Family = Family {
    arch: Arch::Bart,
    model_types: &["bart"],
    read_config,
    base_prefix: "",
    anchor: "model.shared.weight",
    transposed_linears: false,
    embeddings: Embeddings {
        node: "model.shared",
        word: "model.shared",
        position: "model.encoder.embed_positions",
        position_offset: POSITION_OFFSET,
        token_types: None,
        norm: Some("model.encoder.layernorm_embedding"),
        decoder: Some(DecoderEmbeddings {
            position: "model.decoder.embed_positions",
            norm: "model.decoder.layernorm_embedding",
        }),
        prefixes: &[
            "model.shared",
            "model.encoder.embed",
            "model.decoder.embed",
            "model.encoder.layernorm_embedding",
            "model.decoder.layernorm_embedding",
        ],
        tied_head: true,
    },
    layers: Stack {
        root: "model.decoder.layers.",
        attention: SELF_ATTENTION_BLOCK,
        cross_attention: Some(Block {
            name: CROSS_ATTENTION,
            linears: ATTENTION_LINEARS,
            norm: CROSS_ATTENTION_NORM,
        }),
        ffn: FFN_BLOCK,
        norm_first: false,
        causal: true,
    },
    encoder: Some(Stack {
        root: "model.encoder.layers.",
        attention: SELF_ATTENTION_BLOCK,
        cross_attention: None,
        ffn: FFN_BLOCK,
        norm_first: false,
        causal: false,
    }),
    head: HeadNames {
        final_norm: None,
        logits_bias: Some(LOGITS_BIAS),
        classifier: "score",
        pooler: None,
    },
    supports: Supports {
        language_model: Some(Task::Seq2Seq),
        classification: true,
    },
};

/// One stack's layers: `{prefix}_layers`, `{prefix}_attention_heads` and
/// `{prefix}_ffn_dim`, each head `hidden / heads` wide.
fn stack(json: &ConfigJson<'_>, keys: [&'static str; 3]) -> Result<Vec<LayerShape>, Diag> {
    let [layers_key, heads_key, ffn_key] = keys;
    let layers = json.count(&[layers_key], config_json::LAYERS)?;
    let (hidden, heads) = json.width_and_heads(&["d_model"], &[heads_key], "d_model")?;
    let ffn = json.count(&[ffn_key], config_json::INTERMEDIATE)?;
    Ok(vec![LayerShape::even(hidden, heads, ffn); layers])
}

/// Reads a BART `config.json` (already parsed as `json`).
fn read_config(json: &ConfigJson<'_>, model_type: String) -> Result<ModelConfig, Diag> {
    let hidden = json.count(&["d_model"], config_json::HIDDEN)?;
    let vocab_size = json.count(&["vocab_size"], config_json::VOCAB)?;
    let activation = json.activation("activation_function")?;
    let token = |key: &'static str, default: u32| -> Result<u32, Diag> {
        Ok(json.token_id(&[key], vocab_size)?.unwrap_or(default))
    };
    Ok(ModelConfig {
        arch: Arch::Bart,
        model_type,
        vocab_size,
        hidden_size: hidden,
        max_positions: json.count(&["max_position_embeddings"], config_json::POSITIONS)?,
        type_vocab_size: 0,
        layer_norm_eps: 1e-5,
        activation,
        pad_token_id: Some(token("pad_token_id", 1)?),
        layers: stack(
            json,
            [
                "decoder_layers",
                "decoder_attention_heads",
                "decoder_ffn_dim",
            ],
        )?,
        embedding_rank: None,
        seq2seq: Some(Seq2Seq {
            encoder_layers: stack(
                json,
                [
                    "encoder_layers",
                    "encoder_attention_heads",
                    "encoder_ffn_dim",
                ],
            )?,
            decoder_start_token_id: token("decoder_start_token_id", 2)?,
            bos_token_id: token("bos_token_id", 0)?,
            eos_token_id: token("eos_token_id", 2)?,
            scale_embedding: json.flag_or(&["scale_embedding"], false),
        }),
        labels: None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::base::{Arch, ModelConfig};

    const CONFIG: &str = r#"{
  "model_type": "bart",
  "d_model": 60,
  "encoder_layers": 3, "encoder_attention_heads": 5, "encoder_ffn_dim": 104,
  "decoder_layers": 2, "decoder_attention_heads": 3, "decoder_ffn_dim": 88,
  "vocab_size": 301, "max_position_embeddings": 40,
  "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2,
  "scale_embedding": true
}"#;

    #[test]
    fn encoder_and_decoder_keep_their_own_shapes() {
        let c = ModelConfig::from_json_str(CONFIG, Path::new("config.json")).unwrap();
        assert_eq!(c.arch, Arch::Bart);
        assert_eq!(
            (c.num_layers(), c.layers[0].heads, c.layers[0].head_dim),
            (2, 3, 20)
        );
        assert_eq!(c.layers[1].ffn, 88);
        let e = c.encoder_layers();
        assert_eq!(
            (e.len(), e[0].heads, e[0].head_dim, e[0].ffn),
            (3, 5, 12, 104)
        );
        let s = c.seq2seq.unwrap();
        assert_eq!(
            (s.decoder_start_token_id, s.eos_token_id, s.scale_embedding),
            (2, 2, true)
        );
        assert_eq!(c.pad_token_id, Some(1));
    }

    #[test]
    fn heads_that_do_not_divide_the_width_are_a_diagnostic_at_their_key() {
        let bad = CONFIG.replace(
            "\"decoder_attention_heads\": 3",
            "\"decoder_attention_heads\": 7",
        );
        let d = ModelConfig::from_json_str(&bad, Path::new("config.json")).unwrap_err();
        assert_eq!(d.code, crate::base::config_json::OUT_OF_RANGE);
        assert!(
            d.message.contains("decoder_attention_heads") && d.message.contains("config.json:"),
            "{}",
            d.message
        );
        let missing = CONFIG.replace("\"encoder_ffn_dim\": 104,", "");
        let d = ModelConfig::from_json_str(&missing, Path::new("config.json")).unwrap_err();
        assert!(d.message.contains("encoder_ffn_dim"), "{}", d.message);
    }
}
