//! Stages given a time budget (`budget: 45min`). The step count is fixed
//! when the stage starts: a few probe steps (forward, backward and update on
//! the stage's first batches, their updates undone) and, with `eval_every`,
//! one evaluation are timed, and the budget left after the probe is divided
//! by the time of a step plus its share of the evaluations. The count is
//! kept in every checkpoint, so a resumed run trains exactly as many steps
//! as the run it continues (and reaches the same weights).
//!
//! `PLCC_BUDGET_STEP_SECONDS=S` skips the probe and takes `S` seconds per
//! step (evaluations free), which makes budgets deterministic for tests.

use std::time::Instant;

use crate::diag::Diag;
use crate::eval::report::BudgetUse;

/// Replaces the measured seconds per step (tests).
pub const STEP_SECONDS_VAR: &str = "PLCC_BUDGET_STEP_SECONDS";

/// Probe steps timed; the first is left out of the mean (first-touch
/// allocations make it slow).
const PROBE_STEPS: usize = 3;

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
        });
    }
    let started = Instant::now();
    let mut step_seconds = Vec::with_capacity(PROBE_STEPS);
    for i in 0..PROBE_STEPS {
        let clock = Instant::now();
        run(Probe::Step(i))?;
        step_seconds.push(clock.elapsed().as_secs_f64());
    }
    let timed = &step_seconds[1..];
    let per_step = timed.iter().sum::<f64>() / timed.len() as f64;
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
        assert_eq!(asked, ["step 0", "step 1", "step 2", "eval"]);
        assert!(b.steps > 1000, "{}", b.steps);
        assert_eq!(b.seconds, 3600.0);
    }
}
