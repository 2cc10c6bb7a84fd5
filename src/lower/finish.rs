//! The stages that finish a build, in the output's staging folder: the
//! artifact written (weights, tokenizer, manifest, the loss log), its
//! fidelity measured against the teacher on every evaluation set, its exits
//! calibrated and measured (a classifier's accuracy against FLOPs on each
//! labelled set among them), and what the report is assembled from besides
//! (the vocabulary section, the stages' notes, how the build ran); then the
//! report files.

use std::collections::BTreeMap;

use candle_core::Device;

use super::prune::{student::Student, vocab};
use super::quantize::pack::Packed;
use super::stages::{exit_records, BuildData, Compared};
use super::teacher::Teacher;
use super::train::{plot, Session};
use super::BuildOptions;
use crate::artifact::{write_into, BuiltStudent, Manifest, RecipeRecord, SourceRecord, StagedDir};
use crate::diag::Diag;
use crate::eval::build_report::RunFacts;
use crate::eval::eval_sets::{self, EvalSetReport};
use crate::eval::exits::accuracy::{accuracy_curves, LabelledSet};
use crate::eval::exits::shipped::exits_part;
use crate::eval::exits::{calibrate_for_plan, Calibration};
use crate::eval::fidelity::Fidelity;
use crate::eval::report::Report;
use crate::eval::report_exits::ExitsReport;
use crate::eval::report_files::report_files;
use crate::eval::vocab_report::VocabReport;
use crate::ir::{Plan, Program};
use crate::runtime::load::from_artifact::load_artifact;
use crate::runtime::LoadedModel;
use crate::syntax::SourceText;

/// Writes the artifact into `staged`: the packed weights, the student's
/// tokenizer and the manifest.
pub(super) fn write_artifact(
    staged: &StagedDir,
    program: &Program,
    source: &SourceText,
    recipe_sha256: String,
    teacher: &Teacher,
    student: &Student,
    packed: &Packed,
) -> Result<(), Diag> {
    let manifest = Manifest::of_build(
        RecipeRecord {
            file: Some(source.path.display().to_string()),
            text: source.text.clone(),
            sha256: recipe_sha256,
        },
        SourceRecord {
            teacher: teacher.source.clone(),
            checkpoint_sha256: teacher.checkpoint_sha256.clone(),
            layers: teacher.config.num_layers(),
        },
        program.plan.task,
        teacher.pipeline,
        BuiltStudent {
            config: student.config.clone(),
            weights: packed.weights.clone(),
            activation_quant: packed.activation_quant.clone(),
            kept: student.kept.clone(),
            layer_map: student.layer_map.clone(),
            exits: exit_records(program),
        },
    );
    let tokenizer_json = match &student.vocab {
        Some(v) => v.json.clone(),
        None => teacher.tokenizer.inner.to_string(true).map_err(|e| {
            Diag::new("plcc::build::tokenizer", "cannot serialise the tokenizer")
                .note(e.to_string())
        })?,
    };
    write_into(staged, manifest, &packed.set, tokenizer_json.as_bytes())?;
    crate::fault::point("artifact-write");
    Ok(())
}

/// Writes the loss log and its plot into `staged` when the build trained.
pub(super) fn write_loss_log(
    staged: &StagedDir,
    session: Option<&Session>,
    distilled: bool,
) -> Result<(), Diag> {
    if let (Some(s), true) = (session, distilled) {
        staged.write("loss.jsonl", s.log.text().as_bytes())?;
        staged.write("loss.svg", plot::loss_plot(s.log.records()).as_bytes())?;
    }
    Ok(())
}

/// The artifact in `staged`, loaded as a user loads it.
pub(super) fn load_written(staged: &StagedDir) -> Result<LoadedModel, Diag> {
    load_artifact(staged.path(), &Device::Cpu)
}

/// The fidelity of the written artifact (`student_model`) to the teacher on
/// the eval data, with the scores on its gold labels.
pub(super) fn measure_fidelity(
    student_model: &LoadedModel,
    plan: &Plan,
    compared: &Compared,
    data: &BuildData,
) -> Result<Fidelity, Diag> {
    let mut fidelity = crate::eval::measure::measure(
        plan.task,
        &compared.model,
        student_model,
        data.eval_name(),
        &data.eval,
    )?;
    fidelity
        .metrics
        .extend(crate::eval::gold::build_gold_metrics(
            plan.task,
            &compared.model,
            student_model,
            &data.eval,
            fidelity.max_tokens,
        )?);
    Ok(fidelity)
}

