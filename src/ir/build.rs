//! Builds the teacher's model graph from its configuration and the task:
//! input → embeddings → (attention → FFN) per layer → task head, every node
//! named by its checkpoint path. An encoder-decoder (BART) runs its encoder
//! layers (self-attention → FFN) and then its decoder layers (causal
//! self-attention → cross-attention → FFN) along the same path; the encoder's
//! nodes carry `encoder_layer`, the decoder's `teacher_layer`.

use crate::base::{Arch, ModelConfig};
use crate::base::{ExitHead, Task};
use crate::diag::Span;

use super::model::Model;
use super::node::{
    AttentionOp, DecoderEmbeddings, EmbeddingsOp, ExitOp, FfnOp, HeadKind, HeadOp, Node, Norm, Op,
};

/// The teacher graph of `config` for `task`; every node carries `span`.
pub fn model_from_config(config: &ModelConfig, task: Task, span: Span) -> Model {
    let mut model = Model::new();
    let arch = config.arch;
    let hidden = config.hidden_size;
    let input = model.add(Node::new("input_ids", Op::Input, span));
    let (word, position, norm) = match arch {
        Arch::Bert => (
            "embeddings.word_embeddings",
            "embeddings.position_embeddings",
            Some("embeddings.LayerNorm"),
        ),
        Arch::Gpt2 => ("wte", "wpe", None),
        Arch::Bart => (
            "model.shared",
            "model.encoder.embed_positions",
            Some("model.encoder.layernorm_embedding"),
        ),
    };
    let embeddings = EmbeddingsOp {
        vocab: config.vocab_size,
        hidden,
        positions: match arch {
            Arch::Bart => config.max_positions + crate::base::config_bart::POSITION_OFFSET,
            _ => config.max_positions,
        },
        token_types: config.type_vocab_size,
        rank: config.embedding_rank,
        word: word.into(),
        position: position.into(),
        norm: norm.map(Into::into),
        decoder: (arch == Arch::Bart).then(|| DecoderEmbeddings {
            position: "model.decoder.embed_positions".into(),
            norm: "model.decoder.layernorm_embedding".into(),
        }),
    };
    let name = match arch {
        Arch::Bert => "embeddings",
        Arch::Gpt2 => "wte",
        Arch::Bart => "model.shared",
    };
    let mut prev = model.add(Node::new(name, Op::Embeddings(embeddings), span));
    model.connect(input, prev);

    let attention = |name: String, shape: crate::base::LayerShape, causal, cross, norm| {
        Node::new(
            name,
            Op::Attention(AttentionOp {
                heads: shape.heads,
                head_dim: shape.head_dim,
                hidden,
                causal,
                norm,
                cross,
                arch,
            }),
            span,
        )
    };
    let ffn = |name: String, shape: crate::base::LayerShape, norm| {
        Node::new(
            name,
            Op::Ffn(FfnOp {
                hidden,
                width: shape.ffn,
                activation: config.activation,
                norm,
                arch,
            }),
            span,
        )
    };
    let post = |name: String| Norm::Post { name };
    let pre = |name: String| Norm::Pre { name };
    let mut chain = |model: &mut Model, nodes: Vec<Node>| {
        for node in nodes {
            let ix = model.add(node);
            model.connect(prev, ix);
            prev = ix;
        }
    };

    for (i, shape) in config.encoder_layers().iter().enumerate() {
        let p = format!("model.encoder.layers.{i}");
        let mut a = attention(
            format!("{p}.self_attn"),
            *shape,
            false,
            false,
            post(format!("{p}.self_attn_layer_norm")),
        );
        let mut f = ffn(p.clone(), *shape, post(format!("{p}.final_layer_norm")));
        a.encoder_layer = Some(i);
        f.encoder_layer = Some(i);
        chain(&mut model, vec![a, f]);
    }
    for (i, shape) in config.layers.iter().enumerate() {
        let (attention_name, ffn_name) = layer_names(arch, i);
        let mut nodes = match arch {
            Arch::Bert => vec![
                attention(
                    attention_name,
                    *shape,
                    false,
                    false,
                    post(format!("encoder.layer.{i}.attention.output.LayerNorm")),
                ),
                ffn(
                    ffn_name,
                    *shape,
                    post(format!("encoder.layer.{i}.output.LayerNorm")),
                ),
            ],
            Arch::Gpt2 => vec![
                attention(
                    attention_name,
                    *shape,
                    true,
                    false,
                    pre(format!("h.{i}.ln_1")),
                ),
                ffn(ffn_name, *shape, pre(format!("h.{i}.ln_2"))),
            ],
            Arch::Bart => {
                let p = format!("model.decoder.layers.{i}");
                vec![
                    attention(
                        attention_name,
                        *shape,
                        true,
                        false,
                        post(format!("{p}.self_attn_layer_norm")),
                    ),
                    attention(
                        format!("{p}.encoder_attn"),
                        *shape,
                        false,
                        true,
                        post(format!("{p}.encoder_attn_layer_norm")),
                    ),
                    ffn(ffn_name, *shape, post(format!("{p}.final_layer_norm"))),
                ]
            }
        };
        for node in &mut nodes {
            node.teacher_layer = Some(i);
        }
        chain(&mut model, nodes);
    }

    let kind = match task {
        Task::Embedding { pooling } => HeadKind::Pool { pooling },
        Task::Classification { labels } => HeadKind::Classify {
            labels,
            pooler: arch == Arch::Bert,
            classifier: if arch == Arch::Bert {
                "classifier"
            } else {
                "score"
            }
            .into(),
        },
        Task::CausalLm | Task::Seq2Seq => HeadKind::LanguageModel {
            vocab: config.vocab_size,
            tied: true,
        },
    };
    let head = HeadOp {
        hidden,
        final_norm: (arch == Arch::Gpt2).then(|| "ln_f".into()),
        logits_bias: (arch == Arch::Bart).then(|| "final_logits_bias".into()),
        kind,
    };
    let head_name = match &head.kind {
        HeadKind::Pool { .. } => "pooler",
        HeadKind::Classify { classifier, .. } => classifier.as_str(),
        HeadKind::LanguageModel { .. } => "lm_head",
    }
    .to_string();
    let head = model.add(Node::new(head_name, Op::Head(head), span));
    model.connect(prev, head);
    model
}

