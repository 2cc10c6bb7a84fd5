//! The most any exit policy could give on recorded observations. An oracle
//! that knows every exit's score for every sample sends each sample where
//! `FLOPs + λ·(score lost)` is least, with `λ` the smallest that keeps the
//! mean score within a given loss of the full-depth mean. Such a choice
//! costs the fewest FLOPs of any policy that scores as well (Lagrangian
//! optimality), so no criterion (entropy, max-prob, similarity, patience)
//! on the same exits is faster at the oracle's score; the oracle's score is
//! at the allowed loss up to the step one sample's move makes. The bound
//! says whether a calibration falls short because of its criterion or
//! because the exits' outputs are too far from the full-depth output.

use serde::Serialize;

use super::cost::ExitCosts;
use super::observe::Observation;

/// What the oracle reaches on the calibration data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OracleBound {
    /// The loss of mean score it was allowed.
    pub max_loss: f64,
    pub avg_exit_layer: f64,
    /// FLOPs without exits over the oracle's FLOPs (it evaluates only the
    /// exit head a sample leaves at).
    pub est_speedup: f64,
    /// Mean score of its outputs.
    pub fidelity: f64,
    /// Samples leaving at each exit, then at the last layer.
    pub exits_taken: Vec<usize>,
}

/// One place a sample can leave: its FLOPs and its score there.
#[derive(Clone, Copy)]
struct Choice {
    flops: f64,
    score: f64,
}

/// The oracle's bound on `observations` (exits after the layers `after` of
/// a `depth`-layer model) when the mean score may fall `max_loss` below the
/// full-depth mean.
pub fn bound(
    observations: &[Observation],
    after: &[usize],
    depth: usize,
    costs: &mut ExitCosts,
    max_loss: f64,
) -> OracleBound {
    let exits = after.len();
    let only = |e: usize| (0..exits).map(|i| i == e).collect::<Vec<bool>>();
    let choices: Vec<Vec<Choice>> = observations
        .iter()
        .map(|obs| {
            let mut c: Vec<Choice> = (0..exits)
                .map(|e| Choice {
                    flops: costs.leaving_at(obs.tokens, Some(e), &only(e)) as f64,
                    score: obs.scores.get(e).copied().unwrap_or(f64::NEG_INFINITY),
                })
                .collect();
            c.push(Choice {
                flops: costs.without_exits(obs.tokens) as f64,
                score: obs.final_score,
            });
            c
        })
        .collect();
    let n = observations.len().max(1) as f64;
    let floor = observations.iter().map(|o| o.final_score).sum::<f64>() / n - max_loss;
    // The mean score rises with λ; bisect log λ for the least that holds it.
    let (mut lo, mut hi) = (-6f64, 30f64);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if mean_score(&choices, 10f64.powf(mid)) >= floor {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let lambda = 10f64.powf(hi);
    let mut exits_taken = vec![0usize; exits + 1];
    let (mut layers, mut flops, mut score) = (0usize, 0f64, 0f64);
    let mut base = 0f64;
    for c in &choices {
        let pick = best(c, lambda);
        exits_taken[pick] += 1;
        layers += after.get(pick).copied().unwrap_or(depth);
        flops += c[pick].flops;
        score += c[pick].score;
        // The last choice is full depth: the FLOPs without exits.
        base += c[exits].flops;
    }
    OracleBound {
        max_loss,
        avg_exit_layer: layers as f64 / n,
        est_speedup: base / flops.max(1.0),
        fidelity: score / n,
        exits_taken,
    }
}

/// The choice with the least `FLOPs + λ·(1 − score)`, the earliest of equals.
fn best(choices: &[Choice], lambda: f64) -> usize {
    let price = |c: &Choice| c.flops + lambda * (1.0 - c.score);
    let mut pick = choices.len() - 1;
    for (i, c) in choices.iter().enumerate().rev() {
        if price(c) <= price(&choices[pick]) {
            pick = i;
        }
    }
    pick
}

fn mean_score(choices: &[Vec<Choice>], lambda: f64) -> f64 {
    let total: f64 = choices.iter().map(|c| c[best(c, lambda)].score).sum();
    total / choices.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::ExitRecord;
    use crate::base::{builtin, ExitCriterion, ExitHead, Pooling, Task};

    fn obs(scores: &[f64]) -> Observation {
        Observation {
            tokens: 12,
            signals: vec![None; scores.len()],
            scores: scores.to_vec(),
            final_score: 1.0,
        }
    }

    #[test]
    fn the_oracle_spends_its_loss_on_the_samples_that_lose_least() {
        let config = builtin::config("tiny-bert").unwrap();
        let depth = config.num_layers();
        let exits = [ExitRecord {
            after: 1,
            head: ExitHead::Pooler,
            criterion: ExitCriterion::Similarity,
            threshold: None,
            patience: None,
        }];
        let mut costs = ExitCosts::new(
            &config,
            Task::Embedding {
                pooling: Pooling::Mean,
            },
            &exits,
        );
        // Two samples lose 0.001 at the exit, two lose 0.1.
        let observations = [obs(&[0.999]), obs(&[0.9]), obs(&[0.999]), obs(&[0.9])];
        let strict = bound(&observations, &[1], depth, &mut costs, 0.0);
        assert_eq!(strict.exits_taken, [0, 4]);
        assert!((strict.est_speedup - 1.0).abs() < 1e-9);
        let some = bound(&observations, &[1], depth, &mut costs, 0.01);
        assert_eq!(some.exits_taken, [2, 2]);
        assert!((some.fidelity - 0.9995).abs() < 1e-9);
        assert!(some.est_speedup > 1.0);
        let all = bound(&observations, &[1], depth, &mut costs, 0.1);
        assert_eq!(all.exits_taken, [4, 0]);
        assert!(all.est_speedup > some.est_speedup);
        assert!((all.avg_exit_layer - 1.0).abs() < 1e-9);
    }
}
