//! The schema check: a generic syntax tree becomes a typed `Recipe` with
//! every default filled in (the language reference in README.md is the contract). Top-level
//! properties, the task, and checks across blocks (data set references,
//! duplicate names) live here; each block kind has its own file.
//!
//! A defaulted field carries the span of the block that owns it (the block's
//! name), or an empty span at the start of the text for top-level defaults;
//! the task and its defaults carry the span of the teacher.

use std::collections::BTreeMap;
use std::path::Path;

use super::blocks;
use super::fields::{Body, Errors};
use super::quantize;
use super::stages::{self, StageBlock};
use super::values::{choice, count, index_list, non_empty_string, strictly_increasing};
use super::vocab;
use crate::base::builtin;
use crate::base::config::ModelConfig;
use crate::base::DataSpec;
use crate::base::{LabelSet, Pooling, Task, TeacherRef};
use crate::diag::{did_you_mean, Diag};
use crate::diag::{Span, Spanned};
use crate::recipe::{
    CustomPassCall, Device, ExitSpec, PruneSpec, QuantSpec, Recipe, StageSpec, VocabSpec,
};
use crate::syntax::{Block, Document, Value, ValueKind};

/// Blocks allowed at the top level.
const TOP_BLOCKS: &[&str] = &[
    "data", "prune", "vocab", "exits", "quantize", "distill", "finetune", "pretrain", "pass",
    "output",
];

/// Checks `doc` against the recipe schema and builds the typed recipe.
/// Relative paths resolve against `base_dir`. On failure, returns every
/// problem found, in text order, as one diagnostic.
pub fn from_ast(doc: &Document, base_dir: &Path) -> Result<Recipe, Diag> {
    let mut errs = Errors::default();
    let recipe = build(doc, base_dir, &mut errs);
    match (recipe, Diag::gather(errs.list)) {
        (Some(recipe), None) => Ok(recipe),
        (_, Some(problems)) => Err(problems),
        (None, None) => Err(Diag::new(
            "plcc::recipe::internal",
            "the recipe check failed without a diagnostic",
        )),
    }
}

fn build(doc: &Document, base_dir: &Path, errs: &mut Errors) -> Option<Recipe> {
    let items = &doc.items;
    let mut top = Body::new(items, "the recipe", Span::default(), errs);
    let teacher = top.require("teacher", errs, |v| teacher(v, base_dir));
    let (task, labels) = task(&mut top, teacher.as_ref(), errs).unzip();
    let device = top.take_or("device", errs, Device::Cpu, |v| choice(v, &Device::ALL));
    let output = top.take("output", errs, |v| {
        non_empty_string(v).map(|s| base_dir.join(s))
    });
    let seed = top.take_or("seed", errs, 0u64, |v| count(v).map(|n| n as u64));
    let eval = top
        .take("eval", errs, eval_names)
        .map_or_else(Vec::new, |e| e.value);
    let keep_layers = top.take("keep_layers", errs, |v| {
        let layers = index_list(v, 0)?;
        if layers.is_empty() {
            return Err(super::values::out_of_range(
                v.span,
                "`keep_layers` is empty",
                "keep at least one layer",
            ));
        }
        strictly_increasing(&layers, "`keep_layers`")?;
        Ok(layers)
    });

    let mut found = read_top_blocks(top.blocks.clone(), base_dir, seed.value, errs);
    top.finish(TOP_BLOCKS, errs);
    let output = super::output::one_output(output, found.output.take(), errs);
    let exits = match (found.exits, &task) {
        (Some(block), Some(task)) => blocks::exits(block, task.value, errs),
        _ => None,
    };
    check_references(&found, &eval, exits.as_ref(), errs);
    if let Some(task) = &task {
        check_retrieval_task(&found.datasets, &eval, task.value, errs);
    }
    if let Some(prune) = found.prune.as_mut() {
        if prune.data.is_none() {
            let first_stage = (found.stages.first())
                .or(found.pretrain.as_ref())
                .map(|s| s.data.clone());
            prune.data = first_stage.or_else(|| found.datasets.first().map(|d| d.name.clone()));
        }
    }

    Some(Recipe {
        base_dir: base_dir.to_path_buf(),
        teacher: teacher?,
        task: task?,
        labels: labels.flatten(),
        seed,
        device,
        output_format: output
            .as_ref()
            .map_or_else(Default::default, |o| o.format.value),
        output: output.map(|o| o.path),
        datasets: found.datasets,
        eval,
        keep_layers,
        prune: found.prune,
        vocab: found.vocab,
        exits,
        quantizers: found.quantizers,
        pretrain: found.pretrain,
        stages: found.stages,
        custom_passes: found.custom_passes,
    })
}

