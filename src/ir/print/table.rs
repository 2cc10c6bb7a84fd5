//! The plan as `plcc plan` shows it (`plan_table`): the teacher, then one
//! section each for the per-layer widths, every module's shape before →
//! after with its quantizers, the vocabulary, the exits, the distillation
//! timeline and the estimates of teacher and student. The rows come from
//! `document`; the timeline, vocabulary rule and words are shared with the
//! IR's own text form in the parent module.

use std::fmt::Write;

use crate::base::{compare_counts, CalibrationTarget};
use crate::ir::{self, print_timeline, CostPlan, ExitPlan, LossPlanKind, Plan, Program};

use super::document::{layer_rows, module_rows, vocab_doc};
use super::plan::teacher_text;

/// The human-readable plan.
pub fn plan_table(program: &Program) -> String {
    let plan = &program.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}; student {} layers; device {}",
        teacher_text(plan),
        program.model.num_layers(),
        plan.device.name()
    );
    out.push_str(&layers_section(program));
    out.push_str(&modules_section(program));
    out.push_str(&vocabulary_section(program));
    out.push_str(&exits_section(plan));
    out.push_str(&timeline_section(plan));
    out.push_str(&estimates_section(&plan.cost));
    out
}

/// Each student layer with its teacher layer, heads and FFN width.
fn layers_section(program: &Program) -> String {
    let mut table = vec![vec![
        "student".to_string(),
        "teacher".to_string(),
        "heads".to_string(),
        "ffn".to_string(),
    ]];
    for r in layer_rows(program) {
        table.push(vec![
            r.student.to_string(),
            r.teacher.to_string(),
            arrow(r.heads[0], r.heads[1]),
            arrow(r.ffn[0], r.ffn[1]),
        ]);
    }
    format!("\nlayers\n{}", columns(&table))
}

/// Each module's shape before and after with its quantizers.
fn modules_section(program: &Program) -> String {
    let shape = |s: Option<[usize; 2]>| match s {
        Some([o, i]) => format!("[{o}, {i}]"),
        None => "-".to_string(),
    };
    let mut table = vec![vec![
        "module".to_string(),
        "before".to_string(),
        "after".to_string(),
        "weights".to_string(),
        "activations".to_string(),
    ]];
    for r in module_rows(program) {
        let after = match (r.before, r.after) {
            (Some(_), None) => "removed".to_string(),
            (_, a) => shape(a),
        };
        let removed = r.after.is_none();
        let weights = match r.weights {
            Some(w) => w,
            None if removed => "-".into(),
            None if r.tied => "tied to the token embedding".into(),
            None => "fp32".into(),
        };
        table.push(vec![
            r.name,
            shape(r.before),
            after,
            weights,
            r.activations.unwrap_or_else(|| "-".into()),
        ]);
    }
    format!("\nmodules\n{}", columns(&table))
}

/// The vocabulary before and after and the bytes it saves (empty when the
/// recipe keeps the vocabulary).
fn vocabulary_section(program: &Program) -> String {
    let Some(v) = vocab_doc(program) else {
        return String::new();
    };
    let mut out = String::from("\nvocabulary\n");
    let _ = writeln!(
        out,
        "  {} pieces ({} on `{}`, {} always kept)",
        arrow(v.before, v.after),
        ir::vocab_rule_text(v.rule),
        v.data,
        v.always_kept
    );
    let _ = writeln!(
        out,
        "  word embedding {} smaller",
        human(v.bytes_saved as f64, "B")
    );
    out
}

/// The exit heads, their calibration and the FLOPs up to each exit.
fn exits_section(plan: &Plan) -> String {
    let mut out = String::from("\nexits\n");
    let Some(e) = &plan.exits else {
        out.push_str("  none\n");
        return out;
    };
    let _ = writeln!(
        out,
        "  {} heads, criterion {}",
        crate::base::word(&e.head),
        crate::base::word(&e.criterion)
    );
    if let Some(line) = calibration_line(e) {
        out.push_str(&line);
    }
    for c in &plan.cost.student.exits {
        let _ = writeln!(
            out,
            "  after layer {}: {} FLOPs/token",
            c.after_layer,
            human(c.flops_per_token as f64, "")
        );
    }
    out
}

