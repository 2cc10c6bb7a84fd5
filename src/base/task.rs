//! What a model is for (`Task`) and how a head reduces a sequence of hidden
//! states to one vector (`Pooling`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Task {
    /// Sentence embedding by pooling the final hidden states.
    Embedding { pooling: Pooling },
    /// Sequence classification with `labels` classes.
    Classification { labels: usize },
    /// Next-token prediction.
    CausalLm,
    /// Sequence to sequence (an encoder-decoder): the decoder predicts the
    /// target's next token from the source and the target so far.
    Seq2Seq,
}

impl Task {
    /// The number of classes of a classification task.
    pub fn labels(self) -> Option<usize> {
        match self {
            Task::Classification { labels } => Some(labels),
            _ => None,
        }
    }

    /// The task's name in recipes and reports (`embedding`,
    /// `classification`, `causal_lm`, `seq2seq`).
    pub fn name(self) -> &'static str {
        match self {
            Task::Embedding { .. } => "embedding",
            Task::Classification { .. } => "classification",
            Task::CausalLm => "causal_lm",
            Task::Seq2Seq => "seq2seq",
        }
    }
}

/// How a head reduces `[batch, seq, hidden]` to `[batch, hidden]`. A recipe
/// chooses `mean` or `cls` for an embedding task; classifiers pool the first
/// token and causal LMs the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Pooling {
    /// The mean over real (non-padding) tokens.
    Mean,
    /// The first token (`[CLS]`).
    Cls,
    /// The last real token (causal models).
    Last,
}

impl Pooling {
    /// How a task's heads pool: `[CLS]` for classifiers and CLS-pooled
    /// embeddings, the mean for other embeddings, the last token for LMs.
    pub fn of_task(task: Task) -> Pooling {
        match task {
            Task::Embedding { pooling } => pooling,
            Task::Classification { .. } => Pooling::Cls,
            Task::CausalLm | Task::Seq2Seq => Pooling::Last,
        }
    }
}
