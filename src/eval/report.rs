//! The build report: sizes, compute, ratios to the teacher, the plan's
//! estimates and the measured fidelity, as `report.json` and `report.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::eval_sets::{self, EvalSetReport};
use super::fidelity::Fidelity;
use super::report_accuracy::exits_accuracy_markdown;
use super::report_exits::{exits_markdown, fidelity_markdown, ExitsReport};
use super::source::EvalSource;
use super::vocab_report::VocabReport;
use crate::base::compare_counts;
use crate::base::family;
use crate::diag::list_text;

/// What one finished stage did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTotals {
    pub name: String,
    pub steps: usize,
    pub tokens: usize,
    pub seconds: f64,
    pub final_loss: f64,
    /// Of `seconds`, those spent evaluating during the stage (`eval_every`)
    /// and probing its step time (a budget).
    #[serde(default)]
    pub eval_seconds: f64,
    /// The step whose weights the stage handed on, when it evaluated during
    /// training and kept its best evaluation (`keep: best`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_step: Option<usize>,
    /// A stage given a time budget: the budget, in seconds, and the measured
    /// seconds per step (evaluations included) its step count came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetUse>,
}

impl StageTotals {
    /// Training speed: tokens over the seconds spent training (evaluations
    /// and a budget's probe left out).
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / (self.seconds - self.eval_seconds).max(1e-9)
    }
}

/// How a stage's time budget became its step count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetUse {
    pub seconds: f64,
    /// Measured seconds per step, with the share of evaluations.
    pub seconds_per_step: f64,
    pub steps: usize,
    /// When the stage's own pace re-planned the count: the probe's seconds
    /// per step and step count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<(f64, usize)>,
}

/// One side (teacher or student) of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Size {
    pub params: u64,
    /// Parameters by part: `embeddings`, `encoder` (the transformer layers)
    /// and `heads` (task head, exit heads, final norm), counted on the real tensors.
    pub params_by_part: BTreeMap<String, u64>,
    /// Real weight-file bytes.
    pub bytes: u64,
    pub flops_per_token: u64,
}

/// Fidelity of the student at one point of training (before it, or after a stage).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageEval {
    /// `before training` or the stage's name.
    pub after: String,
    pub fidelity: Fidelity,
}

/// What `StageEval::after` names before any stage ran.
pub const BEFORE_TRAINING: &str = "before training";

impl StageEval {
    /// When it was measured, in words: `before training` or `after NAME`.
    pub fn label(&self) -> String {
        if self.after == BEFORE_TRAINING {
            BEFORE_TRAINING.to_string()
        } else {
            format!("after {}", self.after)
        }
    }
}

/// One evaluation during training: the learning curve's point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The stage it was taken in (`before training` for the first point).
    pub stage: String,
    /// Steps done in that stage, and over all stages.
    pub step: usize,
    pub global_step: usize,
    /// Tokens trained on so far, over all stages.
    pub tokens: usize,
    pub metrics: BTreeMap<String, f64>,
}

