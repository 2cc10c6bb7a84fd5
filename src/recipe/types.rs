//! The typed recipe: what a `.pc` file says, after its generic syntax tree was
//! checked against the recipe schema (`recipe::from_ast`). Every field keeps
//! the span it came from so later stages can point back into the text.
//!
//! This is the contract between the front end (syntax + schema) and the
//! compiler (resolve + passes). Defaults are filled in by the schema check, so
//! consumers never re-derive them.

use std::path::PathBuf;

use serde::Serialize;

use crate::base::{
    Bits, CalibrationTarget, ExitCriterion, ExitHead, Granularity, LabelSet, ScaleMethod, Task,
    TeacherRef,
};
use crate::base::{
    DataSpec, ExitScope, Importance, Keep, LrScheduleKind, Negatives, OptimizerKind, OutputFormat,
    QuantMethod, StageLength, VocabRule, WeightInputs,
};
use crate::diag::{Span, Spanned};

/// A whole recipe.
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    /// Folder that relative paths resolve against (the recipe file's folder).
    pub base_dir: PathBuf,
    pub teacher: Spanned<TeacherRef>,
    /// The task; a classification task whose recipe does not state its
    /// labels has 0 classes here, and `resolve` takes the teacher's.
    pub task: Spanned<Task>,
    /// A classification task's labels as the recipe states them (`labels:`).
    pub labels: Option<Spanned<LabelSet>>,
    /// Seed for everything random in the build unless a stage overrides it.
    pub seed: Spanned<u64>,
    pub device: Spanned<Device>,
    pub output: Option<Spanned<PathBuf>>,
    /// What the build writes at `output` (`output "DIR" { format: hf }`).
    pub output_format: OutputFormat,
    pub datasets: Vec<DataSpec>,
    /// The data sets the artifact is measured on (`eval: NAME` or
    /// `eval: [NAME, ...]`); the first is the primary one (training
    /// evaluations, best weights, the headline fidelity, exits).
    pub eval: Vec<Spanned<String>>,
    /// Layer reduction: 0-based teacher layer indices the student keeps, in order.
    pub keep_layers: Option<Spanned<Vec<Spanned<usize>>>>,
    pub prune: Option<PruneSpec>,
    /// Vocabulary pruning (`vocab { ... }`).
    pub vocab: Option<VocabSpec>,
    pub exits: Option<ExitSpec>,
    pub quantizers: Vec<QuantSpec>,
    /// Optional stage that trains the teacher itself before compression
    /// (for teachers that start from a built-in random initialisation).
    pub pretrain: Option<StageSpec>,
    /// Distillation stages, in order.
    pub stages: Vec<StageSpec>,
    /// Registered custom passes to run, in recipe order.
    pub custom_passes: Vec<CustomPassCall>,
}

pub use crate::base::Device;

