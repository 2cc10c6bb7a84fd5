//! `plcc calibrate ARTIFACT --data FILE --target ...`: choose exit thresholds
//! for a target, write them into the artifact's manifest and rewrite its
//! report (fidelity with exits measured again on held-out data, `--eval`);
//! print the threshold curve (or JSON with `--json`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::Device;
use clap::Args;

use super::calibration_data::calibration_examples;
use super::options::{BatchOptions, DeviceOption, ThreadsOption};
use super::teacher::recorded_teacher;
use crate::artifact::read_manifest;
use crate::base::CalibrationTarget;
use crate::diag::{list_text, Diag};
use crate::eval::exits::{self, describe, parse_target, CalibrateOptions, Calibration, Outcome};
use crate::eval::report_files::{rewrite_report, REPORT_JSON, REPORT_MD, REPORT_SVG};
use crate::runtime::pool::on_pool;
use crate::runtime::{load_model, LoadedModel};

/// Rows of the printed curve (the chosen one is always shown).
const TABLE_ROWS: usize = 12;

/// Choose exit thresholds for a target and write them into the artifact.
#[derive(Args, Debug)]
#[command(mut_arg("batch_size", |a| a.help("Inputs per forward pass while calibrating")))]
pub struct CalibrateArgs {
    /// The artifact directory.
    pub artifact: PathBuf,
    /// Calibration data, read as the build reads its data: a data set of
    /// the recipe the artifact was built from (by name), a file that recipe
    /// reads (with its layout: pairs as pairs), or another file (one text a
    /// line; TSV or JSON Lines, a second text column read as the pair).
    #[arg(long, value_name = "FILE|NAME")]
    pub data: PathBuf,
    /// What to reach: `avg_layer=N` (mean exit layer), `speedup=X`
    /// (estimated, over running every layer) or `max_loss=P%` (largest
    /// fidelity loss allowed).
    #[arg(long)]
    pub target: String,
    #[command(flatten)]
    pub batch: BatchOptions,
    #[command(flatten)]
    pub device: DeviceOption,
    #[command(flatten)]
    pub threads: ThreadsOption,
    /// Print the thresholds and their estimates as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show the thresholds without writing them (nothing is written).
    #[arg(long)]
    pub dry_run: bool,
    /// Held-out data to measure the report's fidelity with exits on (laid
    /// out as the build's evaluation data; default: that data, when it is
    /// unchanged since the build).
    #[arg(long)]
    pub eval: Option<PathBuf>,
}

/// Runs `plcc calibrate`.
pub fn run(args: &CalibrateArgs) -> Result<ExitCode, Diag> {
    let target = parse_target(&args.target)?;
    args.batch.check()?;
    let artifact = args.artifact.as_path();
    if !crate::artifact::is_artifact_dir(artifact) {
        return Err(Diag::new(
            "plcc::calibrate::not-an-artifact",
            format!(
                "`{}` is not a plcc artifact (no manifest.json)",
                artifact.display()
            ),
        )
        .help("give the directory `plcc build` wrote"));
    }
    args.threads.apply()?;
    on_pool(|| calibrate(args, target))
}

/// `plcc calibrate` to `target` (parsed from `args`), on the threads `run`
/// set up.
fn calibrate(args: &CalibrateArgs, target: CalibrationTarget) -> Result<ExitCode, Diag> {
    let artifact = args.artifact.as_path();
    let manifest = read_manifest(artifact)?;
    let (data, examples) = calibration_examples(&manifest, &args.data)?;
    let options = CalibrateOptions {
        batch_size: args.batch.batch_size,
        max_len: args.batch.max_len,
        device: args.device.open()?,
        write: !args.dry_run,
        data,
    };
    let calibration = exits::calibrate_with(
        artifact,
        exits::CalibrationInput::Examples(&examples),
        target,
        &options,
    )?;
    let notes = if args.dry_run {
        Vec::new()
    } else {
        let teacher = artifact_teacher(artifact);
        rewrite_report(
            artifact,
            &calibration,
            args.eval.as_deref(),
            teacher.as_ref().map_err(String::clone),
        )?
    };
    for n in &notes {
        eprintln!("note: {n}");
    }
    if args.json {
        let text = serde_json::to_string_pretty(&calibration).map_err(|e| {
            Diag::new("plcc::calibrate::output", "cannot serialise the result").note(e.to_string())
        })?;
        println!("{text}");
    } else {
        print_table(&calibration);
    }
    Ok(ExitCode::SUCCESS)
}

