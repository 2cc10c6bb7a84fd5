//! Training: the `pretrain` stage (a teacher trained from scratch on text,
//! next-token cross-entropy) and the distillation stages of the plan, run
//! with the recipe's optimizer, schedule, clipping and accumulation; a
//! progress report per stage; the loss log; crash-safe checkpoints every N
//! steps, every M minutes and at the end of each stage (see [`checkpoint`]);
//! resumption from any of them that reaches the same weights as an unbroken
//! run; and an evaluation of the student after each stage.
//!
//! With the environment variable `PLCC_DUMP_BATCHES=PATH` set, every
//! micro-batch a stage trains on is appended to `PATH` as one JSON line
//! `{"stage", "step", "micro", "ids"}` (`step` 1-based, `ids` the unpadded
//! token id rows), so that another trainer can replay exactly the same
//! batches (`scripts/train_pytorch.py`).

pub mod batches;
pub mod checkpoint;
pub mod fake_quant;
pub mod folder;
pub mod log;
pub mod losses;
pub mod optim;
pub mod session;
pub mod sparse_rows;
pub mod student_net;

pub use session::Session;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;

use crate::base::Pooling;
use crate::base::StageLength;
use crate::base::Task;
use crate::diag::Diag;
use crate::eval::fidelity::{self, batch_inputs, encode_counting_cuts, Encoded};
use crate::eval::report::StageEval;
use crate::eval::report::StageTotals;
use crate::ir::{LossPlanKind, StagePlan};
use crate::runtime::{ForwardOptions, LoadedModel, Mode};
use crate::text::data::Example;
use log::StepRecord;
use losses::{loss_term, LossInputs, LossState};
use optim::{clip_grad_norm, learning_rate, Optimizer, Param};
use student_net::TrainableNet;

/// A training failure inside candle (a bug or an impossible shape).
pub fn train_error(e: impl std::fmt::Display) -> Diag {
    Diag::new(
        "plcc::train::failed",
        "a tensor operation failed during training",
    )
    .note(e.to_string())
}

/// One stage to run.
pub struct StageJob<'a> {
    pub index: usize,
    pub plan: &'a StagePlan,
    pub examples: &'a [Example],
    /// The teacher for distillation; `None` for pretraining.
    pub teacher: Option<&'a LoadedModel>,
    /// Student layer (1-based) → teacher layer (1-based).
    pub layer_map: Vec<usize>,
    /// Student layer (1-based) → kept teacher heads.
    pub kept_heads: BTreeMap<usize, Vec<usize>>,
    pub pad_id: u32,
    /// The student's tokenizer: batches are its ids.
    pub tokenizer: &'a crate::text::TextTokenizer,
    /// With a pruned vocabulary: the teacher id of each student id. The
    /// teacher then reads the student's pieces through it (the same tokens
    /// at the same positions, so every loss compares aligned tokens).
    pub teacher_ids: Option<&'a [u32]>,
}

/// Optimizer steps of a stage with `micro_per_epoch` micro-batches per epoch.
pub fn stage_steps(plan: &StagePlan, micro_per_epoch: usize, max_steps: Option<usize>) -> usize {
    let steps = match plan.length {
        StageLength::Steps(n) => n,
        StageLength::Epochs(e) => e * micro_per_epoch.div_ceil(plan.accumulate.max(1)),
    };
    max_steps.map_or(steps, |m| steps.min(m))
}

