//! Magnitude importance of attention heads and FFN neurons: the L1 norm of
//! every weight a structure owns (its query / key / value rows and output
//! columns; its intermediate row and output column), and top-k selection.

use candle_core::Tensor;

use crate::base::{Arch, LayerShape};
use crate::diag::Diag;
use crate::lower::prune::layout::{head_parts, neuron_parts, Axis, Part};
use crate::lower::prune::slice::Kept;
use crate::lower::teacher::Tensors;
use crate::runtime::tensor_error;

/// L1 norm per index along `axis` of a weight matrix.
fn l1_along(t: &Tensor, axis: Axis) -> Result<Vec<f32>, Diag> {
    let dim = match axis {
        Axis::Rows => 1,
        Axis::Cols => 0,
    };
    t.abs()
        .and_then(|a| a.sum(dim))
        .and_then(|s| s.to_vec1::<f32>())
        .map_err(tensor_error)
}

/// Sums, for each of `count` structures `width` elements wide, the L1 norms of
/// its elements in every weight part.
fn score(layer: &Tensors, parts: &[Part], count: usize, width: usize) -> Result<Vec<f32>, Diag> {
    let mut scores = vec![0f32; count];
    for p in parts.iter().filter(|p| p.name.ends_with(".weight")) {
        let t = layer.get(&p.name).ok_or_else(|| {
            Diag::new(
                "plcc::build::missing-tensor",
                format!("the teacher has no tensor `{}`", p.name),
            )
        })?;
        let norms = l1_along(t, p.axis)?;
        for (s, score) in scores.iter_mut().enumerate() {
            for e in s * width..(s + 1) * width {
                *score += norms.get(p.offset + e).copied().unwrap_or(0.0);
            }
        }
    }
    Ok(scores)
}

/// The indices of the `k` largest scores, ascending (ties: lower index first).
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept: Vec<usize> = order.into_iter().take(k).collect();
    kept.sort_unstable();
    kept
}

/// Head and neuron scores of one teacher layer.
pub fn magnitude_scores(
    layer: &Tensors,
    arch: Arch,
    shape: LayerShape,
) -> Result<(Vec<f32>, Vec<f32>), Diag> {
    let heads = score(layer, &head_parts(arch, shape), shape.heads, shape.head_dim)?;
    let neurons = score(layer, &neuron_parts(arch), shape.ffn, 1)?;
    Ok((heads, neurons))
}

/// The heads and neurons to keep by magnitude.
pub fn select_by_magnitude(
    layer: &Tensors,
    arch: Arch,
    shape: LayerShape,
    keep_heads: usize,
    keep_neurons: usize,
) -> Result<Kept, Diag> {
    let (h, n) = magnitude_scores(layer, arch, shape)?;
    Ok(Kept {
        heads: top_k(&h, keep_heads),
        neurons: top_k(&n, keep_neurons),
    })
}
