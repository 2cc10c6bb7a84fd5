//! The report's accuracy against FLOPs on a labelled evaluation set, as
//! COST-EFF shows it: a table of the swept exit settings (threshold,
//! average exit layer, FLOPs per example, speed-up over the same model
//! without exits, share of the teacher's FLOPs, accuracy against the gold
//! labels) with the shipped one marked, and each exit's own accuracy.

use super::exits::accuracy::{AccuracyCurve, AccuracyPoint};
use super::report_exits::{setting_noun, setting_text, ExitsReport};
use crate::base::{word, ExitCriterion};
use crate::ir::human;

/// FLOPs in words: `12.3 M`.
pub fn flops_text(flops: f64) -> String {
    human(flops.round(), "")
}

/// `flops` as a share of the teacher's `teacher` FLOPs: `1/12.4`.
pub fn teacher_share_text(flops: f64, teacher: f64) -> String {
    format!("1/{:.1}", teacher / flops.max(1.0))
}

fn point_row(p: &AccuracyPoint, criterion: ExitCriterion, teacher: Option<f64>) -> String {
    let setting = setting_text(criterion, p.setting);
    let setting = if p.shipped {
        format!("**{setting} (shipped)**")
    } else {
        setting
    };
    let share = teacher.map_or(String::new(), |t| {
        format!(" {} |", teacher_share_text(p.flops_per_example, t))
    });
    format!(
        "| {setting} | {:.2} | {} | {:.2}x |{share} {:.4} |\n",
        p.avg_exit_layer,
        flops_text(p.flops_per_example),
        p.speedup,
        p.accuracy
    )
}

/// The sections of every curve of the exits `e`.
pub fn exits_accuracy_markdown(e: &ExitsReport) -> String {
    e.accuracy_vs_flops.iter().map(accuracy_markdown).collect()
}

/// The section of one curve.
pub fn accuracy_markdown(c: &AccuracyCurve) -> String {
    let criterion = c.criterion;
    let noun = setting_noun(criterion);
    let mut s = format!(
        "\n### Accuracy against FLOPs on `{}` ({} labelled examples)\n\n\
         Each {noun} applied as the runtime applies it (an example leaves at the first exit \
         whose {} meets it), from exits off to every example leaving at the earliest exit it can; \
         accuracy against the gold labels, FLOPs per example from the compiler's cost model.\n",
        c.data,
        c.examples,
        word(&criterion)
    );
    match (c.teacher_flops_per_example, c.teacher_accuracy) {
        (Some(f), Some(a)) => s.push_str(&format!(
            "The teacher at full depth: {} FLOPs per example, accuracy {a:.4}.\n",
            flops_text(f)
        )),
        (Some(f), None) => s.push_str(&format!(
            "The teacher at full depth: {} FLOPs per example.\n",
            flops_text(f)
        )),
        _ => {}
    }
    if c.shipped().is_none() {
        s.push_str(&format!(
            "The shipped {noun} was set after this was measured and is not marked.\n"
        ));
    }
    let teacher = c.teacher_flops_per_example;
    let (share_head, share_rule) = match teacher {
        Some(_) => (" of the teacher's FLOPs |", "---:|"),
        None => ("", ""),
    };
    s.push_str(&format!(
        "\n| {noun} | average exit layer | FLOPs per example | speed-up |{share_head} accuracy |\n\
         |---:|---:|---:|---:|{share_rule}---:|\n"
    ));
    for p in &c.points {
        s.push_str(&point_row(p, criterion, teacher));
    }
    s.push_str("\nEach exit's own accuracy (every example leaving there):\n\n");
    s.push_str("| exit | after layer | accuracy |\n|---|---:|---:|\n");
    for l in &c.layers {
        let exit = l.exit.map_or("final".to_string(), |e| e.to_string());
        s.push_str(&format!(
            "| {exit} | {} | {:.4} |\n",
            l.after_layer, l.accuracy
        ));
    }
    s
}
