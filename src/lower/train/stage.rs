//! One training stage run on the student: its examples tokenized and
//! batched, the losses' state with the parameters and the optimizer, the
//! point it starts from (step 0, or where a resumed checkpoint left it), its
//! step count (a time budget's measured by a probe), then each step — the
//! optimizer step, the evaluation when one is due (`eval_every`), the loss
//! log record and the checkpoint when one is due — and at the end the best
//! weights kept (`keep: best`).

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::Tensor;

use super::batches::{self, BatchStream};
use super::checkpoint::{self, BestPoint};
use super::evaluation::{self, Best, EvalData};
use super::log::StepRecord;
use super::losses::LossState;
use super::optim::{clip_grad_norm, learning_rate, Optimizer, Param};
use super::step::{batch_dump, forward_backward, StepInputs, StepOutcome};
use super::student_net::TrainableNet;
use super::{budget, restore_params, save, train_error, Session, StageJob, StageOutcome, PARTIAL};
use crate::base::{duration_text, Keep, StageLength, Task};
use crate::diag::Diag;
use crate::eval::fidelity::{encode_with, Encoded, Fidelity};
use crate::eval::report::StageTotals;
use crate::ir::{LossPlanKind, StagePlan};
use crate::runtime::{ForwardOptions, Mode};

/// Runs one stage on `net`.
pub fn run_stage(
    session: &mut Session,
    net: &mut TrainableNet,
    job: &StageJob,
) -> Result<StageOutcome, Diag> {
    let plan = job.plan;
    let (encoded, labels, mut stream) = encode_stage(session, net, job)?;
    let kinds: Vec<&LossPlanKind> = plan.losses.iter().map(|l| &l.kind).collect();
    let mut t = Trainables::new(session, net, job, &kinds)?;
    let mut run = StageRun::start(session, job, &mut t)?;
    let device = session.device.clone();
    let inputs = step_inputs(job, &encoded, &labels, &device, &kinds, net.task);
    let eval_every = plan.eval_every.filter(|_| job.eval.is_some());
    if let (false, Some(_), Keep::Best) = (run.resumed, eval_every, plan.keep) {
        if let Some((f, score)) = job.start_eval.and_then(|f| Some((f, f.score()?))) {
            let point = BestPoint { step: 0, score };
            run.best = Some(Best::take(point, f.clone(), &t.params)?);
        }
    }
    let total = step_count(
        session,
        &inputs,
        eval_every,
        (&mut stream, &mut *net, &mut t),
        &mut run,
    )?;
    run.totals.steps = total;
    session.meta.progress.stage_steps = Some(total);

    session.reporter.begin(&plan.name, total, run.start);
    let mut dump = batch_dump()?;
    let mut clock = StageClock::start(session, &run.totals, plan)?;
    let pace_start = budget::PaceStart {
        seconds: clock.seconds(),
        step: run.start,
    };
    let mut last_eval: Option<Fidelity> = None;
    let mut total = total;
    let mut step = run.start;
    while step < total {
        let step_clock = Instant::now();
        let (out, lr, norm) = train_step(
            plan,
            &inputs,
            (&mut stream, &mut *net, &mut t),
            (step, total),
            dump.as_mut(),
        )?;
        run.totals.tokens += out.tokens;
        run.totals.final_loss = out.loss;
        let secs = step_clock.elapsed().as_secs_f64();
        last_eval = match (eval_every, &job.eval) {
            (Some(n), Some(data)) if (step + 1) % n == 0 || step + 1 == total => {
                let point = (step, total);
                Some(evaluate(
                    session, net, job, data, point, &t.params, &mut run,
                )?)
            }
            _ => None,
        };
        let tokens = clock.tokens_before + run.totals.tokens;
        log_step(
            session,
            plan,
            step,
            &out,
            (lr, norm, secs),
            tokens,
            &last_eval,
        )?;
        crate::fault::point("step");
        let replan_due = match eval_every {
            Some(_) => last_eval.is_some(),
            None => (step + 1) % budget::REPLAN_EVERY == 0,
        };
        if replan_due {
            total = budget::follow_pace(
                session,
                &mut run.totals,
                pace_start,
                (step + 1, total),
                clock.seconds(),
            );
        }
        checkpoint_if_due(session, job, (step, total), &mut clock, &t, &mut run)?;
        step += 1;
    }
    session.reporter.end();
    if let Some(b) = run.totals.budget.as_ref() {
        if let Some((per_step, steps)) = b.probe {
            session.notes.push(format!(
                "stage `{}`: the probe's {steps} steps at {per_step:.3}s a step became {} at the stage's own {:.3}s a step",
                plan.name, b.steps, b.seconds_per_step
            ));
        }
    }
    run.totals.seconds = clock.seconds();
    let eval = keep_best(session, plan, total, &t.params, &mut run, last_eval)?;
    session.meta.best = None;
    session.resume_from = None;
    Ok(StageOutcome {
        totals: run.totals,
        eval,
    })
}

