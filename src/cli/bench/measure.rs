//! Measuring one model for `plcc bench`: one warm-up pass, then timed
//! passes whose fastest is reported, and the memory that loading and
//! running the model added. Timings include tokenization (as an end user's
//! `encode` call does).
//!
//! By default the passes go on until the timings settle: at least
//! [`SETTLE_MIN`], until the last three are within [`SETTLE_SPREAD`] of
//! each other, at most [`SETTLE_MAX`] (or [`SETTLE_SECONDS`] of timed
//! passes); `--repeat N` makes exactly N ([`Repeat`]). The report gives the
//! number of passes, the median and the spread of the last three.
//!
//! Memory: `peak_rss_mb` is the process's peak resident set (VmHWM);
//! `rss_growth_mb` is that peak minus the resident set just before the model
//! was loaded, with the peak reset first (`/proc/self/clear_refs`), so it is
//! what loading and running this one model added.

use std::time::Instant;

use serde::Serialize;

use crate::diag::Diag;
use crate::runtime::kernels::{kernel_machine, KernelMachine};
use crate::runtime::run::record::Record;
use crate::runtime::run::runner::Schedule;
use crate::runtime::run::{runner, token_rows};
use crate::runtime::{load_model, LoadedModel};

/// Measured numbers of one model (the `--json` output of a single model).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub sentences: usize,
    pub tokens: usize,
    pub batch_size: usize,
    pub threads: usize,
    /// How batches shared the threads: `side by side` or `one at a time`.
    pub batches: String,
    pub sentences_per_s: f64,
    pub tokens_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub total_s: f64,
    pub tokenize_s: f64,
    pub peak_rss_mb: f64,
    /// Peak resident memory added by loading and running this model.
    pub rss_growth_mb: f64,
    /// Mean layer the inputs left at (models with exits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_exit_layer: Option<f64>,
    /// Timed passes; the timings are those of the fastest.
    pub rounds: usize,
    /// Sentences per second of the median pass.
    pub median_sentences_per_s: f64,
    /// How much the last three passes (all, when fewer) differ: slowest
    /// over fastest minus one, in percent.
    pub spread_pct: f64,
    /// Whether that spread is within the settling bound
    /// ([`SETTLE_SPREAD`]); a forced `--repeat` reports it as well.
    pub settled: bool,
    /// The CPU and the instruction sets the kernels ran on.
    pub machine: KernelMachine,
}

/// At least this many timed passes per model when repeating until settled.
pub const SETTLE_MIN: usize = 3;
/// At most this many timed passes per model when repeating until settled.
pub const SETTLE_MAX: usize = 10;
/// Settled: the last three passes within this fraction of each other.
pub const SETTLE_SPREAD: f64 = 0.03;
/// No further passes once a model's timed passes took this long (seconds)
/// and it has made at least [`SETTLE_MIN`].
pub const SETTLE_SECONDS: f64 = 60.0;

/// How many timed passes each model makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// At least `min`, until the last three settle, at most `max`.
    UntilSettled { min: usize, max: usize },
    /// Exactly this many.
    Exactly(usize),
}

impl Repeat {
    /// `--repeat N` (exactly N, at least 1) or, without it, until settled.
    pub fn from_arg(repeat: Option<usize>) -> Result<Repeat, Diag> {
        match repeat {
            None => Ok(Repeat::UntilSettled {
                min: SETTLE_MIN,
                max: SETTLE_MAX,
            }),
            Some(0) => Err(Diag::new(
                "plcc::cli::bad-repeat",
                "--repeat must be at least 1",
            )),
            Some(n) => Ok(Repeat::Exactly(n)),
        }
    }

    /// Whether a model with these pass times (seconds, in order) needs another pass.
    pub fn wants_more(self, passes: &[f64]) -> bool {
        match self {
            Repeat::Exactly(n) => passes.len() < n,
            Repeat::UntilSettled { min, max } => {
                passes.len() < min
                    || (passes.len() < max
                        && passes.iter().sum::<f64>() < SETTLE_SECONDS
                        && spread(passes) > SETTLE_SPREAD)
            }
        }
    }
}

/// Slowest over fastest minus one among the last three of `passes` (all of
/// them when fewer); 0 for none.
pub fn spread(passes: &[f64]) -> f64 {
    let last = &passes[passes.len().saturating_sub(3)..];
    let lo = last.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = last.iter().copied().fold(0.0, f64::max);
    if last.is_empty() || lo <= 0.0 {
        0.0
    } else {
        hi / lo - 1.0
    }
}

/// The median of `v` (the mean of the middle two for an even count); 0 for none.
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// One `/proc/self/status` field in MiB, 0 where /proc is unavailable.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident memory (VmHWM) in MiB, 0 where /proc is unavailable.
pub fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Current resident memory (VmRSS) in MiB.
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// Resets the peak resident set to the current one (Linux); false where
/// that is not possible, and the peak then covers the whole process.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// How a bench run is set up.
#[derive(Debug, Clone, Copy)]
pub struct BenchSetup {
    pub batch_size: usize,
    pub max_len: Option<usize>,
    pub schedule: Schedule,
    /// Timed passes per model (interleaved when comparing two).
    pub repeat: Repeat,
}

