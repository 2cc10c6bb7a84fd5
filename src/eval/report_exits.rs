//! The report's early exits: each exit with its threshold, the calibration
//! that chose it (target, data, average exit layer, estimated speed-up and
//! the curve of every setting tried), a classifier's accuracy against FLOPs
//! on each labelled evaluation set (drawn by `report_accuracy`), and the headline
//! fidelity twice, with the exits on (the model as shipped) and at full
//! depth.

use serde::{Deserialize, Serialize};

use super::exits::accuracy::AccuracyCurve;
use super::exits::search::setting_of;
use super::exits::{describe, Calibration, Outcome};
use super::fidelity::Fidelity;
use crate::artifact::ExitRecord;
use crate::base::{word, ExitCriterion};

/// The exits of the artifact and what their thresholds do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitsReport {
    /// Layers of the student; the last is where inputs that never leave end.
    pub layers: usize,
    /// Each exit as the manifest records it (threshold or patience).
    pub exits: Vec<ExitRecord>,
    /// Each exit's threshold (or patience), in manifest order; `None`: off.
    pub thresholds: Vec<Option<f64>>,
    /// Mean layer the evaluation examples left at with these thresholds,
    /// when measured.
    pub avg_exit_layer: Option<f64>,
    /// The calibration that chose the thresholds, when there was one.
    pub calibration: Option<ExitCalibration>,
    /// Why the fidelity with exits on is missing, when it is.
    pub not_measured: Option<String>,
    /// A classifier's accuracy against FLOPs per example on each labelled
    /// evaluation set, over a sweep of thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accuracy_vs_flops: Vec<AccuracyCurve>,
}

impl ExitsReport {
    /// The report of `exits` in a student of `layers` layers.
    pub fn new(layers: usize, exits: &[ExitRecord]) -> ExitsReport {
        let thresholds = exits.iter().map(setting_of).collect();
        ExitsReport {
            layers,
            exits: exits.to_vec(),
            thresholds,
            avg_exit_layer: None,
            calibration: None,
            not_measured: None,
            accuracy_vs_flops: Vec::new(),
        }
    }

    /// Whether any exit has a threshold: inputs may leave early.
    pub fn active(&self) -> bool {
        self.thresholds.iter().any(Option::is_some)
    }
}

/// One setting the calibration tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveSample {
    /// The threshold (or patience); `None`: exits off.
    pub setting: Option<f64>,
    pub avg_exit_layer: f64,
    pub est_speedup: f64,
    /// Mean fidelity to the full-depth output on the calibration data.
    pub fidelity: f64,
}

/// How the thresholds were chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitCalibration {
    /// The target, as `plcc calibrate --target` spells it.
    pub target: String,
    /// The calibration data and how many of its texts were read.
    pub data: String,
    pub samples: usize,
    /// What the chosen setting does on the calibration data.
    pub chosen: CurveSample,
    /// Every setting tried, strictest first.
    pub curve: Vec<CurveSample>,
    /// An oracle's bound at the chosen setting's loss (see
    /// `eval::exits::oracle`): the most any criterion could give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<OracleSample>,
}

/// What an oracle that knows every exit's score reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleSample {
    /// The fidelity loss it was allowed.
    pub max_loss: f64,
    pub avg_exit_layer: f64,
    pub est_speedup: f64,
    pub fidelity: f64,
}

fn sample(o: &Outcome) -> CurveSample {
    CurveSample {
        setting: o.setting,
        avg_exit_layer: o.avg_exit_layer,
        est_speedup: o.est_speedup,
        fidelity: o.fidelity,
    }
}

impl From<&Calibration> for ExitCalibration {
    fn from(c: &Calibration) -> Self {
        ExitCalibration {
            target: describe(c.target),
            data: c.data.clone(),
            samples: c.samples,
            chosen: sample(&c.chosen),
            curve: c.curve.iter().map(sample).collect(),
            oracle: Some(OracleSample {
                max_loss: c.oracle.max_loss,
                avg_exit_layer: c.oracle.avg_exit_layer,
                est_speedup: c.oracle.est_speedup,
                fidelity: c.oracle.fidelity,
            }),
        }
    }
}

/// What a setting is called for `criterion`: a patience or a threshold.
pub fn setting_noun(criterion: ExitCriterion) -> &'static str {
    if criterion == ExitCriterion::Patience {
        "patience"
    } else {
        "threshold"
    }
}

/// A threshold (or a patience) as the report prints it.
pub fn setting_text(criterion: ExitCriterion, setting: Option<f64>) -> String {
    match setting {
        None => "off".into(),
        Some(s) if criterion == ExitCriterion::Patience => format!("{s:.0}"),
        Some(s) => format!("{s:.6}"),
    }
}

