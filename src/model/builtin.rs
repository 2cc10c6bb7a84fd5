//! Built-in seeded models (`builtin:tiny-bert`, `builtin:tiny-gpt2`): their
//! configurations. They need no download and serve the embedded default and
//! the tests.

use super::config::{Activation, Arch, LayerShape, ModelConfig};

/// Names accepted after `builtin:`.
pub const NAMES: &[&str] = &["tiny-bert", "tiny-gpt2"];

/// The configuration of a built-in model, or `None` for an unknown name.
pub fn config(name: &str) -> Option<ModelConfig> {
    let layer = LayerShape {
        heads: 4,
        head_dim: 16,
        ffn: 256,
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
        }),
        _ => None,
    }
}