/// The teacher of the artifact, as the build compared against it, or why
/// it cannot be had (moved, changed, or pretrained during the build).
fn artifact_teacher(artifact: &Path) -> Result<LoadedModel, String> {
    let why = |d: Diag| {
        let notes: Vec<String> = std::iter::once(d.message).chain(d.notes).collect();
        notes.join("; ")
    };
    let spec = recorded_teacher(&artifact.display().to_string())
        .map_err(why)?
        .ok_or_else(|| "its teacher is not recorded".to_string())?;
    load_model(&spec, &Device::Cpu).map_err(why)
}

fn setting_text(c: &Calibration, o: &Outcome) -> String {
    crate::eval::report_exits::setting_text(c.criterion, o.setting)
}

fn print_table(c: &Calibration) {
    println!(
        "calibrated `{}`: criterion {}, {} sentences, {} layers, exits after {}, target {}",
        c.artifact.display(),
        crate::base::word(&c.criterion),
        c.samples,
        c.layers,
        list_text(&c.exit_layers),
        describe(c.target)
    );
    println!(
        "{:>10}  {:>14}  {:>13}  {:>13}  {:>12}",
        "threshold", "avg exit layer", "est. speed-up", "mean fidelity", "min fidelity"
    );
    let step = c.curve.len().div_ceil(TABLE_ROWS).max(1);
    let mut shown: Vec<&Outcome> = c.curve.iter().step_by(step).collect();
    if let Some(last) = c.curve.last() {
        if !shown.iter().any(|o| std::ptr::eq(*o, last)) {
            shown.push(last);
        }
    }
    let same = |a: &Outcome, b: &Outcome| a.exits_taken == b.exits_taken;
    if !shown.iter().any(|o| same(o, &c.chosen)) {
        shown.push(&c.chosen);
        shown.sort_by(|a, b| b.avg_exit_layer.total_cmp(&a.avg_exit_layer));
    }
    shown.dedup_by(|a, b| same(a, b));
    for o in shown {
        let o = if same(o, &c.chosen) { &c.chosen } else { o };
        println!(
            "{:>10}  {:>14.2}  {:>12.2}x  {:>13.4}  {:>12.4}{}",
            setting_text(c, o),
            o.avg_exit_layer,
            o.est_speedup,
            o.fidelity,
            o.min_fidelity,
            if same(o, &c.chosen) {
                "  <- chosen"
            } else {
                ""
            }
        );
    }
    println!(
        "samples leaving at each exit (then at layer {}): {}",
        c.layers,
        list_text(&c.chosen.exits_taken)
    );
    print_oracle(&c.oracle);
    if c.written {
        println!(
            "wrote threshold {} into {} and rewrote the report ({REPORT_JSON}, {REPORT_MD}, {REPORT_SVG})",
            setting_text(c, &c.chosen),
            c.artifact.join(crate::artifact::MANIFEST_FILE).display()
        );
    } else {
        println!("--dry-run: the manifest and the report were not changed");
    }
}

/// The bound an exit oracle gives beside a calibration.
pub fn print_oracle(o: &crate::eval::exits::oracle::OracleBound) {
    println!(
        "an oracle knowing each text's fidelity at every exit: est. speed-up {:.2}x, avg exit layer {:.2}, fidelity {:.4} (loss {:.2}%): the most any criterion gives on these exits",
        o.est_speedup,
        o.avg_exit_layer,
        o.fidelity,
        o.max_loss * 100.0
    );
}
