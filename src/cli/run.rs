//! `plcc run`: run a model on one input per line and write JSON Lines, one
//! object per input in input order.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use candle_core::Device;

use super::DeviceArg;
use crate::base::SentencePipeline;
use crate::diag::Diag;
use crate::runtime::run::{generate, runner, token_rows};
use crate::runtime::{load_model, LoadedModel};

/// What `plcc run` and `plcc bench` both start with: check the batch size,
/// size the thread pool, pick the device, read the input lines, load the model.
pub fn open_model_and_inputs(
    model: &str,
    input: &Path,
    batch_size: usize,
    device: DeviceArg,
    threads: Option<usize>,
) -> Result<(Vec<String>, LoadedModel), Diag> {
    if batch_size == 0 {
        return Err(Diag::new(
            "plcc::cli::bad-batch-size",
            "--batch-size must be at least 1",
        ));
    }
    set_threads(threads)?;
    let device = select_device(device)?;
    let lines = runner::read_lines(input)?;
    let model = load_model(model, &device)?;
    Ok((lines, model))
}

/// Sets the CPU thread count for candle and gemm (both read
/// `RAYON_NUM_THREADS` when their pools start, so this must run before any
/// tensor work). A `--threads` above the machine's cores is lowered to the
/// core count, with a note on stderr.
///
/// candle's element-wise operations run on a second pool of their own
/// (`CANDLE_NUM_THREADS`) whose idle workers spin; next to rayon's pool it
/// oversubscribes the cores (measured on 2 cores: up to 3x slower for a
/// small model). plcc's inference kernels run on rayon, so candle's pool
/// is kept to the calling thread unless `CANDLE_NUM_THREADS` is set.
pub fn set_threads(threads: Option<usize>) -> Result<(), Diag> {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if let Some(n) = threads {
        if n == 0 {
            return Err(Diag::new(
                "plcc::cli::bad-threads",
                "--threads must be at least 1",
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let n = if n > cores {
            eprintln!(
                "note: --threads {n} is more than the {cores} cores of this machine; using {cores}"
            );
            cores
        } else {
            n
        };
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        // gemm runs on rayon's global pool: size it before anything uses it.
        candle_core::utils::init_global_threadpool();
    }
    Ok(())
}

/// The candle device for `--device`.
pub fn select_device(device: DeviceArg) -> Result<Device, Diag> {
    let device = device.device();
    crate::runtime::device::open(
        device,
        &format!("--device {}", device.name()),
        "use --device cpu",
    )
}

/// The settings of `plcc run` besides its model and files.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Inputs per forward pass.
    pub batch_size: usize,
    /// Cut each input (an encoder-decoder's source) to this many tokens.
    pub max_len: Option<usize>,
    pub device: DeviceArg,
    pub threads: Option<usize>,
    /// The plain mean of the final states instead of the model's pipeline
    /// (pooling, normalization).
    pub raw: bool,
    /// Greedy tokens to generate after each target (encoder-decoders).
    pub generate: Option<usize>,
}

/// Runs `plcc run`: one JSON record per input line.
pub fn run(
    model: &str,
    input: &Path,
    output: Option<&Path>,
    opts: RunOptions,
) -> Result<ExitCode, Diag> {
    let RunOptions {
        batch_size,
        max_len,
        device,
        threads,
        raw,
        generate,
    } = opts;
    if generate == Some(0) {
        return Err(Diag::new(
            "plcc::cli::bad-generate",
            "--generate must be at least 1",
        ));
    }
    let (lines, mut model) = open_model_and_inputs(model, input, batch_size, device, threads)?;
    if raw {
        model.pipeline = SentencePipeline::default();
    }
    let records = if model.config.seq2seq.is_some() {
        let rows = generate::tokenize(&model, &lines, max_len)?;
        if let Some(note) = rows.sources.truncation_note() {
            eprintln!("note: {note}");
        }
        generate::run_all(&model, &rows, batch_size, generate)?
    } else {
        if generate.is_some() {
            return Err(generate::not_seq2seq(&model)
                .note("--generate continues the target of an encoder-decoder (BART)")
                .help("leave out --generate to get the next-token logits or the embedding"));
        }
        if !model.exits.is_empty() && !model.exit_policies.iter().any(|p| p.active()) {
            eprintln!(
                "note: the exits have no calibrated thresholds (see `plcc calibrate`); every input runs to the last layer ({})",
                model.config.num_layers()
            );
        }
        let tokenized = token_rows::tokenize(&model, &lines, max_len)?;
        if let Some(note) = tokenized.truncation_note() {
            eprintln!("note: {note}");
        }
        runner::run_all(&model, &tokenized.rows, batch_size)?
    };
    let mut text = String::new();
    for r in &records {
        let line = serde_json::to_string(r).map_err(|e| {
            Diag::new("plcc::run::output", "cannot serialise an output record").note(e.to_string())
        })?;
        text.push_str(&line);
        text.push('\n');
    }
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Diag::io("plcc::run::output", "write output file", path, &e))?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Diag::io("plcc::run::output", "write to", Path::new("stdout"), &e))?,
    }
    Ok(ExitCode::SUCCESS)
}
