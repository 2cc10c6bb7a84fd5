//! Builds the teacher's model graph from its configuration and the task:
//! input → embeddings → (attention → FFN) per layer → task head, every node
//! named by its checkpoint path.

use crate::base::{Arch, ModelConfig};
use crate::base::{ExitHead, Task};
use crate::diag::Span;

use super::model::Model;
use super::node::{AttentionOp, EmbeddingsOp, ExitOp, FfnOp, HeadKind, HeadOp, Node, Norm, Op};

/// The teacher graph of `config` for `task`; every node carries `span`.
pub fn model_from_config(config: &ModelConfig, task: Task, span: Span) -> Model {
    let mut model = Model::new();
    let bert = config.arch == Arch::Bert;
    let hidden = config.hidden_size;
    let input = model.add(Node::new("input_ids", Op::Input, span));
    let embeddings = EmbeddingsOp {
        vocab: config.vocab_size,
        hidden,
        positions: config.max_positions,
        token_types: config.type_vocab_size,
        rank: config.embedding_rank,
        word: if bert {
            "embeddings.word_embeddings"
        } else {
            "wte"
        }
        .into(),
        position: if bert {
            "embeddings.position_embeddings"
        } else {
            "wpe"
        }
        .into(),
        norm: bert.then(|| "embeddings.LayerNorm".into()),
    };
    let name = if bert { "embeddings" } else { "wte" };
    let mut prev = model.add(Node::new(name, Op::Embeddings(embeddings), span));
    model.connect(input, prev);

    for (i, shape) in config.layers.iter().enumerate() {
        let (attention_name, ffn_name) = layer_names(config.arch, i);
        let (attention_norm, ffn_norm) = if bert {
            (
                Norm::Post {
                    name: format!("encoder.layer.{i}.attention.output.LayerNorm"),
                },
                Norm::Post {
                    name: format!("encoder.layer.{i}.output.LayerNorm"),
                },
            )
        } else {
            (
                Norm::Pre {
                    name: format!("h.{i}.ln_1"),
                },
                Norm::Pre {
                    name: format!("h.{i}.ln_2"),
                },
            )
        };
        let mut attention = Node::new(
            attention_name,
            Op::Attention(AttentionOp {
                heads: shape.heads,
                head_dim: shape.head_dim,
                hidden,
                causal: !bert,
                norm: attention_norm,
            }),
            span,
        );
        attention.teacher_layer = Some(i);
        let mut ffn = Node::new(
            ffn_name,
            Op::Ffn(FfnOp {
                hidden,
                width: shape.ffn,
                activation: config.activation,
                norm: ffn_norm,
            }),
            span,
        );
        ffn.teacher_layer = Some(i);
        let a = model.add(attention);
        let f = model.add(ffn);
        model.connect(prev, a);
        model.connect(a, f);
        prev = f;
    }

    let kind = match task {
        Task::Embedding { pooling } => HeadKind::Pool { pooling },
        Task::Classification { labels } => HeadKind::Classify {
            labels,
            pooler: bert,
            classifier: if bert { "classifier" } else { "score" }.into(),
        },
        Task::CausalLm => HeadKind::LanguageModel {
            vocab: config.vocab_size,
            tied: true,
        },
    };
    let head = HeadOp {
        hidden,
        final_norm: (!bert).then(|| "ln_f".into()),
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

/// Checkpoint paths of teacher layer `i`'s attention and FFN nodes. A BERT
/// layer's FFN has no prefix of its own: its linears
/// (`intermediate.dense`, `output.dense`) sit directly under the layer.
pub fn layer_names(arch: Arch, i: usize) -> (String, String) {
    match arch {
        Arch::Bert => (
            format!("encoder.layer.{i}.attention"),
            format!("encoder.layer.{i}"),
        ),
        Arch::Gpt2 => (format!("h.{i}.attn"), format!("h.{i}.mlp")),
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
        (ExitHead::Classifier, Task::CausalLm) => (config.vocab_size, true, true),
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
