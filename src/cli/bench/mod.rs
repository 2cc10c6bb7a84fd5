//! `plcc bench`: throughput, batch latency, memory and average exit layer of
//! a model on the lines of an input file (`measure`). With `--against` (or
//! for an artifact, by default against its teacher) two models run on the
//! same inputs in one process (`against`).
//!
//! Each model makes several timed passes (two models alternate) and the
//! fastest pass is reported, which filters out other load on the machine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::options::{BatchOptions, DeviceOption, ThreadsOption};
use super::output::print_json;
use super::teacher::recorded_teacher;
use crate::diag::Diag;
use crate::runtime::run::runner;

pub mod against;
pub mod measure;

use measure::{machine_text, measure, passes_text, remeasure, BenchReport, BenchSetup, Repeat};

/// Measure throughput, latency, memory and average exit layer of a model;
/// with `--against` (by default, for an artifact: its teacher) compare two.
#[derive(Args, Debug)]
#[command(mut_arg("device", |a| a.help("Where the models run")))]
pub struct BenchArgs {
    /// Checkpoint directory, `builtin:NAME`, or plcc artifact directory.
    pub model: String,
    /// The input texts, one per line; every pass runs all of them.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// The model to compare with (checkpoint directory, `builtin:NAME`
    /// or artifact); default for an artifact: its teacher.
    #[arg(long, conflicts_with = "alone", value_name = "MODEL")]
    pub against: Option<String>,
    /// Measure the model alone (no comparison with the teacher).
    #[arg(long)]
    pub alone: bool,
    /// Make exactly N timed passes per model (alternating between the
    /// two) and report the fastest. Default: repeat until the timings
    /// settle (at least 3 passes, until the last 3 are within 3% of each
    /// other; at most 10, or 60 s of timed passes).
    #[arg(long, value_name = "N")]
    pub repeat: Option<usize>,
    #[command(flatten)]
    pub threads: ThreadsOption,
    #[command(flatten)]
    pub batch: BatchOptions,
    #[command(flatten)]
    pub device: DeviceOption,
    /// Print the measurements as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `plcc bench`.
pub fn run(args: &BenchArgs) -> Result<ExitCode, Diag> {
    args.batch.check()?;
    args.threads.apply()?;
    let device = args.device.open()?;
    let lines = runner::read_lines(&args.input)?;
    let setup = BenchSetup {
        batch_size: args.batch.batch_size,
        max_len: args.batch.max_len,
        schedule: args.batch.schedule(),
        repeat: Repeat::from_arg(args.repeat)?,
    };
    let model = args.model.as_str();
    let against = match &args.against {
        Some(b) => Some(b.clone()),
        None if args.alone => None,
        None => recorded_teacher(model)?,
    };
    if let Some(b) = against {
        return against::run(model, &b, &device, &lines, setup, args.json);
    }
    let mut m = measure(model, &device, &lines, setup)?;
    while m.wants_more(setup) {
        remeasure(&mut m, &lines, setup)?;
    }
    if args.json {
        print_json(&m.report)?;
    } else {
        print_report(&m.report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The text output of one model.
fn print_report(report: &BenchReport) {
    println!("model            {}", report.model);
    println!(
        "sentences        {} ({} tokens, batch {}, {} threads, batches {})",
        report.sentences, report.tokens, report.batch_size, report.threads, report.batches
    );
    println!("machine          {}", machine_text(&report.machine));
    println!("passes           {}", passes_text(report));
    println!(
        "sentences/s      {:.1} (median {:.1})",
        report.sentences_per_s, report.median_sentences_per_s
    );
    println!("tokens/s         {:.1}", report.tokens_per_s);
    println!("batch p50        {:.2} ms", report.p50_ms);
    println!("batch p95        {:.2} ms", report.p95_ms);
    println!(
        "total            {:.3} s (tokenize {:.3} s)",
        report.total_s, report.tokenize_s
    );
    println!(
        "peak RSS         {:.1} MiB ({:.1} MiB added by the model)",
        report.peak_rss_mb, report.rss_growth_mb
    );
    if let Some(l) = report.avg_exit_layer {
        println!("avg exit layer   {l:.2}");
    }
}