/// The top-level blocks, each read by the schema of its kind; the `exits`
/// block waits for the task.
#[derive(Default)]
struct TopBlocks<'d> {
    datasets: Vec<DataSpec>,
    prune: Option<PruneSpec>,
    vocab: Option<VocabSpec>,
    exits: Option<&'d Block>,
    quantizers: Vec<QuantSpec>,
    pretrain: Option<StageSpec>,
    stages: Vec<StageSpec>,
    custom_passes: Vec<CustomPassCall>,
    output: Option<super::output::OutputSpec>,
}

/// Reads every top-level block; `prune`, `vocab`, `exits`, `pretrain` and
/// `output` may appear once each. Stages default their seed to `recipe_seed`.
fn read_top_blocks<'d>(
    list: Vec<&'d Block>,
    base_dir: &Path,
    recipe_seed: u64,
    errs: &mut Errors,
) -> TopBlocks<'d> {
    let mut found = TopBlocks::default();
    let mut singles: BTreeMap<&str, Span> = BTreeMap::new();
    for block in list {
        let name = block.name.text.as_str();
        if matches!(name, "prune" | "vocab" | "exits" | "pretrain" | "output") {
            if let Some(first) = singles.get(name) {
                errs.push(
                    Diag::new(
                        "plcc::recipe::duplicate-block",
                        format!("a recipe has at most one `{name}` block"),
                    )
                    .label(block.name.span, "second block")
                    .label(*first, "first block"),
                );
                continue;
            }
            singles.insert(name, block.name.span);
        }
        match name {
            "data" => found.datasets.extend(blocks::data(block, base_dir, errs)),
            "prune" => found.prune = blocks::prune(block, errs),
            "vocab" => found.vocab = vocab::vocab(block, errs),
            "exits" => found.exits = Some(block),
            "quantize" => found.quantizers.extend(quantize::quantize(block, errs)),
            "distill" => {
                found
                    .stages
                    .extend(stages::stage(block, StageBlock::Distill, recipe_seed, errs))
            }
            "finetune" => found.stages.extend(stages::stage(
                block,
                StageBlock::Finetune,
                recipe_seed,
                errs,
            )),
            "pretrain" => {
                found.pretrain = stages::stage(block, StageBlock::Pretrain, recipe_seed, errs)
            }
            "pass" => found.custom_passes.extend(blocks::custom_pass(block, errs)),
            "output" => found.output = super::output::output_block(block, base_dir, errs),
            _ => {}
        }
    }
    found
}

/// Data sets and stages have unique names, and every data set named
/// anywhere is declared.
fn check_references(
    found: &TopBlocks<'_>,
    eval: &[Spanned<String>],
    exits: Option<&ExitSpec>,
    errs: &mut Errors,
) {
    let stages = || found.pretrain.iter().chain(found.stages.iter());
    check_unique_names(
        found.datasets.iter().map(|d| &d.name),
        "data set",
        "plcc::recipe::duplicate-dataset",
        errs,
    );
    check_unique_names(
        stages().map(|s| &s.name),
        "stage",
        "plcc::recipe::duplicate-stage",
        errs,
    );
    let names: Vec<&str> = found
        .datasets
        .iter()
        .map(|d| d.name.value.as_str())
        .collect();
    let gptq_data = found
        .quantizers
        .iter()
        .filter_map(|q| match &q.method.value {
            crate::base::QuantMethod::Gptq(g) => Some(&g.data),
            crate::base::QuantMethod::Rtn => None,
        });
    let references = eval
        .iter()
        .chain(found.prune.as_ref().and_then(|p| p.data.as_ref()))
        .chain(gptq_data)
        .chain(exits.and_then(|e| e.data.as_ref()))
        .chain(stages().map(|s| &s.data))
        .chain(found.vocab.as_ref().map(|v| &v.data));
    for reference in references {
        check_dataset(reference, &names, errs);
    }
}

