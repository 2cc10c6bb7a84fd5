//! Fidelity of the student to the teacher on the evaluation data: the
//! measured result ([`Fidelity`]), how examples are encoded and batched for
//! each model, and the metrics' arithmetic: cosine of sentence embeddings and
//! the similarity-ranking Spearman over all pairs of sentences (embedding
//! task), prediction agreement and accuracy (classification), perplexity
//! ratio and top-1 next-token agreement (causal LM, and an encoder-decoder's
//! decoder over the targets: see `eval::seq2seq`). `eval::measure` runs the
//! two models and compares them.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::ranking::similarity_spearman;
use crate::base::ModelConfig;
use crate::diag::Diag;
use crate::runtime::run::token_rows::plan_batches;
use crate::runtime::tensor_error;
use crate::runtime::{ForwardOptions, Inputs, LoadedModel, Mode};
use crate::text::data::Example;
use crate::text::TextTokenizer;

/// Measured fidelity.
///
/// Examples are compared on their first `max_tokens` tokens; `note_cuts`
/// words how many were longer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fidelity {
    pub data: String,
    pub examples: usize,
    /// Examples longer than the measurement reads (`max_tokens`), of which
    /// only the first `max_tokens` tokens were compared.
    #[serde(default)]
    pub truncated: usize,
    #[serde(default)]
    pub max_tokens: usize,
    pub metrics: BTreeMap<String, f64>,
}

impl Fidelity {
    /// The one number that says how close the student is, higher better:
    /// the [`headline`] metric, the perplexity ratio negated.
    pub fn score(&self) -> Option<f64> {
        headline(&self.metrics).map(|(name, v)| if name == "perplexity_ratio" { -v } else { v })
    }

    /// The teacher's accuracy against the gold labels, when measured (a
    /// classifier on labelled examples).
    pub fn teacher_accuracy(&self) -> Option<f64> {
        self.metrics.get("teacher_accuracy").copied()
    }

    /// A note for the report when some examples were cut, else `None`.
    pub fn note_cuts(&self) -> Option<String> {
        (self.truncated > 0).then(|| {
            format!(
                "{} of {} examples of `{}` are longer than {} tokens; fidelity compares their first {}",
                self.truncated, self.examples, self.data, self.max_tokens, self.max_tokens
            )
        })
    }
}

/// Examples run at once.
pub const BATCH: usize = 16;

/// Per row and position: the next token's log-probability and the argmax.
pub type NextTokenStats = (Vec<Vec<f32>>, Vec<Vec<u32>>);

/// The metric that says how close the student is, and its value: the mean
/// cosine (embeddings), the prediction agreement (classification) or the
/// perplexity ratio (causal LM, lower better); `None` when it is missing or
/// not finite.
pub fn headline(metrics: &BTreeMap<String, f64>) -> Option<(&'static str, f64)> {
    ["mean_cosine", "agreement", "perplexity_ratio"]
        .into_iter()
        .find_map(|k| metrics.get(k).map(|v| (k, *v)))
        .filter(|(_, v)| v.is_finite())
}

/// Token ids and segment ids of one example; for an encoder-decoder, the
/// decoder's ids and the encoder's source (see [`encode_for`]).
pub type Encoded = (Vec<u32>, Vec<u32>);

/// Tokens of an example the fidelity measurement reads (the rest is cut).
pub const MEASURED_TOKENS: usize = 128;

/// Token ids and segment ids of each example (pairs as one sequence),
/// truncated to `max_len`.
pub fn encode_examples(
    tokenizer: &TextTokenizer,
    max_len: usize,
    examples: &[Example],
) -> Result<Vec<Encoded>, Diag> {
    Ok(encode_counting_cuts(tokenizer, max_len, examples)?.0)
}

/// `encode_examples`, also counting the examples longer than `max_len`
/// tokens (cut to their first `max_len`).
pub fn encode_counting_cuts(
    tokenizer: &TextTokenizer,
    max_len: usize,
    examples: &[Example],
) -> Result<(Vec<Encoded>, usize), Diag> {
    let mut tok = tokenizer.inner.clone();
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length: max_len,
        ..Default::default()
    }))
    .map_err(|e| Diag::new("plcc::build::tokenize", "cannot set truncation").note(e.to_string()))?;
    let mut cut = 0;
    let rows = examples
        .iter()
        .map(|ex| {
            let enc = match &ex.pair {
                Some(p) => tok.encode((ex.text.as_str(), p.as_str()), true),
                None => tok.encode(ex.text.as_str(), true),
            }
            .map_err(|e| {
                Diag::new(
                    "plcc::build::tokenize",
                    "cannot tokenize an evaluation example",
                )
                .note(e.to_string())
            })?;
            cut += usize::from(!enc.get_overflowing().is_empty());
            Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()))
        })
        .collect::<Result<Vec<_>, Diag>>()?;
    Ok((rows, cut))
}

