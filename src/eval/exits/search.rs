//! Offline threshold search over recorded observations. A candidate setting
//! (a threshold, or a patience) is applied to every sample as the runtime
//! would: the sample leaves at the first exit whose signal meets the policy.
//! Each setting yields an average exit layer, the average FLOPs per sample
//! and the speed-up they give over the same model without exits, and the
//! mean score of the outputs (fidelity to the full-depth output, or
//! accuracy against gold labels: see `observe::Scoring`).
//! Looser settings never make a sample leave later, so the settings form a
//! curve from "nobody leaves" to "everyone leaves as early as possible".

use serde::Serialize;

use super::cost::ExitCosts;
use super::observe::Observation;
use crate::artifact::ExitRecord;
use crate::base::{CalibrationTarget, ExitCriterion};
use crate::runtime::ExitPolicy;

/// The outcome of one exit setting on the calibration data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The threshold (entropy, max_prob, similarity) or patience; `None`:
    /// exits off, every sample runs to the last layer.
    pub setting: Option<f64>,
    pub avg_exit_layer: f64,
    /// Mean FLOPs per sample with this setting (the compiler's cost model).
    pub avg_flops: f64,
    /// Estimated from FLOPs: the model without exits / with this setting.
    pub est_speedup: f64,
    /// Mean score of the outputs: fidelity to the full-depth output, or
    /// accuracy for observations scored against gold labels.
    pub fidelity: f64,
    /// Worst score of any sample.
    pub min_fidelity: f64,
    /// Samples leaving at each exit (manifest order), then at the last layer.
    pub exits_taken: Vec<usize>,
}

/// `policies` with `setting` applied to each.
pub fn with_setting(policies: &[ExitPolicy], setting: Option<f64>) -> Vec<ExitPolicy> {
    policies
        .iter()
        .map(|p| {
            let mut p = *p;
            match p.criterion {
                ExitCriterion::Patience => p.patience = setting.map(|k| k.round() as usize),
                _ => p.threshold = setting,
            }
            p
        })
        .collect()
}

/// The setting an exit record carries: its patience for the patience
/// criterion, else its threshold (`None`: off).
pub fn setting_of(exit: &ExitRecord) -> Option<f64> {
    match exit.criterion {
        ExitCriterion::Patience => exit.patience.map(|p| p as f64),
        _ => exit.threshold,
    }
}

/// A key that orders settings of `criterion` strict to loose: exits off
/// first, then entropy thresholds rising, other thresholds and patiences
/// falling.
pub fn strictness(criterion: ExitCriterion, setting: Option<f64>) -> f64 {
    match setting {
        None => f64::NEG_INFINITY,
        Some(t) if criterion == ExitCriterion::Entropy => t,
        Some(t) => -t,
    }
}

/// Applies `setting` to every observation.
pub fn evaluate(
    observations: &[Observation],
    policies: &[ExitPolicy],
    after: &[usize],
    depth: usize,
    costs: &mut ExitCosts,
    setting: Option<f64>,
) -> Outcome {
    let policies = with_setting(policies, setting);
    let evaluated: Vec<bool> = policies.iter().map(ExitPolicy::active).collect();
    let mut exits_taken = vec![0usize; after.len() + 1];
    let (mut layers, mut fidelity, mut min_fidelity) = (0usize, 0f64, 1f64);
    let (mut base, mut cost) = (0u64, 0u64);
    for obs in observations {
        let exit = policies.iter().enumerate().position(|(e, p)| {
            p.active()
                && obs
                    .signals
                    .get(e)
                    .copied()
                    .flatten()
                    .is_some_and(|s| p.meets(s))
        });
        let (layer, f) = match exit {
            Some(e) => (after[e], obs.scores[e]),
            None => (depth, obs.final_score),
        };
        exits_taken[exit.unwrap_or(after.len())] += 1;
        layers += layer;
        fidelity += f;
        min_fidelity = min_fidelity.min(f);
        base += costs.without_exits(obs.tokens);
        cost += costs.leaving_at(obs.tokens, exit, &evaluated);
    }
    let n = observations.len().max(1) as f64;
    Outcome {
        setting,
        avg_exit_layer: layers as f64 / n,
        avg_flops: cost as f64 / n,
        est_speedup: base as f64 / cost.max(1) as f64,
        fidelity: fidelity / n,
        min_fidelity,
        exits_taken,
    }
}