/// `eval: NAME` or `eval: [NAME, ...]`: at least one name, none twice.
fn eval_names(value: &Value) -> Result<Vec<Spanned<String>>, Diag> {
    let items = match &value.kind {
        ValueKind::List(items) if items.is_empty() => {
            return Err(super::values::out_of_range(
                value.span,
                "`eval` lists no data set",
                "name at least one data set",
            ))
        }
        ValueKind::List(items) => items.iter().collect(),
        _ => vec![value],
    };
    let mut names: Vec<Spanned<String>> = Vec::new();
    for item in items {
        let name = super::values::ident(item)?;
        if let Some(first) = names.iter().find(|n| n.value == name) {
            return Err(Diag::new(
                "plcc::recipe::duplicate-eval",
                format!("`eval` names `{name}` twice"),
            )
            .label(item.span, "second mention")
            .label(first.span, "first mention"));
        }
        names.push(Spanned::new(name, item.span));
    }
    Ok(names)
}

/// Retrieval sets are measured by the cosine of sentence embeddings, so
/// only an embedding model is evaluated on one.
fn check_retrieval_task(
    datasets: &[DataSpec],
    eval: &[Spanned<String>],
    task: Task,
    errs: &mut Errors,
) {
    if matches!(task, Task::Embedding { .. }) {
        return;
    }
    for name in eval {
        if datasets
            .iter()
            .any(|d| d.retrieval && d.name.value == name.value)
        {
            errs.push(
                Diag::new(
                    "plcc::recipe::retrieval-task",
                    format!(
                        "`{}` is a retrieval set, but a {} model is not evaluated by retrieval",
                        name.value,
                        task.name()
                    ),
                )
                .label(name.span, "a retrieval set")
                .help("retrieval sets evaluate embedding models; remove it from `eval`"),
            );
        }
    }
}

