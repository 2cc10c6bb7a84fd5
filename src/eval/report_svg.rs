//! The report's picture, `report.svg`: the student against the teacher —
//! weight bytes (log scale) against the headline fidelity metric, with the
//! build's points along the way (before training, after each stage) and,
//! when the exits have thresholds, the student as shipped — and, when a
//! calibration chose the thresholds, a second panel with its curve: every
//! setting tried against its fidelity to the full-depth output and its
//! estimated speed-up, the chosen one marked; and, for a classifier with
//! exits measured on labelled data, a panel of accuracy against FLOPs per
//! example (`report_svg_accuracy`). Every dot carries its numbers as a
//! tooltip.

use super::fidelity::headline;
use super::report::Report;
use super::report_exits::{setting_noun, setting_text, ExitCalibration};
use super::report_svg_accuracy::accuracy_panel;
use super::report_svg_layout::{axes, y_ticks, BOTTOM, LEFT, PANEL, RIGHT, TOP, W};
use crate::base::svg::{Axis, Svg};
use crate::base::ExitCriterion;

const COLOURS: [&str; 6] = [
    "#7f7f7f", "#9467bd", "#2ca02c", "#17becf", "#bcbd22", "#8c564b",
];

/// One labelled point of the size panel.
struct Point {
    label: String,
    bytes: u64,
    value: f64,
    colour: &'static str,
}

/// The points of the size panel, and the metric they show.
fn size_points(r: &Report) -> Option<(&'static str, Vec<Point>)> {
    let (metric, student) = headline(&r.fidelity.metrics)?;
    let mut points = vec![Point {
        label: "teacher".into(),
        bytes: r.teacher.bytes,
        value: 1.0,
        colour: "#000000",
    }];
    let evaluations = r.training.iter().flat_map(|t| &t.evaluations);
    for (i, e) in evaluations.enumerate() {
        if let Some(&v) = e.fidelity.metrics.get(metric) {
            points.push(Point {
                label: format!("student {} (fake-quantized)", e.label()),
                bytes: r.student.bytes,
                value: v,
                colour: COLOURS[i % COLOURS.len()],
            });
        }
    }
    points.push(Point {
        label: "student, full depth".into(),
        bytes: r.student.bytes,
        value: student,
        colour: "#1f77b4",
    });
    if let Some(&v) = r
        .fidelity_with_exits
        .as_ref()
        .and_then(|f| f.metrics.get(metric))
    {
        points.push(Point {
            label: "student with exits (as shipped)".into(),
            bytes: r.student.bytes,
            value: v,
            colour: "#d62728",
        });
    }
    Some((metric, points))
}

fn size_panel(svg: &mut Svg, r: &Report) {
    let Some((metric, points)) = size_points(r) else {
        svg.title(W / 2.0, 20.0, "no headline fidelity metric to draw");
        return;
    };
    svg.title(W / 2.0, 20.0, &format!("size and fidelity ({metric})"));
    axes(svg, 0.0, "weight bytes (log scale)");
    let x = Axis::fit(points.iter().map(|p| p.bytes as f64), 1.0, LEFT, W - RIGHT).padded(0.15);
    let y = Axis::fit(
        points.iter().map(|p| p.value),
        f64::INFINITY,
        PANEL - BOTTOM,
        TOP,
    )
    .padded(0.1);
    y_ticks(svg, 0.0, &y, LEFT - 6.0, "end");
    for frac in [0.0, 0.5, 1.0] {
        let b = x.at(frac);
        svg.text(
            x.px(b),
            PANEL - BOTTOM + 16.0,
            "middle",
            "black",
            &format!("{b:.0}"),
        );
    }
    for (i, p) in points.iter().enumerate() {
        let tip = format!("{}: {} bytes, {metric} {:.4}", p.label, p.bytes, p.value);
        svg.dot(
            (x.px(p.bytes as f64), y.px(p.value)),
            5.0,
            p.colour,
            Some(&tip),
        );
        let ly = TOP + 16.0 * i as f64;
        svg.dot((W - RIGHT + 16.0, ly - 4.0), 4.0, p.colour, None);
        let label = format!("{} {:.4}", p.label, p.value);
        svg.text(W - RIGHT + 26.0, ly, "start", p.colour, &label);
    }
}