/// The stage's examples tokenized (an encoder-decoder's as decoder rows and
/// sources), their labels, and the stream of batches over them.
fn encode_stage(
    session: &mut Session,
    net: &TrainableNet,
    job: &StageJob,
) -> Result<(Vec<Encoded>, Vec<Option<usize>>, BatchStream), Diag> {
    let plan = job.plan;
    let examples = batches::task_examples(job.examples, net.task);
    let max_len = plan.seq_len.min(net.config.max_positions).max(2);
    let (encoded, cut) = encode_with(&net.config, job.tokenizer, max_len, &examples, plan.seed)?;
    if cut > 0 {
        session.notes.push(format!(
            "stage `{}`: {cut} of {} examples are longer than {max_len} tokens and train on their first {max_len} (`seq_len`)",
            plan.name,
            examples.len()
        ));
    }
    let labels: Vec<Option<usize>> = examples.iter().map(|e| e.label).collect();
    let stream = BatchStream::new(
        encoded.iter().map(|e| e.0.len()).collect(),
        plan.batch_size,
        plan.seed,
    );
    Ok((encoded, labels, stream))
}

/// What a stage trains: the losses' state, the parameters (the student's
/// and the losses' projections) and the optimizer over them.
struct Trainables {
    state: LossState,
    params: Vec<Param>,
    opt: Optimizer,
}

impl Trainables {
    fn new(
        session: &Session,
        net: &TrainableNet,
        job: &StageJob,
        kinds: &[&LossPlanKind],
    ) -> Result<Self, Diag> {
        let plan = job.plan;
        let teacher_hidden = job
            .teacher
            .map_or(net.config.hidden_size, |t| t.config.hidden_size);
        let state = LossState::new(
            kinds,
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
        let opt =
            Optimizer::new(plan.optimizer, plan.weight_decay, &params).map_err(train_error)?;
        Ok(Trainables { state, params, opt })
    }
}

/// Where a stage is: the step it starts from, its totals so far, the best
/// evaluation kept, and, when it resumed, the step count its checkpoint holds.
struct StageRun {
    start: usize,
    totals: StageTotals,
    best: Option<Best>,
    resumed: bool,
    resumed_steps: Option<usize>,
}

impl StageRun {
    /// Step 0, or where the resumed checkpoint of this stage left it (its
    /// parameters, optimizer moments and memory bank restored into `t`).
    fn start(session: &Session, job: &StageJob, t: &mut Trainables) -> Result<Self, Diag> {
        let mut run = StageRun {
            start: 0,
            totals: StageTotals {
                name: job.plan.name.clone(),
                steps: 0,
                tokens: 0,
                seconds: 0.0,
                final_loss: f64::NAN,
                eval_seconds: 0.0,
                kept_step: None,
                budget: None,
            },
            best: None,
            resumed: false,
            resumed_steps: None,
        };
        let Some(ckpt) = session
            .resume_from
            .as_ref()
            .filter(|c| c.meta.progress.stage == job.index && !c.meta.progress.stage_done)
        else {
            return Ok(run);
        };
        restore_params(&t.params, &ckpt.state)?;
        let moments: BTreeMap<String, Tensor> = ckpt
            .state
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("opt.").map(|k| (k.to_string(), v.clone())))
            .collect();
        t.opt
            .restore(ckpt.meta.progress.step, &moments)
            .map_err(train_error)?;
        t.state.bank = ckpt.state.get("bank").cloned();
        t.state.bank_ids = ckpt.state.get("bank_ids").cloned();
        run.start = ckpt.meta.progress.step;
        run.resumed = true;
        run.resumed_steps = ckpt.meta.progress.stage_steps;
        run.best = Best::from_checkpoint(ckpt.meta.best, &ckpt.state, &t.params);
        if let Some(partial) = ckpt.meta.finished.iter().find(|t| t.name == PARTIAL) {
            run.totals.tokens = partial.tokens;
            run.totals.seconds = partial.seconds;
            run.totals.eval_seconds = partial.eval_seconds;
            run.totals.budget = partial.budget.clone();
        }
        Ok(run)
    }
}

