//! The loss log's plot, `loss.svg`: the total loss over global steps (one
//! colour per stage), each loss term as a thin dashed line, and the
//! evaluations during training (`eval_every`) as dots on a second axis at
//! the right. The loss axis is logarithmic when the losses span more than a
//! factor of 20.

use std::fmt::Write;

use super::log::StepRecord;
use crate::eval::fidelity::headline;

const STAGE_COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];
const TERM_COLOURS: [&str; 7] = [
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#aec7e8", "#98df8a", "#ffbb78",
];
const EVAL_COLOUR: &str = "#000000";

/// Chart geometry.
const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;

/// The metric the evaluation dots show, and its value in a record's
/// evaluation: the one a stage keeps the best of.
fn eval_value(r: &StepRecord) -> Option<(&'static str, f64)> {
    headline(r.eval.as_ref()?)
}

/// A vertical scale: `lo..hi` mapped onto the plot's height.
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64> + Clone, may_log: bool) -> Scale {
        let lo = values.clone().fold(f64::INFINITY, f64::min);
        let hi = values.fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() || !hi.is_finite() {
            return Scale {
                lo: 0.0,
                hi: 1.0,
                log: false,
            };
        }
        let log = may_log && lo > 0.0 && hi / lo > 20.0;
        let t = |v: f64| if log { v.ln() } else { v };
        let (lo, hi) = if (t(hi) - t(lo)).abs() < 1e-12 {
            (t(lo) - 0.5, t(hi) + 0.5)
        } else {
            (t(lo), t(hi))
        };
        Scale { lo, hi, log }
    }

    fn y(&self, v: f64) -> f64 {
        let t = if self.log { v.max(1e-30).ln() } else { v };
        TOP + (H - TOP - BOTTOM) * (1.0 - (t - self.lo) / (self.hi - self.lo))
    }

    /// The value at fraction `frac` of the height.
    fn at(&self, frac: f64) -> f64 {
        let t = self.lo + (self.hi - self.lo) * frac;
        if self.log {
            t.exp()
        } else {
            t
        }
    }
}