/// What training did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingReport {
    pub stages: Vec<StageTotals>,
    pub evaluations: Vec<StageEval>,
    /// The fidelity on the eval data against tokens trained: before training
    /// and at every evaluation during the stages (`eval_every`).
    pub curve: Vec<CurvePoint>,
    /// The loss log and its plot, in the artifact directory.
    pub loss_log: String,
    pub loss_plot: String,
    /// Whether the run continued from a checkpoint.
    pub resumed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub recipe: String,
    pub teacher: Size,
    pub student: Size,
    /// teacher / student.
    pub ratios: BTreeMap<String, f64>,
    /// The plan's estimated bytes of the student's weights.
    pub planned_student_bytes: u64,
    pub planned_teacher_bytes: u64,
    /// real / planned student bytes.
    pub bytes_vs_plan: f64,
    pub layer_map: Vec<usize>,
    pub embedding_energy_kept: Option<f64>,
    pub max_slice_difference: f32,
    /// Fidelity at full depth: every input through every layer.
    pub fidelity: Fidelity,
    /// Fidelity of the model as shipped, its exits on with their
    /// thresholds, on the same data; absent without active exits, or when
    /// it could not be measured (`exits.not_measured` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity_with_exits: Option<Fidelity>,
    /// The exits, their thresholds and the calibration that chose them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exits: Option<ExitsReport>,
    /// The evaluation data file the fidelity was measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_source: Option<EvalSource>,
    /// Every evaluation set the recipe lists, keyed by its name: fidelity
    /// on sentence sets, teacher and student retrieval metrics on
    /// retrieval sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eval_sets: BTreeMap<String, EvalSetReport>,
    /// Vocabulary pruning, when the recipe prunes the vocabulary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab: Option<VocabReport>,
    pub stages: Vec<(String, f64)>,
    pub training: Option<TrainingReport>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = format!("# plcc build report: {}\n\n", self.recipe);
        s.push_str("| | teacher | student | student vs teacher |\n|---|---:|---:|---:|\n");
        let row = |name: &str, t: u64, st: u64, bytes: bool| {
            format!("| {name} | {t} | {st} | {} |\n", ratio_text(t, st, bytes))
        };
        s.push_str(&row(
            "parameters",
            self.teacher.params,
            self.student.params,
            false,
        ));
        for part in ["embeddings", "encoder", "heads"] {
            let get = |side: &Size| side.params_by_part.get(part).copied().unwrap_or(0);
            s.push_str(&row(
                &format!("· {part} parameters"),
                get(&self.teacher),
                get(&self.student),
                false,
            ));
        }
        s.push_str(&row(
            "bytes (weight file)",
            self.teacher.bytes,
            self.student.bytes,
            true,
        ));
        s.push_str(&row(
            "FLOPs/token",
            self.teacher.flops_per_token,
            self.student.flops_per_token,
            false,
        ));
        s.push_str(&format!(
            "\nPlanned student bytes: {} (real / planned = {:.4}).\n",
            self.planned_student_bytes, self.bytes_vs_plan
        ));
        s.push_str(&format!(
            "Layer map (student → teacher): {}\n",
            list_text(&self.layer_map)
        ));
        if let Some(e) = self.embedding_energy_kept {
            s.push_str(&format!(
                "Embedding factorization keeps {:.2}% of the energy.\n",
                100.0 * e
            ));
        }
        s.push_str(&format!(
            "Largest masked-vs-sliced difference: {:.2e}\n",
            self.max_slice_difference
        ));
        s.push_str(&fidelity_markdown(
            &self.fidelity,
            self.fidelity_with_exits.as_ref(),
            self.exits.as_ref(),
        ));
        s.push_str(&eval_sets::markdown(&self.eval_sets));
        if let Some(e) = &self.exits {
            s.push_str(&exits_markdown(e));
            s.push_str(&exits_accuracy_markdown(e));
        }
        if let Some(v) = &self.vocab {
            s.push_str(&v.markdown());
        }
        if let Some(t) = &self.training {
            s.push_str(&t.markdown());
        }
        s.push_str("\n## Stages\n\n");
        for (name, secs) in &self.stages {
            s.push_str(&format!("- {name}: {secs:.2}s\n"));
        }
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                s.push_str(&format!("- {n}\n"));
            }
        }
        s
    }
}

impl TrainingReport {
    fn markdown(&self) -> String {
        let mut s = String::from("\n## Training\n\n| stage | steps | tokens | seconds | training tokens/s | final loss |\n|---|---:|---:|---:|---:|---:|\n");
        for t in &self.stages {
            s.push_str(&format!(
                "| {} | {} | {} | {:.1} | {:.0} | {:.4} |\n",
                t.name,
                t.steps,
                t.tokens,
                t.seconds,
                t.tokens_per_second(),
                t.final_loss
            ));
        }
        for t in &self.stages {
            if let Some(b) = &t.budget {
                let probe = b.probe.map_or(String::new(), |(per_step, steps)| {
                    format!(" (the probe's {per_step:.3} s a step had planned {steps}; the stage's own pace re-planned it)")
                });
                s.push_str(&format!(
                    "\nStage `{}` had a budget of {:.0} s: {:.3} s a step (measured, evaluations included) gave {} steps{probe}.\n",
                    t.name, b.seconds, b.seconds_per_step, b.steps
                ));
            }
            if let Some(k) = t.kept_step {
                let which = if k == t.steps {
                    "its last step, also its best evaluation".to_string()
                } else if k == 0 {
                    "its start: no evaluation during the stage did better".to_string()
                } else {
                    format!("step {k} of {}, its best evaluation", t.steps)
                };
                s.push_str(&format!(
                    "\nStage `{}` handed on the weights of {which} (`keep: best`).\n",
                    t.name
                ));
            }
        }
        s.push_str(&self.curve_markdown());
        if let Some(first) = self.evaluations.first() {
            let keys: Vec<&String> = first.fidelity.metrics.keys().collect();
            let rows = self
                .evaluations
                .iter()
                .map(|e| (vec![e.label()], &e.fidelity.metrics));
            s.push_str(&metrics_table(
                "Fidelity of the student during training (fake-quantized weights)",
                &["measured"],
                &keys,
                rows,
            ));
        }
        s.push_str(&format!(
            "\nLoss log: `{}`; plot: `{}`{}.\n",
            self.loss_log,
            self.loss_plot,
            if self.resumed {
                " (resumed from a checkpoint)"
            } else {
                ""
            }
        ));
        s
    }
}

