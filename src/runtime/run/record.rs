//! What running one input gives: its output [`Record`] (embedding, logits,
//! a classifier's label and probabilities, exit layer, generated tokens), and the diagnostic of a failed forward
//! pass.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::base::LabelSet;
use crate::diag::Diag;
use crate::runtime::run::exit_rule::{argmax, cosine, softmax};

/// The output for one input line.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Record {
    /// Encoders: the final hidden state pooled as the model's pipeline says
    /// (mean over real tokens unless it says CLS; unit length when it
    /// normalizes), or the output of the embedding exit the input left at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    /// Classifier outputs (encoders with a head), next-token logits at the
    /// last token (causal LMs), or an encoder-decoder's next-token logits
    /// after its decoder start token and the input's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<f32>>,
    /// A classifier's predicted label: the name of the largest logit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A classifier's probability of each label (softmax of the logits),
    /// by label name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<BTreeMap<String, f64>>,
    /// The layer whose exit produced the result (the last layer for inputs
    /// that ran to the end), for models with exits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_layer: Option<usize>,
    /// Greedily generated token ids (an encoder-decoder under `--generate`),
    /// the end-of-sequence token included when it was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<u32>>,
    /// `tokens` as text, special tokens left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Record {
    /// Adds a classifier's predicted label and the probability of each of
    /// `labels` from the logits (kept as they are when their number is not
    /// the labels').
    pub fn name_labels(&mut self, labels: &LabelSet) {
        let Some(logits) = self.logits.as_ref().filter(|l| l.len() == labels.len()) else {
            return;
        };
        self.label = labels.name(argmax(logits)).map(str::to_string);
        self.probabilities = Some(
            labels
                .names()
                .iter()
                .cloned()
                .zip(softmax(logits))
                .collect(),
        );
    }

    /// How close this output is to `other`: argmax agreement (1 or 0) when
    /// both have logits, else the cosine of their embeddings; `None` when
    /// they share neither or the lengths differ.
    pub fn agreement(&self, other: &Record) -> Option<f64> {
        match (
            (&self.logits, &other.logits),
            (&self.embedding, &other.embedding),
        ) {
            ((Some(a), Some(b)), _) if a.len() == b.len() => {
                Some(f64::from(u8::from(argmax(a) == argmax(b))))
            }
            (_, (Some(a), Some(b))) if a.len() == b.len() => Some(cosine(a, b)),
            _ => None,
        }
    }
}

/// The diagnostic of a failed forward pass.
pub fn failed(e: candle_core::Error) -> Diag {
    Diag::new("plcc::run::forward-failed", "the forward pass failed").note(e.to_string())
}
