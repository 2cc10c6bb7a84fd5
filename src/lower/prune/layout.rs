//! Where the structures of one transformer layer live in its tensors: which
//! rows belong to an attention head (query / key / value, a fused
//! query-key-value tensor in three segments), which columns of the output
//! projection, which rows and columns belong to an FFN neuron. Read from the
//! family's description of its layer blocks (`base::family`). A BART layer
//! here is a decoder layer, whose head `h` is self-attention head `h` with
//! cross-attention head `h`. Names are relative to the layer; linear
//! weights are `[out, in]`.

use crate::base::family::{join, Block, Role};
use crate::base::{Arch, LayerShape};

/// Which part of a tensor a pruned structure owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Rows of a weight (and the entries of its bias).
    Rows,
    /// Columns of a weight.
    Cols,
}

/// One tensor a structure touches: its relative name, the axis, the offset of
/// the structure's segment (a fused q/k/v) and whether the masked model
/// zeroes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub axis: Axis,
    /// Added to every index (segment start inside a fused tensor).
    pub offset: usize,
    /// Zeroed for pruned structures in the masked (teacher-shaped) model.
    pub masked: bool,
}

/// The tensors an attention head owns. In the masked model only the value
/// rows and output columns are zeroed: a head whose values are zero adds
/// nothing, whatever its attention pattern. A decoder head is its
/// self-attention head and the cross-attention head of the same index (one
/// head count serves both).
pub fn head_parts(arch: Arch, shape: LayerShape) -> Vec<Part> {
    let inner = shape.heads * shape.head_dim;
    let layers = &arch.family().layers;
    [&layers.attention]
        .into_iter()
        .chain(&layers.cross_attention)
        .flat_map(|block| block_parts(block, inner))
        .collect()
}

/// The tensors an FFN neuron owns (all zeroed in the masked model).
pub fn neuron_parts(arch: Arch) -> Vec<Part> {
    block_parts(&arch.family().layers.ffn, 0)
}

/// The parts of every linear of `block`, in checkpoint order; `inner` is
/// the attention's width (a fused tensor's segment length).
fn block_parts(block: &Block, inner: usize) -> Vec<Part> {
    let mut parts = Vec::new();
    for linear in block.linears {
        let module = join(block.name, linear.name);
        let weight = format!("{module}.weight");
        let bias = format!("{module}.bias");
        let mut rows = |offset, masked| {
            for name in [&weight, &bias] {
                parts.push(Part {
                    name: name.clone(),
                    axis: Axis::Rows,
                    offset,
                    masked,
                });
            }
        };
        match linear.role {
            Role::Query | Role::Key => rows(0, false),
            Role::Value | Role::Up => rows(0, true),
            // Sliced as one tensor: q, k and v segments in turn.
            Role::QueryKeyValue => {
                rows(0, false);
                rows(inner, false);
                rows(2 * inner, true);
            }
            Role::Output | Role::Down => parts.push(Part {
                name: weight,
                axis: Axis::Cols,
                offset: 0,
                masked: true,
            }),
        }
    }
    parts
}

/// Element indices (along the part's axis, before its offset) of the kept
/// heads, each `head_dim` wide.
pub fn head_elements(heads: &[usize], head_dim: usize) -> Vec<usize> {
    heads
        .iter()
        .flat_map(|&h| h * head_dim..(h + 1) * head_dim)
        .collect()
}
