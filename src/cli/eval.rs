//! `plcc eval`: scores a model (and with `--against`, a second one side by
//! side) on the user's labelled data: the gold Spearman and Pearson of an
//! embedding model's pair similarities, a classifier's accuracy and macro
//! F1, or a language model's or an encoder-decoder's perplexity
//! (`eval::gold`). Text or JSON out.

use std::path::Path;
use std::process::ExitCode;

use super::bench::print_json;
use super::run::{select_device, set_threads};
use super::DeviceArg;
use crate::base::{Pooling, Task};
use crate::diag::Diag;
use crate::eval::gold::{self, EvalReport, Score};
use crate::eval::gold_data::{model_task, read_labelled, DataOptions};
use crate::runtime::load_model;

/// What `plcc eval` was asked.
#[derive(Debug, Clone)]
pub struct EvalArgs<'a> {
    pub model: &'a str,
    pub data: &'a Path,
    pub against: Option<&'a str>,
    pub pooling: Option<Pooling>,
    pub options: DataOptions,
    pub threads: Option<usize>,
    pub device: DeviceArg,
    pub json: bool,
}

pub fn run(args: &EvalArgs<'_>) -> Result<ExitCode, Diag> {
    set_threads(args.threads)?;
    let device = select_device(args.device)?;
    let model = load_model(args.model, &device)?;
    let task = model_task(args.model, &model, args.pooling)?;
    let examples = read_labelled(args.data, task, &args.options)?;
    let score = gold::score(&model, task, &examples)?;
    drop(model);
    let against = match args.against {
        Some(spec) => {
            let other = load_model(spec, &device)?;
            let other_task = model_task(spec, &other, args.pooling)?;
            if !same_kind(task, other_task) {
                return Err(Diag::new(
                    "plcc::eval::different-tasks",
                    format!(
                        "`{}` is a {} model but `{spec}` is a {} model",
                        args.model,
                        task.name(),
                        other_task.name()
                    ),
                )
                .help("compare two models of the same task on the same data"));
            }
            Some(gold::score(&other, other_task, &examples)?)
        }
        None => None,
    };
    let report = EvalReport::new(args.data.display().to_string(), score, against);
    if args.json {
        print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether two tasks are scored the same way (pooling may differ).
fn same_kind(a: Task, b: Task) -> bool {
    a.name() == b.name()
}

/// What the numbers measure, for the text output.
fn measure_text(s: &Score) -> String {
    match (s.task, s.pooling) {
        ("embedding", Some(p)) => format!(
            "{} pairs: cosine similarity of the two embeddings ({p} pooling) against the gold scores",
            s.n
        ),
        ("classification", _) => format!("{} labelled texts: predicted class against the label", s.n),
        ("seq2seq", _) => format!(
            "{} examples: perplexity of the target (a pair's second text, a single text's reconstruction)",
            s.n
        ),
        _ => format!("{} texts: next-token perplexity", s.n),
    }
}

fn print_text(r: &EvalReport) {
    let a = &r.score;
    println!("data         {}", r.data);
    println!("measure      {}", measure_text(a));
    println!("model        {}", a.model);
    let Some(b) = &r.against else {
        for (name, v) in a.shown() {
            println!("{name:<12} {}", number(name, v));
        }
        return;
    };
    println!("against      {}", b.model);
    println!(
        "{:<12} {:>14} {:>14} {:>14}",
        "", "model", "against", "difference"
    );
    for (name, v) in a.shown() {
        let other = b.metrics.get(name).copied();
        let diff = r
            .difference
            .as_ref()
            .and_then(|d| d.get(name))
            .map_or(String::new(), |d| format!("{d:+.4}"));
        println!(
            "{name:<12} {:>14} {:>14} {diff:>14}",
            number(name, v),
            other.map_or("-".into(), |o| number(name, o))
        );
    }
}

/// A metric's value as shown: counts whole, others to four places.
fn number(name: &str, v: f64) -> String {
    if name == "tokens" {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}
