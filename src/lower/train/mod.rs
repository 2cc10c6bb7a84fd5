//! Training: the `pretrain` stage (a teacher trained from scratch on text,
//! next-token cross-entropy; an encoder-decoder reconstructs text corrupted
//! by text infilling) and the distillation stages of the plan, run
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
pub mod budget;
pub mod checkpoint;
pub mod distill;
pub mod evaluation;
pub mod fake_quant;
pub mod folder;
pub mod log;
pub mod losses;
pub mod optim;
pub mod plot;
pub mod session;
pub mod sparse_rows;
pub mod step;
pub mod student_net;

pub use session::Session;

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::Tensor;

use crate::base::{duration_text, Keep, StageLength, Task};
use crate::diag::Diag;
use crate::eval::fidelity::{encode_with, Fidelity};
use crate::eval::report::StageEval;
use crate::eval::report::StageTotals;
use crate::ir::{LossPlanKind, StagePlan};
use crate::runtime::{ForwardOptions, LoadedModel, Mode};
use crate::text::data::Example;
use checkpoint::BestPoint;
use evaluation::{Best, EvalData};
use log::StepRecord;
use losses::LossState;
use optim::{clip_grad_norm, learning_rate, Optimizer, Param};
use step::{batch_dump, forward_backward, StepInputs};
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
    /// What the stage evaluates the student on (`eval_every`); `None` for
    /// pretraining.
    pub eval: Option<EvalData<'a>>,
    /// The evaluation of the weights the stage starts from (before training,
    /// or the previous stage's): with `keep: best` they are a candidate too.
    pub start_eval: Option<&'a Fidelity>,
}

/// A finished stage: its totals, and the evaluation of the weights it hands
/// on when it measured them (`eval_every`).
pub struct StageOutcome {
    pub totals: StageTotals,
    pub eval: Option<Fidelity>,
}