/// `"builtin:NAME"` or a checkpoint directory relative to `base_dir`.
fn teacher(value: &Value, base_dir: &Path) -> Result<TeacherRef, Diag> {
    let text = non_empty_string(value)?;
    match text.strip_prefix("builtin:") {
        Some(name) if builtin::NAMES.contains(&name) => Ok(TeacherRef::Builtin(name.to_string())),
        Some(name) => {
            let listing: Vec<String> = builtin::NAMES
                .iter()
                .map(|n| format!("builtin:{n}"))
                .collect();
            let diag = Diag::new(
                "plcc::recipe::unknown-builtin",
                format!("unknown built-in model `{name}`"),
            )
            .label(value.span, "not a built-in model")
            .note(format!("built-in models: {}", listing.join(", ")));
            Err(match did_you_mean(name, builtin::NAMES.iter().copied()) {
                Some(s) => diag.help(format!("did you mean `builtin:{s}`?")),
                None => diag,
            })
        }
        None => Ok(TeacherRef::Dir(base_dir.join(text))),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum TaskName {
    Embedding,
    Classification,
    CausalLm,
    Seq2Seq,
}

/// `task`, `pooling` and `labels` together; the default task follows the
/// teacher's architecture (GPT-2 → `causal_lm`, BART → `seq2seq`, else
/// `embedding`).
fn task(
    top: &mut Body<'_>,
    teacher: Option<&Spanned<TeacherRef>>,
    errs: &mut Errors,
) -> Option<(Spanned<Task>, Option<Spanned<LabelSet>>)> {
    let named = top.take("task", errs, |v| {
        choice(
            v,
            &[
                ("embedding", TaskName::Embedding),
                ("classification", TaskName::Classification),
                ("causal_lm", TaskName::CausalLm),
                ("seq2seq", TaskName::Seq2Seq),
            ],
        )
    });
    let pooling = top.take("pooling", errs, |v| {
        choice(v, &[("mean", Pooling::Mean), ("cls", Pooling::Cls)])
    });
    let labels = top.take("labels", errs, super::values::label_set);
    if top.get("task").is_some() && named.is_none() {
        return None;
    }
    let teacher = teacher?;
    let (kind, span) = match named {
        Some(n) => (n.value, n.span),
        None => (default_task(&teacher.value), teacher.span),
    };
    let misplaced = |key: &str, span: Span, task: &str| {
        Diag::new(
            "plcc::recipe::conflicting-keys",
            format!("`{key}` does not apply to the `{task}` task"),
        )
        .label(span, format!("remove `{key}`"))
    };
    let task = match kind {
        TaskName::Embedding => {
            if let Some(l) = &labels {
                errs.push(
                    misplaced("labels", l.span, "embedding")
                        .help("`labels` needs `task: classification`"),
                );
            }
            Task::Embedding {
                pooling: pooling.map_or(Pooling::Mean, |p| p.value),
            }
        }
        TaskName::Classification => {
            if let Some(p) = &pooling {
                errs.push(misplaced("pooling", p.span, "classification"));
            }
            // Unstated labels: the teacher's (`resolve`), 0 classes until then.
            Task::Classification {
                labels: labels.as_ref().map_or(0, |l| l.value.len()),
            }
        }
        TaskName::CausalLm | TaskName::Seq2Seq => {
            let (name, task) = match kind {
                TaskName::CausalLm => ("causal_lm", Task::CausalLm),
                _ => ("seq2seq", Task::Seq2Seq),
            };
            for (key, given) in [
                ("pooling", pooling.map(|p| p.span)),
                ("labels", labels.as_ref().map(|l| l.span)),
            ] {
                if let Some(s) = given {
                    errs.push(misplaced(key, s, name));
                }
            }
            task
        }
    };
    let labels = labels.filter(|_| matches!(task, Task::Classification { .. }));
    Some((Spanned::new(task, span), labels))
}

fn default_task(teacher: &TeacherRef) -> TaskName {
    let arch = match teacher {
        TeacherRef::Builtin(name) => builtin::config(name).map(|c| c.arch),
        TeacherRef::Dir(dir) => ModelConfig::from_dir(dir).ok().map(|c| c.arch),
    };
    match arch.and_then(|a| a.family().supports.language_model) {
        Some(Task::CausalLm) => TaskName::CausalLm,
        Some(Task::Seq2Seq) => TaskName::Seq2Seq,
        _ => TaskName::Embedding,
    }
}

fn check_unique_names<'a>(
    names: impl Iterator<Item = &'a Spanned<String>>,
    what: &str,
    code: &'static str,
    errs: &mut Errors,
) {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    for name in names {
        match seen.get(name.value.as_str()) {
            Some(first) => errs.push(
                Diag::new(code, format!("two {what}s are named `{}`", name.value))
                    .label(name.span, "second definition")
                    .label(*first, "first definition"),
            ),
            None => {
                seen.insert(name.value.as_str(), name.span);
            }
        }
    }
}

fn check_dataset(reference: &Spanned<String>, names: &[&str], errs: &mut Errors) {
    if names.contains(&reference.value.as_str()) {
        return;
    }
    let diag = Diag::new(
        "plcc::recipe::unknown-dataset",
        format!("unknown data set `{}`", reference.value),
    )
    .label(reference.span, "no `data` block declares this name");
    let diag = match did_you_mean(&reference.value, names.iter().copied()) {
        Some(s) => diag.help(format!("did you mean `{s}`?")),
        None if names.is_empty() => diag.help("declare it with `data NAME \"PATH\" { }`"),
        None => diag.help(format!("declared data sets: {}", names.join(", "))),
    };
    errs.push(diag);
}
