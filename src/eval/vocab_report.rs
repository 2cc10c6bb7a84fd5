//! The report's vocabulary section: what vocabulary pruning kept and how
//! much of the data and the evaluation text the kept pieces cover.

use serde::{Deserialize, Serialize};

/// The report's vocabulary section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VocabReport {
    /// Data set the pieces were counted on, and the rule.
    pub data: String,
    pub rule: String,
    /// Rows of the teacher's word embedding, and of the student's.
    pub before: usize,
    pub after: usize,
    /// Pieces kept whatever the data says.
    pub always_kept: usize,
    /// Bytes the smaller word embedding saves, at the student's storage
    /// (rank and quantizer) of that table.
    pub bytes_saved: u64,
    /// Teacher tokens of the vocabulary data set, and the share of them whose
    /// piece is kept.
    pub data_tokens: u64,
    pub data_token_coverage: f64,
    /// The evaluation data set: teacher tokens (no special tokens), the share
    /// of them whose piece is kept, texts, and the share of texts the pruned
    /// tokenizer tokenizes exactly as the teacher's.
    pub eval: String,
    pub eval_tokens: usize,
    pub eval_token_coverage: f64,
    pub eval_texts: usize,
    pub eval_unchanged_texts: f64,
}

impl VocabReport {
    pub fn markdown(&self) -> String {
        format!(
            "\n## Vocabulary\n\n\
             Pruned on `{}` ({}): {} → {} pieces ({} always kept); the word embedding is {} bytes smaller.\n\n\
             - `{}`: {:.2}% of its {} tokens keep their piece\n\
             - `{}` (evaluation): {:.2}% of its {} tokens keep their piece; {:.2}% of its {} texts tokenize exactly as before\n",
            self.data,
            self.rule,
            self.before,
            self.after,
            self.always_kept,
            self.bytes_saved,
            self.data,
            100.0 * self.data_token_coverage,
            self.data_tokens,
            self.eval,
            100.0 * self.eval_token_coverage,
            self.eval_tokens,
            100.0 * self.eval_unchanged_texts,
            self.eval_texts
        )
    }
}
