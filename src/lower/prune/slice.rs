//! Width slicing of one teacher layer: the physically smaller student layer
//! (kept heads' rows / columns and kept neurons only) and the masked
//! teacher-shaped layer (pruned structures zeroed) that it must equal.

use candle_core::{Tensor, D};

use crate::base::{Arch, LayerShape};
use crate::diag::Diag;
use crate::lower::prune::layout::{head_elements, head_parts, neuron_parts, Axis, Part};
use crate::lower::teacher::Tensors;
use crate::runtime::tensor_error;

/// What one student layer keeps of its teacher layer (indices ascending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub heads: Vec<usize>,
    pub neurons: Vec<usize>,
}

/// The tensors of layer `i` of `all`, with the layer prefix removed.
pub fn layer_tensors(all: &Tensors, prefix: &str) -> Tensors {
    all.iter()
        .filter_map(|(n, t)| n.strip_prefix(prefix).map(|r| (r.to_string(), t.clone())))
        .collect()
}

/// Prefixes every name of `layer` with `prefix`.
pub fn with_prefix(layer: &Tensors, prefix: &str) -> Tensors {
    layer
        .iter()
        .map(|(n, t)| (format!("{prefix}{n}"), t.clone()))
        .collect()
}

/// Per tensor, the parts a structure owns, in order (q, k, v segments of a
/// fused tensor stay in order).
fn grouped(parts: Vec<Part>) -> Vec<(String, Axis, Vec<Part>)> {
    let mut out: Vec<(String, Axis, Vec<Part>)> = Vec::new();
    for p in parts {
        match out.iter_mut().find(|(n, _, _)| *n == p.name) {
            Some((_, _, v)) => v.push(p),
            None => out.push((p.name.clone(), p.axis, vec![p])),
        }
    }
    out
}

fn dim_of(t: &Tensor, axis: Axis) -> usize {
    match axis {
        Axis::Rows => 0,
        Axis::Cols => t.rank().saturating_sub(1),
    }
}

fn all_structure_parts(
    arch: Arch,
    shape: LayerShape,
    kept: &Kept,
) -> Vec<(Vec<Part>, Vec<usize>, Vec<usize>)> {
    let kept_heads = head_elements(&kept.heads, shape.head_dim);
    let pruned: Vec<usize> = (0..shape.heads)
        .filter(|h| !kept.heads.contains(h))
        .collect();
    let pruned_heads = head_elements(&pruned, shape.head_dim);
    let pruned_neurons: Vec<usize> = (0..shape.ffn)
        .filter(|n| !kept.neurons.contains(n))
        .collect();
    vec![
        (head_parts(arch, shape), kept_heads, pruned_heads),
        (neuron_parts(arch), kept.neurons.clone(), pruned_neurons),
    ]
}

fn missing(name: &str) -> Diag {
    Diag::new(
        "plcc::build::missing-tensor",
        format!("the teacher has no tensor `{name}` in this layer"),
    )
}

/// The student layer: only kept heads and neurons. `teacher_shape` is the
/// teacher layer's shape.
pub fn slice_layer(
    layer: &Tensors,
    arch: Arch,
    teacher_shape: LayerShape,
    kept: &Kept,
) -> Result<Tensors, Diag> {
    let mut out = layer.clone();
    for (parts, keep, _) in all_structure_parts(arch, teacher_shape, kept) {
        for (name, axis, segs) in grouped(parts) {
            let t = layer.get(&name).ok_or_else(|| missing(&name))?;
            let index: Vec<u32> = segs
                .iter()
                .flat_map(|p| keep.iter().map(move |&k| (p.offset + k) as u32))
                .collect();
            let ix =
                Tensor::from_vec(index.clone(), index.len(), t.device()).map_err(tensor_error)?;
            let sliced = t
                .index_select(&ix, dim_of(t, axis))
                .and_then(|s| s.contiguous())
                .map_err(tensor_error)?;
            out.insert(name, sliced);
        }
    }
    Ok(out)
}

/// The teacher-shaped layer with every pruned structure's masked parts zeroed.
pub fn mask_layer(
    layer: &Tensors,
    arch: Arch,
    teacher_shape: LayerShape,
    kept: &Kept,
) -> Result<Tensors, Diag> {
    let mut out = layer.clone();
    for (parts, _, pruned) in all_structure_parts(arch, teacher_shape, kept) {
        for (name, axis, segs) in grouped(parts) {
            let t = layer.get(&name).ok_or_else(|| missing(&name))?;
            let d = dim_of(t, axis);
            let len = t.dim(d).map_err(tensor_error)?;
            let mut mask = vec![1f32; len];
            for p in segs.iter().filter(|p| p.masked) {
                for &e in &pruned {
                    if let Some(m) = mask.get_mut(p.offset + e) {
                        *m = 0.0;
                    }
                }
            }
            let m = Tensor::from_vec(mask, len, t.device()).map_err(tensor_error)?;
            let masked = if d == 0 && t.rank() == 2 {
                t.broadcast_mul(&m.unsqueeze(D::Minus1).map_err(tensor_error)?)
            } else {
                t.broadcast_mul(&m)
            }
            .map_err(tensor_error)?;
            out.insert(name, masked);
        }
    }
    Ok(out)
}
