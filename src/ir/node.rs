//! The nodes and edges of the model graph: layer-level operations with their
//! shapes, and the quantizer annotations placed on their linear modules
//! (the modules themselves are in `linear`).
//!
//! Layer norms and residual additions are folded into the attention / FFN node
//! they belong to (`norm` says where the norm sits and what it is called in the
//! checkpoint) so the graph stays one node per block. Quantizers are
//! annotations on the node that owns the linear module (`Node::quant`), keyed
//! by the module's full checkpoint name.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::base::{Activation, Arch};
use crate::base::{Bits, ExitHead, Granularity, Pooling, ScaleMethod};
use crate::base::{QuantMethod, WeightInputs};
use crate::diag::Span;

/// One dimension of a tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Dim {
    /// The sequence length (dynamic).
    Seq,
    Fixed(usize),
}

/// The type of the tensor that flows along an edge, per sequence (no batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorType {
    pub dims: Vec<Dim>,
}

impl TensorType {
    /// `[seq]`: token ids.
    pub fn tokens() -> Self {
        TensorType {
            dims: vec![Dim::Seq],
        }
    }

    /// `[seq, width]`.
    pub fn seq(width: usize) -> Self {
        TensorType {
            dims: vec![Dim::Seq, Dim::Fixed(width)],
        }
    }

    /// `[width]`: one vector per sequence.
    pub fn vector(width: usize) -> Self {
        TensorType {
            dims: vec![Dim::Fixed(width)],
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match d {
                Dim::Seq => f.write_str("seq")?,
                Dim::Fixed(n) => write!(f, "{n}")?,
            }
        }
        f.write_str("]")
    }
}

/// An edge: the tensor flowing from one node to the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub ty: TensorType,
}

/// Where a block's layer norm sits relative to its residual addition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Norm {
    /// `LayerNorm(x + block(x))` (BERT).
    Post { name: String },
    /// `x + block(LayerNorm(x))` (GPT-2).
    Pre { name: String },
}

impl Norm {
    pub fn name(&self) -> &str {
        match self {
            Norm::Post { name } | Norm::Pre { name } => name,
        }
    }
}

/// Token, position and token-type embeddings (with their layer norm for BERT).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingsOp {
    pub vocab: usize,
    pub hidden: usize,
    pub positions: usize,
    pub token_types: usize,
    /// Factorized word embedding rank: `[vocab, r]` then `[hidden, r]`.
    pub rank: Option<usize>,
    /// Name of the word-embedding table (`embeddings.word_embeddings` / `wte`).
    pub word: String,
    /// Name of the position table (`embeddings.position_embeddings` / `wpe`).
    pub position: String,
    /// Layer norm after the sum (BERT; BART's encoder), none for GPT-2.
    pub norm: Option<String>,
    /// An encoder-decoder's decoder side: its own position table and norm
    /// (the token table is shared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoder: Option<DecoderEmbeddings>,
}

/// The decoder's position table and embedding norm of an encoder-decoder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecoderEmbeddings {
    pub position: String,
    pub norm: String,
}

/// Multi-head attention with its output projection, residual and norm:
/// self-attention, or (`cross`) an encoder-decoder's attention from the
/// decoder to the encoder's final states.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionOp {
    pub heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub causal: bool,
    pub norm: Norm,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cross: bool,
    /// The architecture, which names the projections.
    #[serde(skip)]
    pub arch: Arch,
}

/// The feed-forward block with its residual and norm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FfnOp {
    pub hidden: usize,
    pub width: usize,
    pub activation: Activation,
    pub norm: Norm,
    /// The architecture, which names the two linears.
    #[serde(skip)]
    pub arch: Arch,
}

/// An early-exit head after a student layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitOp {
    /// 1-based student layer whose output the exit reads.
    pub after_layer: usize,
    pub head: ExitHead,
    pub hidden: usize,
    /// Classes (labels or vocabulary) for a classifier head; `hidden` for a pooler.
    pub outputs: usize,
    /// A classifier over every token (causal LM) rather than one per sequence.
    pub per_token: bool,
    /// The classifier reuses the word embedding matrix (causal LM exits).
    pub tied: bool,
}

/// The task head at the end of the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadOp {
    pub hidden: usize,
    /// Final layer norm in front of the head (GPT-2's `ln_f`).
    pub final_norm: Option<String>,
    /// A bias added to the logits (BART's `final_logits_bias`, `[1, vocab]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits_bias: Option<String>,
    pub kind: HeadKind,
}

/// What the task head computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum HeadKind {
    /// Sentence embedding by pooling the final hidden states.
    Pool { pooling: Pooling },
    /// Sequence classification; `pooler` is BERT's dense+tanh pooler, which
    /// also gives the classifier a bias.
    Classify {
        labels: usize,
        pooler: bool,
        classifier: String,
    },
    /// Next-token logits, through the word embedding when `tied`.
    LanguageModel { vocab: usize, tied: bool },
}