/// Runs one stage on `net`; returns its totals.
pub fn run_stage(
    session: &mut Session,
    net: &mut TrainableNet,
    job: &StageJob,
) -> Result<StageTotals, Diag> {
    let plan = job.plan;
    let task = net.task;
    let examples = batches::task_examples(job.examples, task);
    let max_len = plan.seq_len.min(net.config.max_positions).max(2);
    let (encoded, cut): (Vec<Encoded>, usize) =
        encode_counting_cuts(job.tokenizer, max_len, &examples)?;
    if cut > 0 {
        session.notes.push(format!(
            "stage `{}`: {cut} of {} examples are longer than {max_len} tokens and train on their first {max_len} (`seq_len`)",
            plan.name,
            examples.len()
        ));
    }
    let labels: Vec<Option<usize>> = examples.iter().map(|e| e.label).collect();
    let mut stream = batches::BatchStream::new(
        encoded.iter().map(|e| e.0.len()).collect(),
        plan.batch_size,
        plan.seed,
    );
    let total = stage_steps(plan, stream.per_epoch(), session.max_steps);
    let accumulate = plan.accumulate.max(1);

    let kinds: Vec<&LossPlanKind> = plan.losses.iter().map(|l| &l.kind).collect();
    let teacher_hidden = job
        .teacher
        .map_or(net.config.hidden_size, |t| t.config.hidden_size);
    let mut state = LossState::new(
        &kinds,
        net.config.hidden_size,
        teacher_hidden,
        &session.device,
    )
    .map_err(train_error)?;
    let mut params: Vec<Param> = net.params();
    params.extend(state.projections.iter().map(|(n, v)| Param {
        name: n.clone(),
        var: v.clone(),
        decay: true,
    }));
    let mut opt =
        Optimizer::new(plan.optimizer, plan.weight_decay, &params).map_err(train_error)?;

    let mut start = 0;
    let mut totals = StageTotals {
        name: plan.name.clone(),
        steps: total,
        tokens: 0,
        seconds: 0.0,
        final_loss: f64::NAN,
    };
    if let Some(ckpt) = session
        .resume_from
        .as_ref()
        .filter(|c| c.meta.progress.stage == job.index && !c.meta.progress.stage_done)
    {
        for p in &params {
            let saved = ckpt
                .state
                .get(&format!("param.{}", p.name))
                .ok_or_else(|| {
                    Diag::new(
                        "plcc::train::checkpoint",
                        format!("the checkpoint lacks `{}`", p.name),
                    )
                    .help("the checkpoint does not belong to this build; build without --resume")
                })?;
            if saved.dims() != p.var.as_tensor().dims() {
                return Err(Diag::new(
                    "plcc::train::checkpoint",
                    format!(
                        "the checkpoint's `{}` has shape {}, the model's {}",
                        p.name,
                        crate::diag::shape_text(saved.dims()),
                        crate::diag::shape_text(p.var.as_tensor().dims())
                    ),
                ));
            }
            p.var.set(saved).map_err(train_error)?;
        }
        let moments: BTreeMap<String, Tensor> = ckpt
            .state
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("opt.").map(|k| (k.to_string(), v.clone())))
            .collect();
        opt.restore(ckpt.meta.progress.step, &moments)
            .map_err(train_error)?;
        state.bank = ckpt.state.get("bank").cloned();
        state.bank_ids = ckpt.state.get("bank_ids").cloned();
        start = ckpt.meta.progress.step;
        if let Some(partial) = ckpt.meta.finished.iter().find(|t| t.name == "(partial)") {
            totals.tokens = partial.tokens;
            totals.seconds = partial.seconds;
        }
    }

    let needs_attention = kinds.iter().any(|k| {
        matches!(
            k,
            LossPlanKind::AttentionKl { .. } | LossPlanKind::AttentionMse { .. }
        )
    });
    let lm = task == Task::CausalLm;
    let student_opts = ForwardOptions {
        mode: Mode::Training,
        output_attentions: needs_attention,
        lm_logits: lm,
    };
    let teacher_opts = ForwardOptions {
        mode: Mode::Inference,
        output_attentions: needs_attention,
        lm_logits: lm,
    };
    let n_exits = net.exits.len();
    let has_task_head = net.classifier.is_some();
    let with_types = net.config.type_vocab_size > 0;
    session.reporter.begin(&plan.name, total, start);
    let mut dump = batch_dump()?;
    let started = Instant::now();
    let seconds_before = totals.seconds;
    let checkpoint_interval = checkpoint::interval(plan.checkpoint_minutes)?;
    let mut last_checkpoint = Instant::now();
    for step in start..total {
        let step_clock = Instant::now();
        let lr = learning_rate(plan.lr, plan.schedule, plan.warmup, step, total);
        let mut grads: BTreeMap<String, Tensor> = BTreeMap::new();
        let mut row_grad: Option<sparse_rows::RowGrad> = None;
        let mut loss_sum = 0f64;
        let mut terms_sum: BTreeMap<String, f64> = BTreeMap::new();
        let mut step_tokens = 0usize;
        for micro in 0..accumulate {
            let idx = stream.get(step * accumulate + micro);
            let rows: Vec<Encoded> = idx.iter().map(|&i| encoded[i].clone()).collect();
            step_tokens += rows.iter().map(|r| r.0.len()).sum::<usize>();
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
            let inputs = batch_inputs(&rows, job.pad_id, with_types, &session.device)?;
            let teacher_inputs = match (job.teacher_ids, job.teacher) {
                (Some(map), Some(_)) => {
                    let to_teacher = |i: u32| map.get(i as usize).copied().unwrap_or(i);
                    let mapped: Vec<Encoded> = rows
                        .iter()
                        .map(|(ids, types)| {
                            (ids.iter().map(|&i| to_teacher(i)).collect(), types.clone())
                        })
                        .collect();
                    let pad = to_teacher(job.pad_id);
                    Some(batch_inputs(&mapped, pad, with_types, &session.device)?)
                }
                _ => None,
            };
            let label_tensor = if idx.iter().all(|&i| labels[i].is_some())
                && matches!(task, Task::Classification { .. })
            {
                let l: Vec<u32> = idx.iter().map(|&i| labels[i].unwrap_or(0) as u32).collect();
                Some(Tensor::from_vec(l, idx.len(), &session.device).map_err(train_error)?)
            } else {
                None
            };
            let s_out = net
                .forward_training(&inputs, student_opts)
                .map_err(train_error)?;
            let (t_out, t_logits) = match job.teacher {
                Some(t) => {
                    let mut heads = Vec::new();
                    heads.extend(t.classifier.clone());
                    let mut out = t
                        .network
                        .forward(
                            teacher_inputs.as_ref().unwrap_or(&inputs),
                            &heads,
                            teacher_opts,
                        )
                        .map_err(train_error)?;
                    let logits = if t.classifier.is_some() {
                        out.exits.pop()
                    } else {
                        None
                    };
                    (Some(out), logits)
                }
                None => (None, None),
            };
            let li = LossInputs {
                mask: &inputs.mask,
                labels: label_tensor.as_ref(),
                ids: &inputs.ids,
                pooling: Pooling::of_task(task),
                student: &s_out,
                teacher: t_out.as_ref(),
                n_exits,
                has_task_head,
                teacher_logits: t_logits.as_ref(),
                layer_map: &job.layer_map,
                kept_heads: &job.kept_heads,
            };
            let mut total_loss: Option<Tensor> = None;
            for l in &plan.losses {
                let Some(term) = loss_term(&l.kind, &li, &mut state).map_err(train_error)? else {
                    continue;
                };
                let weighted = (term * l.weight).map_err(train_error)?;
                let v = weighted.to_scalar::<f32>().map_err(train_error)? as f64;
                *terms_sum.entry(l.kind.name().to_string()).or_default() += v / accumulate as f64;
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
                .help(
                    "task cross-entropy needs labelled data; distillation losses need a teacher",
                ));
            };
            let scaled = (total_loss / accumulate as f64).map_err(train_error)?;
            loss_sum += scaled.to_scalar::<f32>().map_err(train_error)? as f64;
            let g = scaled.backward().map_err(train_error)?;
            for p in &params {
                if let Some(gp) = g.get(p.var.as_tensor()) {
                    let acc = match grads.remove(&p.name) {
                        Some(prev) => (prev + gp).map_err(train_error)?,
                        None => gp.clone(),
                    };
                    grads.insert(p.name.clone(), acc);
                }
            }
            if let Some(rg) = net.take_row_grad(&g) {
                row_grad = Some(match row_grad.take() {
                    Some(prev) => prev.merge(rg).map_err(train_error)?,
                    None => rg,
                });
            }
        }
        if !loss_sum.is_finite() {
            return Err(Diag::new(
                "plcc::train::diverged",
                format!(
                    "the loss of stage `{}` became {loss_sum} at step {}",
                    plan.name,
                    step + 1
                ),
            )
            .help("lower the stage's `lr` or set `grad_clip`"));
        }
        let norm =
            clip_grad_norm(&mut grads, row_grad.as_mut(), plan.grad_clip).map_err(train_error)?;
        opt.step(&params, &grads, row_grad.as_ref(), lr)
            .map_err(train_error)?;
        totals.tokens += step_tokens;
        totals.final_loss = loss_sum;
        let secs = step_clock.elapsed().as_secs_f64();
        session.meta.progress.global_step += 1;
        session.log.append(StepRecord {
            stage: plan.name.clone(),
            global_step: session.meta.progress.global_step,
            step: step + 1,
            loss: loss_sum,
            terms: terms_sum,
            lr,
            grad_norm: norm,
            tokens_per_s: step_tokens as f64 / secs.max(1e-9),
        })?;
        session.reporter.step(&format!(
            "loss {loss_sum:.4} lr {lr:.2e} {:.0} tok/s",
            step_tokens as f64 / secs.max(1e-9)
        ));
        crate::fault::point("step");
        let done = step + 1 == total;
        let due = plan
            .checkpoint_every
            .is_some_and(|n| n > 0 && (step + 1) % n == 0)
            || last_checkpoint.elapsed() >= checkpoint_interval;
        if done || due {
            totals.seconds = seconds_before + started.elapsed().as_secs_f64();
            session.meta.progress.stage = job.index;
            session.meta.progress.stage_name = plan.name.clone();
            session.meta.progress.step = step + 1;
            session.meta.progress.stage_done = false;
            if !done {
                save(session, &params, &opt, &state, &totals)?;
                last_checkpoint = Instant::now();
            }
        }
    }
    session.reporter.end();
    totals.seconds = seconds_before + started.elapsed().as_secs_f64();
    session.resume_from = None;
    Ok(totals)
}

