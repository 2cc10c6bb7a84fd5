//! The pieces the ONNX graphs of both families share: positions, attention
//! masks, multi-head attention, layer norms and activations, each as plcc's
//! runtime computes it.

use super::builder::{Attr, Dim};
use super::weights::WeightGraph;
use crate::base::{Activation, LayerShape};
use crate::diag::Diag;

pub const BATCH: Dim<'static> = Dim::Named("batch");
pub const SEQ: Dim<'static> = Dim::Named("sequence");

/// Positions `0..seq` of `ids` `[b, seq]`, as `[1, seq]`.
pub fn position_ids(w: &mut WeightGraph<'_>, ids: &str) -> String {
    let shape = w.g.op("Shape", &[ids], &[], "seq_len");
    let one = w.g.i64_scalar("one", 1);
    let zero = w.g.i64_scalar("zero", 0);
    let seq = w.g.op(
        "Gather",
        &[&shape, &one],
        &[Attr::Int("axis", 0)],
        "seq_len",
    );
    let range = w.g.op("Range", &[&zero, &seq, &one], &[], "position_ids");
    let axes = w.g.i64s("axes", &[0]);
    w.g.op("Unsqueeze", &[&range, &axes], &[], "position_ids")
}

/// `(mask − 1) · 1e9` as `[b, 1, 1, s]`: 0 for real keys, −1e9 for padding.
pub fn padding_bias(w: &mut WeightGraph<'_>, mask_f: &str) -> String {
    let axes = w.g.i64s("axes", &[1, 2]);
    let m = w.g.op("Unsqueeze", &[mask_f, &axes], &[], "attention_bias");
    let one = w.g.scalar("one_f", 1.0);
    let big = w.g.scalar("mask_value", 1e9);
    let shifted = w.g.op("Sub", &[&m, &one], &[], "attention_bias");
    w.g.op("Mul", &[&shifted, &big], &[], "attention_bias")
}

/// `padding_bias` plus the causal part: a query also sees no later key.
pub fn causal_bias(w: &mut WeightGraph<'_>, mask_f: &str, ids: &str) -> String {
    let positions = position_ids(w, ids);
    let axes = w.g.i64s("axes", &[-1]);
    let queries = w.g.op("Unsqueeze", &[&positions, &axes], &[], "causal");
    // [1, s, 1] against [1, 1, s] → [1, s, s]: key ≤ query.
    let axes_1 = w.g.i64s("axes", &[1]);
    let keys = w.g.op("Unsqueeze", &[&positions, &axes_1], &[], "causal");
    let seen = w.g.op("LessOrEqual", &[&keys, &queries], &[], "causal");
    let seen = w.g.op(
        "Cast",
        &[&seen],
        &[Attr::Int("to", super::proto::data_type::FLOAT as i64)],
        "causal",
    );
    let axes = w.g.i64s("axes", &[1, 2]);
    let m = w.g.op("Unsqueeze", &[mask_f, &axes], &[], "attention_bias");
    let allowed = w.g.op("Mul", &[&m, &seen], &[], "attention_bias");
    let one = w.g.scalar("one_f", 1.0);
    let big = w.g.scalar("mask_value", 1e9);
    let shifted = w.g.op("Sub", &[&allowed, &one], &[], "attention_bias");
    w.g.op("Mul", &[&shifted, &big], &[], "attention_bias")
}

pub fn layer_norm(
    w: &mut WeightGraph<'_>,
    module: &str,
    x: &str,
    eps: f64,
) -> Result<String, Diag> {
    let gamma = w.float(&format!("{module}.weight"))?;
    let beta = w.float(&format!("{module}.bias"))?;
    Ok(w.g.op(
        "LayerNormalization",
        &[x, &gamma, &beta],
        &[Attr::Int("axis", -1), Attr::Float("epsilon", eps as f32)],
        module,
    ))
}

/// Multi-head attention of `q`, `k`, `v` `[b, s, heads·d]` with the
/// additive `bias`: the context `[b, s, heads·d]`.
pub fn attention(
    w: &mut WeightGraph<'_>,
    q: &str,
    k: &str,
    v: &str,
    shape: LayerShape,
    bias: &str,
) -> String {
    let (heads, d) = (shape.heads as i64, shape.head_dim as i64);
    let split = w.g.i64s("shape", &[0, 0, heads, d]);
    let heads_first = |w: &mut WeightGraph<'_>, t: &str, perm: Vec<i64>| {
        let r = w.g.op("Reshape", &[t, &split], &[], "heads");
        w.g.op("Transpose", &[&r], &[Attr::Ints("perm", perm)], "heads")
    };
    let q = heads_first(w, q, vec![0, 2, 1, 3]);
    let k = heads_first(w, k, vec![0, 2, 3, 1]);
    let v = heads_first(w, v, vec![0, 2, 1, 3]);
    let scores = w.g.op("MatMul", &[&q, &k], &[], "scores");
    let scale = w.g.scalar("scale", 1.0 / (shape.head_dim as f32).sqrt());
    let scores = w.g.op("Mul", &[&scores, &scale], &[], "scores");
    let scores = w.g.op("Add", &[&scores, bias], &[], "scores");
    let probs =
        w.g.op("Softmax", &[&scores], &[Attr::Int("axis", -1)], "probs");
    let ctx = w.g.op("MatMul", &[&probs, &v], &[], "context");
    let ctx = w.g.op(
        "Transpose",
        &[&ctx],
        &[Attr::Ints("perm", vec![0, 2, 1, 3])],
        "context",
    );
    let join = w.g.i64s("shape", &[0, 0, heads * d]);
    w.g.op("Reshape", &[&ctx, &join], &[], "context")
}

pub fn activation(w: &mut WeightGraph<'_>, x: &str, act: Activation) -> String {
    let half = w.g.scalar("half", 0.5);
    let one = w.g.scalar("one_f", 1.0);
    match act {
        Activation::Relu => w.g.op("Relu", &[x], &[], "relu"),
        Activation::Gelu => {
            // 0.5 · x · (1 + erf(x / √2))
            let inv_sqrt2 = w.g.scalar("inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
            let t = w.g.op("Mul", &[x, &inv_sqrt2], &[], "gelu");
            let e = w.g.op("Erf", &[&t], &[], "gelu");
            let e = w.g.op("Add", &[&e, &one], &[], "gelu");
            let h = w.g.op("Mul", &[x, &half], &[], "gelu");
            w.g.op("Mul", &[&h, &e], &[], "gelu")
        }
        Activation::GeluTanh => {
            // 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
            let c = w.g.scalar("gelu_c", 0.044715);
            let k = w.g.scalar("gelu_k", (2.0 / std::f32::consts::PI).sqrt());
            let x2 = w.g.op("Mul", &[x, x], &[], "gelu");
            let x3 = w.g.op("Mul", &[&x2, x], &[], "gelu");
            let cx3 = w.g.op("Mul", &[&x3, &c], &[], "gelu");
            let inner = w.g.op("Add", &[x, &cx3], &[], "gelu");
            let inner = w.g.op("Mul", &[&inner, &k], &[], "gelu");
            let t = w.g.op("Tanh", &[&inner], &[], "gelu");
            let t = w.g.op("Add", &[&t, &one], &[], "gelu");
            let h = w.g.op("Mul", &[x, &half], &[], "gelu");
            w.g.op("Mul", &[&h, &t], &[], "gelu")
        }
    }
}
