//! `Plan`: the decisions that are not data flow, kept beside the model graph:
//! the teacher, task, data, device and output, the pruning policy, the exit
//! policy, the distillation timeline, custom pass calls and the cost estimates.

use std::path::PathBuf;

use serde::Serialize;

use crate::base::{
    CalibrationTarget, DataSpec, ExitCriterion, ExitHead, LabelSet, ModelConfig, Task, TeacherRef,
};
use crate::base::{
    ExitScope, Importance, Keep, LrScheduleKind, Negatives, OptimizerKind, StageLength,
};
use crate::base::{OutputFormat, VocabRule};
use crate::diag::{Span, Spanned};
use crate::recipe::{Amount, ArgValue, Device};

use super::cost::Cost;

/// The whole compilation unit: the student model graph and its plan.
#[derive(Debug, Clone)]
pub struct Program {
    pub model: super::Model,
    pub plan: Plan,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The recipe's folder; paths in the plan are absolute, shown relative to it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    pub teacher: TeacherInfo,
    pub task: Task,
    /// A classification task's labels, in class order: the recipe's, else
    /// the teacher's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelSet>,
    /// Where the recipe sets the task (its teacher when it does not).
    #[serde(skip)]
    pub task_span: Span,
    pub seed: u64,
    pub device: Device,
    /// Where the recipe sets the device (empty when it does not).
    #[serde(skip)]
    pub device_span: Span,
    /// Artifact directory as the recipe's `output:` gives it (`None`: `-o`
    /// or the default `out`).
    pub output: Option<Spanned<PathBuf>>,
    /// What the build writes there: an artifact, or a Hugging Face
    /// checkpoint with the artifact beside it.
    #[serde(skip_serializing_if = "OutputFormat::is_artifact")]
    pub output_format: OutputFormat,
    /// The recipe's data sets, paths resolved against `base_dir`.
    pub datasets: Vec<DataSpec>,
    /// The data sets the artifact is measured on; the first is the primary
    /// one (training evaluations, best weights, the headline fidelity,
    /// exits). Empty: the first data set is the primary one.
    pub eval: Vec<String>,
    /// Set by `width-prune` when the recipe prunes.
    pub prune: Option<PrunePlan>,
    /// Set by `vocab-prune` when the recipe prunes the vocabulary.
    pub vocab: Option<VocabPlan>,
    /// Set by `exit-insert` when the recipe has exits.
    pub exits: Option<ExitPlan>,
    /// Set by `distill-schedule`.
    pub pretrain: Option<StagePlan>,
    pub stages: Vec<StagePlan>,
    /// Custom pass calls, in recipe order, with their arguments.
    pub custom_passes: Vec<CustomPassPlan>,
    pub cost: CostPlan,
}

/// Where the teacher comes from.
#[derive(Debug, Clone, Serialize)]
pub struct TeacherInfo {
    /// `builtin:NAME` or the checkpoint directory as written relative to the recipe.
    pub source: String,
    /// Where lowering loads the teacher's weights and tokenizer from.
    #[serde(skip)]
    pub reference: TeacherRef,
    pub config: ModelConfig,
    /// SHA-256 (hex) of config.json, or of the built-in config's JSON.
    pub config_hash: String,
    #[serde(skip)]
    pub span: Span,
}

/// The pruning policy; the shapes themselves are in the graph.
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    pub importance: Importance,
    pub over: ExitScope,
    /// Data set importance is scored on, if any.
    pub data: Option<String>,
    pub batches: usize,
}

