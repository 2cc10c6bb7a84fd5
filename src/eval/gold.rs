//! Scoring a model on labelled data (gold labels, not a teacher): sentence
//! pairs with gold similarity scores give the Spearman and Pearson
//! correlation of the cosine similarity of the two embeddings with the
//! scores (the STS-benchmark measure); labelled texts give a classifier's
//! accuracy, macro F1 and confusion counts by label name; plain text gives a language model's perplexity,
//! and texts or `source<TAB>target` pairs an encoder-decoder's perplexity of
//! the target.
//! `plcc eval` and the build report (the gold Spearman of teacher and
//! student on the recipe's eval data) both score here.

use std::collections::BTreeMap;

use candle_core::DType;
use serde::Serialize;

use super::confusion::Confusion;
use super::exits::accuracy::AccuracyCurve;
use super::fidelity::{encode_examples, encode_for, next_token_stats, per_row, Encoded};
use super::ranking::{pearson, spearman};
use super::retrieval;
use crate::base::{LabelSet, Pooling, Task};
use crate::diag::Diag;
use crate::runtime::model::heads::pool;
use crate::runtime::run::exit_rule::{argmax, cosine};
use crate::runtime::{tensor_error, LoadedModel};
use crate::text::data::Example;

/// Pairs needed for a correlation (two points always correlate perfectly).
pub const MIN_PAIRS: usize = 3;

/// Rows per forward pass.
const BATCH: usize = 32;

/// One model's score on a labelled data set.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub model: String,
    /// `embedding`, `classification`, `causal_lm` or `seq2seq`.
    pub task: &'static str,
    /// How an embedding model pooled its tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<&'static str>,
    /// Examples scored (pairs, labelled texts or lines; the queries of a
    /// retrieval set).
    pub n: usize,
    /// The documents a retrieval set's queries search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<usize>,
    /// `spearman` and `pearson` (pairs), `recall@1`, `recall@5`,
    /// `recall@10`, `mrr@10` and `ndcg@10` (retrieval), `accuracy` and
    /// `macro_f1` (classification), `perplexity` and `tokens` (language
    /// models and encoder-decoders).
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
    /// A classifier's confusion counts by label name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Confusion>,
}

impl Score {
    /// The metric names of this score in the order they are shown.
    pub fn shown(&self) -> Vec<(&str, f64)> {
        ["spearman", "pearson"]
            .into_iter()
            .chain(retrieval::METRICS)
            .chain(["accuracy", "macro_f1", "perplexity", "tokens"])
            .filter_map(|k| self.metrics.get(k).map(|v| (k, *v)))
            .collect()
    }
}

/// A model's score and, side by side, a second model's with the difference
/// (the first minus the second) of every metric they share.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub data: String,
    #[serde(flatten)]
    pub score: Score,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Score>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<BTreeMap<String, f64>>,
    /// On a retrieval set, the model's MRR@10 over the second model's.
    #[serde(rename = "mrr@10_share", skip_serializing_if = "Option::is_none")]
    pub mrr_share: Option<f64>,
    /// A classifier artifact with exits: accuracy against FLOPs per example
    /// over a sweep of its exit thresholds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_vs_flops: Option<AccuracyCurve>,
}

impl EvalReport {
    /// `score` on `data`, compared with `against` when given.
    pub fn new(data: String, score: Score, against: Option<Score>) -> Self {
        let difference = against.as_ref().map(|b| {
            score
                .metrics
                .iter()
                .filter(|(k, _)| k.as_str() != "tokens")
                .filter_map(|(k, a)| b.metrics.get(k).map(|v| (k.clone(), a - v)))
                .collect()
        });
        let mrr_share = against
            .as_ref()
            .and_then(|b| retrieval::share_of(&score.metrics, &b.metrics));
        EvalReport {
            data,
            score,
            against,
            difference,
            mrr_share,
            accuracy_vs_flops: None,
        }
    }
}

/// The name of `pooling` in reports.
pub fn pooling_name(pooling: Pooling) -> &'static str {
    match pooling {
        Pooling::Mean => "mean",
        Pooling::Cls => "cls",
        Pooling::Last => "last",
    }
}

