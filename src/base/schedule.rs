//! Training and scoring vocabulary the plan carries to lowering: stage
//! lengths, optimizers, learning-rate schedules, contrastive negatives, which
//! outputs a loss or an importance score covers, and how importance is scored.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Importance {
    Magnitude,
    /// |activation × gradient| accumulated over batches.
    Taylor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExitScope {
    /// Sum over every exit and the final layer (COST-EFF).
    AllExits,
    /// The final layer only.
    LastExit,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum StageLength {
    Steps(usize),
    Epochs(usize),
    /// A time budget in seconds: the step count is fixed when the stage
    /// starts, from its measured step time.
    Budget(f64),
}

/// Which weights a stage hands on when it evaluates during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Keep {
    /// The weights of the stage's best evaluation.
    Best,
    /// The weights after its last step.
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OptimizerKind {
    AdamW,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LrScheduleKind {
    Linear,
    Cosine,
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Negatives {
    /// Other tokens in the batch.
    Batch,
    /// A memory bank of this many teacher token representations.
    Memory(usize),
}
