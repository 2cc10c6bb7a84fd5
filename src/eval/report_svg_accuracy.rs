//! The report picture's accuracy panel: a classifier's accuracy against
//! the gold labels against its average FLOPs per example, one line per
//! labelled evaluation set over the swept exit settings, the shipped
//! setting marked, and the teacher at full depth where its FLOPs and
//! accuracy are known. Every dot carries its numbers as a tooltip.

use super::exits::accuracy::AccuracyCurve;
use super::report_accuracy::flops_text;
use super::report_exits::{setting_noun, setting_text};
use super::report_svg_layout::{axes, y_ticks, BOTTOM, LEFT, PANEL, RIGHT, TOP, W};
use crate::base::svg::{Axis, Svg};
use crate::base::ExitCriterion;

/// One colour per evaluation set.
const SET_COLOURS: [&str; 4] = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b"];
const SHIPPED: &str = "#d62728";

/// The teacher's point of `c`, when both its FLOPs and accuracy are known.
fn teacher_point(c: &AccuracyCurve) -> Option<(f64, f64)> {
    Some((c.teacher_flops_per_example?, c.teacher_accuracy?))
}

/// Draws the panel whose top edge is at `top`.
pub fn accuracy_panel(svg: &mut Svg, top: f64, curves: &[AccuracyCurve], criterion: ExitCriterion) {
    svg.title(
        W / 2.0,
        top + 20.0,
        "accuracy against FLOPs per example, exit settings swept",
    );
    axes(svg, top, "average FLOPs per example");
    let flops = curves.iter().flat_map(|c| {
        c.points
            .iter()
            .map(|p| p.flops_per_example)
            .chain(c.teacher_flops_per_example)
    });
    let x = Axis::fit(flops, 10.0, LEFT, W - RIGHT).padded(0.05);
    let accuracies = curves.iter().flat_map(|c| {
        c.points
            .iter()
            .map(|p| p.accuracy)
            .chain(c.teacher_accuracy)
    });
    let (y0, y1) = (top + PANEL - BOTTOM, top + TOP);
    let y = Axis::fit(accuracies, f64::INFINITY, y0, y1).padded(0.05);
    y_ticks(svg, top, &y, LEFT - 6.0, "end");
    for frac in [0.0, 0.5, 1.0] {
        let v = x.at(frac);
        svg.text(x.px(v), y0 + 16.0, "middle", "black", &flops_text(v));
    }
    let noun = setting_noun(criterion);
    let mut legend = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let colour = SET_COLOURS[i % SET_COLOURS.len()];
        let line: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|p| (x.px(p.flops_per_example), y.px(p.accuracy)))
            .collect();
        svg.polyline(&line, colour, "1.5", None);
        for p in &c.points {
            let tip = format!(
                "`{}`, {noun} {}: average exit layer {:.2}, {} FLOPs per example ({:.2}x), accuracy {:.4}",
                c.data,
                setting_text(criterion, p.setting),
                p.avg_exit_layer,
                flops_text(p.flops_per_example),
                p.speedup,
                p.accuracy
            );
            let at = (x.px(p.flops_per_example), y.px(p.accuracy));
            svg.dot(at, 2.5, colour, Some(&tip));
        }
        legend.push((format!("accuracy on `{}`", c.data), colour));
        if let Some(p) = c.shipped() {
            let at = (x.px(p.flops_per_example), y.px(p.accuracy));
            svg.dot(at, 5.0, SHIPPED, None);
            legend.push((
                format!(
                    "shipped {noun} {}: {:.4}, {:.2}x",
                    setting_text(criterion, p.setting),
                    p.accuracy,
                    p.speedup
                ),
                SHIPPED,
            ));
        }
        if let Some((f, a)) = teacher_point(c) {
            let tip = format!(
                "teacher on `{}`: {} FLOPs per example, accuracy {a:.4}",
                c.data,
                flops_text(f)
            );
            svg.dot((x.px(f), y.px(a)), 4.0, "#000000", Some(&tip));
            legend.push((format!("teacher on `{}` {a:.4}", c.data), "#000000"));
        }
    }
    for (i, (label, colour)) in legend.iter().enumerate() {
        let ly = top + TOP + 16.0 * i as f64;
        svg.text(W - RIGHT + 16.0, ly, "start", colour, label);
    }
}
