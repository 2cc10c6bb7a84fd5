//! One optimizer step's forward and backward passes: for each of the step's
//! micro-batches the teacher's forward pass (no graph), the student's in
//! training mode, every loss of the stage times its weight, and the backward
//! pass; gradients summed over the micro-batches.
//!
//! On the CPU a micro-batch is split into shards of rows, one per thread,
//! each run forward and backward on its own (candle's operations on small
//! tensors leave a second core idle; two shards keep both busy). Each
//! shard's loss terms are weighted by its share of what the term averages
//! over (`losses::MeanOver`: real tokens, next-token targets or rows), so
//! the shards' gradients add up to the whole batch's. A loss that couples
//! the batch's rows (contrastive) keeps the batch whole. The linear layers'
//! parameters sum their gradients over the shards and micro-batches
//! themselves (`runtime::model::grad_sink`); the rest come from each
//! shard's backward pass and are added here.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};

use super::batches::BatchStream;
use super::losses::{loss_term, LossInputs, LossState, MeanOver};
use super::optim::Param;
use super::sparse_rows::RowGrad;
use super::student_net::TrainableNet;
use super::{train_error, StageJob};
use crate::base::{Pooling, Task};
use crate::diag::Diag;
use crate::eval::fidelity::{batch_for, batch_inputs, Encoded};
use crate::runtime::kernels::values::{is_cpu_f32, with_values, with_values_mut};
use crate::runtime::{ForwardOptions, Inputs};

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
    net.clear_sunk_grads();
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
        let student_batch = net.prepare_training(&batch).map_err(train_error)?;
        let micro_batch = MicroBatch {
            batch: &batch,
            student: &student_batch,
            teacher: teacher_batch.as_ref().unwrap_or(&batch),
            labels: label_tensor.as_ref(),
        };
        let shares = shard_shares(inputs, &batch, idx.len()).map_err(train_error)?;
        let net: &TrainableNet = net;
        let passes = if shares.len() == 1 {
            vec![shard_pass(inputs, net, &micro_batch, &shares[0], state)?]
        } else {
            use rayon::prelude::*;
            shares
                .par_iter()
                .map(|share| shard_pass(inputs, net, &micro_batch, share, &mut state.clone()))
                .collect::<Result<Vec<_>, Diag>>()?
        };
        for pass in passes {
            out.add(pass, params).map_err(train_error)?;
        }
    }
    for p in params {
        if let Some(g) = net.take_sunk_grad(p).map_err(train_error)? {
            out.add_grad(p, &g).map_err(train_error)?;
        }
    }
    Ok(out)
}

/// One micro-batch as each side reads it.
struct MicroBatch<'a> {
    /// The batch of the student's ids (the losses read its output side).
    batch: &'a Inputs,
    /// What the student's forward reads (`TrainableNet::prepare_training`).
    student: &'a Inputs,
    /// What the teacher reads (its own ids with a pruned vocabulary).
    teacher: &'a Inputs,
    labels: Option<&'a Tensor>,
}

/// Rows of a micro-batch that one thread runs forward and backward, and
/// the share of each loss term's count (`MeanOver`) its rows hold.
struct Share {
    rows: Range<usize>,
    /// By loss of the plan: the shard's count over the micro-batch's.
    weights: Vec<f64>,
}

/// Fewest rows a shard is given: below this the per-operation costs of a
/// shard outweigh the second thread.
const MIN_SHARD_ROWS: usize = 4;

/// The shards of a micro-batch of `rows` rows: one per thread on the CPU
/// (at least `MIN_SHARD_ROWS` rows each), or the whole batch where a loss
/// couples its rows or the device runs the batch in parallel itself. The
/// shards' weighted terms add up to the whole batch's terms, so the
/// gradient does not depend on the split (up to rounding).
fn shard_shares(
    inputs: &StepInputs,
    batch: &Inputs,
    rows: usize,
) -> candle_core::Result<Vec<Share>> {
    let losses = &inputs.job.plan.losses;
    let over: Option<Vec<MeanOver>> = losses
        .iter()
        .map(|l| MeanOver::of(&l.kind, inputs.student_opts.lm_logits))
        .collect();
    let shards = rayon::current_num_threads().min(rows / MIN_SHARD_ROWS);
    let whole = || Share {
        rows: 0..rows,
        weights: vec![1.0; losses.len()],
    };
    let Some(over) = over.filter(|_| shards > 1 && inputs.device.is_cpu()) else {
        return Ok(vec![whole()]);
    };
    let mask = &batch.output_side().mask;
    let totals = over
        .iter()
        .map(|o| o.count(mask))
        .collect::<candle_core::Result<Vec<f64>>>()?;
    (0..shards)
        .map(|s| {
            let range = (s * rows / shards)..((s + 1) * rows / shards);
            let shard_mask = mask.narrow(0, range.start, range.len())?;
            let weights = over
                .iter()
                .zip(&totals)
                .map(|(o, total)| Ok(o.count(&shard_mask)? / total.max(1.0)))
                .collect::<candle_core::Result<Vec<f64>>>()?;
            Ok(Share {
                rows: range,
                weights,
            })
        })
        .collect()
}

