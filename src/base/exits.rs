//! Early-exit vocabulary: the kind of head an exit has, the criterion that
//! decides to stop, and what a threshold is calibrated for.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ExitHead {
    /// Linear classifier over the pooled representation (classification / LM head for causal LMs).
    Classifier,
    /// Pooling head (optionally with a projection) for embedding tasks.
    Pooler,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ExitCriterion {
    Entropy,
    MaxProb,
    /// `patience` consecutive exits agree.
    Patience,
    /// Cosine similarity of consecutive exits' representations (embedding models).
    Similarity,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum CalibrationTarget {
    AvgExitLayer(f64),
    Speedup(f64),
    /// Maximum allowed fidelity loss, as a fraction (1% = 0.01).
    MaxFidelityLoss(f64),
}