/// Runs one stage on `net`.
pub fn run_stage(
    session: &mut Session,
    net: &mut TrainableNet,
    job: &StageJob,
) -> Result<StageOutcome, Diag> {
    let plan = job.plan;
    let task = net.task;
    let examples = batches::task_examples(job.examples, task);
    let max_len = plan.seq_len.min(net.config.max_positions).max(2);
    // An encoder-decoder's rows are its decoder rows and sources.
    let (encoded, cut) = encode_with(&net.config, job.tokenizer, max_len, &examples, plan.seed)?;
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
        steps: 0,
        tokens: 0,
        seconds: 0.0,
        final_loss: f64::NAN,
        eval_seconds: 0.0,
        kept_step: None,
        budget: None,
    };
    let mut best: Option<Best> = None;
    let mut resumed_steps = None;
    let mut resumed = false;
    if let Some(ckpt) = session
        .resume_from
        .as_ref()
        .filter(|c| c.meta.progress.stage == job.index && !c.meta.progress.stage_done)
    {
        restore_params(&params, &ckpt.state)?;
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
        resumed = true;
        resumed_steps = ckpt.meta.progress.stage_steps;
        best = Best::from_checkpoint(ckpt.meta.best, &ckpt.state, &params);
        if let Some(partial) = ckpt.meta.finished.iter().find(|t| t.name == "(partial)") {
            totals.tokens = partial.tokens;
            totals.seconds = partial.seconds;
            totals.eval_seconds = partial.eval_seconds;
            totals.budget = partial.budget.clone();
        }
    }

    let needs_attention = kinds.iter().any(|k| {
        matches!(
            k,
            LossPlanKind::AttentionKl { .. } | LossPlanKind::AttentionMse { .. }
        )
    });
    let lm = matches!(task, Task::CausalLm | Task::Seq2Seq);
    let device = session.device.clone();
    let inputs = StepInputs {
        job,
        encoded: &encoded,
        labels: &labels,
        device: &device,
        student_opts: ForwardOptions {
            mode: Mode::Training,
            output_attentions: needs_attention,
            lm_logits: lm,
        },
        teacher_opts: ForwardOptions {
            mode: Mode::Inference,
            output_attentions: needs_attention,
            lm_logits: lm,
        },
    };
    let eval_every = plan.eval_every.filter(|_| job.eval.is_some());
    if let (false, Some(_), Keep::Best) = (resumed, eval_every, plan.keep) {
        if let Some((f, score)) = job.start_eval.and_then(|f| Some((f, f.score()?))) {
            let point = BestPoint { step: 0, score };
            best = Some(Best::take(point, f.clone(), &params)?);
        }
    }
    // A resumed stage runs the count its checkpoint holds.
    let total = match (resumed_steps, plan.length) {
        (Some(n), _) | (None, StageLength::Steps(n)) => n,
        (None, StageLength::Epochs(e)) => e * stream.per_epoch().div_ceil(plan.accumulate.max(1)),
        (None, StageLength::Budget(seconds)) => {
            let probe_clock = Instant::now();
            let planned = budget::probe(
                seconds,
                eval_every,
                &inputs,
                (&mut stream, &mut *net, &mut state, &params),
            )?;
            session.notes.push(format!(
                "stage `{}`: a budget of {} at {:.3}s a step (measured, evaluations included) gives {} steps",
                plan.name,
                duration_text(seconds),
                planned.seconds_per_step,
                planned.steps
            ));
            let steps = planned.steps;
            totals.budget = Some(planned);
            let probe_seconds = probe_clock.elapsed().as_secs_f64();
            totals.seconds += probe_seconds;
            totals.eval_seconds += probe_seconds;
            steps
        }
    };
    let total = session.max_steps.map_or(total, |m| total.min(m));
    totals.steps = total;
    session.meta.progress.stage_steps = Some(total);

    session.reporter.begin(&plan.name, total, start);
    let mut dump = batch_dump()?;
    let started = Instant::now();
    let seconds_before = totals.seconds;
    let tokens_before: usize = session
        .meta
        .finished
        .iter()
        .filter(|t| t.name != "(partial)")
        .map(|t| t.tokens)
        .sum();
    let checkpoint_interval = checkpoint::interval(plan.checkpoint_minutes)?;
    let mut last_checkpoint = Instant::now();
    let mut last_eval: Option<Fidelity> = None;
    for step in start..total {
        let step_clock = Instant::now();
        let lr = learning_rate(plan.lr, plan.schedule, plan.warmup, step, total);
        let out = forward_backward(
            &inputs,
            &mut stream,
            net,
            &mut state,
            &params,
            step,
            dump.as_mut(),
        )?;
        if !out.loss.is_finite() {
            return Err(Diag::new(
                "plcc::train::diverged",
                format!(
                    "the loss of stage `{}` became {} at step {}",
                    plan.name,
                    out.loss,
                    step + 1
                ),
            )
            .help("lower the stage's `lr` or set `grad_clip`"));
        }
        let (mut grads, mut row_grad) = (out.grads, out.row_grad);
        let norm =
            clip_grad_norm(&mut grads, row_grad.as_mut(), plan.grad_clip).map_err(train_error)?;
        opt.step(&params, &grads, row_grad.as_ref(), lr)
            .map_err(train_error)?;
        totals.tokens += out.tokens;
        totals.final_loss = out.loss;
        let secs = step_clock.elapsed().as_secs_f64();
        let done = step + 1 == total;
        last_eval = None;
        if let (Some(n), Some(data)) = (eval_every, &job.eval) {
            if (step + 1) % n == 0 || done {
                let eval_clock = Instant::now();
                let f = evaluation::measure(net, data, job.tokenizer)?;
                totals.eval_seconds += eval_clock.elapsed().as_secs_f64();
                session.reporter.event(&format!(
                    "step {}/{total}: {}",
                    step + 1,
                    evaluation::metrics_text(&f)
                ));
                if let Some(score) = f.score() {
                    let better = best.as_ref().is_none_or(|b| score > b.point.score);
                    if plan.keep == Keep::Best && better {
                        let point = BestPoint {
                            step: step + 1,
                            score,
                        };
                        best = Some(Best::take(point, f.clone(), &params)?);
                    }
                }
                last_eval = Some(f);
            }
        }
        session.meta.progress.global_step += 1;
        session.log.append(StepRecord {
            stage: plan.name.clone(),
            global_step: session.meta.progress.global_step,
            step: step + 1,
            loss: out.loss,
            terms: out.terms,
            lr,
            grad_norm: norm,
            tokens_per_s: out.tokens as f64 / secs.max(1e-9),
            tokens: tokens_before + totals.tokens,
            eval: last_eval.as_ref().map(|f| f.metrics.clone()),
        })?;
        session.reporter.step(&format!(
            "loss {:.4} lr {lr:.2e} {:.0} tok/s",
            out.loss,
            out.tokens as f64 / secs.max(1e-9)
        ));
        crate::fault::point("step");
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
            session.meta.best = best.as_ref().map(|b| b.point);
            if !done {
                save(session, &params, &opt, &state, &totals, best.as_ref())?;
                last_checkpoint = Instant::now();
            }
        }
    }
    session.reporter.end();
    totals.seconds = seconds_before + started.elapsed().as_secs_f64();
    let mut eval = last_eval;
    if let Some(b) = best.filter(|_| plan.keep == Keep::Best) {
        if b.point.step != total {
            b.restore(&params)?;
            eval = b.fidelity.clone();
            session.reporter.event(&match b.point.step {
                0 => "kept the weights it started from: no evaluation during the stage did better"
                    .to_string(),
                step => format!("kept the weights of step {step}, its best evaluation"),
            });
        }
        totals.kept_step = Some(b.point.step);
    }
    session.meta.best = None;
    session.resume_from = None;
    Ok(StageOutcome { totals, eval })
}

/// Sets every parameter to its value in a checkpoint's `state`.
fn restore_params(params: &[Param], state: &BTreeMap<String, Tensor>) -> Result<(), Diag> {
    for p in params {
        let saved = state.get(&param_key(&p.name)).ok_or_else(|| {
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
    Ok(())
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
    best: Option<&Best>,
) -> Result<(), Diag> {
    let mut tensors = param_state(params);
    tensors.extend(best.into_iter().flat_map(Best::state));
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

/// The checkpoint tensor name of parameter `name`.
pub fn param_key(name: &str) -> String {
    format!("param.{name}")
}

/// The parameters as checkpoint tensors (`param.NAME`).
fn param_state(params: &[Param]) -> BTreeMap<String, Tensor> {
    params
        .iter()
        .map(|p| (param_key(&p.name), p.var.as_tensor().clone()))
        .collect()
}

/// Restores a finished stage's parameters from the resumed checkpoint into `net`.
pub fn restore_finished(session: &Session, net: &TrainableNet) -> Result<(), Diag> {
    let Some(ckpt) = &session.resume_from else {
        return Ok(());
    };
    for p in net.params() {
        if let Some(saved) = ckpt.state.get(&param_key(&p.name)) {
            p.var.set(saved).map_err(train_error)?;
        }
    }
    Ok(())
}