/// `examples` as a model of `config` reading `tokenizer` reads them, cut to
/// `max_len` tokens, with the number cut: token and segment ids (pairs as
/// one sequence), or for an encoder-decoder each example's decoder row and
/// source (single texts corrupted by text infilling drawn from `seed`).
pub fn encode_with(
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
    max_len: usize,
    examples: &[Example],
    seed: u64,
) -> Result<(Vec<Encoded>, usize), Diag> {
    if config.seq2seq.is_none() {
        return encode_counting_cuts(tokenizer, max_len, examples);
    }
    let (rows, cut) = super::seq2seq::rows(config, tokenizer, examples, max_len, seed)?;
    Ok((
        rows.into_iter().map(|r| (r.decoder, r.source)).collect(),
        cut,
    ))
}

/// [`encode_with`] for `model`, an encoder-decoder's corruption drawn from
/// `eval::seq2seq::EVAL_SEED` (the same held-out sources in every build).
pub fn encode_for(
    model: &LoadedModel,
    max_len: usize,
    examples: &[Example],
) -> Result<(Vec<Encoded>, usize), Diag> {
    let seed = super::seq2seq::EVAL_SEED;
    encode_with(&model.config, &model.tokenizer, max_len, examples, seed)
}

/// One padded batch of rows of [`encode_with`] for a model of `config`:
/// segment ids when the model has types; an encoder-decoder's sources and
/// decoder rows.
pub fn batch_for(
    config: &ModelConfig,
    rows: &[Encoded],
    pad_id: u32,
    device: &Device,
) -> Result<Inputs, Diag> {
    if config.seq2seq.is_none() {
        return batch_inputs(rows, pad_id, config.type_vocab_size > 0, device);
    }
    let sources: Vec<Vec<u32>> = rows.iter().map(|r| r.1.clone()).collect();
    let decoder: Vec<Vec<u32>> = rows.iter().map(|r| r.0.clone()).collect();
    Inputs::seq2seq(&sources, &decoder, pad_id, device).map_err(tensor_error)
}

/// [`batch_for`] for `model`, on its device.
pub fn inputs_for(model: &LoadedModel, rows: &[Encoded]) -> Result<Inputs, Diag> {
    batch_for(&model.config, rows, model.tokenizer.pad_id, &model.device)
}

/// One padded batch of encoded rows; segment ids when the model has types.
pub fn batch_inputs(
    rows: &[Encoded],
    pad_id: u32,
    with_types: bool,
    device: &Device,
) -> Result<Inputs, Diag> {
    let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.0.clone()).collect();
    let mut inputs = Inputs::from_rows(&ids, pad_id, device).map_err(tensor_error)?;
    if with_types {
        let seq = ids.iter().map(Vec::len).max().unwrap_or(0);
        let types: Vec<u32> = rows
            .iter()
            .flat_map(|r| {
                let mut t = r.1.clone();
                t.resize(seq, 0);
                t
            })
            .collect();
        inputs.token_types =
            Some(Tensor::from_vec(types, (rows.len(), seq), device).map_err(tensor_error)?);
    }
    Ok(inputs)
}

/// Runs `rows` through `model` in length-sorted batches of at most
/// `batch_size`; `f` turns one batch's inputs (and the indices into `rows`
/// of its rows) into one output per row; outputs in the order of `rows`.
pub fn per_row<T: Clone>(
    model: &LoadedModel,
    rows: &[Encoded],
    batch_size: usize,
    mut f: impl FnMut(&Inputs, &[usize]) -> Result<Vec<T>, Diag>,
) -> Result<Vec<T>, Diag> {
    let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.0.clone()).collect();
    let mut out: Vec<Option<T>> = vec![None; rows.len()];
    for batch in plan_batches(&ids, batch_size) {
        let part: Vec<Encoded> = batch.iter().map(|&i| rows[i].clone()).collect();
        let inputs = inputs_for(model, &part)?;
        for (&i, v) in batch.iter().zip(f(&inputs, &batch)?) {
            out[i] = Some(v);
        }
    }
    out.into_iter().collect::<Option<_>>().ok_or_else(|| {
        Diag::new(
            "plcc::eval::missing-output",
            "the model gave fewer outputs than inputs",
        )
    })
}

pub(crate) fn rows2(t: &Tensor) -> Result<Vec<Vec<f32>>, Diag> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.to_vec2::<f32>())
        .map_err(tensor_error)
}