/// Scores `model`, doing `task`, on `examples`: pairs with gold scores for
/// an embedding task, labelled texts for a classifier, texts for a
/// language model, texts (reconstructed) or source and target pairs for an
/// encoder-decoder.
pub fn score(model: &LoadedModel, task: Task, examples: &[Example]) -> Result<Score, Diag> {
    let max_len = model.config.max_positions;
    let mut metrics = BTreeMap::new();
    let mut pooling = None;
    let mut confusion = None;
    match task {
        Task::Embedding { pooling: p } => {
            pooling = Some(pooling_name(p));
            let gold = gold_scores(examples).ok_or_else(|| {
                Diag::new(
                    "plcc::eval::not-pairs",
                    "an embedding model is scored on sentence pairs with gold scores",
                )
                .help("give rows of `text<TAB>text_pair<TAB>score` (or JSONL with `text`, `text_pair`, `score`)")
            })?;
            if gold.len() < MIN_PAIRS {
                return Err(Diag::new(
                    "plcc::eval::too-few-pairs",
                    format!(
                        "a correlation needs at least {MIN_PAIRS} pairs; the data has {}",
                        gold.len()
                    ),
                ));
            }
            let sims = pair_similarities(model, p, examples, max_len)?;
            let (rho, r) = gold_correlation(&sims, &gold);
            metrics.insert("spearman".into(), rho);
            metrics.insert("pearson".into(), r);
        }
        Task::Classification { labels } => {
            let gold: Vec<usize> = examples
                .iter()
                .map(|e| e.label)
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    Diag::new(
                        "plcc::eval::no-labels",
                        "a classifier is scored on texts with class labels",
                    )
                    .help("give rows of `text<TAB>label` or `text<TAB>text_pair<TAB>label`")
                })?;
            let predicted = predictions(model, examples, max_len)?;
            let (accuracy, f1) = accuracy_and_macro_f1(&predicted, &gold, labels);
            metrics.insert("accuracy".into(), accuracy);
            metrics.insert("macro_f1".into(), f1);
            let names = model.labels().unwrap_or_else(|| LabelSet::numbered(labels));
            confusion = Some(Confusion::new(&predicted, &gold, &names));
        }
        Task::CausalLm | Task::Seq2Seq => {
            let (ppl, tokens) = perplexity(model, examples, max_len)?;
            metrics.insert("perplexity".into(), ppl);
            metrics.insert("tokens".into(), tokens as f64);
        }
    }
    Ok(Score {
        model: model.name.clone(),
        task: task.name(),
        pooling,
        n: examples.len(),
        documents: None,
        metrics,
        confusion,
    })
}

/// The gold scores of `examples` when every one is a pair with a score.
pub fn gold_scores(examples: &[Example]) -> Option<Vec<f64>> {
    examples
        .iter()
        .map(|e| e.pair.as_ref().and(e.score))
        .collect()
}

/// Spearman and Pearson correlation of pair similarities with gold scores.
pub fn gold_correlation(similarities: &[f64], gold: &[f64]) -> (f64, f64) {
    (spearman(similarities, gold), pearson(similarities, gold))
}

/// The cosine similarity of each pair's two texts, each embedded on its own
/// (`pooling` over its first `max_len` tokens).
pub fn pair_similarities(
    model: &LoadedModel,
    pooling: Pooling,
    examples: &[Example],
    max_len: usize,
) -> Result<Vec<f64>, Diag> {
    let side = |pick: fn(&Example) -> &str| -> Result<Vec<Vec<f32>>, Diag> {
        let texts: Vec<&str> = examples.iter().map(pick).collect();
        embed_texts(model, pooling, &texts, max_len)
    };
    let a = side(|e| e.text.as_str())?;
    let b = side(|e| e.pair.as_deref().unwrap_or_default())?;
    Ok(a.iter().zip(&b).map(|(x, y)| cosine(x, y)).collect())
}

/// The sentence embedding of each text, embedded on its own: `pooling`
/// over the final hidden states of its first `max_len` tokens.
pub fn embed_texts(
    model: &LoadedModel,
    pooling: Pooling,
    texts: &[&str],
    max_len: usize,
) -> Result<Vec<Vec<f32>>, Diag> {
    let examples: Vec<Example> = texts.iter().map(|t| Example::text(*t)).collect();
    embed(
        model,
        &encode_examples(&model.tokenizer, max_len, &examples)?,
        pooling,
    )
}

/// The pooled final hidden state of each row.
fn embed(model: &LoadedModel, rows: &[Encoded], pooling: Pooling) -> Result<Vec<Vec<f32>>, Diag> {
    per_row(model, rows, BATCH, |inputs, _| {
        let (out, _) = model.forward(inputs).map_err(tensor_error)?;
        pool(&out.last_hidden, &inputs.mask, pooling)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(tensor_error)
    })
}

/// The class a classifier predicts for each example (pairs as one sequence).
fn predictions(
    model: &LoadedModel,
    examples: &[Example],
    max_len: usize,
) -> Result<Vec<usize>, Diag> {
    let rows = encode_examples(&model.tokenizer, max_len, examples)?;
    per_row(model, &rows, BATCH, |inputs, _| {
        let (_, logits) = model.forward(inputs).map_err(tensor_error)?;
        let logits = logits.ok_or_else(|| {
            Diag::new(
                "plcc::eval::no-head",
                "the model has no classification head",
            )
        })?;
        let rows = logits
            .to_dtype(DType::F32)
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(tensor_error)?;
        Ok(rows.iter().map(|r| argmax(r)).collect())
    })
}

