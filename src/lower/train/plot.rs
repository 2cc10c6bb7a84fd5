//! The loss log's plot, `loss.svg`: the total loss over global steps (one
//! colour per stage), each loss term as a thin dashed line, and the
//! evaluations during training (`eval_every`) as dots on a second axis at
//! the right. The loss axis is logarithmic when the losses span more than a
//! factor of 20.

use super::log::StepRecord;
use crate::base::svg::{tick, Axis, Svg};
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
    let losses = Axis::fit(loss_values, 20.0, H - BOTTOM, TOP);
    let evals: Vec<(&StepRecord, &str, f64)> = finite
        .iter()
        .filter_map(|r| eval_value(r).map(|(k, v)| (*r, k, v)))
        .collect();
    let eval_scale = Axis::fit(evals.iter().map(|e| e.2), f64::INFINITY, H - BOTTOM, TOP);
    let steps = Axis::between(0.0, max_step, false, LEFT, W - RIGHT);

    let mut svg = Svg::new(W, H);
    svg.title(
        W / 2.0,
        18.0,
        &format!(
            "training loss{}{}",
            if losses.log { " (log scale)" } else { "" },
            if evals.is_empty() {
                ""
            } else {
                " and evaluations"
            }
        ),
    );
    svg.line((LEFT, H - BOTTOM), (W - RIGHT, H - BOTTOM), "black");
    svg.line((LEFT, TOP), (LEFT, H - BOTTOM), "black");
    for i in 0..=4 {
        let frac = i as f64 / 4.0;
        let py = TOP + (H - TOP - BOTTOM) * (1.0 - frac);
        svg.text(LEFT - 6.0, py + 4.0, "end", "black", &tick(losses.at(frac)));
        if !evals.is_empty() {
            let label = tick(eval_scale.at(frac));
            svg.text(W - RIGHT + 6.0, py + 4.0, "start", "black", &label);
        }
        let s = max_step * frac;
        let label = s.round().to_string();
        svg.text(steps.px(s), H - BOTTOM + 16.0, "middle", "black", &label);
    }
    svg.text((LEFT + W - RIGHT) / 2.0, H - 8.0, "middle", "black", "step");
    let mut legend: Vec<(String, &str)> = Vec::new();
    let mut stages: Vec<&str> = Vec::new();
    for r in &finite {
        if !stages.contains(&r.stage.as_str()) {
            stages.push(&r.stage);
        }
    }
    let at = |step: usize, v: f64, axis: &Axis| (steps.px(step as f64), axis.px(v));
    for (i, stage) in stages.iter().enumerate() {
        let colour = STAGE_COLOURS[i % STAGE_COLOURS.len()];
        let points: Vec<(f64, f64)> = finite
            .iter()
            .filter(|r| r.stage == *stage)
            .map(|r| at(r.global_step, r.loss, &losses))
            .collect();
        svg.polyline(&points, colour, "1.5", None);
        legend.push((format!("{stage} (total loss)"), colour));
    }
    if show_terms {
        for (i, term) in terms.iter().enumerate() {
            let colour = TERM_COLOURS[i % TERM_COLOURS.len()];
            let points: Vec<(f64, f64)> = finite
                .iter()
                .filter_map(|r| r.terms.get(*term).map(|v| (r.global_step, *v)))
                .filter(|(_, v)| *v > 0.0 || !losses.log)
                .map(|(s, v)| at(s, v, &losses))
                .collect();
            svg.polyline(&points, colour, "1", Some("4 3"));
            legend.push((term.to_string(), colour));
        }
    }
    if let Some((_, metric, _)) = evals.first() {
        let points: Vec<(f64, f64)> = evals
            .iter()
            .map(|(r, _, v)| at(r.global_step, *v, &eval_scale))
            .collect();
        svg.polyline(&points, EVAL_COLOUR, "1", Some("1 3"));
        for p in &points {
            svg.dot(*p, 3.5, EVAL_COLOUR, None);
        }
        legend.push((format!("eval {metric} (right axis)"), EVAL_COLOUR));
    }
    for (i, (label, colour)) in legend.iter().enumerate() {
        let y = TOP + 14.0 * (i + 1) as f64;
        svg.text(W - RIGHT - 4.0, y, "end", colour, label);
    }
    svg.finish()
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
