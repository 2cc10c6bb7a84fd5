//! Vocabulary pruning in a build: count the vocabulary data set's pieces
//! with the teacher's tokenizer, choose the kept pieces as the plan's rule
//! says (the count must agree with the plan's size), rewrite the tokenizer,
//! and report how much of the data and the evaluation text the kept pieces
//! cover.

use std::collections::BTreeMap;

use crate::diag::Diag;
use crate::eval::vocab_report::VocabReport;
use crate::ir::VocabPlan;
use crate::lower::teacher::Teacher;
use crate::text::data::Example;
use crate::text::vocab::{
    count_pieces, coverage, prune, select, texts_of, PrunedVocab, WordPieceVocab,
};

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
        .label(plan.keyword, "vocabulary pruning asked for here")
    })?;
    let examples = datasets.get(&plan.data).ok_or_else(|| {
        Diag::new(
            "plcc::vocab::unknown-dataset",
            format!("unknown data set `{}`", plan.data),
        )
        .label(plan.data_span, "no `data` block declares this name")
    })?;
    let counts = count_pieces(&teacher.tokenizer, &texts_of(examples), vocab.id_space())?;
    let data_tokens: u64 = counts.iter().sum();
    if data_tokens == 0 {
        return Err(crate::text::vocab::no_tokens(&plan.data, plan.data_span));
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
        .label(plan.data_span, "this data set changed during the build")
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

/// The report's vocabulary section for `pruning` under `plan`, with its
/// coverage of `eval`.
pub fn vocab_report(
    plan: &VocabPlan,
    pruning: &Pruning,
    teacher: &Teacher,
    bytes_saved: u64,
    eval_name: &str,
    eval: &[Example],
) -> Result<VocabReport, Diag> {
    let c = coverage(&teacher.tokenizer, &pruning.vocab, &texts_of(eval))?;
    Ok(VocabReport {
        data: plan.data.clone(),
        rule: crate::ir::vocab_rule_text(plan.rule),
        before: plan.before,
        after: pruning.vocab.len(),
        always_kept: plan.always_kept,
        bytes_saved,
        data_tokens: pruning.data_tokens,
        data_token_coverage: pruning.data_kept_tokens as f64 / pruning.data_tokens.max(1) as f64,
        eval: eval_name.to_string(),
        eval_tokens: c.tokens,
        eval_token_coverage: c.token_share(),
        eval_texts: c.texts,
        eval_unchanged_texts: c.unchanged_share(),
    })
}