/// The SVG chart of `records`.
pub fn loss_plot(records: &[StepRecord]) -> String {
    let finite: Vec<&StepRecord> = records.iter().filter(|r| r.loss.is_finite()).collect();
    let max_step = finite
        .iter()
        .map(|r| r.global_step)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut terms: Vec<&str> = Vec::new();
    for r in &finite {
        for k in r.terms.keys() {
            if !terms.contains(&k.as_str()) {
                terms.push(k);
            }
        }
    }
    // Terms are drawn only when there is more than one: one term is the total.
    let show_terms = terms.len() > 1;
    let loss_values = finite.iter().flat_map(|r| {
        let t = r.terms.values().copied().filter(|v| show_terms && *v > 0.0);
        std::iter::once(r.loss).chain(t.collect::<Vec<_>>())
    });
    let losses = Scale::new(loss_values, true);
    let evals: Vec<(&StepRecord, &str, f64)> = finite
        .iter()
        .filter_map(|r| eval_value(r).map(|(k, v)| (*r, k, v)))
        .collect();
    let eval_scale = Scale::new(evals.iter().map(|e| e.2), false);
    let x = |s: f64| LEFT + (W - LEFT - RIGHT) * s / max_step;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">training loss{}{}</text>\n\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"black\"/>",
        W / 2.0,
        if losses.log { " (log scale)" } else { "" },
        if evals.is_empty() {
            ""
        } else {
            " and evaluations"
        },
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    for i in 0..=4 {
        let frac = i as f64 / 4.0;
        let py = TOP + (H - TOP - BOTTOM) * (1.0 - frac);
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            py + 4.0,
            tick(losses.at(frac))
        );
        if !evals.is_empty() {
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"start\">{}</text>",
                W - RIGHT + 6.0,
                py + 4.0,
                tick(eval_scale.at(frac))
            );
        }
        let s = max_step * frac;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(s),
            H - BOTTOM + 16.0,
            s.round()
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0
    );
    let mut legend: Vec<(String, &str, &str)> = Vec::new();
    let mut stages: Vec<&str> = Vec::new();
    for r in &finite {
        if !stages.contains(&r.stage.as_str()) {
            stages.push(&r.stage);
        }
    }
    for (i, stage) in stages.iter().enumerate() {
        let colour = STAGE_COLOURS[i % STAGE_COLOURS.len()];
        let points = finite
            .iter()
            .filter(|r| r.stage == *stage)
            .map(|r| (r.global_step, r.loss));
        polyline(&mut svg, points, colour, "1.5", None, &x, &losses);
        legend.push((format!("{stage} (total loss)"), colour, "solid"));
    }
    if show_terms {
        for (i, term) in terms.iter().enumerate() {
            let colour = TERM_COLOURS[i % TERM_COLOURS.len()];
            let points = finite
                .iter()
                .filter_map(|r| r.terms.get(*term).map(|v| (r.global_step, *v)))
                .filter(|(_, v)| *v > 0.0 || !losses.log);
            polyline(&mut svg, points, colour, "1", Some("4 3"), &x, &losses);
            legend.push((term.to_string(), colour, "dashed"));
        }
    }
    if let Some((_, metric, _)) = evals.first() {
        let points: Vec<String> = evals
            .iter()
            .map(|(r, _, v)| format!("{:.1},{:.1}", x(r.global_step as f64), eval_scale.y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{EVAL_COLOUR}\" stroke-width=\"1\" stroke-dasharray=\"1 3\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3.5\" fill=\"{EVAL_COLOUR}\"/>"
            );
        }
        legend.push((format!("eval {metric} (right axis)"), EVAL_COLOUR, "dots"));
    }
    for (i, (label, colour, _)) in legend.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\" text-anchor=\"end\">{}</text>",
            W - RIGHT - 4.0,
            TOP + 14.0 * (i + 1) as f64,
            xml_escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn polyline(
    svg: &mut String,
    points: impl Iterator<Item = (usize, f64)>,
    colour: &str,
    width: &str,
    dash: Option<&str>,
    x: &dyn Fn(f64) -> f64,
    scale: &Scale,
) {
    let points: Vec<String> = points
        .map(|(s, v)| format!("{:.1},{:.1}", x(s as f64), scale.y(v)))
        .collect();
    let dash = dash.map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\"{dash} points=\"{}\"/>",
        points.join(" ")
    );
}

fn tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn rec(stage: &str, step: usize, terms: &[(&str, f64)], eval: Option<f64>) -> StepRecord {
        let terms: BTreeMap<String, f64> = terms.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        StepRecord {
            stage: stage.into(),
            global_step: step,
            step,
            loss: terms.values().sum(),
            terms,
            lr: 0.0,
            grad_norm: 0.0,
            tokens_per_s: 0.0,
            tokens: step * 100,
            eval: eval.map(|v| BTreeMap::from([("mean_cosine".to_string(), v)])),
        }
    }

    #[test]
    fn plot_draws_each_stage_each_term_and_the_evaluations() {
        let svg = loss_plot(&[
            rec("a", 1, &[("cosine", 2.0), ("hidden_mse", 1.0)], None),
            rec("a", 2, &[("cosine", 1.0), ("hidden_mse", 1.0)], Some(0.5)),
            rec("b", 3, &[("cosine", 0.5), ("hidden_mse", 0.5)], None),
            rec("b", 4, &[("cosine", 0.2), ("hidden_mse", 0.3)], Some(0.8)),
        ]);
        // Two stages, two terms, the evaluations' line.
        assert_eq!(svg.matches("<polyline").count(), 5);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("eval mean_cosine (right axis)"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn one_term_is_the_total_and_is_not_drawn_twice() {
        let svg = loss_plot(&[
            rec("a", 1, &[("cosine", 2.0)], None),
            rec("a", 2, &[("cosine", 1.0)], None),
        ]);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 0);
    }
}