impl TrainingReport {
    /// The learning curve as a table, when there was more than the first point.
    fn curve_markdown(&self) -> String {
        if self.curve.len() < 2 {
            return String::new();
        }
        let keys: Vec<&String> = self.curve[0]
            .metrics
            .keys()
            .filter(|k| k.as_str() != "min_cosine")
            .collect();
        let rows = self.curve.iter().map(|p| {
            let lead = vec![p.stage.clone(), p.step.to_string(), p.tokens.to_string()];
            (lead, &p.metrics)
        });
        metrics_table(
            "Learning curve on the eval data (fake-quantized weights) against tokens trained",
            &["stage", "step", "tokens"],
            &keys,
            rows,
        )
    }
}

/// A markdown table under `title`: the `lead` columns, then one column per
/// metric key (4 decimals; empty where a row lacks it).
fn metrics_table<'a>(
    title: &str,
    lead: &[&str],
    keys: &[&String],
    rows: impl Iterator<Item = (Vec<String>, &'a BTreeMap<String, f64>)>,
) -> String {
    let mut s = format!("\n{title}:\n\n|");
    for c in lead.iter().copied().chain(keys.iter().map(|k| k.as_str())) {
        s.push_str(&format!(" {c} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(lead.len() - 1 + keys.len()));
    s.push('\n');
    for (cells, metrics) in rows {
        s.push('|');
        for c in &cells {
            s.push_str(&format!(" {c} |"));
        }
        for k in keys {
            match metrics.get(*k) {
                Some(v) => s.push_str(&format!(" {v:.4} |")),
                None => s.push_str(" |"),
            }
        }
        s.push('\n');
    }
    s
}

/// The part of the model a tensor belongs to (see `Size::params_by_part`).
pub fn part_of(name: &str) -> &'static str {
    if family::is_embedding_tensor(name) {
        "embeddings"
    } else if family::is_layer_tensor(name) {
        "encoder"
    } else {
        "heads"
    }
}

/// Parameters by part of named tensors with their element counts.
pub fn params_by_part<'a>(
    tensors: impl IntoIterator<Item = (&'a String, usize)>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (name, n) in tensors {
        *out.entry(part_of(name).to_string()).or_insert(0) += n as u64;
    }
    out
}

/// The student against the teacher in words (`12.34x fewer`, `1.50x more`,
/// `new`; `smaller`/`larger` for `bytes`): [`compare_counts`] at two decimals.
pub fn ratio_text(teacher: u64, student: u64, bytes: bool) -> String {
    let (less, more) = if bytes {
        ("smaller", "larger")
    } else {
        ("fewer", "more")
    };
    compare_counts(teacher, student, 2, less, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_read_before_training_and_after_a_stage() {
        let at = |after: &str| StageEval {
            after: after.into(),
            fidelity: Fidelity {
                data: "d".into(),
                examples: 1,
                truncated: 0,
                max_tokens: 8,
                metrics: BTreeMap::new(),
            },
        };
        assert_eq!(at(BEFORE_TRAINING).label(), "before training");
        assert_eq!(at("general").label(), "after general");
        assert_eq!(ratio_text(0, 8320, false), "new");
        assert_eq!(ratio_text(2000, 1000, true), "2.00x smaller");
    }
}