/// A loaded model with its first measurement.
pub struct Measured {
    pub model: LoadedModel,
    pub report: BenchReport,
    pub records: Vec<Record>,
    /// The duration of every timed pass so far (seconds, in order).
    pub passes: Vec<f64>,
}

impl Measured {
    /// Whether this model needs another timed pass.
    pub fn wants_more(&self, setup: BenchSetup) -> bool {
        setup.repeat.wants_more(&self.passes)
    }

    /// Sets the report's median and spread from the passes so far.
    fn summarise(&mut self) {
        let sentences = self.report.sentences as f64;
        self.report.median_sentences_per_s = sentences / median(&self.passes).max(1e-12);
        let spread = spread(&self.passes);
        self.report.spread_pct = 100.0 * spread;
        self.report.settled = spread <= SETTLE_SPREAD;
    }
}

/// Loads `spec` and measures it on `lines`: one warm-up pass, then a timed
/// pass whose records are kept (input order); memory is measured here.
pub fn measure(
    spec: &str,
    device: &candle_core::Device,
    lines: &[String],
    setup: BenchSetup,
) -> Result<Measured, Diag> {
    let peak_reset = reset_peak_rss();
    let before = rss_mb();
    let model = load_model(spec, device)?;
    let tokenized = token_rows::tokenize(&model, lines, setup.max_len)?;
    if let Some(note) = tokenized.truncation_note() {
        eprintln!("note: {spec}: {note}");
    }
    runner::run_all(&model, &tokenized.rows, setup.batch_size, setup.schedule)?;
    let (mut report, records) = time_model(&model, lines, setup)?;
    report.peak_rss_mb = peak_rss_mb();
    report.rss_growth_mb = if peak_reset {
        report.peak_rss_mb - before
    } else {
        report.peak_rss_mb
    };
    let mut m = Measured {
        model,
        passes: vec![report.total_s],
        report,
        records,
    };
    m.summarise();
    Ok(m)
}

/// Times one more pass of `m`; keeps the timings of the faster pass
/// (best of rounds: the machine's other load only ever slows a pass down).
pub fn remeasure(m: &mut Measured, lines: &[String], setup: BenchSetup) -> Result<(), Diag> {
    let (r, _) = time_model(&m.model, lines, setup)?;
    m.passes.push(r.total_s);
    m.report.rounds += 1;
    if r.total_s < m.report.total_s {
        let keep = (
            m.report.rounds,
            m.report.peak_rss_mb,
            m.report.rss_growth_mb,
        );
        m.report = r;
        (
            m.report.rounds,
            m.report.peak_rss_mb,
            m.report.rss_growth_mb,
        ) = keep;
    }
    m.summarise();
    Ok(())
}

/// One timed pass (tokenization included).
fn time_model(
    model: &LoadedModel,
    lines: &[String],
    setup: BenchSetup,
) -> Result<(BenchReport, Vec<Record>), Diag> {
    let start = Instant::now();
    let rows = token_rows::tokenize(model, lines, setup.max_len)?.rows;
    let tokenize_s = start.elapsed().as_secs_f64();
    let batches = runner::run_batches(model, &rows, setup.batch_size, setup.schedule)?;
    let total_s = start.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = batches.iter().map(|b| b.seconds * 1e3).collect();
    let records = runner::in_input_order(batches, rows.len());
    latencies.sort_by(f64::total_cmp);
    let tokens: usize = rows.iter().map(Vec::len).sum();
    let exit_layers: Vec<usize> = records.iter().filter_map(|r| r.exit_layer).collect();
    let avg_exit_layer = (!exit_layers.is_empty())
        .then(|| exit_layers.iter().sum::<usize>() as f64 / exit_layers.len() as f64);
    let report = BenchReport {
        model: model.name.clone(),
        sentences: rows.len(),
        tokens,
        batch_size: setup.batch_size,
        threads: candle_core::utils::get_num_threads(),
        batches: setup.schedule.name().to_string(),
        sentences_per_s: rows.len() as f64 / total_s,
        tokens_per_s: tokens as f64 / total_s,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        total_s,
        tokenize_s,
        peak_rss_mb: 0.0,
        rss_growth_mb: 0.0,
        avg_exit_layer,
        rounds: 1,
        median_sentences_per_s: rows.len() as f64 / total_s,
        spread_pct: 0.0,
        settled: true,
        machine: kernel_machine(),
    };
    Ok((report, records))
}

/// The CPU and the kernels' instruction sets, for the text output.
pub fn machine_text(m: &KernelMachine) -> String {
    format!(
        "{}; int8 kernels {}, f32 kernels {}",
        m.cpu, m.int8_kernels, m.f32_kernels
    )
}

/// How many passes ran and how much the last ones varied, for the text output.
pub fn passes_text(r: &BenchReport) -> String {
    format!(
        "{} timed, fastest reported; last {} within {:.1}%{}",
        r.rounds,
        r.rounds.min(3),
        r.spread_pct,
        if r.settled { "" } else { " (not settled)" }
    )
}
