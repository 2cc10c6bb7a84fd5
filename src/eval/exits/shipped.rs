//! Fidelity of an artifact as shipped: the student runs through the
//! runtime's early-exit path with the thresholds in its manifest (each
//! example leaves at the first exit whose signal meets its policy), the
//! teacher at full depth, on the same evaluation examples the full-depth
//! fidelity reads. Outputs are compared as the runtime gives them: the
//! embedding (the mean of the final hidden state, or the exit head's
//! output), the classifier's prediction, or a causal LM's next token after
//! the last one (`last_token_agreement`).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;

use serde::{Deserialize, Serialize};

use super::Calibration;
use crate::artifact::read_manifest;
use crate::base::Task;
use crate::diag::Diag;
use crate::eval::fidelity::{
    embedding_metrics, encode_for_both, inputs_for, Agreement, Encoded, Fidelity, BATCH,
};
use crate::eval::report_exits::{ExitCalibration, ExitsReport};
use crate::runtime::load::from_artifact::load_artifact;
use crate::runtime::run::early_exit;
use crate::runtime::run::exit_rule::{argmax, cosine};
use crate::runtime::run::record::Record;
use crate::runtime::{tensor_error, LoadedModel};
use crate::text::data::Example;

/// The measured fidelity with exits on, and where the examples left.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shipped {
    pub fidelity: Fidelity,
    /// Mean layer the examples left at (the last layer for those that ran
    /// to the end).
    pub avg_exit_layer: f64,
}

fn records(model: &LoadedModel, rows: &[Encoded]) -> Result<Vec<Record>, Diag> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH) {
        let inputs = inputs_for(model, chunk)?;
        out.extend(early_exit::run(model, &inputs).map_err(tensor_error)?);
    }
    Ok(out)
}

/// Runs the teacher at full depth and the student with its exits over
/// `examples` (named `data`) and compares them.
pub fn measure_with_exits(
    task: Task,
    teacher: &LoadedModel,
    student: &LoadedModel,
    data: &str,
    examples: &[Example],
) -> Result<Shipped, Diag> {
    let (rows_t, rows_s, truncated, max_len) = encode_for_both(teacher, student, examples)?;
    let (out_t, out_s) = (records(teacher, &rows_t)?, records(student, &rows_s)?);
    let layers = student.config.num_layers();
    let left: usize = out_s.iter().map(|r| r.exit_layer.unwrap_or(layers)).sum();
    let metrics = match task {
        Task::Embedding { .. } => {
            let (mut cos, mut emb_t, mut emb_s) = (Vec::new(), Vec::new(), Vec::new());
            for (t, s) in out_t.iter().zip(&out_s) {
                if let (Some(a), Some(b)) = (&t.embedding, &s.embedding) {
                    cos.push(cosine(a, b));
                    emb_t.push(a.clone());
                    emb_s.push(b.clone());
                }
            }
            embedding_metrics(&cos, &emb_t, &emb_s)
        }
        Task::Classification { .. } => {
            let mut counts = Agreement {
                examples: examples.len(),
                ..Agreement::default()
            };
            for ((t, s), ex) in out_t.iter().zip(&out_s).zip(examples) {
                let (Some(tl), Some(sl)) = (&t.logits, &s.logits) else {
                    continue;
                };
                let (tp, sp) = (argmax(tl), argmax(sl));
                counts.agree += usize::from(tp == sp);
                if let Some(l) = ex.label {
                    counts.labelled += 1;
                    counts.correct_teacher += usize::from(tp == l);
                    counts.correct_student += usize::from(sp == l);
                }
            }
            counts.metrics()
        }
        Task::CausalLm | Task::Seq2Seq => {
            // Compared where both read the same tokens (the same vocabulary).
            let (mut same, mut compared) = (0usize, 0usize);
            for (((t, s), rt), rs) in out_t.iter().zip(&out_s).zip(&rows_t).zip(&rows_s) {
                if let (Some(tl), Some(sl), true) = (&t.logits, &s.logits, rt.0 == rs.0) {
                    same += usize::from(argmax(tl) == argmax(sl));
                    compared += 1;
                }
            }
            BTreeMap::from([(
                "last_token_agreement".to_string(),
                same as f64 / compared.max(1) as f64,
            )])
        }
    };
    Ok(Shipped {
        fidelity: Fidelity {
            data: data.to_string(),
            examples: examples.len(),
            truncated,
            max_tokens: max_len,
            metrics,
        },
        avg_exit_layer: left as f64 / out_s.len().max(1) as f64,
    })
}

/// What the shipped model is measured against: the teacher, the data's
/// name and its examples; or why there is nothing to measure on.
pub type Against<'a> = Result<(&'a LoadedModel, &'a str, &'a [Example]), String>;

/// The report's exits of the artifact in `dir` (`None` without exits), with
/// `calibration` when one chose the thresholds, and the fidelity of the
/// model as shipped, measured `against` the teacher when the exits have
/// thresholds (`ExitsReport::not_measured` says why when it cannot be).
pub fn exits_part(
    dir: &Path,
    calibration: Option<&Calibration>,
    against: Against<'_>,
) -> Result<(Option<ExitsReport>, Option<Fidelity>), Diag> {
    let manifest = read_manifest(dir)?;
    if manifest.exits.is_empty() {
        return Ok((None, None));
    }
    let mut report = ExitsReport::new(manifest.config.num_layers(), &manifest.exits);
    report.calibration = calibration.map(ExitCalibration::from);
    if !report.active() {
        return Ok((Some(report), None));
    }
    match against {
        Ok((teacher, data, examples)) => {
            let student = load_artifact(dir, &Device::Cpu)?;
            let shipped = measure_with_exits(manifest.task, teacher, &student, data, examples)?;
            report.avg_exit_layer = Some(shipped.avg_exit_layer);
            Ok((Some(report), Some(shipped.fidelity)))
        }
        Err(why) => {
            report.not_measured = Some(why);
            Ok((Some(report), None))
        }
    }
}
