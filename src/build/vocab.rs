//! Vocabulary pruning in a build: count the vocabulary data set's pieces
//! with the teacher's tokenizer, choose the kept pieces as the plan's rule
//! says (the count must agree with the plan's size), rewrite the tokenizer,
//! and report how much of the data and the evaluation text the kept pieces
//! cover.

use std::collections::BTreeMap;

use serde::Serialize;

use super::data::Example;
use super::teacher::Teacher;
use crate::diag::Diag;
use crate::ir::VocabPlan;
use crate::recipe::VocabSpec;
use crate::vocab::{count_pieces, coverage, prune, select, texts_of, PrunedVocab, WordPieceVocab};

/// The pruned vocabulary and how much of its own data it covers.
pub struct Pruning {
    pub vocab: PrunedVocab,
    /// Teacher tokens of the vocabulary data set.
    pub data_tokens: u64,
    /// Of those, tokens whose piece is kept.
    pub data_kept_tokens: u64,
}

/// Prunes the teacher's vocabulary as `plan` says, counting on `datasets`.
pub fn prune_vocabulary(
    plan: &VocabPlan,
    spec: &VocabSpec,
    teacher: &Teacher,
    datasets: &BTreeMap<String, Vec<Example>>,
) -> Result<Pruning, Diag> {
    let vocab = WordPieceVocab::of(&teacher.tokenizer)?.map_err(|k| {
        Diag::new(
            "plcc::vocab::not-wordpiece",
            format!(
                "vocabulary pruning needs a WordPiece tokenizer, but the teacher's is {}",
                k.0
            ),
        )
        .label(spec.keyword, "vocabulary pruning asked for here")
    })?;
    let examples = datasets.get(&plan.data).ok_or_else(|| {
        Diag::new(
            "plcc::vocab::unknown-dataset",
            format!("unknown data set `{}`", plan.data),
        )
        .label(spec.data.span, "no `data` block declares this name")
    })?;
    let counts = count_pieces(&teacher.tokenizer, &texts_of(examples), vocab.id_space())?;
    let data_tokens: u64 = counts.iter().sum();
    if data_tokens == 0 {
        return Err(crate::vocab::no_tokens(spec));
    }
    let kept = select(&vocab, &counts, plan.rule);
    if kept.len() != plan.after {
        return Err(Diag::new(
            "plcc::vocab::data-changed",
            format!(
                "the data set `{}` now keeps {} pieces, but the plan was compiled for {}",
                plan.data,
                kept.len(),
                plan.after
            ),
        )
        .label(spec.data.span, "this data set changed during the build")
        .help("build again"));
    }
    let data_kept_tokens = kept.iter().map(|&id| counts[id as usize]).sum();
    let vocab = prune(&vocab, &kept, teacher.tokenizer.pad_id)?;
    Ok(Pruning {
        vocab,
        data_tokens,
        data_kept_tokens,
    })
}

/// The report's vocabulary section.
#[derive(Debug, Clone, Serialize)]
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
    /// The section for `pruning` under `plan`, with its coverage of `eval`.
    pub fn new(
        plan: &VocabPlan,
        pruning: &Pruning,
        teacher: &Teacher,
        bytes_saved: u64,
        eval_name: &str,
        eval: &[Example],
    ) -> Result<Self, Diag> {
        let c = coverage(&teacher.tokenizer, &pruning.vocab, &texts_of(eval))?;
        Ok(VocabReport {
            data: plan.data.clone(),
            rule: crate::ir::vocab_rule_text(plan.rule),
            before: plan.before,
            after: pruning.vocab.len(),
            always_kept: plan.always_kept,
            bytes_saved,
            data_tokens: pruning.data_tokens,
            data_token_coverage: pruning.data_kept_tokens as f64
                / pruning.data_tokens.max(1) as f64,
            eval: eval_name.to_string(),
            eval_tokens: c.tokens,
            eval_token_coverage: c.token_share(),
            eval_texts: c.texts,
            eval_unchanged_texts: c.unchanged_share(),
        })
    }

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
