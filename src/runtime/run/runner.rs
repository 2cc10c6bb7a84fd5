//! Running a loaded model over many inputs: length-sorted batches (little
//! padding) of token rows (`token_rows`), one output record per input in
//! input order; an encoder-decoder's rows run through `generate`. Shared by
//! `plcc run` and `plcc bench`.
//!
//! On the CPU, batches run side by side by default ([`Schedule`]), one per
//! thread of the pool: each batch's kernels then rarely wait on the other
//! thread (a batch of 32 short sentences leaves little to split between
//! cores, and every split costs a wake-up and a join), while a thread left
//! idle still takes over part of the other batch's work. One batch at a
//! time gives each batch every thread: the shortest time per batch.

use std::time::Instant;

use rayon::prelude::*;

use crate::diag::Diag;
use crate::runtime::load::loaded_model::LoadedModel;
use crate::runtime::model::output::Inputs;
use crate::runtime::pool::on_pool_awake;
use crate::runtime::run::early_exit;
use crate::runtime::run::record::{failed, Record};
use crate::runtime::run::token_rows::plan_batches;

/// Runs one batch of token rows, with early exit where the model's exits
/// have thresholds; records in the order of `rows`. An encoder-decoder's
/// rows are its sources, each record the next-token logits after the
/// decoder start token ([`crate::runtime::run::generate::run_sources`]). A batch of more than
/// `TOKENS_PER_PASS` padded tokens runs as several forward passes of whole
/// rows, which bounds the activations held at once (results do not depend
/// on how rows are batched).
pub fn run_batch(model: &LoadedModel, rows: &[Vec<u32>]) -> Result<Vec<Record>, Diag> {
    run_batch_within(model, rows, TOKENS_PER_PASS)
}

/// [`run_batch`] with forward passes of at most `budget` padded tokens.
fn run_batch_within(
    model: &LoadedModel,
    rows: &[Vec<u32>],
    budget: usize,
) -> Result<Vec<Record>, Diag> {
    if model.config.seq2seq.is_some() {
        return crate::runtime::run::generate::run_sources(model, rows);
    }
    let mut records = Vec::with_capacity(rows.len());
    for part in passes(rows, budget) {
        let inputs =
            Inputs::from_rows(part, model.tokenizer.pad_id, &model.device).map_err(failed)?;
        records.extend(early_exit::run(model, &inputs).map_err(failed)?);
    }
    if model.pipeline.normalize {
        for embedding in records.iter_mut().filter_map(|r| r.embedding.as_mut()) {
            normalize(embedding);
        }
    }
    Ok(records)
}

/// Divides `v` by its length (a zero vector stays zero).
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Padded tokens one forward pass holds at most (unless one row is longer).
const TOKENS_PER_PASS: usize = 1024;

/// `rows` split, in order, into runs whose padded size (rows × longest row)
/// stays within `budget` tokens; each run has at least one row.
fn passes(rows: &[Vec<u32>], budget: usize) -> Vec<&[Vec<u32>]> {
    let mut parts = Vec::new();
    let (mut start, mut longest) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let wider = longest.max(row.len());
        if i > start && wider * (i + 1 - start) > budget {
            parts.push(&rows[start..i]);
            start = i;
            longest = row.len();
        } else {
            longest = wider;
        }
    }
    if start < rows.len() {
        parts.push(&rows[start..]);
    }
    parts
}

/// How a run's batches share the CPU threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Batches side by side, one per thread: the most inputs per second.
    SideBySide,
    /// One batch at a time on every thread: the shortest time per batch.
    OneAtATime,
}

impl Schedule {
    /// How reports name the schedule.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::SideBySide => "side by side",
            Schedule::OneAtATime => "one at a time",
        }
    }
}

/// One batch of a run: the input indices, their records (same order) and
/// the batch's wall-clock seconds.
pub struct BatchRun {
    pub indices: Vec<usize>,
    pub records: Vec<Record>,
    pub seconds: f64,
}

/// Runs every row in length-sorted batches of `batch_size` under
/// `schedule` (side by side only on the CPU, with two or more threads and
/// batches; each batch then runs in passes of a share of
/// `TOKENS_PER_PASS`, so the activations held at once stay as for one
/// batch at a time); the batches in plan order.
pub fn run_batches(
    model: &LoadedModel,
    rows: &[Vec<u32>],
    batch_size: usize,
    schedule: Schedule,
) -> Result<Vec<BatchRun>, Diag> {
    let plan = plan_batches(rows, batch_size);
    let threads = rayon::current_num_threads();
    let side_by_side =
        schedule == Schedule::SideBySide && model.device.is_cpu() && plan.len() > 1 && threads > 1;
    let budget = if side_by_side {
        TOKENS_PER_PASS / threads
    } else {
        TOKENS_PER_PASS
    };
    let one = |indices: Vec<usize>| -> Result<BatchRun, Diag> {
        let batch_rows: Vec<Vec<u32>> = indices.iter().map(|&i| rows[i].clone()).collect();
        let start = Instant::now();
        let records = run_batch_within(model, &batch_rows, budget)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(BatchRun {
            indices,
            records,
            seconds,
        })
    };
    if side_by_side {
        plan.into_par_iter().with_max_len(1).map(one).collect()
    } else {
        on_pool_awake(|| plan.into_iter().map(one).collect())
    }
}

/// Runs every row in length-sorted batches; records in input order.
pub fn run_all(
    model: &LoadedModel,
    rows: &[Vec<u32>],
    batch_size: usize,
    schedule: Schedule,
) -> Result<Vec<Record>, Diag> {
    let batches = run_batches(model, rows, batch_size, schedule)?;
    Ok(in_input_order(batches, rows.len()))
}

/// The records of a run's `batches` over `inputs` inputs, in input order.
pub fn in_input_order(batches: Vec<BatchRun>, inputs: usize) -> Vec<Record> {
    let mut records: Vec<Option<Record>> = vec![None; inputs];
    for batch in batches {
        for (&i, rec) in batch.indices.iter().zip(batch.records) {
            records[i] = Some(rec);
        }
    }
    records.into_iter().flatten().collect()
}

/// Reads one input per line (a trailing newline is not an input).
pub fn read_lines(path: &std::path::Path) -> Result<Vec<String>, Diag> {
    let text = crate::fsio::read_text(path, &crate::fsio::INPUT)?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return Err(Diag::new(
            "plcc::run::empty-input",
            format!("input file `{}` is empty", path.display()),
        )
        .help("write one input text per line"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::passes;

    #[test]
    fn passes_keep_order_and_stay_within_the_token_budget() {
        let rows: Vec<Vec<u32>> = [9usize, 7, 7, 5, 3, 3, 3, 1]
            .iter()
            .map(|&n| vec![1; n])
            .collect();
        let parts = passes(&rows, 16);
        let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![1, 2, 3, 2]);
        assert_eq!(parts.concat(), rows);
        // A row longer than the budget runs alone.
        assert_eq!(passes(&rows[..1], 4).len(), 1);
        assert!(passes(&[], 16).is_empty());
    }
}
