//! `plcc build`: compile the recipe, lower it onto the teacher's weights and
//! write the artifact (`crate::build`); one line per stage with its time, then a summary table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::progress::StderrReporter;
use super::run::{select_device, set_threads};
use super::DeviceArg;
use crate::diag::Diag;
use crate::lower::BuildOptions;
use crate::pass::PassRegistry;

/// Where the artifact goes: `-o`, and whether the recipe's own `output:`
/// may leave the recipe's folder.
pub struct Where {
    pub output: Option<PathBuf>,
    pub allow_outside: bool,
}

pub fn run(
    recipe: &Path,
    place: Where,
    threads: Option<usize>,
    device: Option<DeviceArg>,
    max_steps: Option<usize>,
    resume: bool,
    registry: &PassRegistry,
) -> Result<ExitCode, Diag> {
    set_threads(threads)?;
    let device = device.map(select_device).transpose()?;
    let opts = BuildOptions {
        output: place.output,
        allow_outside: place.allow_outside,
        max_steps,
        resume,
        device,
    };
    let built = crate::build(recipe, &opts, registry, &StderrReporter::new())?;
    for warning in &built.warnings {
        super::render(warning);
    }
    let r = &built.report;
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    let ratio = crate::eval::report::ratio_text;
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
        println!("{name:<22} {t:>14} {s:>14} {:>14}", ratio(t, s, bytes));
    }
    for part in ["embeddings", "encoder", "heads"] {
        let get = |m: &std::collections::BTreeMap<String, u64>| m.get(part).copied().unwrap_or(0);
        let (t, s) = (
            get(&r.teacher.params_by_part),
            get(&r.student.params_by_part),
        );
        println!(
            "  {:<20} {t:>14} {s:>14} {:>14}",
            format!("{part} params"),
            ratio(t, s, false)
        );
    }
    if let Some(t) = &r.training {
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
    let with_exits = r.fidelity_with_exits.as_ref();
    if let Some(w) = with_exits {
        println!("  {:<20} {:>10} {:>10}", "", "with exits", "full depth");
        let mut keys: Vec<&String> = r.fidelity.metrics.keys().collect();
        keys.extend(
            w.metrics
                .keys()
                .filter(|k| !r.fidelity.metrics.contains_key(*k)),
        );
        let cell = |m: &std::collections::BTreeMap<String, f64>, k: &String| {
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
    println!("wrote {}", built.dir.display());
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
    }
    Ok(ExitCode::SUCCESS)
}