/// Vocabulary pruning: the student's vocabulary size is the embeddings
/// node's `vocab`; which pieces survive is decided at execution time (the
/// same counts give the same choice).
#[derive(Debug, Clone, Serialize)]
pub struct VocabPlan {
    /// Data set the pieces are counted on.
    pub data: String,
    /// Where the recipe names that data set, and its `vocab` keyword.
    #[serde(skip)]
    pub data_span: Span,
    #[serde(skip)]
    pub keyword: Span,
    pub rule: VocabRule,
    /// Rows of the teacher's word embedding.
    pub before: usize,
    /// Pieces the student keeps: its vocabulary size.
    pub after: usize,
    /// Pieces of the teacher's tokenizer.
    pub pieces: usize,
    /// Pieces kept whatever the data says (special tokens, single characters
    /// and their `##` forms).
    pub always_kept: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExitPlan {
    /// 1-based student layers with an exit head.
    pub after: Vec<usize>,
    pub head: ExitHead,
    pub criterion: ExitCriterion,
    pub threshold: Option<f64>,
    pub patience: Option<usize>,
    pub target: Option<CalibrationTarget>,
    /// The data set the target is calibrated on (`None`: the eval data).
    pub calibration_data: Option<String>,
    /// How many of its first examples (`None`: all).
    pub calibration_samples: Option<usize>,
}

/// One training stage on the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct StagePlan {
    pub name: String,
    pub length: StageLength,
    /// First and one-past-last global step, when every stage before it and it
    /// itself are counted in steps.
    pub steps: Option<(usize, usize)>,
    pub data: String,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
    pub schedule: LrScheduleKind,
    pub warmup: Warmup,
    pub batch_size: usize,
    pub seq_len: usize,
    pub grad_clip: Option<f64>,
    pub accumulate: usize,
    pub checkpoint_every: Option<usize>,
    /// A checkpoint is taken at least this often, in minutes of training.
    pub checkpoint_minutes: f64,
    pub seed: u64,
    pub losses: Vec<LossPlan>,
    /// Evaluate the student on the recipe's eval data every N steps (and at
    /// the stage's end).
    pub eval_every: Option<usize>,
    /// The weights the stage hands on: its best evaluation's or its last step's.
    pub keep: Keep,
    /// Whether the student trains through its quantizers (weights and
    /// activations fake-quantized); `false` trains the float student.
    pub quantize: bool,
}

/// Warm-up length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Warmup {
    Steps(usize),
    /// A fraction of a stage whose step count is known only at run time
    /// (epochs, a time budget).
    Fraction(f64),
}

impl Warmup {
    pub fn resolve(amount: Amount, length: StageLength) -> Warmup {
        match (amount, length) {
            (Amount::Count(n), _) => Warmup::Steps(n),
            (Amount::Fraction(f), StageLength::Steps(s)) => {
                Warmup::Steps((f * s as f64).round() as usize)
            }
            (Amount::Fraction(f), StageLength::Epochs(_) | StageLength::Budget(_)) => {
                Warmup::Fraction(f)
            }
        }
    }
}

/// A resolved loss term.
#[derive(Debug, Clone, Serialize)]
pub struct LossPlan {
    pub weight: f64,
    pub kind: LossPlanKind,
}

#[derive(Debug, Clone, Serialize)]
pub enum LossPlanKind {
    LogitKl {
        temperature: f64,
        over: ExitScope,
    },
    TaskCe,
    HiddenMse {
        pairs: Vec<LayerPair>,
    },
    AttentionKl {
        pairs: Vec<LayerPair>,
    },
    AttentionMse {
        pairs: Vec<LayerPair>,
    },
    Contrastive {
        temperature: f64,
        negatives: Negatives,
        layer: usize,
    },
    Cosine,
}

impl LossPlanKind {
    pub fn name(&self) -> &'static str {
        match self {
            LossPlanKind::LogitKl { .. } => "logit_kl",
            LossPlanKind::TaskCe => "task_ce",
            LossPlanKind::HiddenMse { .. } => "hidden_mse",
            LossPlanKind::AttentionKl { .. } => "attention_kl",
            LossPlanKind::AttentionMse { .. } => "attention_mse",
            LossPlanKind::Contrastive { .. } => "contrastive",
            LossPlanKind::Cosine => "cosine",
        }
    }
}

/// A student layer distilled from a teacher layer (0 = embeddings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerPair {
    pub student: usize,
    pub teacher: usize,
    /// Hidden widths differ: a learned projection maps student → teacher.
    pub projection: bool,
    /// Head counts differ (attention losses): heads are averaged before comparing.
    pub average_heads: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomPassPlan {
    pub name: String,
    pub args: Vec<(String, ArgValue)>,
}

/// Estimated size and compute of teacher and student.
#[derive(Debug, Clone, Serialize)]
pub struct CostPlan {
    /// Sequence length the attention FLOPs are counted at.
    pub seq_len: usize,
    pub teacher: Cost,
    pub student: Cost,
}
