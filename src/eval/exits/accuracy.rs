//! The COST-EFF trade-off of a classifier with exits on labelled data: its
//! accuracy against the gold labels (not agreement with the full model) at
//! a sweep of exit settings, from exits off to every example leaving at the
//! first exit that decides, against the average FLOPs per example (the
//! compiler's cost model, `cost::ExitCosts`), the shipped setting marked;
//! each exit's own accuracy; and the teacher's FLOPs per example at full
//! depth, so the student's share of them can be read off. The student runs
//! once per data set (`observe`, scored against the gold labels); every
//! setting is then applied offline by `search::evaluate`, as calibration
//! applies them.

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::cost::ExitCosts;
use super::observe::{observe, Observation, Scoring};
use super::search::{candidates, evaluate, setting_of, strictness};
use super::CalibrationInput;
use crate::artifact::read_manifest;
use crate::base::{ExitCriterion, Task};
use crate::diag::Diag;
use crate::eval::fidelity::{encode_for, MEASURED_TOKENS};
use crate::runtime::load::from_artifact::load_artifact;
use crate::runtime::{ExitPolicy, LoadedModel};
use crate::text::data::Example;

/// At most this many recorded signals are swept as thresholds, besides
/// exits off and the shipped setting.
const SWEEP: usize = 40;

/// Rows per forward pass.
const BATCH: usize = 32;

/// What one exit setting does on the labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyPoint {
    /// The threshold (or patience); `None`: exits off.
    pub setting: Option<f64>,
    pub avg_exit_layer: f64,
    /// Mean FLOPs per example with this setting.
    pub flops_per_example: f64,
    /// The FLOPs of the same model without exits over these.
    pub speedup: f64,
    /// Share of examples whose prediction is their gold label.
    pub accuracy: f64,
    /// Whether the artifact ships this setting (its manifest's).
    pub shipped: bool,
}

/// The accuracy if every example left after one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerAccuracy {
    /// The layer whose output is read (1-based).
    pub after_layer: usize,
    /// The exit's number (1-based, manifest order); `None`: the final head.
    pub exit: Option<usize>,
    pub accuracy: f64,
}

/// Accuracy against FLOPs on one labelled evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyCurve {
    /// The evaluation set.
    pub data: String,
    /// The exits' criterion, whose thresholds (or patiences) are swept.
    pub criterion: ExitCriterion,
    /// Its examples with a label: the ones measured.
    pub examples: usize,
    /// Mean FLOPs per example of the teacher at full depth (each example
    /// read through the teacher's tokenizer), when the teacher was at hand.
    pub teacher_flops_per_example: Option<f64>,
    /// The teacher's accuracy on the set, when measured.
    pub teacher_accuracy: Option<f64>,
    /// Settings strict to loose: exits off first, then the sweep, the
    /// shipped setting among them; from the first threshold on, FLOPs
    /// never rise from one point to the next.
    pub points: Vec<AccuracyPoint>,
    /// Each exit's accuracy, then the final head's.
    pub layers: Vec<LayerAccuracy>,
}

impl AccuracyCurve {
    /// The point of the shipped setting, when marked.
    pub fn shipped(&self) -> Option<&AccuracyPoint> {
        self.points.iter().find(|p| p.shipped)
    }

    /// The point with exits off: the same model without exits.
    pub fn without_exits(&self) -> Option<&AccuracyPoint> {
        self.points.iter().find(|p| p.setting.is_none())
    }

    /// Clears the shipped mark: the artifact's setting changed after this
    /// curve was measured.
    pub fn unmark(&mut self) {
        for p in &mut self.points {
            p.shipped = false;
        }
    }
}

/// The sweep of settings on `observations` (scored against gold labels)
/// of a model of `depth` layers with exits after the layers `after` and
/// their `policies`, `shipped` among them and marked. Neighbouring
/// thresholds that send every example to the same place give one point
/// (the shipped one, else the strictest).
pub fn sweep(
    observations: &[Observation],
    policies: &[ExitPolicy],
    after: &[usize],
    depth: usize,
    costs: &mut ExitCosts,
    shipped: Option<f64>,
) -> Vec<AccuracyPoint> {
    let Some(criterion) = policies.first().map(|p| p.criterion) else {
        return Vec::new();
    };
    let mut settings = candidates(observations, criterion, after.len(), SWEEP);
    if !settings.contains(&shipped) {
        settings.push(shipped);
    }
    settings.sort_by(|a, b| strictness(criterion, *a).total_cmp(&strictness(criterion, *b)));
    let mut points: Vec<AccuracyPoint> = Vec::with_capacity(settings.len());
    for setting in settings {
        let o = evaluate(observations, policies, after, depth, costs, setting);
        let point = AccuracyPoint {
            setting,
            avg_exit_layer: o.avg_exit_layer,
            flops_per_example: o.avg_flops,
            speedup: o.est_speedup,
            accuracy: o.fidelity,
            shipped: setting == shipped,
        };
        match points.last_mut() {
            Some(last) if same_place(last, &point) => {
                if point.shipped {
                    *last = point;
                }
            }
            _ => points.push(point),
        }
    }
    points
}

