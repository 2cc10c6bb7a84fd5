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

/// One colour per evaluation set.
const SET_COLOURS: [&str; 4] = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b"];
const SHIPPED: &str = "#d62728";

/// The teacher's point of `c`, when both its FLOPs and accuracy are known.
fn teacher_point(c: &AccuracyCurve) -> Option<(f64, f64)> {
    Some((c.teacher_flops_per_example?, c.teacher_accuracy?))
}

/// Draws the panel whose top edge is at `top`.
pub fn accuracy_panel(svg: &mut Svg, top: f64, curves: &[AccuracyCurve]) {
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
    let mut legend = Vec::new();
    for (i, c) in curves.iter().enumerate() {
        let colour = SET_COLOURS[i % SET_COLOURS.len()];
        legend.extend(draw_curve(svg, (&x, &y), c, colour));
    }
    for (i, (label, colour)) in legend.iter().enumerate() {
        let ly = top + TOP + 16.0 * i as f64;
        svg.text(W - RIGHT + 16.0, ly, "start", colour, label);
    }
}

/// Draws `c` in `colour` on the axes `x` (FLOPs) and `y` (accuracy), its
/// shipped point and the teacher marked; returns its legend lines.
fn draw_curve(
    svg: &mut Svg,
    (x, y): (&Axis, &Axis),
    c: &AccuracyCurve,
    colour: &'static str,
) -> Vec<(String, &'static str)> {
    let (criterion, noun) = (c.criterion, setting_noun(c.criterion));
    let at = |flops: f64, accuracy: f64| (x.px(flops), y.px(accuracy));
    let line: Vec<(f64, f64)> = c
        .points
        .iter()
        .map(|p| at(p.flops_per_example, p.accuracy))
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
        svg.dot(at(p.flops_per_example, p.accuracy), 2.5, colour, Some(&tip));
    }
    let mut legend = vec![(format!("accuracy on `{}`", c.data), colour)];
    if let Some(p) = c.shipped() {
        svg.dot(at(p.flops_per_example, p.accuracy), 5.0, SHIPPED, None);
        let setting = setting_text(criterion, p.setting);
        legend.push((
            format!(
                "shipped {noun} {setting}: {:.4}, {:.2}x",
                p.accuracy, p.speedup
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
        svg.dot(at(f, a), 4.0, "#000000", Some(&tip));
        legend.push((format!("teacher on `{}` {a:.4}", c.data), "#000000"));
    }
    legend
}
