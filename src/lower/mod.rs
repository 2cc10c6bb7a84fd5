//! Lowering: the verified program executed on the teacher's weights, then
//! the artifact written. Without training (`--max-steps 0`): layer
//! reduction, width slicing (checked against the masked teacher), embedding
//! factorization, vocabulary pruning (the kept word-embedding rows and a
//! rewritten tokenizer), head initialisation, quantization and packing, then
//! fidelity measured by running the written artifact against the teacher.
//! The artifact is committed only when every check passed.
//!
//! Everything this stage needs is in the program's plan, which the passes
//! produced; it never reads the recipe. Stages, in order: check the device,
//! the data (read here) and the teacher's files (`preflight`, which
//! `plcc check` runs too), load
//! the teacher, pretrain it (`distill::pretrain`), prune the vocabulary
//! (`vocab`), reduce and slice (`student`, with `importance`/`taylor`
//! scores, `slice`, `layout`, checked by `equivalence`), distill (`distill`,
//! the trainer in `train`), calibrate GPTQ (`gptq`), quantize and pack
//! (`quantize`), write the artifact, measure fidelity, calibrate the exits
//! when the plan gives them a target and measure the fidelity with them
//! (`crate::eval`), write the report (`report.json`, `report.md`,
//! `report.svg`) and commit.

pub mod output;
pub mod preflight;
pub mod prune;
pub mod quantize;
pub mod reporter;
pub mod sizes;
pub mod teacher;
pub mod train;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;

use crate::artifact::output_check::{remove_stale_staging, replaceable};
use crate::artifact::output_lock::OutputLock;
use crate::artifact::{
    write_into, ExitRecord, Manifest, RecipeRecord, SourceRecord, StagedDir, FORMAT,
    FORMAT_VERSION, WEIGHTS_FILE,
};
use crate::base::{sha256_hex, SentencePipeline, Task};
use crate::diag::Diag;
use crate::eval::exits::calibrate_for_plan;
use crate::eval::exits::shipped::exits_part;
use crate::eval::report::{Report, TrainingReport};
use crate::eval::report_exits::ExitsReport;
use crate::eval::report_files::report_files;
use crate::eval::source::EvalSource;
use crate::ir::{Program, Verified};
use crate::lower::train::Session;
use crate::runtime::load::from_artifact::{classifier_head, load_artifact};
use crate::runtime::LoadedModel;
use crate::syntax::SourceText;
use prune::{student, vocab};
use quantize::gptq;
use reporter::Reporter;
use train::distill;
pub use train::folder::training_dir;

/// How `plcc build` runs a program.
pub struct BuildOptions {
    /// The artifact folder (`-o`); `None` takes the recipe's `output:`.
    pub output: Option<PathBuf>,
    pub max_steps: Option<usize>,
    pub resume: bool,
    /// Let the recipe's `output:` name a path outside the recipe's folder.
    pub allow_outside: bool,
    /// Where training runs (the student and the teacher it is distilled
    /// from); compression, packing and the fidelity measurement of the
    /// artifact run on the CPU. `None`: the recipe's `device:`.
    pub device: Option<Device>,
}

/// A finished build.
pub struct Built {
    pub dir: PathBuf,
    pub report: Report,
    /// The exit thresholds calibrated on the evaluation data (written into
    /// the manifest before the artifact was committed), when the plan's
    /// exits give a target.
    pub calibration: Option<crate::eval::exits::Calibration>,
    /// Problems that did not stop the build, for the caller to show.
    pub warnings: Vec<Diag>,
}

/// The build's stage clock: reports each stage as it ends and keeps its time.
struct Clock<'r> {
    reporter: &'r dyn Reporter,
    started: Instant,
    timings: Vec<(String, f64)>,
}

impl Clock<'_> {
    fn done(&mut self, name: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        self.reporter.stage(name, secs);
        self.timings.push((name.to_string(), secs));
        self.started = Instant::now();
    }
}

/// `model` (the teacher) with the student's initial head (copied from the
/// teacher's when it has one) when it classifies and has no head of its own,
/// so that it is compared through that head.
fn with_stand_in_head(
    mut model: LoadedModel,
    student: &student::Student,
    classifies: bool,
) -> Result<LoadedModel, Diag> {
    if classifies && model.classifier.is_none() {
        let tensors = teacher::tensors_on(&student.tensors, &model.device)?;
        model.classifier = classifier_head(&tensors, model.config.num_layers());
    }
    Ok(model)
}