/// Whether two thresholds do the same: same exit layer, FLOPs and
/// accuracy (exits off stands alone).
fn same_place(a: &AccuracyPoint, b: &AccuracyPoint) -> bool {
    a.setting.is_some()
        && b.setting.is_some()
        && a.avg_exit_layer == b.avg_exit_layer
        && a.flops_per_example == b.flops_per_example
        && a.accuracy == b.accuracy
}

/// Each exit's accuracy on `observations` (exits after the layers
/// `after`), then the final head's (after layer `depth`).
pub fn layer_accuracies(
    observations: &[Observation],
    after: &[usize],
    depth: usize,
) -> Vec<LayerAccuracy> {
    let n = observations.len().max(1) as f64;
    let mean =
        |score: &dyn Fn(&Observation) -> f64| observations.iter().map(score).sum::<f64>() / n;
    let exits = after.iter().enumerate().map(|(e, &layer)| LayerAccuracy {
        after_layer: layer,
        exit: Some(e + 1),
        accuracy: mean(&|o| o.scores.get(e).copied().unwrap_or(0.0)),
    });
    let last = LayerAccuracy {
        after_layer: depth,
        exit: None,
        accuracy: mean(&|o| o.final_score),
    };
    exits.chain(std::iter::once(last)).collect()
}

/// One labelled evaluation set to draw the curve on.
pub struct LabelledSet<'a> {
    pub name: &'a str,
    pub examples: &'a [Example],
    /// The teacher's accuracy on it, when measured.
    pub teacher_accuracy: Option<f64>,
    /// Read each example whole, up to the model's maximum positions (as
    /// `plcc eval` scores), not its first 128 tokens (as the fidelity
    /// measurement reads).
    pub whole: bool,
}

/// The curve of the artifact in `dir` on each of `sets` with labelled
/// examples; none unless the artifact classifies and its exits share one
/// criterion. `teacher`, when given, prices the teacher's FLOPs.
pub fn accuracy_curves(
    dir: &Path,
    teacher: Option<&LoadedModel>,
    sets: &[LabelledSet<'_>],
) -> Result<Vec<AccuracyCurve>, Diag> {
    let manifest = read_manifest(dir)?;
    let Some(first) = manifest.exits.first() else {
        return Ok(Vec::new());
    };
    let one_criterion = manifest
        .exits
        .iter()
        .all(|e| e.criterion == first.criterion);
    if !matches!(manifest.task, Task::Classification { .. }) || !one_criterion {
        return Ok(Vec::new());
    }
    let student = load_artifact(dir, &Device::Cpu)?;
    let after: Vec<usize> = student.exits.iter().map(|h| h.after_layer).collect();
    let depth = student.config.num_layers();
    let mut costs = ExitCosts::new(&manifest.config, manifest.task, &manifest.exits);
    let mut curves = Vec::new();
    for set in sets {
        let labelled: Vec<Example> = set
            .examples
            .iter()
            .filter(|e| e.label.is_some())
            .cloned()
            .collect();
        let labels: Vec<usize> = labelled.iter().filter_map(|e| e.label).collect();
        if labels.is_empty() {
            continue;
        }
        let max_len = set.whole.then_some(student.config.max_positions);
        let rows = CalibrationInput::Examples(&labelled).rows(&student, max_len)?;
        let observations = observe(&student, &rows, BATCH, Scoring::Gold(&labels))?;
        let policies = &student.exit_policies;
        curves.push(AccuracyCurve {
            data: set.name.to_string(),
            criterion: first.criterion,
            examples: labels.len(),
            teacher_flops_per_example: teacher
                .map(|t| teacher_flops(t, manifest.task, &labelled, set.whole))
                .transpose()?,
            teacher_accuracy: set.teacher_accuracy,
            points: sweep(
                &observations,
                policies,
                &after,
                depth,
                &mut costs,
                setting_of(first),
            ),
            layers: layer_accuracies(&observations, &after, depth),
        });
    }
    Ok(curves)
}

/// Mean FLOPs per example of `teacher` doing `task` at full depth on
/// `examples`, read whole or as the fidelity measurement reads them.
fn teacher_flops(
    teacher: &LoadedModel,
    task: Task,
    examples: &[Example],
    whole: bool,
) -> Result<f64, Diag> {
    let max_len = match whole {
        true => teacher.config.max_positions,
        false => teacher.config.max_positions.min(MEASURED_TOKENS),
    };
    let (rows, _) = encode_for(teacher, max_len, examples)?;
    let mut costs = ExitCosts::new(&teacher.config, task, &[]);
    let total: u64 = rows.iter().map(|r| costs.without_exits(r.0.len())).sum();
    Ok(total as f64 / rows.len().max(1) as f64)
}

#[cfg(test)]
#[path = "accuracy_tests.rs"]
mod tests;