/// Every evaluation set measured on the written artifact (`student_model`),
/// the primary one's fidelity being `primary`.
pub(super) fn measure_eval_sets(
    student_model: &LoadedModel,
    plan: &Plan,
    compared: &Compared,
    data: &BuildData,
    primary: &Fidelity,
) -> Result<BTreeMap<String, EvalSetReport>, Diag> {
    eval_sets::measure(
        plan.task,
        &compared.model,
        student_model,
        &data.eval_sets(),
        primary,
    )
}

/// The exits of the artifact: their thresholds calibrated (written into its
/// manifest) when the plan gives them a target, and the model measured as
/// shipped, with them on.
pub(super) struct Exits {
    pub calibration: Option<Calibration>,
    pub report: Option<ExitsReport>,
    /// The fidelity with the exits on.
    pub fidelity: Option<Fidelity>,
}

impl Exits {
    /// Whether there was anything to calibrate or measure.
    pub(super) fn ran(&self) -> bool {
        self.calibration.is_some() || self.report.as_ref().is_some_and(ExitsReport::active)
    }
}

/// Calibrates the exits of the artifact in `staged` and measures them: the
/// fidelity as shipped on the primary evaluation set, and a classifier's
/// accuracy against FLOPs on every labelled set (`eval_sets` gives the
/// teacher's accuracy on each).
pub(super) fn calibrate_exits(
    staged: &StagedDir,
    plan: &Plan,
    compared: &Compared,
    data: &BuildData,
    eval_sets: &BTreeMap<String, EvalSetReport>,
) -> Result<Exits, Diag> {
    let calibration = calibrate_for_plan(staged.path(), plan, &data.datasets, &data.eval)?;
    let against = (&compared.model, data.eval_name(), &data.eval[..]);
    let (mut report, fidelity) = exits_part(staged.path(), calibration.as_ref(), Ok(against))?;
    if let Some(report) = report.as_mut() {
        let sets = data.eval_sets();
        let labelled: Vec<LabelledSet<'_>> = sets
            .iter()
            .map(|set| LabelledSet {
                name: &set.spec.name.value,
                examples: set.examples,
                teacher_accuracy: eval_sets
                    .get(&set.spec.name.value)
                    .and_then(|r| r.fidelity.as_ref())
                    .and_then(Fidelity::teacher_accuracy),
                whole: false,
            })
            .collect();
        report.accuracy_vs_flops =
            accuracy_curves(staged.path(), Some(&compared.model), &labelled)?;
    }
    Ok(Exits {
        calibration,
        report,
        fidelity,
    })
}

/// The report's vocabulary section, when the plan prunes the vocabulary.
pub(super) fn vocab_report(
    program: &Program,
    teacher: &Teacher,
    pruning: Option<&vocab::Pruning>,
    data: &BuildData,
) -> Result<Option<VocabReport>, Diag> {
    let (Some(vocab_plan), Some(p)) = (&program.plan.vocab, pruning) else {
        return Ok(None);
    };
    Ok(Some(vocab::vocab_report(
        vocab_plan,
        p,
        teacher,
        crate::ir::cost::vocab_bytes_saved(&program.model, vocab_plan.before),
        data.eval_name(),
        &data.eval,
    )?))
}

/// The notes the stages left, in order: training's, the student's, GPTQ's
/// (`gptq_notes`) and packing's.
pub(super) fn stage_notes(
    session: Option<&Session>,
    student: &Student,
    gptq_notes: Vec<String>,
    packed: &Packed,
) -> Vec<String> {
    let mut notes: Vec<String> = session.iter().flat_map(|s| s.notes.clone()).collect();
    notes.extend(student.notes.clone());
    notes.extend(gptq_notes);
    notes.extend(packed.notes.clone());
    notes
}

/// How the build ran, for the report's notes.
pub(super) fn run_facts(
    plan: &Plan,
    opts: &BuildOptions,
    training: bool,
    device: &Device,
    packed: &Packed,
) -> RunFacts {
    RunFacts {
        trained: training,
        plans_training: !plan.stages.is_empty() || plan.pretrain.is_some(),
        on_gpu: device.is_cuda(),
        max_steps: opts.max_steps,
        resumed: opts.resume,
        quantized_activations: packed
            .activation_quant
            .values()
            .filter(|q| !q.kernel)
            .count(),
        kernel_inputs: packed
            .activation_quant
            .values()
            .filter(|q| q.kernel)
            .count(),
        weight_only: packed.weight_only,
    }
}

/// Writes the report files (`report.json`, `report.md`, `report.svg`) into
/// `staged`.
pub(super) fn write_report(staged: &StagedDir, report: &Report) -> Result<(), Diag> {
    for (name, contents) in report_files(report)? {
        staged.write(name, &contents)?;
    }
    Ok(())
}
