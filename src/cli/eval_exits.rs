//! `plcc eval` on a classifier artifact with exits: its accuracy against
//! FLOPs per example over a sweep of exit thresholds on the data
//! (`eval::exits::accuracy`), the `--against` model priced at full depth
//! beside it, and the text table.

use crate::diag::Diag;
use crate::eval::exits::accuracy::{accuracy_curves, AccuracyCurve, LabelledSet};
use crate::eval::report_accuracy::{flops_text, teacher_share_text};
use crate::eval::report_exits::{setting_noun, setting_text};
use crate::runtime::load::loader::ModelSource;
use crate::runtime::LoadedModel;
use crate::text::data::Example;

/// The curve of the model `spec` on `examples` (named `data`), when it is
/// an artifact that classifies and has exits; `against` is the other
/// model with its accuracy, when given.
pub fn curve(
    spec: &str,
    data: &str,
    examples: &[Example],
    against: Option<(&LoadedModel, Option<f64>)>,
) -> Result<Option<AccuracyCurve>, Diag> {
    let ModelSource::Artifact(dir) = ModelSource::parse(spec)? else {
        return Ok(None);
    };
    let set = LabelledSet {
        name: data,
        examples,
        teacher_accuracy: against.and_then(|(_, a)| a),
        whole: true,
    };
    Ok(accuracy_curves(&dir, against.map(|(m, _)| m), &[set])?.pop())
}

/// The curve as text: one row per setting, the shipped one starred, then
/// each exit's own accuracy.
pub fn print_curve(c: &AccuracyCurve, against: Option<&str>) {
    let noun = setting_noun(c.criterion);
    println!("accuracy against FLOPs per example, {noun}s of the exits swept:");
    let share = c.teacher_flops_per_example.zip(against);
    let share_head = share.map_or(String::new(), |(_, name)| format!("  share of {name}"));
    println!(
        "  {:<12} {:>9} {:>14} {:>9}{share_head} {:>9}",
        noun, "avg layer", "FLOPs/example", "speed-up", "accuracy"
    );
    for p in &c.points {
        let mark = if p.shipped { " *" } else { "" };
        let setting = format!("{}{mark}", setting_text(c.criterion, p.setting));
        let share = share.map_or(String::new(), |(t, name)| {
            let width = "  share of ".len() + name.chars().count();
            format!("{:>width$}", teacher_share_text(p.flops_per_example, t))
        });
        println!(
            "  {setting:<12} {:>9.2} {:>14} {:>8.2}x{share} {:>9.4}",
            p.avg_exit_layer,
            flops_text(p.flops_per_example),
            p.speedup,
            p.accuracy
        );
    }
    println!("  (* shipped)");
    let layers: Vec<String> = c
        .layers
        .iter()
        .map(|l| match l.exit {
            Some(e) => format!("exit {e} (layer {}) {:.4}", l.after_layer, l.accuracy),
            None => format!("final (layer {}) {:.4}", l.after_layer, l.accuracy),
        })
        .collect();
    println!("each exit alone: {}", layers.join(", "));
}
