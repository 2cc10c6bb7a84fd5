//! `plcc bench A --against B`: both models measured on the same inputs in
//! one process: A is loaded and measured, then B (memory is measured at
//! each model's first pass), then further passes alternate, both models
//! going on while either one's timings have not settled (see `measure`); a
//! side-by-side table (or JSON) with the speed-up of A
//! over B and the fidelity of A's outputs to B's: mean / min cosine of
//! embeddings and the similarity-ranking Spearman over all pairs of inputs,
//! argmax agreement for classifiers, top-1 next-token agreement
//! for language models. For an artifact, B defaults to its teacher
//! (`cli::teacher`).

use std::path::Path;
use std::process::ExitCode;

use candle_core::Device;
use serde::Serialize;

use super::measure::{machine_text, measure, passes_text, remeasure, BenchReport, BenchSetup};
use crate::cli::output::print_json;
use crate::cli::vocab_warning::{warn_if_respelled, Reader};
use crate::diag::Diag;
use crate::eval::ranking::similarity_spearman;
use crate::runtime::run::record::Record;

/// Fidelity of A's outputs to B's on the bench inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Fidelity {
    /// `embedding_cosine`, `argmax_agreement` or `top1_agreement`.
    pub metric: String,
    pub mean: f64,
    pub min: f64,
    /// Embeddings only: Spearman correlation of A's and B's cosine
    /// similarities over all pairs of inputs (`eval::ranking`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity_spearman: Option<f64>,
}

/// The `--json` output of a two-model bench.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub model: BenchReport,
    pub against: BenchReport,
    /// `model` sentences/s over `against` sentences/s (fastest passes).
    pub speedup: f64,
    /// The same of the median passes.
    pub speedup_median: f64,
    pub fidelity: Fidelity,
    /// How memory was measured.
    pub memory: &'static str,
}

const MEMORY_NOTE: &str = "rss_growth_mb: peak resident set while loading and running the model minus the resident set just before loading it (peak reset through /proc/self/clear_refs); peak_rss_mb: the process peak after that model ran";

/// Compares A's records with B's, input by input.
pub fn fidelity(a: &[Record], b: &[Record], lm: bool) -> Result<Fidelity, Diag> {
    let scores: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.agreement(y))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            Diag::new(
                "plcc::bench::incomparable",
                "the two models' outputs cannot be compared (neither logits nor embeddings of the same size)",
            )
            .help("compare a model with its teacher, or two models of the same task and width")
        })?;
    let metric = match (a.first(), lm) {
        (_, true) => "top1_agreement",
        (Some(r), false) if r.logits.is_some() => "argmax_agreement",
        _ => "embedding_cosine",
    };
    let n = scores.len().max(1) as f64;
    let embeddings = |records: &[Record]| -> Option<Vec<Vec<f32>>> {
        records.iter().map(|r| r.embedding.clone()).collect()
    };
    let similarity_spearman = match (metric, embeddings(a), embeddings(b)) {
        ("embedding_cosine", Some(ea), Some(eb)) => similarity_spearman(&eb, &ea),
        _ => None,
    };
    Ok(Fidelity {
        metric: metric.into(),
        mean: scores.iter().sum::<f64>() / n,
        min: scores.iter().copied().fold(f64::INFINITY, f64::min),
        similarity_spearman,
    })
}

/// Measures `a` and `b` on `lines` and prints the comparison.
pub fn run(
    a: &str,
    b: &str,
    device: &Device,
    lines: &[String],
    setup: BenchSetup,
    json: bool,
) -> Result<ExitCode, Diag> {
    let mut ma = measure(a, device, lines, setup)?;
    let mut mb = measure(b, device, lines, setup)?;
    while ma.wants_more(setup) || mb.wants_more(setup) {
        remeasure(&mut ma, lines, setup)?;
        remeasure(&mut mb, lines, setup)?;
    }
    let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (reader, reference) = (Reader::of(a, &ma.model), Reader::of(b, &mb.model));
    warn_if_respelled(&reader, &reference, &texts, "the input")?;
    let lm = ma
        .records
        .first()
        .is_some_and(|r| r.embedding.is_none() && r.logits.is_some());
    let comparison = Comparison {
        speedup: ma.report.sentences_per_s / mb.report.sentences_per_s.max(1e-12),
        speedup_median: ma.report.median_sentences_per_s
            / mb.report.median_sentences_per_s.max(1e-12),
        fidelity: fidelity(&ma.records, &mb.records, lm)?,
        model: ma.report,
        against: mb.report,
        memory: MEMORY_NOTE,
    };
    if json {
        print_json(&comparison)?;
    } else {
        print_table(&comparison);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(c: &Comparison) {
    let (a, b) = (&c.model, &c.against);
    println!(
        "{} sentences ({} tokens), batch {}, {} threads",
        a.sentences, a.tokens, a.batch_size, a.threads
    );
    println!("machine: {}", machine_text(&a.machine));
    println!("passes: model {}", passes_text(a));
    println!("        against {}", passes_text(b));
    println!("{:<22} {:>14} {:>14}", "", "model", "against");
    println!("{:<22} {:>14} {:>14}", "", short(&a.model), short(&b.model));
    let row = |name: &str, x: f64, y: f64, digits: usize| {
        println!("{name:<22} {x:>14.digits$} {y:>14.digits$}");
    };
    row("sentences/s", a.sentences_per_s, b.sentences_per_s, 1);
    row(
        "median sentences/s",
        a.median_sentences_per_s,
        b.median_sentences_per_s,
        1,
    );
    row("tokens/s", a.tokens_per_s, b.tokens_per_s, 1);
    row("batch p50 ms", a.p50_ms, b.p50_ms, 2);
    row("batch p95 ms", a.p95_ms, b.p95_ms, 2);
    row("RSS growth MiB", a.rss_growth_mb, b.rss_growth_mb, 1);
    row("peak RSS MiB", a.peak_rss_mb, b.peak_rss_mb, 1);
    let exit = |r: &BenchReport| r.avg_exit_layer.map_or("-".into(), |l| format!("{l:.2}"));
    println!("{:<22} {:>14} {:>14}", "avg exit layer", exit(a), exit(b));
    println!(
        "speed-up               {:.2}x (median passes {:.2}x)",
        c.speedup, c.speedup_median
    );
    println!(
        "fidelity to against    {} mean {:.4}, min {:.4}",
        c.fidelity.metric, c.fidelity.mean, c.fidelity.min
    );
    if let Some(rho) = c.fidelity.similarity_spearman {
        println!("similarity ranking     Spearman {rho:.4} over all pairs of inputs");
    }
    println!("memory: {}", c.memory);
}

/// The last path component of a model name (the table is narrow).
fn short(name: &str) -> String {
    let last = Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    let chars: Vec<char> = last.chars().collect();
    if chars.len() > 14 {
        format!("…{}", chars[chars.len() - 13..].iter().collect::<String>())
    } else {
        last
    }
}
