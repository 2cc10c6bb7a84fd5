//! What a build needs beyond its verified program, checked before any
//! weight is read: the device training runs on, every data set (read and
//! validated exactly as the build reads it), a checkpoint teacher's weights
//! and tokenizer files and its weights' safetensors header (read alone), and
//! for a classification task a classifier head in that header or a
//! stage that trains one. `plcc check` reports all of it; `plcc build`
//! stops on its errors before it starts and shows its warnings.

use std::collections::BTreeMap;

use candle_core::Device as CandleDevice;

use crate::base::{Device, Task, TeacherRef};
use crate::diag::Diag;
use crate::fsio;
use crate::ir::{LossPlanKind, Program};
use crate::runtime::load::weights::tensor_names;
use crate::text::data::{read_data_file, Example};

/// The findings, and what the build goes on with when there is no error.
#[derive(Default)]
pub struct Preflight {
    /// Every problem found; a build does not start while there is one.
    pub errors: Vec<Diag>,
    /// Shown, without failing.
    pub warnings: Vec<Diag>,
    /// Where training runs (`None` when it cannot be opened; an error says why).
    pub device: Option<CandleDevice>,
    /// Every data set's examples, by name.
    pub datasets: BTreeMap<String, Vec<Example>>,
    /// The SHA-256 of each data set's file as it was read, by name.
    pub dataset_sha256: BTreeMap<String, String>,
}

/// Checks what `program` needs to build. `flag` is the device the command
/// line asked for (it overrides the recipe's `device:`); `trains` says
/// whether the build will run its training stages.
pub fn preflight(program: &Program, flag: Option<&CandleDevice>, trains: bool) -> Preflight {
    let mut out = inputs(program, flag);
    let teacher = &program.plan.teacher;
    let TeacherRef::Dir(dir) = &teacher.reference else {
        return out;
    };
    if teacher_files_present(program).is_err() {
        return out;
    }
    match tensor_names(&dir.join("model.safetensors")) {
        Err(d) => out
            .errors
            .push(d.or_span(teacher.span, "this checkpoint's weights")),
        Ok(names) => match missing_classifier(program, &names, trains) {
            Some(d) if d.warning => out.warnings.push(d),
            Some(d) => out.errors.push(d),
            None => {}
        },
    }
    out
}

/// The checks that need only the resolved program (not the passes'
/// work): the device, every data set and the teacher's files.
pub fn inputs(program: &Program, flag: Option<&CandleDevice>) -> Preflight {
    let mut out = Preflight::default();
    match flag {
        Some(device) => out.device = Some(device.clone()),
        None => match recipe_device(program) {
            Ok(device) => out.device = Some(device),
            Err(d) => out.errors.push(d),
        },
    }
    let plan = &program.plan;
    for spec in &plan.datasets {
        match read_data_file(spec, plan.labels.as_ref()) {
            Ok(file) => {
                let name = spec.name.value.clone();
                out.dataset_sha256.insert(name.clone(), file.sha256);
                out.datasets.insert(name, file.examples);
            }
            Err(d) => out.errors.push(d),
        }
    }
    if let Err(d) = teacher_files_present(program) {
        out.errors.push(d);
    }
    out
}

/// Opens the device the recipe's `device:` names, the diagnostic pointing at it.
fn recipe_device(program: &Program) -> Result<CandleDevice, Diag> {
    let plan = &program.plan;
    let asked = format!("`device: {}`", plan.device.name());
    crate::runtime::device::open(
        plan.device,
        &asked,
        "write `device: cpu`, or override it with `plcc build --device cpu`",
    )
    .map_err(|d| match plan.device {
        Device::Cpu => d,
        Device::Cuda => d.label(plan.device_span, "training would run here"),
    })
}

/// Checks that a checkpoint teacher's weights and tokenizer are regular
/// files within their size limits (without reading them).
fn teacher_files_present(program: &Program) -> Result<(), Diag> {
    let teacher = &program.plan.teacher;
    let TeacherRef::Dir(dir) = &teacher.reference else {
        return Ok(());
    };
    for (file, kind) in [
        ("model.safetensors", &fsio::WEIGHTS),
        ("tokenizer.json", &fsio::TOKENIZER),
    ] {
        fsio::check_regular(&dir.join(file), kind).map_err(|d| {
            let d = d.label(teacher.span, format!("this checkpoint needs {file}"));
            match d.help {
                Some(_) => d,
                None => d.help(
                    "a checkpoint folder holds config.json, model.safetensors and tokenizer.json",
                ),
            }
        })?;
    }
    Ok(())
}

/// Whether a training stage trains a classifier head: a `distill` stage
/// with a `task_ce` loss on a data set that has labels.
fn trains_classifier(program: &Program) -> bool {
    let plan = &program.plan;
    let labelled = |name: &str| {
        plan.datasets
            .iter()
            .any(|d| d.name.value == name && d.label.is_some())
    };
    plan.stages.iter().any(|s| {
        labelled(&s.data)
            && s.losses
                .iter()
                .any(|l| matches!(l.kind, LossPlanKind::TaskCe))
    })
}

/// A checkpoint teacher (whose tensors are `names`) of a classification
/// task without a classifier head: an error unless the build trains one,
/// then a warning.
fn missing_classifier(program: &Program, names: &[String], trains: bool) -> Option<Diag> {
    let plan = &program.plan;
    if !matches!(plan.task, Task::Classification { .. }) {
        return None;
    }
    if names
        .iter()
        .any(|n| n == "classifier.weight" || n.ends_with(".classifier.weight"))
    {
        return None;
    }
    const CODE: &str = "plcc::checkpoint::no-classifier";
    let message = "the teacher checkpoint has no classifier head (`classifier.weight`)";
    if trains && trains_classifier(program) {
        return Some(
            Diag::warning(CODE, message)
                .label(plan.task_span, "the classification task starts from a random head")
                .help("the `task_ce` stage trains the student's head; the teacher is compared through the student's initial (random) head, so its accuracy and agreement mean nothing"),
        );
    }
    let help = match trains_classifier(program) {
        true => "the recipe's `task_ce` stage trains the head; run the build without `--max-steps 0`",
        false => "add a `distill` stage with `loss task_ce {}` on a data set with a `label` column, or use a checkpoint fine-tuned for classification (one with `classifier.weight`)",
    };
    Some(
        Diag::new(CODE, message)
            .label(
                plan.task_span,
                "the classification task needs a trained classifier head",
            )
            .help(help)
            .note("with a random head, teacher and student agree by construction and every score means nothing"),
    )
}
