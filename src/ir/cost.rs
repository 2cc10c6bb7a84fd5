//! The cost model: parameters, bytes on disk at the real packed bit widths,
//! and FLOPs per token, for any model graph (teacher or student).
//!
//! - Parameters: every weight matrix (tied ones count once, at their owner),
//!   biases, layer norms, position and token-type tables.
//! - Bytes: float tensors take 4 bytes per element. A `b`-bit weight matrix of
//!   `n` elements takes `ceil(n·b/8)` bytes plus one scale per tensor, row
//!   (output channel) or group (`ceil(inp/group)` per row), and as many
//!   zero points when asymmetric: f32 for tensors and rows, f16 for groups. Biases and norms stay f32. Activation
//!   quantizers store nothing except a learned clipping scale (one f32).
//! - FLOPs per token: 2 × multiply-accumulates of every per-token linear, plus
//!   attention scores and context (`2·heads·head_dim·seq` each) at the plan's
//!   sequence length (no causal discount). Work done once per sequence (pooler,
//!   classifiers on the pooled vector) is spread over the sequence's tokens
//!   (rounded up). Embedding lookups cost nothing.
//! - `flops_per_token` is the full depth through the final head without exit
//!   heads; `exits[k]` is the cost of leaving at exit `k`: every layer up to
//!   it plus every exit head evaluated on the way (itself included).

use serde::Serialize;

use super::linear::{Linear, LinearUse};
use super::model::Model;
use super::node::{ModuleQuant, Node, Op};
use crate::base::{Bits, Granularity, ScaleMethod};

/// Size and compute of one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub params: u64,
    pub bytes: u64,
    pub flops_per_token: u64,
    pub exits: Vec<ExitCost>,
}

/// Compute needed to leave at one exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitCost {
    /// 1-based student layer the exit follows.
    pub after_layer: usize,
    pub flops_per_token: u64,
}

/// Estimates `model` at sequence length `seq_len`.
pub fn estimate(model: &Model, seq_len: usize) -> Cost {
    let seq = seq_len.max(1) as u64;
    let mut params = 0u64;
    let mut bytes = 0u64;
    for ix in model.ordered_nodes() {
        let node = model.node(ix);
        params += node_params(node);
        bytes += node_bytes(node);
    }

    // FLOPs per sequence along the main path and at each exit.
    let flops_of = |ix| node_flops_per_sequence(model.node(ix), seq);
    let mut path = model
        .find_op(|op| matches!(op, Op::Embeddings(_)))
        .map(flops_of)
        .unwrap_or(0);
    let layers = model.layers();
    let exits: Vec<_> = model
        .exits()
        .into_iter()
        .filter_map(|ix| match &model.node(ix).op {
            Op::Exit(e) => Some((e.after_layer, flops_of(ix))),
            _ => None,
        })
        .collect();
    // An encoder-decoder's encoder runs first (counted as if the source were
    // as long as the target).
    for layer in model.encoder_layers() {
        path += flops_of(layer.attention) + flops_of(layer.ffn);
    }
    let mut exit_heads_so_far = 0u64;
    let mut exit_costs = Vec::new();
    for layer in &layers {
        path += flops_of(layer.attention) + flops_of(layer.ffn);
        path += layer.cross.map_or(0, flops_of);
        for &(after, head) in exits.iter().filter(|(after, _)| *after == layer.student) {
            exit_heads_so_far += head;
            exit_costs.push(ExitCost {
                after_layer: after,
                flops_per_token: (path + exit_heads_so_far).div_ceil(seq),
            });
        }
    }
    let head = model
        .find_op(|op| matches!(op, Op::Head(_)))
        .map(flops_of)
        .unwrap_or(0);
    Cost {
        params,
        bytes,
        flops_per_token: (path + head).div_ceil(seq),
        exits: exit_costs,
    }
}

/// Parameters of one node.
pub fn node_params(node: &Node) -> u64 {
    let own: u64 = node
        .linears()
        .iter()
        .filter(|l| !l.tied)
        .map(|l| matrix_elems(l) + bias_elems(l))
        .sum();
    own + node.extra_params()
}

/// Bytes one node takes in a packed artifact.
pub fn node_bytes(node: &Node) -> u64 {
    let mut bytes = 4 * node.extra_params();
    for l in node.linears().iter().filter(|l| !l.tied) {
        let quant = node.quant.get(&l.name);
        bytes += weight_bytes(l, quant) + 4 * bias_elems(l);
        if let Some(a) = quant.and_then(|q| q.activations.as_ref()) {
            if a.scale == ScaleMethod::Learned {
                bytes += 4;
            }
        }
    }
    bytes
}

/// Bytes of a weight matrix, packed at its quantizer's bit width.
pub fn weight_bytes(linear: &Linear, quant: Option<&ModuleQuant>) -> u64 {
    let n = matrix_elems(linear);
    let Some(w) = quant.and_then(|q| q.weights.as_ref()) else {
        return 4 * n;
    };
    let data = (n * w.bits.storage_bits() as u64).div_ceil(8);
    let rows = linear.out as u64;
    let scales = match w.granularity {
        Granularity::Tensor => 1,
        Granularity::Row | Granularity::Token => rows,
        Granularity::Group(g) => rows * (linear.inp as u64).div_ceil(g.max(1) as u64),
    };
    // Scales (and zero points) of groups within rows are F16, the others
    // F32 (`artifact::half_precision_units`).
    let value = match w.granularity {
        Granularity::Group(g) if g < linear.inp => 2,
        _ => 4,
    };
    // Binary and ternary quantizers are symmetric whatever the recipe says.
    let asymmetric = !w.symmetric && matches!(w.bits, Bits::Int(_));
    let per_scale = if asymmetric { 2 * value } else { value };
    data + scales * per_scale
}

/// FLOPs of one node for a whole sequence of `seq` tokens.
pub fn node_flops_per_sequence(node: &Node, seq: u64) -> u64 {
    let linears: u64 = node
        .linears()
        .iter()
        .map(|l| {
            let macs = matrix_elems(l);
            match l.usage {
                LinearUse::Lookup => 0,
                LinearUse::PerToken => 2 * macs * seq,
                LinearUse::PerSequence => 2 * macs,
            }
        })
        .sum();
    let attention = match &node.op {
        // scores (q·k over seq keys) and context (p·v), per token
        Op::Attention(a) => 2 * 2 * (a.heads * a.head_dim) as u64 * seq * seq,
        _ => 0,
    };
    linears + attention
}

fn matrix_elems(l: &Linear) -> u64 {
    l.out as u64 * l.inp as u64
}

fn bias_elems(l: &Linear) -> u64 {
    if l.bias {
        l.out as u64
    } else {
        0
    }
}

/// Bytes the word embedding of `model` saves against the same embedding
/// (same rank and quantizer) with `teacher_vocab` rows; 0 without embeddings.
pub fn vocab_bytes_saved(model: &Model, teacher_vocab: usize) -> u64 {
    let Some(ix) = model.find_op(|op| matches!(op, Op::Embeddings(_))) else {
        return 0;
    };
    let node = model.node(ix);
    let mut full = node.clone();
    if let Op::Embeddings(e) = &mut full.op {
        e.vocab = teacher_vocab;
    }
    node_bytes(&full).saturating_sub(node_bytes(node))
}
