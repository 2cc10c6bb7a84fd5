//! The build report assembled from what a build's stages produced: the
//! sizes of teacher and student ([`Sizes`], checked against the plan), how
//! the student was cut, the fidelity measured on the written artifact, the
//! stage timings and training, and the notes — the stages' own and those
//! that say how the build ran (skipped or capped training, the GPU, quantized
//! activations).

use std::collections::BTreeMap;

use super::eval_sets::EvalSetReport;
use super::fidelity::Fidelity;
use super::report::{Report, Size, TrainingReport};
use super::report_exits::ExitsReport;
use super::source::EvalSource;
use super::vocab_report::VocabReport;
use crate::diag::Diag;

/// Allowed relative difference between the real weight file and the plan's estimate.
pub const BYTES_TOLERANCE: f64 = 0.05;

/// Teacher and student side by side.
pub struct Sizes {
    pub teacher: Size,
    pub student: Size,
    pub ratios: BTreeMap<String, f64>,
    pub planned_student_bytes: u64,
    pub planned_teacher_bytes: u64,
    /// Real student tensor bytes (the weight file without its header) over
    /// the plan's estimate.
    pub bytes_vs_plan: f64,
}

impl Sizes {
    /// Refuses a weight file further from the plan's estimate than
    /// [`BYTES_TOLERANCE`].
    pub fn check_plan(&self) -> Result<(), Diag> {
        if (self.bytes_vs_plan - 1.0).abs() <= BYTES_TOLERANCE {
            return Ok(());
        }
        Err(Diag::new(
            "plcc::build::size-mismatch",
            format!(
                "the weight file's tensors take {} bytes, {:.1}% off the plan's estimate of {} bytes (allowed {:.0}%)",
                (self.bytes_vs_plan * self.planned_student_bytes as f64).round(),
                100.0 * (self.bytes_vs_plan - 1.0),
                self.planned_student_bytes,
                100.0 * BYTES_TOLERANCE
            ),
        )
        .note("nothing was written; an earlier artifact at the output is left as it was"))
    }
}

/// How the student was cut from the teacher.
pub struct Cut {
    /// Teacher layer of each student layer.
    pub layer_map: Vec<usize>,
    /// Energy kept by the embedding factorization, when factorized.
    pub embedding_energy_kept: Option<f64>,
    /// Largest masked-vs-sliced difference over all layers.
    pub max_slice_difference: f32,
}

/// What was measured on the written artifact.
pub struct Measured {
    /// Fidelity at full depth.
    pub fidelity: Fidelity,
    /// Fidelity as shipped, with the exits on.
    pub fidelity_with_exits: Option<Fidelity>,
    pub exits: Option<ExitsReport>,
    pub eval_source: EvalSource,
    /// Every evaluation set, keyed by name.
    pub eval_sets: BTreeMap<String, EvalSetReport>,
}

/// How the build ran, told in the report's notes.
pub struct RunFacts {
    /// Whether the build trained.
    pub trained: bool,
    /// Whether the recipe has training stages (`pretrain` or `distill`).
    pub plans_training: bool,
    /// Whether training ran on a GPU.
    pub on_gpu: bool,
    /// `--max-steps`.
    pub max_steps: Option<usize>,
    /// Whether training continued from a checkpoint (`--resume`).
    pub resumed: bool,
    /// How many modules quantize their input activations as the recipe
    /// says.
    pub quantized_activations: usize,
    /// How many packed linears run on the integer kernel, which quantizes
    /// their inputs to int8 per token.
    pub kernel_inputs: usize,
    /// How many packed linears are quantized weight-only (float inputs).
    pub weight_only: usize,
}

/// Everything the report is assembled from.
pub struct ReportParts {
    /// The recipe's path, as the report names it.
    pub recipe: String,
    pub sizes: Sizes,
    pub cut: Cut,
    pub measured: Measured,
    pub vocab: Option<VocabReport>,
    /// Each stage's name and seconds, in order.
    pub stages: Vec<(String, f64)>,
    pub training: Option<TrainingReport>,
    /// The notes the stages left, in order.
    pub notes: Vec<String>,
    pub run: RunFacts,
}

/// The build report of `parts`.
pub fn assemble(parts: ReportParts) -> Report {
    let ReportParts {
        recipe,
        sizes,
        cut,
        measured,
        vocab,
        stages,
        training,
        mut notes,
        run,
    } = parts;
    notes.extend(measured.fidelity.note_cuts());
    notes.extend(run_notes(&run));
    Report {
        recipe,
        teacher: sizes.teacher,
        student: sizes.student,
        ratios: sizes.ratios,
        planned_student_bytes: sizes.planned_student_bytes,
        planned_teacher_bytes: sizes.planned_teacher_bytes,
        bytes_vs_plan: sizes.bytes_vs_plan,
        layer_map: cut.layer_map,
        embedding_energy_kept: cut.embedding_energy_kept,
        max_slice_difference: cut.max_slice_difference,
        fidelity: measured.fidelity,
        fidelity_with_exits: measured.fidelity_with_exits,
        exits: measured.exits,
        eval_source: Some(measured.eval_source),
        eval_sets: measured.eval_sets,
        vocab,
        stages,
        training: training.map(|t| TrainingReport {
            resumed: run.resumed,
            ..t
        }),
        notes,
    }
}

/// The notes that say how the build ran.
fn run_notes(run: &RunFacts) -> Vec<String> {
    let mut notes = Vec::new();
    if run.quantized_activations > 0 {
        notes.push(format!(
            "{} modules quantize their input activations; fidelity was measured on the \
             loaded artifact, with them",
            run.quantized_activations
        ));
    }
    if run.kernel_inputs > 0 {
        notes.push(format!(
            "{} packed linears run on the integer kernel, which quantizes their inputs to int8 \
             per token; fidelity was measured with it",
            run.kernel_inputs
        ));
    }
    if run.weight_only > 0 {
        notes.push(format!(
            "{} packed linears are quantized weight-only: float inputs, their packed weights \
             decoded in the product",
            run.weight_only
        ));
    }
    if run.trained && run.on_gpu {
        notes.push(
            "training ran on the GPU; compression, packing and the fidelity measurement on the CPU"
                .into(),
        );
    }
    if !run.trained && run.plans_training {
        notes.push("training stages were skipped (--max-steps 0)".into());
    }
    if let Some(m) = run.max_steps.filter(|&m| m > 0 && run.trained) {
        notes.push(format!(
            "every training stage was capped at {m} steps (--max-steps)"
        ));
    }
    notes
}
