//! `plcc build`: compile the recipe, lower it onto the teacher's weights and
//! write the artifact (`crate::build`); one line per stage with its time, then a summary table.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::options::{DeviceArg, ThreadsOption};
use super::output::render;
use super::progress::StderrReporter;
use crate::diag::Diag;
use crate::eval::eval_sets;
use crate::eval::report::{ratio_text, Report};
use crate::eval::retrieval::METRICS;
use crate::lower::BuildOptions;
use crate::pass::PassRegistry;

/// Compress: run the recipe on its checkpoint and write the artifact.
#[derive(Args, Debug)]
#[command(mut_arg("threads", |a| a.help("CPU threads for training and measuring (default: every core)")))]
pub struct BuildArgs {
    /// The recipe file (`.pc`) to build.
    pub recipe: PathBuf,
    /// The artifact directory to write (default: the recipe's `output`).
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Where training runs (default: the recipe's `device`, else cpu).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Cap every training stage at N steps (0: compress without training;
    /// default: the steps the recipe asks for).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// Continue from the last training checkpoint in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Let the recipe's `output:` write outside the recipe's folder.
    #[arg(long)]
    pub allow_outside: bool,
    /// Stop at once when another build writes the same output, instead of
    /// waiting for it to finish.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub threads: ThreadsOption,
}

/// Runs `plcc build` and prints its summary.
pub fn run(args: &BuildArgs, registry: &PassRegistry) -> Result<ExitCode, Diag> {
    super::allocator::keep_freed_memory();
    args.threads.apply()?;
    let device = args.device.map(DeviceArg::open).transpose()?;
    let opts = BuildOptions {
        output: args.output.clone(),
        allow_outside: args.allow_outside,
        no_wait: args.no_wait,
        max_steps: args.max_steps,
        resume: args.resume,
        device,
    };
    let built = crate::build(&args.recipe, &opts, registry, &StderrReporter::new())?;
    for warning in &built.warnings {
        render(warning);
    }
    let r = &built.report;
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    print_sizes(r);
    print_training(r);
    print_fidelity(r);
    print_eval_sets(r);
    println!("wrote {}", built.dir.display());
    if let Some(dir) = &built.checkpoint {
        println!("wrote {} (Hugging Face checkpoint)", dir.display());
    }
    if let Some(c) = &built.calibration {
        let o = &c.chosen;
        println!(
            "calibrated exits for {} on {} sentences: threshold {}, avg exit layer {:.2} of {}, est. speed-up {:.2}x, fidelity to full depth {:.4}",
            crate::eval::exits::describe(c.target),
            c.samples,
            o.setting.map_or("off".into(), |s| format!("{s:.6}")),
            o.avg_exit_layer,
            c.layers,
            o.est_speedup,
            o.fidelity
        );
        super::calibrate::print_oracle(&c.oracle);
    }
    Ok(ExitCode::SUCCESS)
}

/// Parameters, bytes and FLOPs of teacher and student, and parameters by part.
fn print_sizes(r: &Report) {
    println!(
        "{:<22} {:>14} {:>14} {:>14}",
        "", "teacher", "student", "vs teacher"
    );
    for (name, t, s, bytes) in [
        ("parameters", r.teacher.params, r.student.params, false),
        (
            "bytes (weight file)",
            r.teacher.bytes,
            r.student.bytes,
            true,
        ),
        (
            "FLOPs/token",
            r.teacher.flops_per_token,
            r.student.flops_per_token,
            false,
        ),
    ] {
        println!("{name:<22} {t:>14} {s:>14} {:>14}", ratio_text(t, s, bytes));
    }
    for part in ["embeddings", "encoder", "heads"] {
        let get = |m: &BTreeMap<String, u64>| m.get(part).copied().unwrap_or(0);
        let (t, s) = (
            get(&r.teacher.params_by_part),
            get(&r.student.params_by_part),
        );
        println!(
            "  {:<20} {t:>14} {s:>14} {:>14}",
            format!("{part} params"),
            ratio_text(t, s, false)
        );
    }
}

/// Every training stage's steps, tokens, time and final loss, and the
/// evaluations between stages.
fn print_training(r: &Report) {
    let Some(t) = &r.training else {
        return;
    };
    println!("training:");
    for st in &t.stages {
        println!(
            "  {:<20} {:>6} steps {:>9} tokens {:>8.1}s {:>8.0} tok/s  final loss {:.4}",
            st.name,
            st.steps,
            st.tokens,
            st.seconds,
            st.tokens_per_second(),
            st.final_loss
        );
    }
    for e in &t.evaluations {
        let metrics: Vec<String> = e
            .fidelity
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        println!("  {:<20} {}", e.label(), metrics.join(", "));
    }
}

/// The planned bytes, the embedding energy kept, and the fidelity to the
/// teacher (with exits on beside full depth, when measured).
fn print_fidelity(r: &Report) {
    println!(
        "planned student bytes  {} (real/planned {:.4})",
        r.planned_student_bytes, r.bytes_vs_plan
    );
    if let Some(e) = r.embedding_energy_kept {
        println!("embedding energy kept  {:.2}%", 100.0 * e);
    }
    println!(
        "fidelity on `{}` ({} examples):",
        r.fidelity.data, r.fidelity.examples
    );
    if let Some(w) = &r.fidelity_with_exits {
        println!("  {:<20} {:>10} {:>10}", "", "with exits", "full depth");
        let mut keys: Vec<&String> = r.fidelity.metrics.keys().collect();
        keys.extend(
            w.metrics
                .keys()
                .filter(|k| !r.fidelity.metrics.contains_key(*k)),
        );
        let cell = |m: &BTreeMap<String, f64>, k: &String| {
            m.get(k).map_or("-".to_string(), |v| format!("{v:.4}"))
        };
        for k in keys {
            println!(
                "  {k:<20} {:>10} {:>10}",
                cell(&w.metrics, k),
                cell(&r.fidelity.metrics, k)
            );
        }
    } else {
        for (k, v) in &r.fidelity.metrics {
            println!("  {k:<20} {v:.4}");
        }
    }
    if let Some(why) = r.exits.as_ref().and_then(|e| e.not_measured.as_ref()) {
        println!("  (with exits on: not measured, {why})");
    }
}

/// The evaluation sets besides the primary one's fidelity: each other
/// sentence set's fidelity, each retrieval set's metrics for teacher and
/// student with the student's share of the teacher's MRR@10.
fn print_eval_sets(r: &Report) {
    if !eval_sets::worth_showing(&r.eval_sets) {
        return;
    }
    for (name, set) in eval_sets::in_order(&r.eval_sets) {
        if let (Some(f), false) = (&set.fidelity, set.primary) {
            println!("fidelity on `{name}` ({} examples):", f.examples);
            for (k, v) in &f.metrics {
                println!("  {k:<20} {v:.4}");
            }
        }
        if let Some(rr) = &set.retrieval {
            println!(
                "retrieval on `{name}` ({} queries, {} documents):",
                rr.queries, rr.documents
            );
            println!("  {:<20} {:>10} {:>10}", "", "teacher", "student");
            for m in METRICS {
                let cell = |side: &BTreeMap<String, f64>| {
                    side.get(m).map_or("-".to_string(), |v| format!("{v:.4}"))
                };
                println!(
                    "  {m:<20} {:>10} {:>10}",
                    cell(&rr.teacher),
                    cell(&rr.student)
                );
            }
            if let Some(share) = rr.mrr_share {
                println!(
                    "  student keeps {:.1}% of the teacher's MRR@10",
                    100.0 * share
                );
            }
        }
    }
}
