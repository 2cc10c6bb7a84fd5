//! Where the structures of one transformer layer live in its tensors: which
//! rows belong to an attention head (query / key / value, GPT-2's fused
//! `c_attn` in three segments), which columns of the output projection, which
//! rows and columns belong to an FFN neuron. A BART layer here is a decoder
//! layer, whose head `h` is self-attention head `h` with cross-attention head
//! `h`. Names are relative to the layer
//! (`attention.self.query.weight`, `attn.c_attn.weight`); linear weights are
//! `[out, in]`.

use crate::base::{Arch, LayerShape};

/// The tensor name prefix of layer `i`.
pub fn layer_prefix(arch: Arch, i: usize) -> String {
    format!("{}{i}.", layers_root(arch))
}

/// The prefix of every layer's tensors (an encoder-decoder's decoder
/// layers; its encoder layers are not sliced).
pub fn layers_root(arch: Arch) -> &'static str {
    match arch {
        Arch::Bert => "encoder.layer.",
        Arch::Gpt2 => "h.",
        Arch::Bart => "model.decoder.layers.",
    }
}

/// Which part of a tensor a pruned structure owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Rows of a weight (and the entries of its bias).
    Rows,
    /// Columns of a weight.
    Cols,
}

/// One tensor a structure touches: its relative name, the axis, the offset of
/// the structure's segment (GPT-2's fused q/k/v) and whether the masked model
/// zeroes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: &'static str,
    pub axis: Axis,
    /// Added to every index (segment start inside a fused tensor).
    pub offset: usize,
    /// Zeroed for pruned structures in the masked (teacher-shaped) model.
    pub masked: bool,
}

fn part(name: &'static str, axis: Axis, offset: usize, masked: bool) -> Part {
    Part {
        name,
        axis,
        offset,
        masked,
    }
}

/// The tensors an attention head owns. In the masked model only the value
/// rows and output columns are zeroed: a head whose values are zero adds
/// nothing, whatever its attention pattern.
pub fn head_parts(arch: Arch, shape: LayerShape) -> Vec<Part> {
    let inner = shape.heads * shape.head_dim;
    match arch {
        Arch::Bert => vec![
            part("attention.self.query.weight", Axis::Rows, 0, false),
            part("attention.self.query.bias", Axis::Rows, 0, false),
            part("attention.self.key.weight", Axis::Rows, 0, false),
            part("attention.self.key.bias", Axis::Rows, 0, false),
            part("attention.self.value.weight", Axis::Rows, 0, true),
            part("attention.self.value.bias", Axis::Rows, 0, true),
            part("attention.output.dense.weight", Axis::Cols, 0, true),
        ],
        // c_attn is sliced as one tensor: see `fused_segments`.
        Arch::Gpt2 => vec![
            part("attn.c_attn.weight", Axis::Rows, 0, false),
            part("attn.c_attn.bias", Axis::Rows, 0, false),
            part("attn.c_attn.weight", Axis::Rows, inner, false),
            part("attn.c_attn.bias", Axis::Rows, inner, false),
            part("attn.c_attn.weight", Axis::Rows, 2 * inner, true),
            part("attn.c_attn.bias", Axis::Rows, 2 * inner, true),
            part("attn.c_proj.weight", Axis::Cols, 0, true),
        ],
        // A decoder head is its self-attention head and the cross-attention
        // head of the same index (one head count serves both).
        Arch::Bart => vec![
            part("self_attn.q_proj.weight", Axis::Rows, 0, false),
            part("self_attn.q_proj.bias", Axis::Rows, 0, false),
            part("self_attn.k_proj.weight", Axis::Rows, 0, false),
            part("self_attn.k_proj.bias", Axis::Rows, 0, false),
            part("self_attn.v_proj.weight", Axis::Rows, 0, true),
            part("self_attn.v_proj.bias", Axis::Rows, 0, true),
            part("self_attn.out_proj.weight", Axis::Cols, 0, true),
            part("encoder_attn.q_proj.weight", Axis::Rows, 0, false),
            part("encoder_attn.q_proj.bias", Axis::Rows, 0, false),
            part("encoder_attn.k_proj.weight", Axis::Rows, 0, false),
            part("encoder_attn.k_proj.bias", Axis::Rows, 0, false),
            part("encoder_attn.v_proj.weight", Axis::Rows, 0, true),
            part("encoder_attn.v_proj.bias", Axis::Rows, 0, true),
            part("encoder_attn.out_proj.weight", Axis::Cols, 0, true),
        ],
    }
}

/// The tensors an FFN neuron owns (all zeroed in the masked model).
pub fn neuron_parts(arch: Arch) -> Vec<Part> {
    match arch {
        Arch::Bert => vec![
            part("intermediate.dense.weight", Axis::Rows, 0, true),
            part("intermediate.dense.bias", Axis::Rows, 0, true),
            part("output.dense.weight", Axis::Cols, 0, true),
        ],
        Arch::Gpt2 => vec![
            part("mlp.c_fc.weight", Axis::Rows, 0, true),
            part("mlp.c_fc.bias", Axis::Rows, 0, true),
            part("mlp.c_proj.weight", Axis::Cols, 0, true),
        ],
        Arch::Bart => vec![
            part("fc1.weight", Axis::Rows, 0, true),
            part("fc1.bias", Axis::Rows, 0, true),
            part("fc2.weight", Axis::Cols, 0, true),
        ],
    }
}

/// Element indices (along the part's axis, before its offset) of the kept
/// heads, each `head_dim` wide.
pub fn head_elements(heads: &[usize], head_dim: usize) -> Vec<usize> {
    heads
        .iter()
        .flat_map(|&h| h * head_dim..(h + 1) * head_dim)
        .collect()
}