/// The file named by `PLCC_DUMP_BATCHES`, opened for appending, if set.
fn batch_dump() -> Result<Option<(PathBuf, std::fs::File)>, Diag> {
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

/// Records a finished stage (with its evaluation) and checkpoints it.
pub fn finish_stage(
    session: &mut Session,
    net: &TrainableNet,
    index: usize,
    totals: StageTotals,
    eval: Option<StageEval>,
) -> Result<(), Diag> {
    session.meta.finished.retain(|t| t.name != "(partial)");
    session.meta.finished.push(totals.clone());
    session.meta.evaluations.extend(eval);
    session.meta.progress.stage = index;
    session.meta.progress.stage_name = totals.name.clone();
    session.meta.progress.step = totals.steps;
    session.meta.progress.stage_done = true;
    let state = param_state(&net.params());
    checkpoint::save(
        &session.dir.join("checkpoints"),
        &session.meta,
        &state,
        session.teacher_tensors.as_ref(),
    )?;
    Ok(())
}

fn save(
    session: &mut Session,
    params: &[Param],
    opt: &Optimizer,
    state: &LossState,
    totals: &StageTotals,
) -> Result<(), Diag> {
    let mut tensors = param_state(params);
    for (k, v) in opt.state() {
        tensors.insert(format!("opt.{k}"), v);
    }
    if let (Some(b), Some(ids)) = (&state.bank, &state.bank_ids) {
        tensors.insert("bank".into(), b.clone());
        tensors.insert("bank_ids".into(), ids.clone());
    }
    let mut meta = session.meta.clone();
    meta.finished.retain(|t| t.name != "(partial)");
    meta.finished.push(StageTotals {
        name: "(partial)".into(),
        ..totals.clone()
    });
    checkpoint::save(
        &session.dir.join("checkpoints"),
        &meta,
        &tensors,
        session.teacher_tensors.as_ref(),
    )?;
    Ok(())
}

/// The parameters as checkpoint tensors (`param.NAME`).
fn param_state(params: &[Param]) -> BTreeMap<String, Tensor> {
    params
        .iter()
        .map(|p| (format!("param.{}", p.name), p.var.as_tensor().clone()))
        .collect()
}

/// Restores a finished stage's parameters from the resumed checkpoint into `net`.
pub fn restore_finished(session: &Session, net: &TrainableNet) -> Result<(), Diag> {
    let Some(ckpt) = &session.resume_from else {
        return Ok(());
    };
    for p in net.params() {
        if let Some(saved) = ckpt.state.get(&format!("param.{}", p.name)) {
            p.var.set(saved).map_err(train_error)?;
        }
    }
    Ok(())
}

/// The student as a runnable model (inference mode, weights fake-quantized)
/// reading `tokenizer`, on `template`'s device.
pub fn snapshot(
    net: &mut TrainableNet,
    template: &LoadedModel,
    tokenizer: &crate::text::TextTokenizer,
    name: &str,
) -> Result<LoadedModel, Diag> {
    net.refresh().map_err(train_error)?;
    // Evaluation runs every sample to full depth: no exit policies.
    Ok(LoadedModel {
        classifier: net.classifier.clone(),
        exits: net.exits.clone(),
        ..LoadedModel::new(
            name,
            net.config.clone(),
            net.network.clone(),
            tokenizer.clone(),
            &template.device,
        )
    })
}

/// Measures the student's fidelity to `teacher` on the evaluation data, each
/// reading it through its own tokenizer (`tokenizer`: the student's).
pub fn evaluate(
    net: &mut TrainableNet,
    teacher: &LoadedModel,
    tokenizer: &crate::text::TextTokenizer,
    after: &str,
    eval_name: &str,
    eval: &[Example],
) -> Result<StageEval, Diag> {
    let student = snapshot(net, teacher, tokenizer, "student")?;
    let f = fidelity::measure(net.task, teacher, &student, eval_name, eval)?;
    Ok(StageEval {
        after: after.to_string(),
        fidelity: f,
    })
}