/// What the exit thresholds are calibrated for, and on which data.
fn calibration_line(e: &ExitPlan) -> Option<String> {
    let target = match e.target? {
        CalibrationTarget::AvgExitLayer(x) => format!("an average exit layer of {x}"),
        CalibrationTarget::Speedup(x) => format!("a {x}x speed-up"),
        CalibrationTarget::MaxFidelityLoss(x) => {
            format!("at most {}% fidelity loss", x * 100.0)
        }
    };
    let data = e.calibration_data.as_deref().unwrap_or("the eval data");
    let samples = e
        .calibration_samples
        .map_or(String::new(), |n| format!(" (its first {n} examples)"));
    Some(format!(
        "  thresholds calibrated after the build for {target} on {data}{samples}\n"
    ))
}

/// The training stages, with notes on the marks their layer maps carry.
fn timeline_section(plan: &Plan) -> String {
    let mut out = String::from("\ntimeline\n");
    if plan.pretrain.is_none() && plan.stages.is_empty() {
        out.push_str("  no training: compress only\n");
    }
    out.push_str(&print_timeline(plan));
    let pairs = plan
        .stages
        .iter()
        .flat_map(|s| &s.losses)
        .flat_map(|l| match &l.kind {
            LossPlanKind::HiddenMse { pairs }
            | LossPlanKind::AttentionKl { pairs }
            | LossPlanKind::AttentionMse { pairs } => pairs.as_slice(),
            _ => &[],
        });
    let (mut projected, mut averaged) = (false, false);
    for p in pairs {
        projected |= p.projection;
        averaged |= p.average_heads;
    }
    if averaged {
        out.push_str("  ~ head counts differ: attention maps are compared averaged over heads\n");
    }
    if projected {
        out.push_str("  * hidden widths differ: a learned projection maps student to teacher\n");
    }
    out
}

/// Parameters, bytes and FLOPs per token of teacher and student.
fn estimates_section(c: &CostPlan) -> String {
    let rows = [
        (
            "params",
            c.teacher.params,
            c.student.params,
            "",
            "fewer",
            "more",
        ),
        (
            "bytes",
            c.teacher.bytes,
            c.student.bytes,
            "B",
            "smaller",
            "larger",
        ),
        (
            "FLOPs/token",
            c.teacher.flops_per_token,
            c.student.flops_per_token,
            "",
            "fewer",
            "more",
        ),
    ];
    let mut table = Vec::new();
    for (what, teacher, student, unit, less, more) in rows {
        table.push(vec![
            what.to_string(),
            human(teacher as f64, unit),
            "→".to_string(),
            human(student as f64, unit),
            format!("({})", compare_counts(teacher, student, 1, less, more)),
        ]);
    }
    format!("\nestimates (seq_len {})\n{}", c.seq_len, columns(&table))
}

fn arrow(before: usize, after: usize) -> String {
    if before == after {
        before.to_string()
    } else {
        format!("{before} → {after}")
    }
}

/// `90.9 MB`, `2.9 M`, `512`.
pub fn human(x: f64, unit: &str) -> String {
    let (v, prefix) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "K")
    } else {
        return if unit.is_empty() {
            format!("{x}")
        } else {
            format!("{x} {unit}")
        };
    };
    let prefix = if unit == "B" && prefix == "K" {
        "k"
    } else {
        prefix
    };
    format!("{v:.1} {prefix}{unit}")
}

/// Left-aligned columns, two spaces apart, indented by two.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let _ = write!(line, "  {cell}{}", " ".repeat(pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
