//! The configuration of a BART checkpoint (`model_type: bart`,
//! `BartForConditionalGeneration`): encoder and decoder may differ in depth,
//! heads and FFN width; `layers` become the decoder's and `seq2seq` the
//! encoder's. Legacy layout flags (`normalize_before`, `add_final_layer_norm`)
//! are ignored, as transformers' BART ignores them.

use super::config::{Arch, LayerShape, ModelConfig, Seq2Seq};
use super::config_json::{self, ConfigJson};
use crate::diag::Diag;

/// BART's learned position tables have two rows before position 0.
pub const POSITION_OFFSET: usize = 2;

/// One stack's layers: `{prefix}_layers`, `{prefix}_attention_heads` and
/// `{prefix}_ffn_dim`, each head `hidden / heads` wide.
fn stack(
    json: &ConfigJson,
    hidden: usize,
    keys: [&'static str; 3],
) -> Result<Vec<LayerShape>, Diag> {
    let [layers_key, heads_key, ffn_key] = keys;
    let layers = json.count(&[layers_key], config_json::LAYERS)?;
    let heads = json.count(&[heads_key], config_json::HEADS)?;
    if !hidden.is_multiple_of(heads) {
        return Err(json
            .at(
                config_json::OUT_OF_RANGE,
                heads_key,
                format!("`d_model` {hidden} is not divisible by `{heads_key}` {heads}"),
            )
            .help("every attention head has the same width: d_model / heads"));
    }
    let ffn = json.count(&[ffn_key], config_json::INTERMEDIATE)?;
    Ok(vec![
        LayerShape {
            heads,
            head_dim: hidden / heads,
            ffn,
        };
        layers
    ])
}

/// Reads a BART `config.json` (already parsed as `json`).
pub fn from_json(json: &ConfigJson, model_type: String) -> Result<ModelConfig, Diag> {
    let hidden = json.count(&["d_model"], config_json::HIDDEN)?;
    let vocab_size = json.count(&["vocab_size"], config_json::VOCAB)?;
    let activation = super::config::activation_of(json, "activation_function")?;
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
            hidden,
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
                hidden,
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
        assert_eq!(d.code, super::config_json::OUT_OF_RANGE);
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