/// Every distinct finite signal, sorted strict to loose (entropy leaves
/// below its threshold, the other criteria above).
fn signals_strict_to_loose(observations: &[Observation], criterion: ExitCriterion) -> Vec<f64> {
    let mut values: Vec<f64> = observations
        .iter()
        .flat_map(|o| o.signals.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    if criterion != ExitCriterion::Entropy {
        values.reverse();
    }
    values
}

/// A threshold with the same outcome as `setting` on the observations, set
/// halfway to the next looser recorded signal, so that rounding
/// differences between calibration and the runtime (smaller batches,
/// shorter padding) do not flip samples that sit exactly on it.
pub fn with_margin(
    observations: &[Observation],
    criterion: ExitCriterion,
    setting: Option<f64>,
) -> Option<f64> {
    let t = setting?;
    if criterion == ExitCriterion::Patience {
        return Some(t);
    }
    let values = signals_strict_to_loose(observations, criterion);
    let looser = values
        .iter()
        .position(|&v| v == t)
        .and_then(|i| values.get(i + 1));
    Some(looser.map_or(t, |l| (l + t) / 2.0))
}

/// Candidate settings, strictest first: exits off, then every distinct
/// recorded signal (thinned to at most `limit`) from strict to loose, or
/// every patience from the number of exits down to 1.
pub fn candidates(
    observations: &[Observation],
    criterion: ExitCriterion,
    exits: usize,
    limit: usize,
) -> Vec<Option<f64>> {
    let mut out = vec![None];
    if criterion == ExitCriterion::Patience {
        out.extend((1..=exits).rev().map(|k| Some(k as f64)));
        return out;
    }
    let values = signals_strict_to_loose(observations, criterion);
    let step = values.len().div_ceil(limit.max(1)).max(1);
    let mut thinned: Vec<f64> = values.iter().copied().step_by(step).collect();
    if let Some(&last) = values.last() {
        if thinned.last() != Some(&last) {
            thinned.push(last);
        }
    }
    out.extend(thinned.into_iter().map(Some));
    out
}

/// The outcome that best meets `target`, or `None` when no setting reaches it.
/// - average exit layer: the setting whose average is closest to the target
///   from below (the most conservative that reaches it);
/// - speed-up: the smallest estimated speed-up at or above the target;
/// - fidelity loss: the largest speed-up whose loss is within the bound.
pub fn choose(outcomes: &[Outcome], target: CalibrationTarget) -> Option<&Outcome> {
    let better_fidelity = |a: &&Outcome, b: &&Outcome| a.fidelity.total_cmp(&b.fidelity);
    match target {
        CalibrationTarget::AvgExitLayer(t) => outcomes
            .iter()
            .filter(|o| o.avg_exit_layer <= t + 1e-9)
            .max_by(|a, b| {
                a.avg_exit_layer
                    .total_cmp(&b.avg_exit_layer)
                    .then(better_fidelity(a, b))
            }),
        CalibrationTarget::Speedup(s) => outcomes
            .iter()
            .filter(|o| o.est_speedup >= s - 1e-9)
            .min_by(|a, b| {
                a.est_speedup
                    .total_cmp(&b.est_speedup)
                    .then(better_fidelity(b, a))
            }),
        CalibrationTarget::MaxFidelityLoss(l) => outcomes
            .iter()
            .filter(|o| 1.0 - o.fidelity <= l + 1e-12)
            .max_by(|a, b| {
                a.est_speedup
                    .total_cmp(&b.est_speedup)
                    .then(better_fidelity(a, b))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(setting: f64, avg: f64, speedup: f64, fidelity: f64) -> Outcome {
        Outcome {
            setting: Some(setting),
            avg_exit_layer: avg,
            avg_flops: 0.0,
            est_speedup: speedup,
            fidelity,
            min_fidelity: fidelity,
            exits_taken: Vec::new(),
        }
    }

    fn observations(signals: &[&[Option<f64>]]) -> Vec<Observation> {
        signals
            .iter()
            .map(|s| Observation {
                tokens: 8,
                signals: s.to_vec(),
                scores: vec![0.9; s.len()],
                final_score: 1.0,
            })
            .collect()
    }

    #[test]
    fn choose_meets_each_kind_of_target() {
        let curve = [
            outcome(0.99, 6.0, 1.0, 1.0),
            outcome(0.95, 4.5, 1.3, 0.97),
            outcome(0.90, 3.2, 1.8, 0.9),
            outcome(0.80, 2.0, 2.9, 0.8),
        ];
        let pick = |t| choose(&curve, t).map(|o| o.setting);
        assert_eq!(pick(CalibrationTarget::AvgExitLayer(4.0)), Some(Some(0.90)));
        assert_eq!(pick(CalibrationTarget::AvgExitLayer(1.5)), None);
        assert_eq!(pick(CalibrationTarget::Speedup(1.5)), Some(Some(0.90)));
        assert_eq!(pick(CalibrationTarget::Speedup(3.0)), None);
        assert_eq!(
            pick(CalibrationTarget::MaxFidelityLoss(0.05)),
            Some(Some(0.95))
        );
    }

    #[test]
    fn candidates_run_strict_to_loose_and_margins_keep_the_outcome() {
        let obs = observations(&[&[None, Some(0.5), Some(0.9)], &[None, Some(0.7), Some(0.8)]]);
        let sim = candidates(&obs, ExitCriterion::Similarity, 3, 100);
        assert_eq!(sim, vec![None, Some(0.9), Some(0.8), Some(0.7), Some(0.5)]);
        let ent = candidates(&obs, ExitCriterion::Entropy, 3, 100);
        assert_eq!(ent[1], Some(0.5));
        let pat = candidates(&obs, ExitCriterion::Patience, 3, 100);
        assert_eq!(pat, vec![None, Some(3.0), Some(2.0), Some(1.0)]);
        assert_eq!(candidates(&obs, ExitCriterion::Similarity, 3, 2).len(), 4);
        // Halfway to the next looser signal; the loosest stays as it is.
        let m = with_margin(&obs, ExitCriterion::Similarity, Some(0.8)).unwrap();
        assert!((m - 0.75).abs() < 1e-12);
        assert_eq!(
            with_margin(&obs, ExitCriterion::Similarity, Some(0.5)),
            Some(0.5)
        );
        let e = with_margin(&obs, ExitCriterion::Entropy, Some(0.7)).unwrap();
        assert!((e - 0.75).abs() < 1e-12);
        assert_eq!(with_margin(&obs, ExitCriterion::Entropy, None), None);
    }
}