/// What every step of the stage reads.
fn step_inputs<'a>(
    job: &'a StageJob<'a>,
    encoded: &'a [Encoded],
    labels: &'a [Option<usize>],
    device: &'a candle_core::Device,
    kinds: &[&LossPlanKind],
    task: Task,
) -> StepInputs<'a> {
    let needs_attention = kinds.iter().any(|k| {
        matches!(
            k,
            LossPlanKind::AttentionKl { .. } | LossPlanKind::AttentionMse { .. }
        )
    });
    let lm = matches!(task, Task::CausalLm | Task::Seq2Seq);
    StepInputs {
        job,
        encoded,
        labels,
        device,
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
    }
}

/// The stage's step count: the count a resumed stage's checkpoint holds,
/// else its steps, its epochs in steps, or what its time budget allows at
/// the step time a probe measures; capped by `--max-steps`.
fn step_count(
    session: &mut Session,
    inputs: &StepInputs,
    eval_every: Option<usize>,
    (stream, net, t): (&mut BatchStream, &mut TrainableNet, &mut Trainables),
    run: &mut StageRun,
) -> Result<usize, Diag> {
    let plan = inputs.job.plan;
    let total = match (run.resumed_steps, plan.length) {
        (Some(n), _) | (None, StageLength::Steps(n)) => n,
        (None, StageLength::Epochs(e)) => e * stream.per_epoch().div_ceil(plan.accumulate.max(1)),
        (None, StageLength::Budget(seconds)) => {
            let probe_clock = Instant::now();
            let planned = budget::probe(
                seconds,
                eval_every,
                inputs,
                (stream, net, &mut t.state, &t.params),
            )?;
            session.notes.push(format!(
                "stage `{}`: a budget of {} at {:.3}s a step (measured, evaluations included) gives {} steps",
                plan.name,
                duration_text(seconds),
                planned.seconds_per_step,
                planned.steps
            ));
            let steps = planned.steps;
            run.totals.budget = Some(planned);
            let probe_seconds = probe_clock.elapsed().as_secs_f64();
            run.totals.seconds += probe_seconds;
            run.totals.eval_seconds += probe_seconds;
            steps
        }
    };
    Ok(session.max_steps.map_or(total, |m| total.min(m)))
}

/// The stage's time and tokens before this run of it, and when it last
/// checkpointed.
struct StageClock {
    started: Instant,
    seconds_before: f64,
    tokens_before: usize,
    checkpoint_interval: std::time::Duration,
    last_checkpoint: Instant,
}

impl StageClock {
    fn start(session: &Session, totals: &StageTotals, plan: &StagePlan) -> Result<Self, Diag> {
        Ok(StageClock {
            started: Instant::now(),
            seconds_before: totals.seconds,
            // Tokens of the stages finished before this one.
            tokens_before: session
                .meta
                .finished
                .iter()
                .filter(|t| t.name != PARTIAL)
                .map(|t| t.tokens)
                .sum(),
            checkpoint_interval: checkpoint::interval(plan.checkpoint_minutes)?,
            last_checkpoint: Instant::now(),
        })
    }

    /// The stage's seconds so far, earlier runs of it included.
    fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }
}

/// One optimizer step: the summed gradients of the step's micro-batches,
/// refused when the loss is not finite, clipped, applied at the scheduled
/// learning rate. Returns the step's numbers, the rate and the gradient norm.
fn train_step(
    plan: &StagePlan,
    inputs: &StepInputs,
    (stream, net, t): (&mut BatchStream, &mut TrainableNet, &mut Trainables),
    (step, total): (usize, usize),
    dump: Option<&mut (std::path::PathBuf, std::fs::File)>,
) -> Result<(StepOutcome, f64, f64), Diag> {
    let lr = learning_rate(plan.lr, plan.schedule, plan.warmup, step, total);
    let mut out = forward_backward(inputs, stream, net, &mut t.state, &t.params, step, dump)?;
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
    let norm = clip_grad_norm(&mut out.grads, out.row_grad.as_mut(), plan.grad_clip)
        .map_err(train_error)?;
    t.opt
        .step(&t.params, &out.grads, out.row_grad.as_ref(), lr)
        .map_err(train_error)?;
    Ok((out, lr, norm))
}

