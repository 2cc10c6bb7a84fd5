//! `plcc run`: run a model on one input per line and write JSON Lines, one
//! object per input in input order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::options::{BatchOptions, DeviceOption, ThreadsOption};
use crate::base::SentencePipeline;
use crate::diag::Diag;
use crate::runtime::run::record::Record;
use crate::runtime::run::{generate, runner, token_rows};
use crate::runtime::{load_model, LoadedModel};

/// Run a model on one input per line; JSON Lines out.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Checkpoint directory, `builtin:NAME`, or plcc artifact directory.
    pub model: String,
    /// The input texts, one per line; for an encoder-decoder (BART) each
    /// line is `source` or `source<TAB>target`, and the logits are the
    /// next-token logits after the target.
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Write the JSON Lines here (default: standard output).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub batch: BatchOptions,
    #[command(flatten)]
    pub device: DeviceOption,
    #[command(flatten)]
    pub threads: ThreadsOption,
    /// Embeddings as the plain mean of the final hidden states, without
    /// the checkpoint's pipeline (its pooling and normalization).
    #[arg(long)]
    pub raw: bool,
    /// Encoder-decoder models: also continue each target greedily by up
    /// to N tokens, stopping at the end-of-sequence token (`tokens` and
    /// their `text` in the output).
    #[arg(long, value_name = "N")]
    pub generate: Option<usize>,
}

/// Runs `plcc run`: one JSON record per input line.
pub fn run(args: &RunArgs) -> Result<ExitCode, Diag> {
    if args.generate == Some(0) {
        return Err(Diag::new(
            "plcc::cli::bad-generate",
            "--generate must be at least 1",
        ));
    }
    args.batch.check()?;
    args.threads.apply()?;
    let device = args.device.open()?;
    let lines = runner::read_lines(&args.input)?;
    let mut model = load_model(&args.model, &device)?;
    if args.raw {
        model.pipeline = SentencePipeline::default();
    }
    let records = records(&model, &lines, args)?;
    write_json_lines(&records, args.output.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// The model's record of every line, in input order: an encoder-decoder's
/// logits (and continuations) after each target, else each line's logits or
/// embedding.
fn records(model: &LoadedModel, lines: &[String], args: &RunArgs) -> Result<Vec<Record>, Diag> {
    let BatchOptions {
        batch_size,
        max_len,
        ..
    } = args.batch;
    if model.config.seq2seq.is_some() {
        let rows = generate::tokenize(model, lines, max_len)?;
        if let Some(note) = rows.sources.truncation_note() {
            eprintln!("note: {note}");
        }
        return generate::run_all(model, &rows, batch_size, args.generate);
    }
    if args.generate.is_some() {
        return Err(generate::not_seq2seq(model)
            .note("--generate continues the target of an encoder-decoder (BART)")
            .help("leave out --generate to get the next-token logits or the embedding"));
    }
    if !model.exits.is_empty() && !model.exit_policies.iter().any(|p| p.active()) {
        eprintln!(
            "note: the exits have no calibrated thresholds (see `plcc calibrate`); every input runs to the last layer ({})",
            model.config.num_layers()
        );
    }
    let tokenized = token_rows::tokenize(model, lines, max_len)?;
    if let Some(note) = tokenized.truncation_note() {
        eprintln!("note: {note}");
    }
    let mut records = runner::run_all(model, &tokenized.rows, batch_size, args.batch.schedule())?;
    if let Some(labels) = model.labels() {
        records.iter_mut().for_each(|r| r.name_labels(&labels));
    }
    Ok(records)
}

/// Writes one JSON object per record to `output` (default: standard output).
fn write_json_lines(records: &[Record], output: Option<&Path>) -> Result<(), Diag> {
    let mut text = String::new();
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| {
            Diag::new("plcc::run::output", "cannot serialise an output record").note(e.to_string())
        })?;
        text.push_str(&line);
        text.push('\n');
    }
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Diag::io("plcc::run::output", "write output file", path, &e)),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Diag::io("plcc::run::output", "write to", Path::new("stdout"), &e)),
    }
}
