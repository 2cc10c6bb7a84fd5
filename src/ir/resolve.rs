//! `resolve`: from a typed recipe to the teacher's `Program`. Loads the
//! teacher configuration (checkpoint `config.json` or a built-in), builds the
//! teacher graph, and fills the plan with what the recipe says directly. The
//! passes then turn the teacher program into the student program.

use crate::base::sha256_hex;

use crate::base::{builtin, ModelConfig};
use crate::base::{LabelSet, Task, TeacherRef};
use crate::diag::Diag;
use crate::fsio;
use crate::recipe::Recipe;

use super::build::model_from_config;
use super::cost::estimate;
use super::plan::{CostPlan, Plan, Program, TeacherInfo};

/// Sequence length the cost model uses when the recipe has no stage.
pub const DEFAULT_SEQ_LEN: usize = 128;

/// Resolves `recipe` into the teacher program.
pub fn resolve(recipe: &Recipe) -> Result<Program, Diag> {
    let teacher = load_teacher(recipe)?;
    task_fits_teacher(recipe, &teacher.config)?;
    let (task, labels) = task_labels(recipe, &teacher.config)?;
    let model = model_from_config(&teacher.config, task, recipe.teacher.span);
    let seq_len = recipe
        .stages
        .first()
        .map(|s| s.seq_len.value)
        .unwrap_or(DEFAULT_SEQ_LEN);
    let teacher_cost = estimate(&model, seq_len);
    let plan = Plan {
        base_dir: recipe.base_dir.clone(),
        teacher,
        task,
        labels,
        task_span: recipe.task.span,
        seed: recipe.seed.value,
        device: recipe.device.value,
        device_span: recipe.device.span,
        output: recipe.output.clone(),
        output_format: recipe.output_format,
        datasets: recipe.datasets.clone(),
        eval: recipe.eval.iter().map(|e| e.value.clone()).collect(),
        prune: None,
        vocab: None,
        exits: None,
        pretrain: None,
        stages: Vec::new(),
        custom_passes: Vec::new(),
        cost: CostPlan {
            seq_len,
            student: teacher_cost.clone(),
            teacher: teacher_cost,
        },
    };
    Ok(Program { model, plan })
}

/// An encoder-decoder teacher does `seq2seq` and only it does: the task is
/// checked against the teacher's architecture.
fn task_fits_teacher(recipe: &Recipe, config: &ModelConfig) -> Result<(), Diag> {
    let task = &recipe.task;
    let seq2seq = task.value == Task::Seq2Seq;
    match (seq2seq, config.seq2seq.is_some()) {
        (true, false) => Err(Diag::new(
            "plcc::recipe::task-teacher",
            format!(
                "the `seq2seq` task needs an encoder-decoder teacher; this teacher is `{}`",
                config.model_type
            ),
        )
        .label(task.span, "seq2seq task")
        .label(recipe.teacher.span, "not an encoder-decoder")
        .help("use a BART teacher (`builtin:tiny-bart` or a `model_type: bart` checkpoint)")),
        (false, true) => Err(Diag::new(
            "plcc::recipe::task-teacher",
            format!(
                "a `{}` teacher is an encoder-decoder and does the `seq2seq` task, not `{}`",
                config.model_type,
                task.value.name()
            ),
        )
        .label(task.span, "not the encoder-decoder's task")
        .label(recipe.teacher.span, "an encoder-decoder")
        .help("write `task: seq2seq`, or leave `task` out (it follows the teacher)")),
        _ => Ok(()),
    }
}

/// The task with its class count, and a classifier's labels: the recipe's
/// (which must be the teacher's when the teacher is a classifier), else
/// the teacher's `id2label`.
fn task_labels(recipe: &Recipe, config: &ModelConfig) -> Result<(Task, Option<LabelSet>), Diag> {
    let task = recipe.task.value;
    if !matches!(task, Task::Classification { .. }) {
        return Ok((task, None));
    }
    let labels = match (&recipe.labels, &config.labels) {
        (Some(stated), Some(teacher)) if stated.value != *teacher => {
            return Err(Diag::new(
                "plcc::recipe::labels-teacher",
                format!(
                    "the recipe's labels are not the teacher classifier's ({})",
                    teacher.shown()
                ),
            )
            .label(
                stated.span,
                format!("{} labels: {}", stated.value.len(), stated.value.shown()),
            )
            .label(
                recipe.teacher.span,
                "a classifier with other labels (its config.json's `id2label`)",
            )
            .help(
                "leave `labels` out to take the teacher's, or list them in the teacher's order",
            ));
        }
        (Some(stated), _) => stated.value.clone(),
        (None, Some(teacher)) => teacher.clone(),
        (None, None) => {
            return Err(Diag::new(
                "plcc::recipe::missing-key",
                "the classification task needs `labels`",
            )
            .label(recipe.task.span, "add `labels: [name, ...]` or `labels: N`")
            .help("the teacher is not a sequence classifier (its config.json has no `id2label`), so the recipe names the classes: `labels: [neg, pos]`, or counts them: `labels: 2`"));
        }
    };
    let task = Task::Classification {
        labels: labels.len(),
    };
    Ok((task, Some(labels)))
}

/// Loads the teacher's configuration and describes where it came from.
pub fn load_teacher(recipe: &Recipe) -> Result<TeacherInfo, Diag> {
    let span = recipe.teacher.span;
    match &recipe.teacher.value {
        TeacherRef::Builtin(name) => {
            let config = builtin::config(name).ok_or_else(|| {
                Diag::new(
                    "plcc::checkpoint::unknown-builtin",
                    format!("unknown built-in model `{name}`"),
                )
                .label(span, "no such built-in model")
                .help(format!("built-in models: {}", builtin::NAMES.join(", ")))
            })?;
            let json = serde_json::to_vec(&config).unwrap_or_default();
            Ok(TeacherInfo {
                source: format!("builtin:{name}"),
                reference: recipe.teacher.value.clone(),
                config_hash: sha256_hex(&json),
                config,
                span,
            })
        }
        TeacherRef::Dir(dir) => {
            let shown = dir
                .strip_prefix(&recipe.base_dir)
                .unwrap_or(dir)
                .display()
                .to_string();
            if !dir.is_dir() {
                return Err(Diag::new(
                    "plcc::checkpoint::missing",
                    format!("checkpoint directory `{shown}` does not exist"),
                )
                .label(span, "teacher checkpoint not found")
                .help("the path is relative to the recipe's folder; a checkpoint folder holds config.json, model.safetensors and tokenizer.json"));
            }
            let path = dir.join("config.json");
            let shown_path = std::path::PathBuf::from(format!("{shown}/config.json"));
            let bytes = fsio::read_named(&path, &shown_path, &fsio::CONFIG)
                .map_err(|d| d.label(span, "this checkpoint has no readable config.json"))?;
            let config_hash = sha256_hex(&bytes);
            let config = fsio::decode_utf8(&shown_path, &fsio::CONFIG, bytes)
                .and_then(|text| ModelConfig::from_json_str(&text, &shown_path))
                .map_err(|d| d.label(span, "teacher checkpoint"))?;
            Ok(TeacherInfo {
                source: shown,
                reference: recipe.teacher.value.clone(),
                config_hash,
                config,
                span,
            })
        }
    }
}
