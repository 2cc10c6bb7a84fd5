//! Built-in seeded models (`builtin:tiny-bert`, `builtin:tiny-gpt2`,
//! `builtin:tiny-bart`): their
//! names and configurations. They need no download and serve the embedded
//! default and the tests. Their weights are seeded random numbers
//! (`runtime::builtin_weights`) and their tokenizers are built by plcc
//! (`text::tokenizer`).

use super::config::{Activation, Arch, LayerShape, ModelConfig, Seq2Seq};
use crate::diag::{did_you_mean, Diag};

/// Names accepted after `builtin:`.
pub const NAMES: &[&str] = &["tiny-bert", "tiny-gpt2", "tiny-bart"];

/// The configuration of a built-in model, or `None` for an unknown name.
pub fn config(name: &str) -> Option<ModelConfig> {
    let layer = LayerShape {
        heads: 4,
        head_dim: 16,
        ffn: 256,
    };
    // Twice tiny-bert's width: at 2 bits, a narrower model would be
    // dominated by what stays in f32 (biases, norms, scales).
    let bart_layer = LayerShape {
        heads: 4,
        head_dim: 32,
        ffn: 512,
    };
    match name {
        "tiny-bert" => Some(ModelConfig {
            arch: Arch::Bert,
            model_type: "bert".into(),
            vocab_size: 1024,
            hidden_size: 64,
            max_positions: 128,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            activation: Activation::Gelu,
            pad_token_id: Some(0),
            layers: vec![layer; 4],
            embedding_rank: None,
            seq2seq: None,
            labels: None,
        }),
        "tiny-gpt2" => Some(ModelConfig {
            arch: Arch::Gpt2,
            model_type: "gpt2".into(),
            vocab_size: 512,
            hidden_size: 64,
            max_positions: 128,
            type_vocab_size: 0,
            layer_norm_eps: 1e-5,
            activation: Activation::GeluTanh,
            pad_token_id: None,
            layers: vec![layer; 4],
            embedding_rank: None,
            seq2seq: None,
            labels: None,
        }),
        // BART's layout: `<s>` 0, `<pad>` 1, `</s>` 2 (also the decoder's
        // start), `<mask>` the last id.
        "tiny-bart" => Some(ModelConfig {
            arch: Arch::Bart,
            model_type: "bart".into(),
            vocab_size: 1024,
            hidden_size: 128,
            max_positions: 128,
            type_vocab_size: 0,
            layer_norm_eps: 1e-5,
            activation: Activation::Gelu,
            pad_token_id: Some(1),
            layers: vec![bart_layer; 2],
            embedding_rank: None,
            seq2seq: Some(Seq2Seq {
                encoder_layers: vec![bart_layer; 2],
                decoder_start_token_id: 2,
                bos_token_id: 0,
                eos_token_id: 2,
                scale_embedding: false,
            }),
            labels: None,
        }),
        _ => None,
    }
}

/// The seed of every built-in model's weights.
pub const SEED: u64 = 0x706c_6363; // "plcc"

/// `Diag` for an unknown built-in name, with a suggestion.
pub fn unknown(name: &str) -> Diag {
    let mut d = Diag::new(
        "plcc::model::unknown-builtin",
        format!("there is no built-in model `builtin:{name}`"),
    )
    .help(format!(
        "built-in models: {}",
        NAMES
            .iter()
            .map(|n| format!("builtin:{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(near) = did_you_mean(name, NAMES.iter().copied()) {
        d = d.note(format!("did you mean `builtin:{near}`?"));
    }
    d
}
