//! One full-depth pass over some data that records, for every sample and
//! every exit, the criterion's signal and a score of that exit's output:
//! how close it is to the sample's full-depth output (cosine for
//! embeddings, 1 or 0 for argmax agreement of logits), or whether its
//! prediction is the sample's gold label. Threshold search and the
//! accuracy curve then need no model.

use crate::base::ExitHead;
use crate::diag::Diag;
use crate::eval::fidelity::{per_row, Encoded};
use crate::runtime::run::early_exit::final_records;
use crate::runtime::run::exit_rule::{argmax, signal, Track};
use crate::runtime::run::record::{failed, Record};
use crate::runtime::LoadedModel;

/// What the exits saw for one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Tokens of the sample (special tokens included).
    pub tokens: usize,
    /// Per exit: the criterion's signal (`None`: it cannot decide there).
    pub signals: Vec<Option<f64>>,
    /// Per exit: the score of the exit's output (see [`Scoring`]).
    pub scores: Vec<f64>,
    /// The score of the full-depth output: 1 when scored by fidelity (it is
    /// the reference), else whether it predicts the gold label.
    pub final_score: f64,
}

/// What an output is scored against.
#[derive(Debug, Clone, Copy)]
pub enum Scoring<'a> {
    /// Fidelity to the sample's own full-depth output.
    Fidelity,
    /// 1 when the argmax of the logits is the sample's gold label (one a
    /// row), else 0.
    Gold(&'a [usize]),
}

/// Fidelity of an exit output to the full-depth record: cosine to the
/// embedding for embedding exits, argmax agreement of logits otherwise.
pub fn exit_fidelity(head: ExitHead, exit_output: &[f32], full: &Record) -> f64 {
    let output = exit_output.to_vec();
    let exit = match head {
        ExitHead::Pooler => Record {
            embedding: Some(output),
            logits: None,
            exit_layer: None,
            ..Record::default()
        },
        ExitHead::Classifier => Record {
            embedding: None,
            logits: Some(output),
            exit_layer: None,
            ..Record::default()
        },
    };
    exit.agreement(full).unwrap_or(0.0)
}

/// 1 when `logits` predict `label`, else 0.
fn correct(logits: Option<&[f32]>, label: usize) -> f64 {
    f64::from(u8::from(logits.is_some_and(|l| argmax(l) == label)))
}

/// Runs `rows` (token ids and token types) through every layer and every
/// exit of `model`, scoring the outputs as `scoring` says.
pub fn observe(
    model: &LoadedModel,
    rows: &[Encoded],
    batch_size: usize,
    scoring: Scoring<'_>,
) -> Result<Vec<Observation>, Diag> {
    per_row(model, rows, batch_size, |inputs, batch| {
        let (out, _) = model.forward(inputs).map_err(failed)?;
        let full =
            final_records(model, &out.last_hidden, &inputs.output_side().mask).map_err(failed)?;
        let exit_rows = out
            .exits
            .iter()
            .take(model.exits.len())
            .map(|t| t.to_vec2::<f32>())
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(failed)?;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let mut track = Track::default();
                let label = match scoring {
                    Scoring::Fidelity => None,
                    Scoring::Gold(labels) => Some(labels[i]),
                };
                let mut obs = Observation {
                    tokens: rows[i].0.len(),
                    signals: Vec::with_capacity(exit_rows.len()),
                    scores: Vec::with_capacity(exit_rows.len()),
                    final_score: label.map_or(1.0, |l| correct(full[j].logits.as_deref(), l)),
                };
                for (outputs, policy) in exit_rows.iter().zip(&model.exit_policies) {
                    let row = &outputs[j];
                    obs.signals.push(signal(policy.criterion, row, &mut track));
                    obs.scores.push(match label {
                        None => exit_fidelity(policy.head, row, &full[j]),
                        Some(l) => correct(Some(row), l),
                    });
                }
                obs
            })
            .collect())
    })
}