/// Evaluates the student after `step`, reports it, and keeps its weights
/// when they are the best so far and the stage keeps its best.
fn evaluate(
    session: &Session,
    net: &mut TrainableNet,
    job: &StageJob,
    data: &EvalData,
    (step, total): (usize, usize),
    params: &[Param],
    run: &mut StageRun,
) -> Result<Fidelity, Diag> {
    let eval_clock = Instant::now();
    let f = evaluation::measure(net, data, job.tokenizer)?;
    run.totals.eval_seconds += eval_clock.elapsed().as_secs_f64();
    session.reporter.event(&format!(
        "step {}/{total}: {}",
        step + 1,
        evaluation::metrics_text(&f)
    ));
    if let Some(score) = f.score() {
        let better = run.best.as_ref().is_none_or(|b| score > b.point.score);
        if job.plan.keep == Keep::Best && better {
            let point = BestPoint {
                step: step + 1,
                score,
            };
            run.best = Some(Best::take(point, f.clone(), params)?);
        }
    }
    Ok(f)
}

/// Appends the step's record to the loss log and reports it; `tokens` are
/// those trained on so far, over all stages.
fn log_step(
    session: &mut Session,
    plan: &StagePlan,
    step: usize,
    out: &StepOutcome,
    (lr, norm, secs): (f64, f64, f64),
    tokens: usize,
    last_eval: &Option<Fidelity>,
) -> Result<(), Diag> {
    session.meta.progress.global_step += 1;
    session.log.append(StepRecord {
        stage: plan.name.clone(),
        global_step: session.meta.progress.global_step,
        step: step + 1,
        loss: out.loss,
        terms: out.terms.clone(),
        lr,
        grad_norm: norm,
        tokens_per_s: out.tokens as f64 / secs.max(1e-9),
        tokens,
        eval: last_eval.as_ref().map(|f| f.metrics.clone()),
    })?;
    session.reporter.step(&format!(
        "loss {:.4} lr {lr:.2e} {:.0} tok/s",
        out.loss,
        out.tokens as f64 / secs.max(1e-9)
    ));
    Ok(())
}

/// Records where the stage is after `step` and checkpoints it, every
/// `checkpoint_every` steps and every checkpoint interval; the last step's
/// progress is recorded, its checkpoint left to the end of the stage.
fn checkpoint_if_due(
    session: &mut Session,
    job: &StageJob,
    (step, total): (usize, usize),
    clock: &mut StageClock,
    t: &Trainables,
    run: &mut StageRun,
) -> Result<(), Diag> {
    let plan = job.plan;
    let done = step + 1 == total;
    let due = plan
        .checkpoint_every
        .is_some_and(|n| n > 0 && (step + 1) % n == 0)
        || clock.last_checkpoint.elapsed() >= clock.checkpoint_interval;
    if !(done || due) {
        return Ok(());
    }
    run.totals.seconds = clock.seconds();
    session.meta.progress.stage = job.index;
    session.meta.progress.stage_name = plan.name.clone();
    session.meta.progress.step = step + 1;
    session.meta.progress.stage_done = false;
    session.meta.best = run.best.as_ref().map(|b| b.point);
    if !done {
        save(
            session,
            (&t.params, &t.opt, &t.state),
            &run.totals,
            run.best.as_ref(),
        )?;
        clock.last_checkpoint = Instant::now();
    }
    Ok(())
}

/// With `keep: best`, restores the best evaluation's weights when they are
/// not the last step's and records the step kept. Returns the evaluation of
/// the weights the stage hands on.
fn keep_best(
    session: &Session,
    plan: &StagePlan,
    total: usize,
    params: &[Param],
    run: &mut StageRun,
    last_eval: Option<Fidelity>,
) -> Result<Option<Fidelity>, Diag> {
    let mut eval = last_eval;
    if let Some(b) = run.best.take().filter(|_| plan.keep == Keep::Best) {
        if b.point.step != total {
            b.restore(params)?;
            eval = b.fidelity.clone();
            session.reporter.event(&match b.point.step {
                0 => "kept the weights it started from: no evaluation during the stage did better"
                    .to_string(),
                step => format!("kept the weights of step {step}, its best evaluation"),
            });
        }
        run.totals.kept_step = Some(b.point.step);
    }
    Ok(eval)
}