/// Executes `program`, compiled from `source`, and writes its artifact.
/// Diagnostics point into `source`'s text; the caller attaches it.
pub fn build(
    program: &Verified,
    source: &SourceText,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<Built, Diag> {
    let mut clock = Clock {
        reporter,
        started: Instant::now(),
        timings: Vec::new(),
    };
    let plan = &program.plan;
    let training =
        opts.max_steps != Some(0) && (plan.pretrain.is_some() || !plan.stages.is_empty());
    if opts.resume && !training {
        return Err(Diag::new(
            "plcc::build::nothing-to-resume",
            "--resume continues training, but this build does not train",
        )
        .help("the recipe has no `pretrain` or `distill` stage, or `--max-steps 0` skips them"));
    }
    let output = output::output_dir(opts, plan);
    output::check_output(opts, plan, &source.path, &output)?;
    let _output_lock = OutputLock::acquire(&output)?;
    if training {
        train::folder::check_training_dir(&training_dir(&output))?;
    }
    remove_stale_staging(&output);
    let labels = plan.task.labels();
    let mut checked = preflight::preflight(program, opts.device.as_ref(), training);
    if let Some(problems) = Diag::gather(std::mem::take(&mut checked.errors)) {
        return Err(problems);
    }
    let device = checked.device.clone().unwrap_or(Device::Cpu);
    let datasets = std::mem::take(&mut checked.datasets);
    let eval_name = plan
        .eval
        .clone()
        .or_else(|| plan.datasets.first().map(|d| d.name.value.clone()));
    let eval_spec = eval_name
        .as_ref()
        .and_then(|n| plan.datasets.iter().find(|d| &d.name.value == n))
        .ok_or_else(|| {
            Diag::new(
                "plcc::build::no-eval-data",
                "the build measures fidelity on data, but the recipe has no data set",
            )
            .help("add a `data NAME \"file\" {}` block (and `eval: NAME`)")
        })?;
    let examples = datasets
        .get(&eval_spec.name.value)
        .cloned()
        .unwrap_or_default();
    // The hash of the bytes those examples were read from, for the report.
    let eval_sha256 = checked
        .dataset_sha256
        .remove(&eval_spec.name.value)
        .unwrap_or_default();
    let prune_data = plan
        .prune
        .as_ref()
        .and_then(|p| p.data.as_ref())
        .and_then(|n| datasets.get(n))
        .cloned()
        .unwrap_or_else(|| examples.clone());
    clock.done("read data");

    let mut teacher = teacher::load_teacher(&plan.teacher.reference, &Device::Cpu)?;
    clock.done("load teacher");
    let recipe_sha256 = sha256_hex(source.text.as_bytes());
    let mut session = if training {
        Some(Session::open(
            training_dir(&output),
            recipe_sha256.clone(),
            opts.max_steps,
            opts.resume,
            device.clone(),
            reporter,
        )?)
    } else {
        None
    };
    if let (Some(s), Some(stage)) = (session.as_mut(), &plan.pretrain) {
        distill::pretrain(s, stage, &mut teacher, &datasets)?;
        clock.done("pretrain the teacher");
    }
    let teacher_model = teacher.loaded(&Device::Cpu)?;
    let pruning = match &plan.vocab {
        Some(vocab_plan) => {
            let p = vocab::prune_vocabulary(vocab_plan, &teacher, &datasets)?;
            clock.done("prune the vocabulary");
            Some(p)
        }
        None => None,
    };
    let student = student::build_student(
        program,
        &teacher,
        plan.seed,
        &prune_data,
        pruning.as_ref().map(|p| p.vocab.clone()),
        reporter,
    )?;
    clock.done("reduce, slice and check layers");
    let classifies = labels.is_some();
    let teacher_differs = if training && plan.pretrain.is_some() {
        Some("the build pretrained its teacher".to_string())
    } else if classifies && teacher_model.classifier.is_none() {
        Some("the build compared the teacher through a classifier head of its own".to_string())
    } else {
        None
    };
    let teacher_model = with_stand_in_head(teacher_model, &student, classifies)?;
    let exit_records = exit_records(program);
    let (weight_quant, activation_quant) =
        quantize::pack::placed_quantizers(program, &student.module_names);
    let trained = match session.as_mut() {
        Some(s) if !program.plan.stages.is_empty() => {
            // The teacher's outputs are computed where the student trains.
            let on_device = match &s.device {
                Device::Cpu => None,
                device => Some(with_stand_in_head(
                    teacher.loaded(device)?,
                    &student,
                    classifies,
                )?),
            };
            let t = distill::distill(
                s,
                &distill::DistillInputs {
                    program,
                    student: &student,
                    teacher: &teacher,
                    teacher_model: on_device.as_ref().unwrap_or(&teacher_model),
                    weight_quant: &weight_quant,
                    activation_quant: &activation_quant,
                    exit_records: &exit_records,
                    datasets: &datasets,
                    eval_name: &eval_spec.name.value,
                    eval: &examples,
                },
            )?;
            clock.done("distill");
            Some(t)
        }
        _ => None,
    };
    let (final_tensors, scales) = match &trained {
        Some(t) => (&t.tensors, t.scales.clone()),
        None => (&student.tensors, Default::default()),
    };
    let calibrated = gptq::calibrate(&gptq::CalibrationInputs {
        program,
        config: &student.config,
        tensors: final_tensors,
        module_names: &student.module_names,
        trained_scales: &scales,
        datasets: &datasets,
        tokenizer: student.tokenizer(&teacher),
    })?;
    if !calibrated.quantized.is_empty() {
        clock.done("calibrate (gptq)");
    }
    let packed = quantize::pack::pack(
        program,
        final_tensors,
        &student.module_names,
        &scales,
        &calibrated.quantized,
    )?;
    clock.done("quantize and pack");

    let staged = StagedDir::begin(&output)?;
    let manifest = Manifest {
        manifest_sha256: String::new(),
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        plcc_version: env!("CARGO_PKG_VERSION").into(),
        recipe: RecipeRecord {
            file: Some(source.path.display().to_string()),
            text: source.text.clone(),
            sha256: recipe_sha256.clone(),
        },
        source: SourceRecord {
            teacher: teacher.source.clone(),
            checkpoint_sha256: teacher.checkpoint_sha256.clone(),
            layers: teacher.config.num_layers(),
        },
        task: plan.task,
        pipeline: embedding_pipeline(plan.task, teacher.pipeline),
        config: student.config.clone(),
        weights: packed.weights.clone(),
        activation_quant: packed.activation_quant.clone(),
        kept: student.kept.clone(),
        layer_map: student.layer_map.clone(),
        exits: exit_records.clone(),
        files: Default::default(),
    };
    let tokenizer_json = match &student.vocab {
        Some(v) => v.json.clone(),
        None => teacher.tokenizer.inner.to_string(true).map_err(|e| {
            Diag::new("plcc::build::tokenizer", "cannot serialise the tokenizer")
                .note(e.to_string())
        })?,
    };
    write_into(&staged, manifest, &packed.set, tokenizer_json.as_bytes())?;
    crate::fault::point("artifact-write");
    clock.done("write artifact");

    if let (Some(s), Some(_)) = (&session, &trained) {
        staged.write("loss.jsonl", s.log.text().as_bytes())?;
        staged.write(
            "loss.svg",
            crate::lower::train::plot::loss_plot(s.log.records()).as_bytes(),
        )?;
    }
    let student_model = load_artifact(staged.path(), &Device::Cpu)?;
    let mut fidelity = crate::eval::fidelity::measure(
        plan.task,
        &teacher_model,
        &student_model,
        &eval_spec.name.value,
        &examples,
    )?;
    fidelity
        .metrics
        .extend(crate::eval::gold::build_gold_metrics(
            plan.task,
            &teacher_model,
            &student_model,
            &examples,
            fidelity.max_tokens,
        )?);
    clock.done("measure fidelity");
    let calibration = calibrate_for_plan(staged.path(), plan, &datasets, &examples)?;
    let against = (&teacher_model, eval_spec.name.value.as_str(), &examples[..]);
    let (exits, fidelity_with_exits) =
        exits_part(staged.path(), calibration.as_ref(), Ok(against))?;
    if calibration.is_some() || exits.as_ref().is_some_and(ExitsReport::active) {
        clock.done("calibrate exits and measure them");
    }
    let eval_path = &eval_spec.path.value;
    let mut eval_source = EvalSource::of(eval_spec, eval_sha256, teacher_differs);
    eval_source.path = std::path::absolute(eval_path).unwrap_or_else(|_| eval_path.clone());

    let sizes = sizes::measure(
        program,
        &teacher,
        final_tensors,
        &staged.path().join(WEIGHTS_FILE),
    )?;
    let mut notes: Vec<String> = session.iter().flat_map(|s| s.notes.clone()).collect();
    notes.extend(student.notes.clone());
    notes.extend(calibrated.notes);
    notes.extend(packed.notes.clone());
    notes.extend(fidelity.note_cuts());
    if !packed.activation_quant.is_empty() {
        notes.push(format!(
            "{} modules quantize their input activations; fidelity was measured on the \
             loaded artifact, with them",
            packed.activation_quant.len()
        ));
    }
    if training && device.is_cuda() {
        notes.push(
            "training ran on the GPU; compression, packing and the fidelity measurement on the CPU"
                .into(),
        );
    }
    if !training && (!plan.stages.is_empty() || plan.pretrain.is_some()) {
        notes.push("training stages were skipped (--max-steps 0)".into());
    }
    if let Some(m) = opts.max_steps.filter(|&m| m > 0 && training) {
        notes.push(format!(
            "every training stage was capped at {m} steps (--max-steps)"
        ));
    }
    let vocab_report = match (&plan.vocab, &pruning) {
        (Some(vocab_plan), Some(p)) => Some(vocab::vocab_report(
            vocab_plan,
            p,
            &teacher,
            crate::ir::cost::vocab_bytes_saved(&program.model, vocab_plan.before),
            &eval_spec.name.value,
            &examples,
        )?),
        _ => None,
    };
    sizes.check_plan()?;
    let report = Report {
        recipe: source.path.display().to_string(),
        teacher: sizes.teacher,
        student: sizes.student,
        ratios: sizes.ratios,
        planned_student_bytes: sizes.planned_student_bytes,
        planned_teacher_bytes: sizes.planned_teacher_bytes,
        bytes_vs_plan: sizes.bytes_vs_plan,
        layer_map: student.layer_map.clone(),
        embedding_energy_kept: student.embedding_energy,
        max_slice_difference: student.max_slice_diff,
        fidelity,
        fidelity_with_exits,
        exits,
        eval_source: Some(eval_source),
        vocab: vocab_report,
        stages: clock.timings.clone(),
        training: trained.map(|t| TrainingReport {
            resumed: opts.resume,
            ..t.report
        }),
        notes,
    };
    for (name, contents) in report_files(&report)? {
        staged.write(name, &contents)?;
    }
    // Checked again: the output may have changed while the build ran.
    replaceable(&output)?;
    let dir = staged.commit()?;
    crate::fault::point("artifact-commit");
    if let Some(s) = session {
        // The artifact holds the loss log; checkpoints are no longer needed.
        let _ = std::fs::remove_dir_all(&s.dir);
    }
    Ok(Built {
        dir,
        report,
        calibration,
        warnings: checked.warnings,
    })
}

/// One manifest exit record per exit the program places.
fn exit_records(program: &Program) -> Vec<ExitRecord> {
    program
        .plan
        .exits
        .iter()
        .flat_map(|e| {
            e.after.iter().map(|&after| ExitRecord {
                after,
                head: e.head,
                criterion: e.criterion,
                threshold: e.threshold,
                patience: e.patience,
            })
        })
        .collect()
}

/// The pipeline an embedding artifact records: the recipe's pooling and the
/// teacher pipeline's normalization; none when the teacher has no pipeline.
fn embedding_pipeline(task: Task, teacher: Option<SentencePipeline>) -> Option<SentencePipeline> {
    match (task, teacher) {
        (Task::Embedding { pooling }, Some(p)) => Some(SentencePipeline {
            pooling,
            normalize: p.normalize,
        }),
        _ => None,
    }
}
