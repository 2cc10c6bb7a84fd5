//! Builds the teacher's model graph from its configuration and the task:
//! input → embeddings → (attention → FFN) per layer → task head, every node
//! named by its checkpoint path as the model family describes it
//! (`base::family`). An encoder-decoder (BART) runs its encoder layers
//! (self-attention → FFN) and then its decoder layers (causal
//! self-attention → cross-attention → FFN) along the same path; the
//! encoder's nodes carry `encoder_layer`, the decoder's `teacher_layer`.

use crate::base::family::{self, Block, Family, Stack};
use crate::base::{ExitHead, Task};
use crate::base::{LayerShape, ModelConfig};
use crate::diag::Span;

use super::model::Model;
use super::node::{
    AttentionOp, DecoderEmbeddings, EmbeddingsOp, ExitOp, FfnOp, HeadKind, HeadOp, Node, Norm, Op,
};

/// The teacher graph of `config` for `task`; every node carries `span`.
pub fn model_from_config(config: &ModelConfig, task: Task, span: Span) -> Model {
    let family = config.arch.family();
    let mut model = Model::new();
    let input = model.add(Node::new("input_ids", Op::Input, span));
    let mut prev = model.add(embeddings_node(config, family, span));
    model.connect(input, prev);
    let mut chain = |model: &mut Model, nodes: Vec<Node>| {
        for node in nodes {
            let ix = model.add(node);
            model.connect(prev, ix);
            prev = ix;
        }
    };
    if let Some(encoder) = &family.encoder {
        for (i, shape) in config.encoder_layers().iter().enumerate() {
            let mut nodes = layer_nodes(config, encoder, i, *shape, span);
            for node in &mut nodes {
                node.encoder_layer = Some(i);
            }
            chain(&mut model, nodes);
        }
    }
    for (i, shape) in config.layers.iter().enumerate() {
        let mut nodes = layer_nodes(config, &family.layers, i, *shape, span);
        for node in &mut nodes {
            node.teacher_layer = Some(i);
        }
        chain(&mut model, nodes);
    }
    let head = model.add(head_node(config, family, task, span));
    model.connect(prev, head);
    model
}

/// The embeddings node: token and position tables (an encoder-decoder's
/// decoder has its own positions), token types, and the norm on their sum.
fn embeddings_node(config: &ModelConfig, family: &Family, span: Span) -> Node {
    let e = &family.embeddings;
    let op = EmbeddingsOp {
        vocab: config.vocab_size,
        hidden: config.hidden_size,
        positions: config.max_positions + e.position_offset,
        token_types: config.type_vocab_size,
        rank: config.embedding_rank,
        word: e.word.into(),
        position: e.position.into(),
        norm: e.norm.map(Into::into),
        decoder: e.decoder.as_ref().map(|d| DecoderEmbeddings {
            position: d.position.into(),
            norm: d.norm.into(),
        }),
    };
    Node::new(e.node, Op::Embeddings(op), span)
}

/// The nodes of layer `i` of `stack`, one per block in forward order:
/// self-attention, cross-attention (an encoder-decoder's decoder), FFN.
fn layer_nodes(
    config: &ModelConfig,
    stack: &Stack,
    i: usize,
    shape: LayerShape,
    span: Span,
) -> Vec<Node> {
    let hidden = config.hidden_size;
    let norm = |block: &Block| {
        let name = family::join(&stack.layer(i), block.norm);
        if stack.norm_first {
            Norm::Pre { name }
        } else {
            Norm::Post { name }
        }
    };
    let attention = |block: &Block, causal, cross| {
        let op = AttentionOp {
            heads: shape.heads,
            head_dim: shape.head_dim,
            hidden,
            causal,
            norm: norm(block),
            cross,
            arch: config.arch,
        };
        Node::new(stack.block(i, block), Op::Attention(op), span)
    };
    let mut nodes = vec![attention(&stack.attention, stack.causal, false)];
    if let Some(cross) = &stack.cross_attention {
        nodes.push(attention(cross, false, true));
    }
    let ffn = FfnOp {
        hidden,
        width: shape.ffn,
        activation: config.activation,
        norm: norm(&stack.ffn),
        arch: config.arch,
    };
    nodes.push(Node::new(stack.block(i, &stack.ffn), Op::Ffn(ffn), span));
    nodes
}

/// The task head: pooling, a classifier (with the family's pooler, when
/// it has one) or the LM head tied to the token embedding.
fn head_node(config: &ModelConfig, family: &Family, task: Task, span: Span) -> Node {
    let names = &family.head;
    let kind = match task {
        Task::Embedding { pooling } => HeadKind::Pool { pooling },
        Task::Classification { labels } => HeadKind::Classify {
            labels,
            pooler: names.pooler.is_some(),
            classifier: names.classifier.into(),
        },
        Task::CausalLm | Task::Seq2Seq => HeadKind::LanguageModel {
            vocab: config.vocab_size,
            tied: true,
        },
    };
    let name = match &kind {
        HeadKind::Pool { .. } => "pooler",
        HeadKind::Classify { classifier, .. } => classifier.as_str(),
        HeadKind::LanguageModel { .. } => "lm_head",
    }
    .to_string();
    let head = HeadOp {
        hidden: config.hidden_size,
        final_norm: names.final_norm.map(Into::into),
        logits_bias: names.logits_bias.map(Into::into),
        kind,
    };
    Node::new(name, Op::Head(head), span)
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