/// Accuracy and macro F1 of `predicted` against `gold` (classes below
/// `classes`); the macro average runs over the classes that occur in
/// either, as scikit-learn's does.
pub fn accuracy_and_macro_f1(predicted: &[usize], gold: &[usize], classes: usize) -> (f64, f64) {
    let n = predicted.len().min(gold.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let width = classes.max(predicted.iter().chain(gold).max().map_or(0, |m| m + 1));
    let (mut tp, mut fp, mut fne) = (
        vec![0usize; width],
        vec![0usize; width],
        vec![0usize; width],
    );
    let mut correct = 0;
    for (&p, &g) in predicted.iter().zip(gold) {
        if p == g {
            correct += 1;
            tp[p] += 1;
        } else {
            fp[p] += 1;
            fne[g] += 1;
        }
    }
    let f1s: Vec<f64> = (0..width)
        .filter(|&c| tp[c] + fp[c] + fne[c] > 0)
        .map(|c| 2.0 * tp[c] as f64 / (2 * tp[c] + fp[c] + fne[c]) as f64)
        .collect();
    let macro_f1 = f1s.iter().sum::<f64>() / f1s.len().max(1) as f64;
    (correct as f64 / n as f64, macro_f1)
}

/// Perplexity of a language model over the texts (each on its own, its
/// first `max_len` tokens), or of an encoder-decoder's decoder over the
/// examples' targets (a pair's second text, a single text's reconstruction
/// from its text-infilled corruption; each side cut to `max_len`); and the
/// number of tokens predicted.
fn perplexity(
    model: &LoadedModel,
    examples: &[Example],
    max_len: usize,
) -> Result<(f64, usize), Diag> {
    let (rows, _) = encode_for(model, max_len, examples)?;
    let lengths: Vec<usize> = rows.iter().map(|r| r.0.len()).collect();
    let log_probs = per_row(model, &rows, BATCH, |inputs, _| {
        Ok(next_token_stats(model, inputs)?.0)
    })?;
    let (mut nll, mut tokens) = (0f64, 0usize);
    for (lp, len) in log_probs.iter().zip(&lengths) {
        let predicted = len.saturating_sub(1).min(lp.len());
        nll -= lp[..predicted].iter().map(|&x| f64::from(x)).sum::<f64>();
        tokens += predicted;
    }
    Ok((perplexity_of(nll, tokens)?, tokens))
}

/// `exp(nll / tokens)`; a diagnostic when nothing was predicted.
fn perplexity_of(nll: f64, tokens: usize) -> Result<f64, Diag> {
    if tokens == 0 {
        return Err(Diag::new(
            "plcc::eval::no-tokens",
            "no text is longer than one token, so there is nothing to predict",
        )
        .help("perplexity needs lines of at least two tokens"));
    }
    Ok((nll / tokens as f64).exp())
}

/// The gold Spearman of teacher and student on the build's eval data, when
/// those are at least [`MIN_PAIRS`] pairs with gold scores and the task is
/// an embedding (`teacher_spearman_gold`, `student_spearman_gold`); empty
/// otherwise. Texts are read to their first `max_len` tokens.
pub fn build_gold_metrics(
    task: Task,
    teacher: &LoadedModel,
    student: &LoadedModel,
    examples: &[Example],
    max_len: usize,
) -> Result<BTreeMap<String, f64>, Diag> {
    let mut out = BTreeMap::new();
    let (Task::Embedding { pooling }, Some(gold)) = (task, gold_scores(examples)) else {
        return Ok(out);
    };
    if gold.len() < MIN_PAIRS {
        return Ok(out);
    }
    for (name, m) in [("teacher", teacher), ("student", student)] {
        let sims = pair_similarities(m, pooling, examples, max_len)?;
        let (rho, _) = gold_correlation(&sims, &gold);
        out.insert(format!("{name}_spearman_gold"), rho);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_macro_f1_match_hand_counts() {
        // Class 0: tp 1, fp 1, fn 1 → F1 0.5; class 1: tp 1, fp 1, fn 1 →
        // 0.5; class 2: tp 1 → 1. Class 3 never occurs and is left out.
        let (acc, f1) = accuracy_and_macro_f1(&[0, 1, 1, 0, 2], &[0, 0, 1, 1, 2], 4);
        assert!((acc - 0.6).abs() < 1e-12);
        assert!((f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(accuracy_and_macro_f1(&[], &[], 2), (0.0, 0.0));
    }

    #[test]
    fn gold_scores_need_a_pair_and_a_score_on_every_example() {
        let pair = |s: Option<f64>| Example {
            pair: Some("b".into()),
            score: s,
            ..Example::text("a")
        };
        assert_eq!(gold_scores(&[pair(Some(0.5))]), Some(vec![0.5]));
        assert_eq!(gold_scores(&[pair(Some(0.5)), pair(None)]), None);
        assert_eq!(gold_scores(&[Example::text("a")]), None);
    }
}