/// How much of a structure to keep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Amount {
    /// An absolute count (heads, neurons).
    Count(usize),
    /// A fraction in (0, 1] of the teacher's count (`25%` is 0.25).
    Fraction(f64),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WidthSpec {
    pub heads: Option<Spanned<Amount>>,
    pub ffn: Option<Spanned<Amount>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerWidth {
    pub span: Span,
    /// 0-based teacher layer indices this override applies to.
    pub layers: Spanned<Vec<usize>>,
    pub width: WidthSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneSpec {
    pub span: Span,
    /// The `prune` keyword (where diagnostics about the whole block point).
    pub keyword: Span,
    /// Applies to every layer unless a `layer`/`layers` block overrides it.
    pub width: WidthSpec,
    pub per_layer: Vec<LayerWidth>,
    pub embedding_rank: Option<Spanned<usize>>,
    pub importance: Spanned<Importance>,
    pub over: Spanned<ExitScope>,
    /// Data set scored on (defaults to the first stage's data, else the first data set).
    pub data: Option<Spanned<String>>,
    /// Number of batches importance is accumulated over.
    pub batches: Spanned<usize>,
}

/// `vocab { data, keep | min_count }`.
#[derive(Debug, Clone, Serialize)]
pub struct VocabSpec {
    pub span: Span,
    /// The `vocab` keyword (where diagnostics about the whole block point).
    pub keyword: Span,
    /// The data set whose piece frequencies decide what is kept.
    pub data: Spanned<String>,
    pub rule: Spanned<VocabRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExitLayers {
    /// After every student layer.
    All,
    /// After these 1-based student layers (1 = after the first layer).
    List(Vec<Spanned<usize>>),
}

#[derive(Debug, Clone, Serialize)]
pub struct ExitSpec {
    pub span: Span,
    /// The `exits` keyword (where diagnostics about the whole block point).
    pub keyword: Span,
    pub after: Spanned<ExitLayers>,
    pub head: Spanned<ExitHead>,
    pub criterion: Spanned<ExitCriterion>,
    pub threshold: Option<Spanned<f64>>,
    pub patience: Option<Spanned<usize>>,
    pub target: Option<Spanned<CalibrationTarget>>,
    /// The data set a calibration target is calibrated on (default: the
    /// recipe's eval data), and how many of its first examples.
    pub data: Option<Spanned<String>>,
    pub samples: Option<Spanned<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum QuantKind {
    Weights,
    Activations,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuantSpec {
    pub span: Span,
    pub kind: QuantKind,
    /// Glob over module names, e.g. `encoder.layer.*.attention.*`.
    pub selector: Spanned<String>,
    pub bits: Spanned<Bits>,
    pub symmetric: Spanned<bool>,
    pub granularity: Spanned<Granularity>,
    pub scale: Spanned<ScaleMethod>,
    /// How weights are rounded (weights only; activations are always
    /// rounded to nearest at run time).
    pub method: Spanned<QuantMethod>,
    /// Weights only: the module's inputs when no activation quantizer is
    /// placed on it (`activations: float`: weight-only quantization).
    pub inputs: Spanned<WeightInputs>,
}

/// Calibration examples of a `method: gptq` quantizer when `samples` is not given.
pub const DEFAULT_GPTQ_SAMPLES: usize = 128;
/// Hessian damping of a `method: gptq` quantizer when `damp` is not given (1%).
pub const DEFAULT_GPTQ_DAMP: f64 = 0.01;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum LossKind {
    /// KL(teacher || student) on logits with temperature, T² scaled.
    LogitKl {
        temperature: f64,
        over: ExitScope,
    },
    /// Cross-entropy against labels (classification) or next tokens (LM).
    TaskCe,
    /// MSE between hidden states; `map` is (student layer, teacher layer), 0 = embeddings.
    /// `None` maps uniformly.
    HiddenMse {
        map: Option<Vec<(usize, usize)>>,
    },
    AttentionKl {
        map: Option<Vec<(usize, usize)>>,
    },
    AttentionMse {
        map: Option<Vec<(usize, usize)>>,
    },
    /// Token-level contrastive distillation (InfoNCE).
    Contrastive {
        temperature: f64,
        negatives: Negatives,
        layer: Option<usize>,
    },
    /// 1 - cosine between sentence embeddings.
    Cosine,
}

#[derive(Debug, Clone, Serialize)]
pub struct LossSpec {
    pub span: Span,
    pub kind: LossKind,
    pub weight: Spanned<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSpec {
    pub span: Span,
    pub name: Spanned<String>,
    pub length: Spanned<StageLength>,
    pub data: Spanned<String>,
    pub losses: Vec<LossSpec>,
    pub optimizer: Spanned<OptimizerKind>,
    pub lr: Spanned<f64>,
    pub weight_decay: Spanned<f64>,
    pub schedule: Spanned<LrScheduleKind>,
    /// Warm-up steps as an amount of the stage (count or fraction).
    pub warmup: Spanned<Amount>,
    pub batch_size: Spanned<usize>,
    pub seq_len: Spanned<usize>,
    pub grad_clip: Option<Spanned<f64>>,
    pub accumulate: Spanned<usize>,
    pub checkpoint_every: Option<Spanned<usize>>,
    /// The longest stretch of training between two checkpoints, in minutes.
    pub checkpoint_minutes: Spanned<f64>,
    pub seed: Spanned<u64>,
    /// Evaluate on the recipe's eval data every N steps.
    pub eval_every: Option<Spanned<usize>>,
    pub keep: Spanned<Keep>,
    /// Whether the stage trains through the recipe's quantizers (`quantize:
    /// false`: the float student, as the first phase of a two-phase
    /// schedule).
    pub quantize: Spanned<bool>,
}

/// A literal argument value of a custom pass call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ArgValue {
    Number(f64),
    Percent(f64),
    Str(String),
    Ident(String),
    Bool(bool),
    List(Vec<ArgValue>),
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomPassCall {
    pub span: Span,
    pub name: Spanned<String>,
    pub args: Vec<(Spanned<String>, Spanned<ArgValue>)>,
}