/// The fidelity section: side by side with exits on and at full depth when
/// the exits have thresholds, else the full-depth metrics alone.
pub fn fidelity_markdown(
    full: &Fidelity,
    with_exits: Option<&Fidelity>,
    exits: Option<&ExitsReport>,
) -> String {
    let mut s = format!(
        "\n## Fidelity on `{}` ({} examples)\n\n",
        full.data, full.examples
    );
    let Some(exits) = exits.filter(|e| e.active()) else {
        for (k, v) in &full.metrics {
            s.push_str(&format!("- {k}: {v:.4}\n"));
        }
        return s;
    };
    s.push_str("| metric | with exits (as shipped) | full depth |\n|---|---:|---:|\n");
    let mut keys: Vec<&String> = full.metrics.keys().collect();
    for k in with_exits.iter().flat_map(|f| f.metrics.keys()) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let cell = |f: Option<&Fidelity>, k: &String| {
        f.and_then(|f| f.metrics.get(k))
            .map_or("-".to_string(), |v| format!("{v:.4}"))
    };
    for k in keys {
        s.push_str(&format!(
            "| {k} | {} | {} |\n",
            cell(with_exits, k),
            cell(Some(full), k)
        ));
    }
    match (with_exits, &exits.not_measured) {
        (Some(_), _) => s.push_str(
            "\nWith exits: the loaded artifact run through the runtime's early-exit path with \
             its thresholds; full depth: every input through every layer.\n",
        ),
        (None, Some(why)) => s.push_str(&format!(
            "\nFidelity with exits on was not measured: {why}.\n"
        )),
        (None, None) => s.push_str("\nFidelity with exits on was not measured.\n"),
    }
    s
}

/// The early-exits section.
pub fn exits_markdown(e: &ExitsReport) -> String {
    let mut s = String::from(
        "\n## Early exits\n\n| exit | after layer | head | criterion | threshold |\n|---:|---:|---|---|---:|\n",
    );
    for (i, (x, t)) in e.exits.iter().zip(&e.thresholds).enumerate() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            i + 1,
            x.after,
            word(&x.head),
            word(&x.criterion),
            setting_text(x.criterion, *t)
        ));
    }
    if !e.active() {
        s.push_str(
            "\nThe exits have no thresholds: every input runs to the last layer \
             (`plcc calibrate` sets them).\n",
        );
    }
    if let Some(l) = e.avg_exit_layer {
        s.push_str(&format!(
            "\nAverage exit layer on the evaluation data, with these thresholds: {l:.2} of {}.\n",
            e.layers
        ));
    }
    if let Some(c) = &e.calibration {
        s.push_str(&format!(
            "\nCalibrated for `{}` on {} ({} texts): average exit layer {:.2} of {}, \
             estimated speed-up {:.2}x, fidelity to the full-depth output {:.4}; \
             {} settings tried (`report.svg` draws them).\n",
            c.target,
            c.data,
            c.samples,
            c.chosen.avg_exit_layer,
            e.layers,
            c.chosen.est_speedup,
            c.chosen.fidelity,
            c.curve.len()
        ));
        if let Some(o) = &c.oracle {
            s.push_str(&format!(
                "An oracle that knew every exit's fidelity for every text would reach \
                 {:.2}x (average exit layer {:.2}, fidelity {:.4}) at a loss of {:.2}%: \
                 the most any exit criterion could give on these exits.\n",
                o.est_speedup,
                o.avg_exit_layer,
                o.fidelity,
                o.max_loss * 100.0
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::base::ExitHead;

    fn fidelity(v: f64) -> Fidelity {
        Fidelity {
            data: "pairs".into(),
            examples: 4,
            truncated: 0,
            max_tokens: 8,
            metrics: BTreeMap::from([("mean_cosine".to_string(), v)]),
        }
    }

    fn exits(threshold: Option<f64>) -> ExitsReport {
        let record = ExitRecord {
            after: 1,
            head: ExitHead::Pooler,
            criterion: ExitCriterion::Similarity,
            threshold,
            patience: None,
        };
        ExitsReport::new(3, &[record])
    }

    #[test]
    fn fidelity_is_given_with_exits_beside_full_depth_or_said_unmeasured() {
        let on = exits(Some(0.9));
        let text = fidelity_markdown(&fidelity(0.99), Some(&fidelity(0.55)), Some(&on));
        assert!(text.contains("| mean_cosine | 0.5500 | 0.9900 |"), "{text}");
        let mut stale = on.clone();
        stale.not_measured = Some("its evaluation data is gone".into());
        let text = fidelity_markdown(&fidelity(0.99), None, Some(&stale));
        assert!(text.contains("| mean_cosine | - | 0.9900 |"), "{text}");
        assert!(text.contains("not measured: its evaluation data is gone"));
        // Exits without thresholds: full depth is the model as shipped.
        let text = fidelity_markdown(&fidelity(0.99), None, Some(&exits(None)));
        assert!(text.contains("- mean_cosine: 0.9900"), "{text}");
        assert!(exits_markdown(&exits(None)).contains("no thresholds"));
        assert!(exits_markdown(&on).contains("| 1 | 1 | pooler | similarity | 0.900000 |"));
    }
}
