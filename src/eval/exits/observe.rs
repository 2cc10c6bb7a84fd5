//! One full-depth pass over the calibration data that records, for every
//! sample and every exit, the criterion's signal and how close that exit's
//! output is to the sample's full-depth output (cosine for embeddings, 1 or
//! 0 for argmax agreement of logits). Threshold search then needs no model.

use crate::base::ExitHead;
use crate::diag::Diag;
use crate::eval::fidelity::{per_row, Encoded};
use crate::runtime::run::early_exit::final_records;
use crate::runtime::run::exit_rule::{signal, Track};
use crate::runtime::run::record::{failed, Record};
use crate::runtime::LoadedModel;

/// What the exits saw for one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Tokens of the sample (special tokens included).
    pub tokens: usize,
    /// Per exit: the criterion's signal (`None`: it cannot decide there).
    pub signals: Vec<Option<f64>>,
    /// Per exit: fidelity of the exit's output to the full-depth output.
    pub fidelity: Vec<f64>,
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

/// Runs `rows` (token ids and token types) through every layer and every
/// exit of `model`.
pub fn observe(
    model: &LoadedModel,
    rows: &[Encoded],
    batch_size: usize,
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
                let mut obs = Observation {
                    tokens: rows[i].0.len(),
                    signals: Vec::with_capacity(exit_rows.len()),
                    fidelity: Vec::with_capacity(exit_rows.len()),
                };
                for (outputs, policy) in exit_rows.iter().zip(&model.exit_policies) {
                    let row = &outputs[j];
                    obs.signals.push(signal(policy.criterion, row, &mut track));
                    obs.fidelity.push(exit_fidelity(policy.head, row, &full[j]));
                }
                obs
            })
            .collect())
    })
}
