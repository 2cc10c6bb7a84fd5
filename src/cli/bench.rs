//! `plcc bench`: throughput, batch latency and peak memory of a model on the
//! lines of an input file, after one warm-up pass. Timings include
//! tokenization (as an end user's `encode` call does).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde::Serialize;

use super::run::open_model_and_inputs;
use super::DeviceArg;
use crate::diag::Diag;
use crate::model::runner;

/// Measured numbers (the `--json` output).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub sentences: usize,
    pub tokens: usize,
    pub batch_size: usize,
    pub threads: usize,
    pub sentences_per_s: f64,
    pub tokens_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub total_s: f64,
    pub tokenize_s: f64,
    pub peak_rss_mb: f64,
}

/// Peak resident memory (VmHWM) in MiB, 0 where /proc is unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &str,
    input: &Path,
    threads: Option<usize>,
    batch_size: usize,
    max_len: Option<usize>,
    device: DeviceArg,
    json: bool,
) -> Result<ExitCode, Diag> {
    let (lines, model) = open_model_and_inputs(model, input, batch_size, device, threads)?;
    // Warm-up: one full pass.
    let rows = runner::tokenize(&model, &lines, max_len)?;
    runner::run_all(&model, &rows, batch_size)?;

    let start = Instant::now();
    let rows = runner::tokenize(&model, &lines, max_len)?;
    let tokenize_s = start.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for batch in runner::plan_batches(&rows, batch_size) {
        let batch_rows: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].clone()).collect();
        let t = Instant::now();
        runner::run_batch(&model, &batch_rows)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total_s = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let tokens: usize = rows.iter().map(Vec::len).sum();
    let report = BenchReport {
        model: model.name.clone(),
        sentences: rows.len(),
        tokens,
        batch_size,
        threads: candle_core::utils::get_num_threads(),
        sentences_per_s: rows.len() as f64 / total_s,
        tokens_per_s: tokens as f64 / total_s,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        total_s,
        tokenize_s,
        peak_rss_mb: peak_rss_mb(),
    };
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| {
            Diag::new("plcc::bench::output", "cannot serialise the report").note(e.to_string())
        })?;
        println!("{text}");
    } else {
        println!("model            {}", report.model);
        println!(
            "sentences        {} ({} tokens, batch {}, {} threads)",
            report.sentences, report.tokens, batch_size, report.threads
        );
        println!("sentences/s      {:.1}", report.sentences_per_s);
        println!("tokens/s         {:.1}", report.tokens_per_s);
        println!("batch p50        {:.2} ms", report.p50_ms);
        println!("batch p95        {:.2} ms", report.p95_ms);
        println!(
            "total            {:.3} s (tokenize {:.3} s)",
            report.total_s, report.tokenize_s
        );
        println!("peak RSS         {:.1} MiB", report.peak_rss_mb);
    }
    Ok(ExitCode::SUCCESS)
}