/// `examples` as the teacher and the student read them (each with its own
/// tokenizer), cut to the first [`MEASURED_TOKENS`] (or the teacher's
/// positions): the teacher's rows, the student's, how many examples were
/// cut, and the length they were cut to.
pub fn encode_for_both(
    teacher: &LoadedModel,
    student: &LoadedModel,
    examples: &[Example],
) -> Result<(Vec<Encoded>, Vec<Encoded>, usize, usize), Diag> {
    let max_len = teacher.config.max_positions.min(MEASURED_TOKENS);
    let (rows_t, truncated) = encode_for(teacher, max_len, examples)?;
    let (rows_s, _) = encode_for(student, max_len, examples)?;
    Ok((rows_t, rows_s, truncated, max_len))
}

/// The embedding metrics: mean and smallest cosine of each example's pair
/// of embeddings, and the similarity-ranking Spearman over all pairs.
pub fn embedding_metrics(
    cos: &[f64],
    teacher: &[Vec<f32>],
    student: &[Vec<f32>],
) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    metrics.insert(
        "mean_cosine".into(),
        cos.iter().sum::<f64>() / cos.len().max(1) as f64,
    );
    metrics.insert(
        "min_cosine".into(),
        cos.iter().copied().fold(f64::INFINITY, f64::min),
    );
    if let Some(rho) = similarity_spearman(teacher, student) {
        metrics.insert("similarity_spearman".into(), rho);
    }
    metrics
}

/// Counts of a language-model comparison: each side's negative
/// log-likelihood of the next tokens and the tokens it read, and the
/// positions where both predict the same next token.
#[derive(Debug, Clone, Copy, Default)]
pub struct LmCounts {
    pub nll_teacher: f64,
    pub nll_student: f64,
    pub tokens_teacher: usize,
    pub tokens_student: usize,
    pub top1: usize,
    pub compared: usize,
}

impl LmCounts {
    /// Teacher and student perplexity, their ratio and the top-1 agreement.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let pt = (self.nll_teacher / self.tokens_teacher.max(1) as f64).exp();
        let ps = (self.nll_student / self.tokens_student.max(1) as f64).exp();
        BTreeMap::from([
            ("teacher_perplexity".to_string(), pt),
            ("student_perplexity".to_string(), ps),
            ("perplexity_ratio".to_string(), ps / pt),
            (
                "top1_agreement".to_string(),
                self.top1 as f64 / self.compared.max(1) as f64,
            ),
        ])
    }
}

/// Counts of a classification comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Agreement {
    pub examples: usize,
    /// Examples where both predict the same class.
    pub agree: usize,
    /// Examples with a label, and those each side predicts correctly.
    pub labelled: usize,
    pub correct_teacher: usize,
    pub correct_student: usize,
}

impl Agreement {
    /// `agreement`, and each side's accuracy when there were labels.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut metrics = BTreeMap::new();
        metrics.insert(
            "agreement".into(),
            self.agree as f64 / self.examples.max(1) as f64,
        );
        if self.labelled > 0 {
            let l = self.labelled as f64;
            metrics.insert("student_accuracy".into(), self.correct_student as f64 / l);
            metrics.insert("teacher_accuracy".into(), self.correct_teacher as f64 / l);
        }
        metrics
    }
}

/// Per row and position of `inputs`: the log-probability `m` gives the next
/// token, and its most likely next token (empty rows for one-token batches).
pub fn next_token_stats(m: &LoadedModel, inputs: &Inputs) -> Result<NextTokenStats, Diag> {
    let opts = ForwardOptions {
        mode: Mode::Inference,
        lm_logits: true,
        ..Default::default()
    };
    let out = m.network.forward(inputs, &[], opts).map_err(tensor_error)?;
    let logits = out
        .logits
        .ok_or_else(|| Diag::new("plcc::build::no-head", "the model computes no LM logits"))?;
    let x = candle_nn::ops::log_softmax(&logits, D::Minus1).map_err(tensor_error)?;
    let (b, seq, _) = x.dims3().map_err(tensor_error)?;
    if seq < 2 {
        return Ok((vec![Vec::new(); b], vec![Vec::new(); b]));
    }
    let next = inputs
        .output_side()
        .ids
        .narrow(1, 1, seq - 1)
        .and_then(|x| x.unsqueeze(2))
        .and_then(|x| x.contiguous())
        .map_err(tensor_error)?;
    let head = x
        .narrow(1, 0, seq - 1)
        .and_then(|h| h.contiguous())
        .map_err(tensor_error)?;
    let lp = head
        .gather(&next, 2)
        .and_then(|g| g.squeeze(2))
        .and_then(|g| g.to_vec2::<f32>())
        .map_err(tensor_error)?;
    let top = head
        .argmax(D::Minus1)
        .and_then(|a| a.to_vec2::<u32>())
        .map_err(tensor_error)?;
    Ok((lp, top))
}