/// The operation a node performs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Op {
    /// Token ids entering the model.
    Input,
    Embeddings(EmbeddingsOp),
    Attention(AttentionOp),
    Ffn(FfnOp),
    Exit(ExitOp),
    Head(HeadOp),
}

/// A weight quantizer placed on one linear module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightQuant {
    pub bits: Bits,
    pub symmetric: bool,
    pub granularity: Granularity,
    pub scale: ScaleMethod,
    /// Round to nearest, or GPTQ with its calibration set.
    #[serde(skip_serializing_if = "QuantMethod::is_rtn")]
    pub method: QuantMethod,
    /// The module's inputs when no activation quantizer is placed on it:
    /// the integer kernel's int8 per token, or float (weight-only).
    #[serde(skip_serializing_if = "WeightInputs::is_kernel")]
    pub inputs: WeightInputs,
    /// The `quantize` directive that placed it.
    #[serde(skip)]
    pub span: Span,
}

/// An activation quantizer on the input of one linear module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActQuant {
    pub bits: Bits,
    pub symmetric: bool,
    pub granularity: Granularity,
    pub scale: ScaleMethod,
    #[serde(skip)]
    pub span: Span,
}

/// The quantizers of one module: at most one of each kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModuleQuant {
    pub weights: Option<WeightQuant>,
    pub activations: Option<ActQuant>,
}

/// A node of the model graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Checkpoint path, stable across passes (`encoder.layer.3.attention`).
    pub name: String,
    pub op: Op,
    /// 0-based teacher layer this node comes from (attention / FFN nodes of
    /// the stack that ends in the head: an encoder-decoder's decoder).
    pub teacher_layer: Option<usize>,
    /// 0-based encoder layer of an encoder-decoder's encoder nodes (which
    /// are not among `Model::layers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_layer: Option<usize>,
    /// The recipe text that caused this node (or its last change).
    #[serde(skip)]
    pub span: Span,
    /// Quantizers by full module name.
    pub quant: BTreeMap<String, ModuleQuant>,
}

impl Node {
    pub fn new(name: impl Into<String>, op: Op, span: Span) -> Self {
        Node {
            name: name.into(),
            op,
            teacher_layer: None,
            encoder_layer: None,
            span,
            quant: BTreeMap::new(),
        }
    }

    /// The tensor type this node consumes.
    pub fn input_type(&self) -> TensorType {
        match &self.op {
            Op::Input => TensorType::tokens(),
            Op::Embeddings(_) => TensorType::tokens(),
            Op::Attention(a) => TensorType::seq(a.hidden),
            Op::Ffn(f) => TensorType::seq(f.hidden),
            Op::Exit(e) => TensorType::seq(e.hidden),
            Op::Head(h) => TensorType::seq(h.hidden),
        }
    }

    /// The tensor type this node produces.
    pub fn output_type(&self) -> TensorType {
        match &self.op {
            Op::Input => TensorType::tokens(),
            Op::Embeddings(e) => TensorType::seq(e.hidden),
            Op::Attention(a) => TensorType::seq(a.hidden),
            Op::Ffn(f) => TensorType::seq(f.hidden),
            Op::Exit(e) if e.per_token => TensorType::seq(e.outputs),
            Op::Exit(e) => TensorType::vector(e.outputs),
            Op::Head(h) => match &h.kind {
                HeadKind::Pool { .. } => TensorType::vector(h.hidden),
                HeadKind::Classify { labels, .. } => TensorType::vector(*labels),
                HeadKind::LanguageModel { vocab, .. } => TensorType::seq(*vocab),
            },
        }
    }

    /// Float parameters outside the weight matrices: layer norms and
    /// token-type tables (the position table is a lookup matrix of its own).
    pub fn extra_params(&self) -> u64 {
        let n = |x: usize| x as u64;
        match &self.op {
            Op::Input | Op::Exit(_) => 0,
            Op::Embeddings(e) => {
                let norm = if e.norm.is_some() { 2 * n(e.hidden) } else { 0 };
                let decoder_norm = if e.decoder.is_some() {
                    2 * n(e.hidden)
                } else {
                    0
                };
                n(e.token_types) * n(e.hidden) + norm + decoder_norm
            }
            Op::Attention(a) => 2 * n(a.hidden),
            Op::Ffn(f) => 2 * n(f.hidden),
            Op::Head(h) => {
                let norm = match h.final_norm {
                    Some(_) => 2 * n(h.hidden),
                    None => 0,
                };
                let bias = match (&h.logits_bias, &h.kind) {
                    (Some(_), HeadKind::LanguageModel { vocab, .. }) => n(*vocab),
                    _ => 0,
                };
                norm + bias
            }
        }
    }

    /// Short kind name used in the text form.
    pub fn kind(&self) -> &'static str {
        match &self.op {
            Op::Input => "input",
            Op::Embeddings(_) => "embeddings",
            Op::Attention(_) => "attention",
            Op::Ffn(_) => "ffn",
            Op::Exit(_) => "exit",
            Op::Head(_) => "head",
        }
    }
}
