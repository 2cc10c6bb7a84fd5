//! Stages given a time budget (`budget: 45min`). The step count is fixed
//! when the stage starts: a few probe steps (forward, backward and update on
//! the stage's first batches, their updates undone) and, with `eval_every`,
//! one evaluation are timed, and the budget left after the probe is divided
//! by the time of a step plus its share of the evaluations. The count is
//! kept in every checkpoint, and a resumed run goes on from it.
//!
//! A probe sees a dozen batches and one evaluation; a stage's real pace
//! (longer batches, every evaluation, checkpoints, a busy machine) can be
//! far from it. So while less than [`REPLAN_UNTIL`] of a measured stage is
//! done, the count is planned again after every evaluation (every
//! [`REPLAN_EVERY`] steps without them) from the stage's own mean seconds
//! per step and the budget left ([`replan`]). The learning-rate schedule
//! follows the new count; re-planning stops before most of the decay.
//!
//! `PLCC_BUDGET_STEP_SECONDS=S` skips the probe and the re-planning and
//! takes `S` seconds per step (evaluations free), which makes budgets
//! deterministic for tests (a resumed run then reaches the same weights).

use std::time::Instant;

use candle_core::Tensor;

use super::batches::BatchStream;
use super::losses::LossState;
use super::optim::{Optimizer, Param};
use super::step::{forward_backward, StepInputs};
use super::student_net::TrainableNet;
use super::{evaluation, train_error, Session};
use crate::diag::Diag;
use crate::eval::report::{BudgetUse, StageTotals};

/// Replaces the measured seconds per step (tests).
pub const STEP_SECONDS_VAR: &str = "PLCC_BUDGET_STEP_SECONDS";

/// Probe steps: at least the first, then more until the probe has run
/// [`PROBE_SECONDS`], at most the last. The first step is left out of the
/// timing (first-touch allocations make it slow); the median of the others
/// is the step time, which a short burst of other work moves little.
const PROBE_STEPS: (usize, usize) = (3, 12);
const PROBE_SECONDS: f64 = 10.0;

/// Re-planning stops once this share of the planned steps is done.
pub const REPLAN_UNTIL: f64 = 0.5;
/// Without evaluations, a measured stage is re-planned every this many
/// steps.
pub const REPLAN_EVERY: usize = 500;

/// What the probe runs.
pub enum Probe {
    /// One step (forward, backward, update) on the stage's step `i` batches.
    Step(usize),
    /// One evaluation on the recipe's eval data.
    Eval,
}

/// The step count for a stage of `budget` seconds evaluating every
/// `eval_every` steps; `run` carries out what the probe asks for.
pub fn plan_steps(
    budget: f64,
    eval_every: Option<usize>,
    mut run: impl FnMut(Probe) -> Result<(), Diag>,
) -> Result<BudgetUse, Diag> {
    if let Some(seconds_per_step) = fixed_step_seconds()? {
        return Ok(BudgetUse {
            seconds: budget,
            seconds_per_step,
            steps: ((budget / seconds_per_step).floor() as usize).max(1),
            probe: None,
        });
    }
    let started = Instant::now();
    let mut step_seconds = Vec::with_capacity(PROBE_STEPS.1);
    let (least, most) = PROBE_STEPS;
    for i in 0..most {
        if i >= least && started.elapsed().as_secs_f64() >= PROBE_SECONDS {
            break;
        }
        let clock = Instant::now();
        run(Probe::Step(i))?;
        step_seconds.push(clock.elapsed().as_secs_f64());
    }
    let mut timed = step_seconds[1..].to_vec();
    timed.sort_by(f64::total_cmp);
    let per_step = timed[timed.len() / 2];
    let eval_share = match eval_every {
        Some(n) => {
            let clock = Instant::now();
            run(Probe::Eval)?;
            clock.elapsed().as_secs_f64() / n as f64
        }
        None => 0.0,
    };
    let seconds_per_step = (per_step + eval_share).max(1e-6);
    let left = (budget - started.elapsed().as_secs_f64()).max(0.0);
    Ok(BudgetUse {
        seconds: budget,
        seconds_per_step,
        steps: ((left / seconds_per_step).floor() as usize).max(1),
        probe: None,
    })
}

/// Where a measured stage's pace is taken from: the stage's seconds and
/// step when this run of it began training (after the probe).
#[derive(Clone, Copy, Debug)]
pub struct PaceStart {
    pub seconds: f64,
    pub step: usize,
}

/// The stage's new step count after `done` steps and `seconds` of a stage
/// planned as `plan`, when the count is still re-planned: at least `done`,
/// else what the budget left allows at the stage's mean seconds per step
/// since `start`. `None` when the count stands (a fixed step time, too few
/// steps measured, or past [`REPLAN_UNTIL`] of the plan).
pub fn replan(plan: &BudgetUse, start: PaceStart, done: usize, seconds: f64) -> Option<BudgetUse> {
    let measured = done.checked_sub(start.step).filter(|&n| n > 0)?;
    if fixed_step_seconds().ok().flatten().is_some()
        || done as f64 >= REPLAN_UNTIL * plan.steps as f64
    {
        return None;
    }
    let per_step = ((seconds - start.seconds) / measured as f64).max(1e-6);
    let left = (plan.seconds - seconds).max(0.0);
    let steps = (done + (left / per_step).floor() as usize).max(done).max(1);
    Some(BudgetUse {
        seconds: plan.seconds,
        seconds_per_step: per_step,
        steps,
        probe: Some(plan.probe.unwrap_or((plan.seconds_per_step, plan.steps))),
    })
}