fn curve_panel(
    svg: &mut Svg,
    top: f64,
    c: &ExitCalibration,
    criterion: ExitCriterion,
    layers: usize,
) {
    let what = setting_noun(criterion);
    svg.title(
        W / 2.0,
        top + 20.0,
        &format!("exit calibration for `{}` on {}", c.target, c.data),
    );
    axes(svg, top, what);
    let tried: Vec<_> = c.curve.iter().filter(|s| s.setting.is_some()).collect();
    let setting = |s: Option<f64>| s.unwrap_or(0.0);
    let x = Axis::fit(
        tried.iter().map(|s| setting(s.setting)),
        f64::INFINITY,
        LEFT,
        W - RIGHT,
    );
    let (y0, y1) = (top + PANEL - BOTTOM, top + TOP);
    let fid = Axis::fit(tried.iter().map(|s| s.fidelity), f64::INFINITY, y0, y1).padded(0.05);
    let speed = Axis::fit(tried.iter().map(|s| s.est_speedup), f64::INFINITY, y0, y1).padded(0.05);
    y_ticks(svg, top, &fid, LEFT - 6.0, "end");
    y_ticks(svg, top, &speed, W - RIGHT + 6.0, "start");
    for frac in [0.0, 0.5, 1.0] {
        let px = x.px(x.at(frac));
        svg.text(px, y0 + 16.0, "middle", "black", &x.tick_at(frac));
    }
    let line = |axis: &Axis, f: fn(&super::report_exits::CurveSample) -> f64| -> Vec<(f64, f64)> {
        tried
            .iter()
            .map(|s| (x.px(setting(s.setting)), axis.px(f(s))))
            .collect()
    };
    svg.polyline(&line(&fid, |s| s.fidelity), "#1f77b4", "1.5", None);
    svg.polyline(
        &line(&speed, |s| s.est_speedup),
        "#ff7f0e",
        "1.5",
        Some("4 3"),
    );
    // The average exit layer on its own scale: layer 1 at the bottom, the
    // last layer at the top.
    let layer_axis = Axis::fit([1.0, layers as f64].into_iter(), f64::INFINITY, y0, y1);
    svg.polyline(
        &line(&layer_axis, |s| s.avg_exit_layer),
        "#2ca02c",
        "1.5",
        Some("1 3"),
    );
    for s in &tried {
        let tip = format!(
            "{what} {}: average exit layer {:.2} of {layers}, est. speed-up {:.2}x, fidelity {:.4}",
            setting_text(criterion, s.setting),
            s.avg_exit_layer,
            s.est_speedup,
            s.fidelity
        );
        let px = x.px(setting(s.setting));
        svg.dot((px, fid.px(s.fidelity)), 2.0, "#1f77b4", Some(&tip));
        svg.dot((px, speed.px(s.est_speedup)), 2.0, "#ff7f0e", None);
    }
    let mut legend = vec![
        ("fidelity to full depth (left)".to_string(), "#1f77b4"),
        ("est. speed-up (right)".to_string(), "#ff7f0e"),
        (
            format!("average exit layer (1 at the bottom, {layers} at the top)"),
            "#2ca02c",
        ),
    ];
    if let Some(t) = c.chosen.setting {
        let px = x.px(t);
        svg.polyline(&[(px, y0), (px, y1)], "#d62728", "1", Some("2 2"));
        svg.dot((px, fid.px(c.chosen.fidelity)), 5.0, "#d62728", None);
        let o = &c.chosen;
        legend.extend([
            (
                format!("chosen {what} {}", setting_text(criterion, Some(t))),
                "#d62728",
            ),
            (
                format!("average exit layer {:.2} of {layers}", o.avg_exit_layer),
                "#d62728",
            ),
            (format!("est. speed-up {:.2}x", o.est_speedup), "#d62728"),
            (format!("fidelity {:.4}", o.fidelity), "#d62728"),
        ]);
    }
    for (i, (label, colour)) in legend.iter().enumerate() {
        let y = top + TOP + 16.0 * i as f64;
        svg.text(W - RIGHT + 50.0, y, "start", colour, label);
    }
}

/// The report's SVG picture: the size panel, then the calibration and
/// accuracy panels when the report has them.
pub fn report_svg(r: &Report) -> String {
    let exits = r.exits.as_ref();
    let criterion = exits
        .and_then(|e| e.exits.first())
        .map_or(ExitCriterion::Similarity, |x| x.criterion);
    let calibration = exits.and_then(|e| Some((e.layers, e.calibration.as_ref()?)));
    let curves = exits.map_or(&[][..], |e| &e.accuracy_vs_flops[..]);
    let panels = 1 + usize::from(calibration.is_some()) + usize::from(!curves.is_empty());
    let mut svg = Svg::new(W, panels as f64 * PANEL);
    size_panel(&mut svg, r);
    let mut top = PANEL;
    if let Some((layers, c)) = calibration {
        curve_panel(&mut svg, top, c, criterion, layers);
        top += PANEL;
    }
    if !curves.is_empty() {
        accuracy_panel(&mut svg, top, curves);
    }
    svg.finish()
}
