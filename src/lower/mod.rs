//! Lowering: the verified program executed on the teacher's weights, then
//! the artifact written. Without training (`--max-steps 0`): layer
//! reduction, width slicing (checked against the masked teacher), embedding
//! factorization, vocabulary pruning (the kept word-embedding rows and a
//! rewritten tokenizer), head initialisation, quantization and packing, then
//! fidelity measured by running the written artifact against the teacher.
//! The artifact is committed only when every check passed.
//!
//! Everything this stage needs is in the program's plan, which the passes
//! produced; it never reads the recipe. [`build`] runs the stages in order,
//! each a function that takes and returns values: claim the output folder
//! ([`crate::artifact::output`]), check the device, the data (read here) and
//! the teacher's files (`preflight`, which `plcc check` runs too), load the
//! teacher, pretrain it, prune the vocabulary, reduce and slice (`prune`),
//! distill (`train`), calibrate GPTQ and quantize and pack (`quantize`) —
//! these in `stages` —, then write the artifact, measure its fidelity (and
//! every other evaluation set the recipe lists),
//! calibrate the exits when the plan gives them a target and measure the
//! fidelity with them, and assemble the report (`report.json`, `report.md`,
//! `report.svg`; [`crate::eval::build_report`]) — these in `finish` — and
//! commit.

mod finish;
pub mod preflight;
pub mod prune;
pub mod quantize;
pub mod reporter;
pub mod sizes;
mod stages;
pub mod teacher;
pub mod train;

use std::path::PathBuf;

use candle_core::Device;

use crate::artifact::WEIGHTS_FILE;
use crate::base::sha256_hex;
use crate::diag::Diag;
use crate::eval::build_report::{self, Measured, ReportParts};
use crate::eval::report::Report;
use crate::ir::Verified;
use crate::syntax::SourceText;
use reporter::Reporter;
use stages::Clock;

/// How `plcc build` runs a program.
pub struct BuildOptions {
    /// The artifact folder (`-o`); `None` takes the recipe's `output:`.
    pub output: Option<PathBuf>,
    pub max_steps: Option<usize>,
    pub resume: bool,
    /// Let the recipe's `output:` name a path outside the recipe's folder.
    pub allow_outside: bool,
    /// Stop with `plcc::build::output-busy` when another build writes the
    /// same output, instead of waiting for it.
    pub no_wait: bool,
    /// Where training runs (the student and the teacher it is distilled
    /// from); compression, packing and the fidelity measurement of the
    /// artifact run on the CPU. `None`: the recipe's `device:`.
    pub device: Option<Device>,
}

/// A finished build.
pub struct Built {
    /// The artifact folder.
    pub dir: PathBuf,
    /// The Hugging Face checkpoint exported from it, when the recipe's
    /// output asks for one (`output "DIR" { format: hf }`).
    pub checkpoint: Option<PathBuf>,
    pub report: Report,
    /// The exit thresholds calibrated on the evaluation data (written into
    /// the manifest before the artifact was committed), when the plan's
    /// exits give a target.
    pub calibration: Option<crate::eval::exits::Calibration>,
    /// Problems that did not stop the build, for the caller to show.
    pub warnings: Vec<Diag>,
}

/// Executes `program`, compiled from `source`, and writes its artifact.
/// Diagnostics point into `source`'s text; the caller attaches it.
pub fn build(
    program: &Verified,
    source: &SourceText,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<Built, Diag> {
    let plan = &program.plan;
    let training = stages::trains(plan, opts)?;
    let mut output = stages::claim_output(plan, &source.path, opts, training, reporter)?;
    let mut clock = Clock::start(reporter);
    let data = stages::read_data(program, opts.device.as_ref(), training)?;
    clock.done("read data");
    let mut teacher = teacher::load_teacher(&plan.teacher.reference, &Device::Cpu)?;
    clock.done("load teacher");
    let recipe_sha256 = sha256_hex(source.text.as_bytes());
    let mut session = stages::open_session(&output, &recipe_sha256, opts, &data.device, reporter)?;
    let pretrained = stages::pretrain(session.as_mut(), plan, &mut teacher, &data)?;
    clock.done_if(pretrained, "pretrain the teacher");
    let pruning = stages::prune_vocabulary(plan, &teacher, &data)?;
    clock.done_if(pruning.is_some(), "prune the vocabulary");
    let student = stages::build_student(program, &teacher, &data, pruning.as_ref(), reporter)?;
    clock.done("reduce, slice and check layers");
    let compared = stages::compared_teacher(plan, &teacher, &student, training)?;
    let trained = stages::distill(
        session.as_mut(),
        program,
        &teacher,
        &student,
        &compared,
        &data,
    )?;
    clock.done_if(trained.is_some(), "distill");
    let weights = stages::FinalWeights::of(&student, trained.as_ref());
    let calibrated = stages::calibrate_gptq(program, &teacher, &student, &weights, &data)?;
    clock.done_if(!calibrated.quantized.is_empty(), "calibrate (gptq)");
    let packed = stages::quantize_and_pack(program, &student, &weights, &calibrated)?;
    clock.done("quantize and pack");

    let staged = output.stage()?;
    finish::write_artifact(
        staged,
        program,
        source,
        recipe_sha256,
        &teacher,
        &student,
        &packed,
    )?;
    clock.done("write artifact");
    finish::write_loss_log(staged, session.as_ref(), trained.is_some())?;
    let student_model = finish::load_written(staged)?;
    let fidelity = finish::measure_fidelity(&student_model, plan, &compared, &data)?;
    clock.done("measure fidelity");
    let eval_sets = finish::measure_eval_sets(&student_model, plan, &compared, &data, &fidelity)?;
    drop(student_model);
    clock.done_if(
        crate::eval::eval_sets::worth_showing(&eval_sets),
        "measure the evaluation sets",
    );
    let exits = finish::calibrate_exits(staged, plan, &compared, &data, &eval_sets)?;
    clock.done_if(exits.ran(), "calibrate exits and measure them");
    let sizes = sizes::measure(
        program,
        &teacher,
        weights.tensors,
        &staged.path().join(WEIGHTS_FILE),
    )?;
    let vocab = finish::vocab_report(program, &teacher, pruning.as_ref(), &data)?;
    sizes.check_plan()?;
    let report = build_report::assemble(ReportParts {
        recipe: source.path.display().to_string(),
        sizes,
        cut: student.cut(),
        measured: Measured {
            fidelity,
            fidelity_with_exits: exits.fidelity,
            exits: exits.report,
            eval_source: data.eval_source(compared.teacher_differs),
            eval_sets,
        },
        vocab,
        stages: clock.timings(),
        training: trained.map(|t| t.report),
        notes: finish::stage_notes(session.as_ref(), &student, calibrated.notes, &packed),
        run: finish::run_facts(plan, opts, training, &data.device, &packed),
    });
    finish::write_report(staged, &report)?;
    let dir = output.commit()?;
    Ok(Built {
        dir,
        checkpoint: None,
        report,
        calibration: exits.calibration,
        warnings: data.warnings,
    })
}
