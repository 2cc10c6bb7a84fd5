//! One optimizer step's forward and backward passes: for each of the step's
//! micro-batches the teacher's forward pass (no graph), the student's in
//! training mode, every loss of the stage times its weight, and the backward
//! pass; gradients summed over the micro-batches.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

use super::batches::BatchStream;
use super::losses::{loss_term, LossInputs, LossState};
use super::optim::Param;
use super::sparse_rows::RowGrad;
use super::student_net::TrainableNet;
use super::{train_error, StageJob};
use crate::base::{Pooling, Task};
use crate::diag::Diag;
use crate::eval::fidelity::{batch_for, batch_inputs, Encoded};
use crate::runtime::ForwardOptions;

/// What every step of a stage reads.
pub struct StepInputs<'a> {
    pub job: &'a StageJob<'a>,
    /// The stage's examples, tokenized (`eval::fidelity::encode_with`: an
    /// encoder-decoder's decoder rows and sources).
    pub encoded: &'a [Encoded],
    pub labels: &'a [Option<usize>],
    pub device: &'a Device,
    pub student_opts: ForwardOptions,
    pub teacher_opts: ForwardOptions,
}

/// The summed gradients and the numbers of one step.
pub struct StepOutcome {
    /// The total loss, averaged over the micro-batches.
    pub loss: f64,
    /// Each weighted term by loss name, averaged over the micro-batches.
    pub terms: BTreeMap<String, f64>,
    /// Real tokens the step read.
    pub tokens: usize,
    pub grads: BTreeMap<String, Tensor>,
    /// The gradient of the word-table rows the step used, when the table
    /// trains a few rows at a time.
    pub row_grad: Option<RowGrad>,
}

/// The file named by `PLCC_DUMP_BATCHES`, opened for appending, if set.
pub fn batch_dump() -> Result<Option<(PathBuf, std::fs::File)>, Diag> {
    let Some(path) = std::env::var_os("PLCC_DUMP_BATCHES").map(PathBuf::from) else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Diag::io("plcc::io::write", "open", &path, &e))?;
    Ok(Some((path, file)))
}

/// Runs the forward and backward passes of step `step` (0-based) of the
/// stage: micro-batches `step * accumulate ..` of `stream`.
#[allow(clippy::too_many_arguments)]
pub fn forward_backward(
    inputs: &StepInputs,
    stream: &mut BatchStream,
    net: &mut TrainableNet,
    state: &mut LossState,
    params: &[Param],
    step: usize,
    dump: Option<&mut (PathBuf, std::fs::File)>,
) -> Result<StepOutcome, Diag> {
    let job = inputs.job;
    let plan = job.plan;
    let task = net.task;
    let accumulate = plan.accumulate.max(1);
    let with_types = net.config.type_vocab_size > 0;
    let mut out = StepOutcome {
        loss: 0.0,
        terms: BTreeMap::new(),
        tokens: 0,
        grads: BTreeMap::new(),
        row_grad: None,
    };
    let mut dump = dump;
    for micro in 0..accumulate {
        let idx = stream.get(step * accumulate + micro);
        let rows: Vec<Encoded> = idx.iter().map(|&i| inputs.encoded[i].clone()).collect();
        out.tokens += rows.iter().map(|r| r.0.len()).sum::<usize>();
        if let Some((path, file)) = dump.as_mut() {
            let line = serde_json::json!({
                "stage": plan.name,
                "step": step + 1,
                "micro": micro,
                "ids": rows.iter().map(|r| &r.0).collect::<Vec<_>>(),
            });
            file.write_all(format!("{line}\n").as_bytes())
                .map_err(|e| Diag::io("plcc::io::write", "write", path, &e))?;
        }
        let batch = batch_for(&net.config, &rows, job.pad_id, inputs.device)?;
        let teacher_batch = match (job.teacher_ids, job.teacher) {
            (Some(map), Some(_)) => {
                let to_teacher = |i: u32| map.get(i as usize).copied().unwrap_or(i);
                let mapped: Vec<Encoded> = rows
                    .iter()
                    .map(|(ids, types)| {
                        (ids.iter().map(|&i| to_teacher(i)).collect(), types.clone())
                    })
                    .collect();
                let pad = to_teacher(job.pad_id);
                Some(batch_inputs(&mapped, pad, with_types, inputs.device)?)
            }
            _ => None,
        };
        let label_tensor = if idx.iter().all(|&i| inputs.labels[i].is_some())
            && matches!(task, Task::Classification { .. })
        {
            let l: Vec<u32> = idx
                .iter()
                .map(|&i| inputs.labels[i].unwrap_or(0) as u32)
                .collect();
            Some(Tensor::from_vec(l, idx.len(), inputs.device).map_err(train_error)?)
        } else {
            None
        };
        let s_out = net
            .forward_training(&batch, inputs.student_opts)
            .map_err(train_error)?;
        let (t_out, t_logits) = match job.teacher {
            Some(t) => {
                let mut heads = Vec::new();
                heads.extend(t.classifier.clone());
                let mut t_out = t
                    .network
                    .forward(
                        teacher_batch.as_ref().unwrap_or(&batch),
                        &heads,
                        inputs.teacher_opts,
                    )
                    .map_err(train_error)?;
                let logits = if t.classifier.is_some() {
                    t_out.exits.pop()
                } else {
                    None
                };
                (Some(t_out), logits)
            }
            None => (None, None),
        };
        // The losses read the side that produces the outputs (an
        // encoder-decoder's decoder).
        let side = batch.output_side();
        let li = LossInputs {
            mask: &side.mask,
            labels: label_tensor.as_ref(),
            ids: &side.ids,
            pooling: Pooling::of_task(task),
            student: &s_out,
            teacher: t_out.as_ref(),
            n_exits: net.exits.len(),
            has_task_head: net.classifier.is_some(),
            teacher_logits: t_logits.as_ref(),
            layer_map: &job.layer_map,
            kept_heads: &job.kept_heads,
        };
        let mut total_loss: Option<Tensor> = None;
        for l in &plan.losses {
            let Some(term) = loss_term(&l.kind, &li, state).map_err(train_error)? else {
                continue;
            };
            let weighted = (term * l.weight).map_err(train_error)?;
            let v = weighted.to_scalar::<f32>().map_err(train_error)? as f64;
            *out.terms.entry(l.kind.name().to_string()).or_default() += v / accumulate as f64;
            total_loss = Some(match total_loss {
                Some(acc) => (acc + weighted).map_err(train_error)?,
                None => weighted,
            });
        }
        let Some(total_loss) = total_loss else {
            return Err(Diag::new(
                "plcc::train::no-loss",
                format!("stage `{}` has no loss that applies to its data", plan.name),
            )
            .help("task cross-entropy needs labelled data; distillation losses need a teacher"));
        };
        let scaled = (total_loss / accumulate as f64).map_err(train_error)?;
        out.loss += scaled.to_scalar::<f32>().map_err(train_error)? as f64;
        let g = scaled.backward().map_err(train_error)?;
        for p in params {
            if let Some(gp) = g.get(p.var.as_tensor()) {
                let acc = match out.grads.remove(&p.name) {
                    Some(prev) => (prev + gp).map_err(train_error)?,
                    None => gp.clone(),
                };
                out.grads.insert(p.name.clone(), acc);
            }
        }
        if let Some(rg) = net.take_row_grad(&g) {
            out.row_grad = Some(match out.row_grad.take() {
                Some(prev) => prev.merge(rg).map_err(train_error)?,
                None => rg,
            });
        }
    }
    Ok(out)
}