fn fixed_step_seconds() -> Result<Option<f64>, Diag> {
    let Ok(text) = std::env::var(STEP_SECONDS_VAR) else {
        return Ok(None);
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Some)
        .ok_or_else(|| {
            Diag::new(
                "plcc::train::bad-env",
                format!("{STEP_SECONDS_VAR} must be a positive number of seconds, not `{text}`"),
            )
        })
}

/// Fixes the step count of a stage with a time budget of `seconds` by
/// timing probe steps (and an evaluation); the probe's updates are undone.
pub fn probe(
    seconds: f64,
    eval_every: Option<usize>,
    inputs: &StepInputs,
    (stream, net, state, params): (
        &mut BatchStream,
        &mut TrainableNet,
        &mut LossState,
        &[Param],
    ),
) -> Result<BudgetUse, Diag> {
    let job = inputs.job;
    let saved: Vec<Tensor> = params
        .iter()
        .map(|p| p.var.as_tensor().copy())
        .collect::<candle_core::Result<_>>()
        .map_err(train_error)?;
    let mut probe_opt =
        Optimizer::new(job.plan.optimizer, job.plan.weight_decay, params).map_err(train_error)?;
    let planned = plan_steps(seconds, eval_every, |probe| match probe {
        Probe::Step(i) => {
            let out = forward_backward(inputs, stream, net, state, params, i, None)?;
            probe_opt
                .step(params, &out.grads, out.row_grad.as_ref(), 0.0)
                .map_err(train_error)
        }
        Probe::Eval => match &job.eval {
            Some(data) => evaluation::measure(net, data, job.tokenizer).map(|_| ()),
            None => Ok(()),
        },
    })?;
    for (p, t) in params.iter().zip(&saved) {
        p.var.set(t).map_err(train_error)?;
    }
    state.bank = None;
    state.bank_ids = None;
    Ok(planned)
}

/// The stage's step count after `done` steps of `total` and `seconds`: a
/// measured time budget's count planned again at the stage's own pace while
/// that is still allowed ([`replan`]), capped by `--max-steps`, with the
/// stage's totals, its progress and the reporter told; else `total`.
pub fn follow_pace(
    session: &mut Session,
    totals: &mut StageTotals,
    start: PaceStart,
    (done, total): (usize, usize),
    seconds: f64,
) -> usize {
    let Some(new) = totals
        .budget
        .as_ref()
        .and_then(|b| replan(b, start, done, seconds))
    else {
        return total;
    };
    let steps = session.max_steps.map_or(new.steps, |m| new.steps.min(m));
    totals.budget = Some(new);
    if steps != total {
        totals.steps = steps;
        session.meta.progress.stage_steps = Some(steps);
        session.reporter.resize(steps);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_steps_and_evaluates_before_the_count_is_fixed() {
        if std::env::var(STEP_SECONDS_VAR).is_ok() {
            return;
        }
        let mut asked = Vec::new();
        let b = plan_steps(3600.0, Some(10), |p| {
            asked.push(match p {
                Probe::Step(i) => format!("step {i}"),
                Probe::Eval => "eval".into(),
            });
            Ok(())
        })
        .unwrap();
        // Instant steps: the probe runs its most steps within its seconds.
        let steps: Vec<String> = (0..PROBE_STEPS.1).map(|i| format!("step {i}")).collect();
        assert_eq!(asked[..PROBE_STEPS.1], steps[..]);
        assert_eq!(asked[PROBE_STEPS.1..], ["eval"]);
        assert!(b.steps > 1000, "{}", b.steps);
        assert_eq!(b.seconds, 3600.0);
    }

    #[test]
    fn a_stage_slower_than_its_probe_is_replanned_to_end_within_its_budget() {
        if std::env::var(STEP_SECONDS_VAR).is_ok() {
            return;
        }
        let plan = BudgetUse {
            seconds: 3000.0,
            seconds_per_step: 0.2,
            steps: 15_000,
            probe: None,
        };
        // The probe took 10 s; 1,000 steps then took 300 s (0.3 s a step).
        let start = PaceStart {
            seconds: 10.0,
            step: 0,
        };
        let new = replan(&plan, start, 1000, 310.0).unwrap();
        assert_eq!(new.steps, 1000 + (2690.0f64 / 0.3).floor() as usize);
        assert!((new.seconds_per_step - 0.3).abs() < 1e-9);
        assert_eq!(new.probe, Some((0.2, 15_000)));
        // Re-planned again, the probe's plan is the one remembered.
        let again = replan(&new, start, 2000, 610.0).unwrap();
        assert_eq!(again.probe, Some((0.2, 15_000)));
        // Past half of the plan, the count stands; nothing measured yet, too.
        assert!(replan(&plan, start, 7500, 2260.0).is_none());
        assert!(replan(&plan, start, 0, 10.0).is_none());
        // Out of time: the stage ends at the step it has reached.
        assert_eq!(replan(&plan, start, 1000, 3500.0).unwrap().steps, 1000);
    }
}