/// Checkpoint paths of teacher layer `i`'s attention and FFN nodes (a
/// decoder layer's self-attention for an encoder-decoder). A BERT or BART
/// layer's FFN has no prefix of its own: its linears
/// (`intermediate.dense` / `output.dense`, `fc1` / `fc2`) sit directly under
/// the layer.
pub fn layer_names(arch: Arch, i: usize) -> (String, String) {
    match arch {
        Arch::Bert => (
            format!("encoder.layer.{i}.attention"),
            format!("encoder.layer.{i}"),
        ),
        Arch::Gpt2 => (format!("h.{i}.attn"), format!("h.{i}.mlp")),
        Arch::Bart => (
            format!("model.decoder.layers.{i}.self_attn"),
            format!("model.decoder.layers.{i}"),
        ),
    }
}

/// An exit head node after 1-based student layer `after_layer`, named `exit.N`.
pub fn exit_node(
    after_layer: usize,
    head: ExitHead,
    task: Task,
    config: &ModelConfig,
    span: Span,
) -> Node {
    let (outputs, per_token, tied) = match (head, task) {
        (ExitHead::Pooler, _) => (config.hidden_size, false, false),
        (ExitHead::Classifier, Task::Classification { labels }) => (labels, false, false),
        (ExitHead::Classifier, Task::CausalLm | Task::Seq2Seq) => (config.vocab_size, true, true),
        (ExitHead::Classifier, Task::Embedding { .. }) => (config.hidden_size, false, false),
    };
    Node::new(
        format!("exit.{after_layer}"),
        Op::Exit(ExitOp {
            after_layer,
            head,
            hidden: config.hidden_size,
            outputs,
            per_token,
            tied,
        }),
        span,
    )
}
