//! The weight matrices of the model graph: [`Linear`], one matrix as the
//! checkpoint stores it with what it does to its input, and
//! [`Node::linears`], the matrices of each kind of node in checkpoint order
//! under their full checkpoint names.

use serde::Serialize;

use crate::base::family::{Block, Role};
use crate::base::ExitHead;

use super::node::{AttentionOp, EmbeddingsOp, ExitOp, FfnOp, HeadKind, HeadOp, Node, Op};

/// What a linear module does with its input, which decides its FLOPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LinearUse {
    /// A lookup table (embedding): no multiply-accumulates.
    Lookup,
    /// Applied to every token.
    PerToken,
    /// Applied once per sequence (pooled representation).
    PerSequence,
}

/// A weight matrix of a node, `[out, inp]` as stored in the checkpoint
/// (GPT-2's `Conv1D` stores it transposed; the shape here is logical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Linear {
    /// Full checkpoint name without `.weight`.
    pub name: String,
    pub out: usize,
    pub inp: usize,
    pub bias: bool,
    pub usage: LinearUse,
    /// Shares its weight with another module (tied LM heads): no own storage,
    /// cannot be quantized on its own.
    pub tied: bool,
}

impl Linear {
    /// A matrix with its own storage (not tied).
    fn new(name: impl Into<String>, out: usize, inp: usize, bias: bool, usage: LinearUse) -> Self {
        Linear {
            name: name.into(),
            out,
            inp,
            bias,
            usage,
            tied: false,
        }
    }
}

impl Node {
    /// The weight matrices of this node, in checkpoint order.
    pub fn linears(&self) -> Vec<Linear> {
        match &self.op {
            Op::Input => Vec::new(),
            Op::Embeddings(e) => embedding_tables(e),
            Op::Attention(a) => attention_linears(&self.name, a),
            Op::Ffn(f) => ffn_linears(&self.name, f),
            Op::Exit(e) => exit_linears(&self.name, e),
            Op::Head(h) => head_linears(h),
        }
    }
}

/// The word table (or, factorized, the `[vocab, r]` table and its
/// `_proj` up to the hidden size), then the position table(s).
fn embedding_tables(e: &EmbeddingsOp) -> Vec<Linear> {
    let lookup =
        |name: &str, out: usize, inp: usize| Linear::new(name, out, inp, false, LinearUse::Lookup);
    let mut tables = match e.rank {
        None => vec![lookup(&e.word, e.vocab, e.hidden)],
        Some(r) => vec![
            lookup(&e.word, e.vocab, r),
            Linear::new(
                format!("{}_proj", e.word),
                e.hidden,
                r,
                false,
                LinearUse::PerToken,
            ),
        ],
    };
    tables.push(lookup(&e.position, e.positions, e.hidden));
    if let Some(d) = &e.decoder {
        tables.push(lookup(&d.position, e.positions, e.hidden));
    }
    tables
}

/// The query, key and value projections (or one fused projection) and the
/// output projection, as the node's model family names them
/// (cross-attention's in an encoder-decoder's decoder).
fn attention_linears(node: &str, a: &AttentionOp) -> Vec<Linear> {
    let inner = a.heads * a.head_dim;
    block_linears(node, a.arch.family().attention_block(a.cross), |role| {
        role.shape(a.hidden, inner, 0)
    })
}

/// The projection up to the FFN width and the one back to the hidden size.
fn ffn_linears(node: &str, f: &FfnOp) -> Vec<Linear> {
    block_linears(node, &f.arch.family().layers.ffn, |role| {
        role.shape(f.hidden, 0, f.width)
    })
}

/// The linears of a family's `block` under `node`, each of the shape its
/// role gives.
fn block_linears(node: &str, block: &Block, shape: impl Fn(Role) -> (usize, usize)) -> Vec<Linear> {
    block
        .linears
        .iter()
        .map(|l| {
            let (out, inp) = shape(l.role);
            per_token(node, l.name, out, inp)
        })
        .collect()
}

/// A classifier (tied to the word embedding, without a bias, when the exit
/// is tied) or a pooler's dense layer.
fn exit_linears(node: &str, e: &ExitOp) -> Vec<Linear> {
    let usage = if e.per_token {
        LinearUse::PerToken
    } else {
        LinearUse::PerSequence
    };
    match e.head {
        ExitHead::Classifier => vec![Linear {
            tied: e.tied,
            ..Linear::new(
                join(node, "classifier"),
                e.outputs,
                e.hidden,
                !e.tied,
                usage,
            )
        }],
        ExitHead::Pooler => vec![Linear::new(
            join(node, "dense"),
            e.hidden,
            e.hidden,
            true,
            usage,
        )],
    }
}

/// Nothing for pooling; BERT's pooler and the classifier; the LM head.
fn head_linears(h: &HeadOp) -> Vec<Linear> {
    match &h.kind {
        HeadKind::Pool { .. } => Vec::new(),
        HeadKind::Classify {
            labels,
            pooler,
            classifier,
        } => {
            let mut out = Vec::new();
            if *pooler {
                out.push(Linear::new(
                    "pooler.dense",
                    h.hidden,
                    h.hidden,
                    true,
                    LinearUse::PerSequence,
                ));
            }
            out.push(Linear::new(
                classifier.clone(),
                *labels,
                h.hidden,
                *pooler,
                LinearUse::PerSequence,
            ));
            out
        }
        HeadKind::LanguageModel { vocab, tied } => vec![Linear {
            tied: *tied,
            ..Linear::new("lm_head", *vocab, h.hidden, false, LinearUse::PerToken)
        }],
    }
}

/// The module `suffix` of node `node`, with a bias, applied to every token.
fn per_token(node: &str, suffix: &str, out: usize, inp: usize) -> Linear {
    Linear::new(join(node, suffix), out, inp, true, LinearUse::PerToken)
}

fn join(prefix: &str, suffix: &str) -> String {
    if prefix.is_empty() {
        suffix.to_string()
    } else {
        format!("{prefix}.{suffix}")
    }
}