/// The forward and backward passes of one shard's rows.
struct ShardPass {
    /// The shard's part of the micro-batch's total loss, over `accumulate`.
    loss: f64,
    /// Each weighted term's part, over `accumulate`.
    terms: BTreeMap<String, f64>,
    grads: GradStore,
    row_grad: Option<RowGrad>,
}

/// Runs the teacher and the student over `share`'s rows, the stage's
/// losses (each weighted by the shard's share of its count) and the
/// backward pass.
fn shard_pass(
    inputs: &StepInputs,
    net: &TrainableNet,
    micro: &MicroBatch,
    share: &Share,
    state: &mut LossState,
) -> Result<ShardPass, Diag> {
    let plan = inputs.job.plan;
    let accumulate = plan.accumulate.max(1) as f64;
    let (start, len) = (share.rows.start, share.rows.len());
    let rows = |b: &Inputs| b.rows(start, len).map_err(train_error);
    let (batch, student_in, teacher_in) = (
        rows(micro.batch)?,
        rows(micro.student)?,
        rows(micro.teacher)?,
    );
    let labels = micro
        .labels
        .map(|l| l.narrow(0, start, len))
        .transpose()
        .map_err(train_error)?;
    let s_out = net
        .forward(&student_in, inputs.student_opts)
        .map_err(train_error)?;
    let (t_out, t_logits) = match inputs.job.teacher {
        Some(t) => {
            let mut heads = Vec::new();
            heads.extend(t.classifier.clone());
            let mut t_out = t
                .network
                .forward(&teacher_in, &heads, inputs.teacher_opts)
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
        labels: labels.as_ref(),
        ids: &side.ids,
        pooling: Pooling::of_task(net.task),
        student: &s_out,
        teacher: t_out.as_ref(),
        n_exits: net.exits.len(),
        has_task_head: net.classifier.is_some(),
        teacher_logits: t_logits.as_ref(),
        layer_map: &inputs.job.layer_map,
        kept_heads: &inputs.job.kept_heads,
    };
    let mut terms = BTreeMap::new();
    let mut total_loss: Option<Tensor> = None;
    for (l, share_weight) in plan.losses.iter().zip(&share.weights) {
        let Some(term) = loss_term(&l.kind, &li, state).map_err(train_error)? else {
            continue;
        };
        let weighted = (term * (l.weight * share_weight)).map_err(train_error)?;
        let v = weighted.to_scalar::<f32>().map_err(train_error)? as f64;
        *terms.entry(l.kind.name().to_string()).or_default() += v / accumulate;
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
    let scaled = (total_loss / accumulate).map_err(train_error)?;
    let loss = scaled.to_scalar::<f32>().map_err(train_error)? as f64;
    let grads = scaled.backward().map_err(train_error)?;
    let row_grad = net.row_grad(&grads);
    Ok(ShardPass {
        loss,
        terms,
        grads,
        row_grad,
    })
}

impl StepOutcome {
    /// Adds one shard's loss, terms and gradients.
    fn add(&mut self, pass: ShardPass, params: &[Param]) -> candle_core::Result<()> {
        self.loss += pass.loss;
        for (name, v) in pass.terms {
            *self.terms.entry(name).or_default() += v;
        }
        for p in params {
            if let Some(gp) = pass.grads.get(p.var.as_tensor()) {
                self.add_grad(p, gp)?;
            }
        }
        if let Some(rg) = pass.row_grad {
            self.row_grad = Some(match self.row_grad.take() {
                Some(prev) => prev.merge(rg)?,
                None => rg,
            });
        }
        Ok(())
    }

    /// Adds `grad` to the step's gradient of `p`.
    fn add_grad(&mut self, p: &Param, grad: &Tensor) -> candle_core::Result<()> {
        let acc = match self.grads.remove(&p.name) {
            Some(prev) => add_into(prev, grad)?,
            None => grad.clone(),
        };
        self.grads.insert(p.name.clone(), acc);
        Ok(())
    }
}

/// `sum + more`, added into `sum`'s own storage where it is a contiguous f32
/// CPU tensor (a gradient of one shard, which nothing else reads).
fn add_into(sum: Tensor, more: &Tensor) -> candle_core::Result<Tensor> {
    let in_place =
        is_cpu_f32(&sum) && is_cpu_f32(more) && sum.is_contiguous() && sum.dims() == more.dims();
    if !in_place {
        return sum + more;
    }
    with_values(more, |more| {
        with_values_mut(&sum, |acc| {
            acc.iter_mut().zip(more).for_each(|(a, b)| *a += b);
            Ok(())
        })
    })?;
    Ok(sum)
}
