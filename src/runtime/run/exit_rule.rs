//! When a sample leaves at an exit. Each exit has a policy (its criterion and
//! threshold, from the artifact manifest); each sample carries a `Track` of
//! what the exits before saw. `signal` turns one exit output row into the
//! number the criterion compares, `ExitPolicy::meets` compares it. The
//! runtime and `plcc calibrate` both decide through these two functions.
//!
//! - entropy: entropy of softmax(logits), leaves when ≤ threshold;
//! - max_prob: largest softmax probability, leaves when ≥ threshold;
//! - patience: how many consecutive exits (this one included) predict the
//!   same argmax, leaves when ≥ `patience`;
//! - similarity: cosine of this exit's output with the previous exit's,
//!   leaves when ≥ threshold (the first exit has no predecessor and never
//!   leaves).

use crate::base::{ExitCriterion, ExitHead};

/// The exit policy of one exit head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExitPolicy {
    /// What the exit produces: a pooler gives embeddings, a classifier logits.
    pub head: ExitHead,
    pub criterion: ExitCriterion,
    pub threshold: Option<f64>,
    pub patience: Option<usize>,
}

impl ExitPolicy {
    /// True when samples may leave here (a threshold, or a patience for the
    /// patience criterion, is set).
    pub fn active(&self) -> bool {
        match self.criterion {
            ExitCriterion::Patience => self.patience.is_some(),
            _ => self.threshold.is_some(),
        }
    }

    /// Whether `signal` (from `signal`) lets the sample leave.
    pub fn meets(&self, signal: f64) -> bool {
        match self.criterion {
            ExitCriterion::Entropy => self.threshold.is_some_and(|t| signal <= t),
            ExitCriterion::MaxProb | ExitCriterion::Similarity => {
                self.threshold.is_some_and(|t| signal >= t)
            }
            ExitCriterion::Patience => self.patience.is_some_and(|k| signal >= k as f64),
        }
    }

    /// True when the criterion reads class probabilities (needs logits).
    pub fn needs_logits(criterion: ExitCriterion) -> bool {
        !matches!(criterion, ExitCriterion::Similarity)
    }
}

/// What one sample's earlier exits produced.
#[derive(Debug, Clone, Default)]
pub struct Track {
    previous: Option<Vec<f32>>,
    previous_argmax: Option<usize>,
    streak: usize,
}

/// The criterion's signal for one exit output `row`, updating `track`.
/// `None` when the criterion cannot decide yet (similarity at the first exit).
pub fn signal(criterion: ExitCriterion, row: &[f32], track: &mut Track) -> Option<f64> {
    let top = argmax(row);
    track.streak = if track.previous_argmax == Some(top) {
        track.streak + 1
    } else {
        1
    };
    track.previous_argmax = Some(top);
    let previous = track.previous.replace(row.to_vec());
    match criterion {
        ExitCriterion::Entropy => Some(softmax_entropy(row)),
        ExitCriterion::MaxProb => Some(softmax_max(row)),
        ExitCriterion::Patience => Some(track.streak as f64),
        ExitCriterion::Similarity => previous.map(|p| cosine(&p, row)),
    }
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

/// Index of the largest value (the first on ties; 0 for an empty row).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// Softmax probabilities of `logits`, computed stably in f64.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Entropy (nats) of softmax(`logits`).
pub fn softmax_entropy(logits: &[f32]) -> f64 {
    -softmax(logits)
        .into_iter()
        .filter(|&p| p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>()
}

/// The largest probability of softmax(`logits`).
pub fn softmax_max(logits: &[f32]) -> f64 {
    softmax(logits).into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(
        criterion: ExitCriterion,
        threshold: Option<f64>,
        patience: Option<usize>,
    ) -> ExitPolicy {
        ExitPolicy {
            head: ExitHead::Classifier,
            criterion,
            threshold,
            patience,
        }
    }

    #[test]
    fn entropy_and_max_prob_of_known_rows() {
        let uniform = [0.0f32; 4];
        assert!((softmax_entropy(&uniform) - 4f64.ln()).abs() < 1e-9);
        assert!((softmax_max(&uniform) - 0.25).abs() < 1e-12);
        let sharp = [100.0f32, 0.0, 0.0];
        assert!(softmax_entropy(&sharp) < 1e-6);
        assert!(softmax_max(&sharp) > 0.999_999);
    }

    #[test]
    fn patience_counts_consecutive_agreeing_exits() {
        let mut t = Track::default();
        let rows = [
            [1.0f32, 0.0],
            [2.0, 0.0],
            [0.0, 1.0],
            [0.0, 3.0],
            [0.0, 2.0],
        ];
        let streaks: Vec<f64> = rows
            .iter()
            .map(|r| signal(ExitCriterion::Patience, r, &mut t).unwrap())
            .collect();
        assert_eq!(streaks, vec![1.0, 2.0, 1.0, 2.0, 3.0]);
        let p = policy(ExitCriterion::Patience, None, Some(3));
        assert!(p.active() && !p.meets(2.0) && p.meets(3.0));
    }

    #[test]
    fn similarity_compares_with_the_previous_exit() {
        let mut t = Track::default();
        assert_eq!(signal(ExitCriterion::Similarity, &[1.0, 0.0], &mut t), None);
        let s = signal(ExitCriterion::Similarity, &[1.0, 1.0], &mut t).unwrap();
        assert!((s - 0.5f64.sqrt()).abs() < 1e-9);
        let p = policy(ExitCriterion::Similarity, Some(0.7), None);
        assert!(p.meets(s) && !p.meets(0.69));
        assert!(!policy(ExitCriterion::Similarity, None, None).active());
        assert!(policy(ExitCriterion::Entropy, Some(0.3), None).meets(0.3));
        assert!(!policy(ExitCriterion::Entropy, Some(0.3), None).meets(0.31));
    }
}
