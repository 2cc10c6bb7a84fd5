//! Fidelity of the student to the teacher on the evaluation data, measured by
//! running both: cosine of sentence embeddings and the similarity-ranking
//! Spearman over all pairs of sentences (embedding task), prediction
//! agreement and accuracy (classification), perplexity ratio and top-1
//! next-token agreement (causal LM).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::data::Example;
use super::ranking::similarity_spearman;
use super::teacher::tensor_error;
use crate::diag::Diag;
use crate::model::exit_rule::{argmax, cosine};
use crate::model::heads::pool;
use crate::model::{ForwardOptions, Inputs, LoadedModel, Mode, Pooling, TextTokenizer};
use crate::recipe::{self, Task};

/// Measured fidelity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fidelity {
    pub data: String,
    pub examples: usize,
    pub metrics: BTreeMap<String, f64>,
}

const BATCH: usize = 16;

/// Per row and position: the next token's log-probability and the argmax.
type NextTokenStats = (Vec<Vec<f32>>, Vec<Vec<u32>>);

/// Token ids and segment ids of one example.
pub type Encoded = (Vec<u32>, Vec<u32>);

/// Token ids and segment ids of each example (pairs as one sequence),
/// truncated to `max_len`.
pub fn encode_examples(
    tokenizer: &TextTokenizer,
    max_len: usize,
    examples: &[Example],
) -> Result<Vec<Encoded>, Diag> {
    let mut tok = tokenizer.inner.clone();
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length: max_len,
        ..Default::default()
    }))
    .map_err(|e| Diag::new("plcc::build::tokenize", "cannot set truncation").note(e.to_string()))?;
    examples
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
            Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()))
        })
        .collect()
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

fn rows2(t: &Tensor) -> Result<Vec<Vec<f32>>, Diag> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.to_vec2::<f32>())
        .map_err(tensor_error)
}

/// Runs teacher and student over `examples` and compares them.
pub fn measure(
    task: Task,
    teacher: &LoadedModel,
    student: &LoadedModel,
    data: &str,
    examples: &[Example],
) -> Result<Fidelity, Diag> {
    let max_len = teacher.config.max_positions.min(128);
    let rows = encode_examples(&teacher.tokenizer, max_len, examples)?;
    let mut metrics = BTreeMap::new();
    let mut cos = Vec::new();
    let (mut teacher_emb, mut student_emb) = (Vec::new(), Vec::new());
    let (mut agree, mut correct_s, mut correct_t, mut labelled) = (0usize, 0usize, 0usize, 0usize);
    let (mut nll_t, mut nll_s, mut tokens, mut top1) = (0f64, 0f64, 0usize, 0usize);
    for (b, chunk) in rows.chunks(BATCH).enumerate() {
        let inputs = batch_inputs(
            chunk,
            teacher.tokenizer.pad_id,
            teacher.config.type_vocab_size > 0,
            &teacher.device,
        )?;
        let labels: Vec<Option<usize>> = examples[b * BATCH..b * BATCH + chunk.len()]
            .iter()
            .map(|e| e.label)
            .collect();
        match task {
            Task::Embedding { pooling } => {
                let p = match pooling {
                    recipe::Pooling::Mean => Pooling::Mean,
                    recipe::Pooling::Cls => Pooling::First,
                };
                let emb = |m: &LoadedModel| -> Result<Vec<Vec<f32>>, Diag> {
                    let (out, _) = m.forward(&inputs).map_err(tensor_error)?;
                    rows2(&pool(&out.last_hidden, &inputs.mask, p).map_err(tensor_error)?)
                };
                let (t, s) = (emb(teacher)?, emb(student)?);
                cos.extend(t.iter().zip(&s).map(|(a, b)| cosine(a, b)));
                teacher_emb.extend(t);
                student_emb.extend(s);
            }
            Task::Classification { .. } => {
                let logits = |m: &LoadedModel| -> Result<Vec<Vec<f32>>, Diag> {
                    let (_, l) = m.forward(&inputs).map_err(tensor_error)?;
                    let l = l.ok_or_else(|| {
                        Diag::new(
                            "plcc::build::no-head",
                            "the model has no classification head",
                        )
                    })?;
                    rows2(&l)
                };
                let (t, s) = (logits(teacher)?, logits(student)?);
                for ((tl, sl), label) in t.iter().zip(&s).zip(&labels) {
                    let (tp, sp) = (argmax(tl), argmax(sl));
                    agree += usize::from(tp == sp);
                    if let Some(l) = label {
                        labelled += 1;
                        correct_t += usize::from(tp == *l);
                        correct_s += usize::from(sp == *l);
                    }
                }
            }
            Task::CausalLm => {
                let opts = ForwardOptions {
                    mode: Mode::Inference,
                    lm_logits: true,
                    ..Default::default()
                };
                let lm = |m: &LoadedModel| -> Result<Tensor, Diag> {
                    let out = m
                        .network
                        .forward(&inputs, &[], opts)
                        .map_err(tensor_error)?;
                    let l = out.logits.ok_or_else(|| {
                        Diag::new("plcc::build::no-head", "the model computes no LM logits")
                    })?;
                    candle_nn::ops::log_softmax(&l, D::Minus1).map_err(tensor_error)
                };
                let (t, s) = (lm(teacher)?, lm(student)?);
                // Per position: log-probability of the next token and the argmax.
                let (b, seq, _) = t.dims3().map_err(tensor_error)?;
                if seq >= 2 {
                    let next = inputs
                        .ids
                        .narrow(1, 1, seq - 1)
                        .and_then(|x| x.unsqueeze(2))
                        .and_then(|x| x.contiguous())
                        .map_err(tensor_error)?;
                    let stats = |x: &Tensor| -> Result<NextTokenStats, Diag> {
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
                    };
                    let ((tl, tt), (sl, st)) = (stats(&t)?, stats(&s)?);
                    for (i, (ids, _)) in chunk.iter().enumerate().take(b) {
                        for pos in 0..ids.len().saturating_sub(1) {
                            nll_t -= tl[i][pos] as f64;
                            nll_s -= sl[i][pos] as f64;
                            top1 += usize::from(tt[i][pos] == st[i][pos]);
                            tokens += 1;
                        }
                    }
                }
            }
        }
    }
    let n = examples.len();
    match task {
        Task::Embedding { .. } => {
            metrics.insert(
                "mean_cosine".into(),
                cos.iter().sum::<f64>() / cos.len().max(1) as f64,
            );
            metrics.insert(
                "min_cosine".into(),
                cos.iter().copied().fold(f64::INFINITY, f64::min),
            );
            if let Some(rho) = similarity_spearman(&teacher_emb, &student_emb) {
                metrics.insert("similarity_spearman".into(), rho);
            }
        }
        Task::Classification { .. } => {
            metrics.insert("agreement".into(), agree as f64 / n.max(1) as f64);
            if labelled > 0 {
                metrics.insert(
                    "student_accuracy".into(),
                    correct_s as f64 / labelled as f64,
                );
                metrics.insert(
                    "teacher_accuracy".into(),
                    correct_t as f64 / labelled as f64,
                );
            }
        }
        Task::CausalLm => {
            let d = tokens.max(1) as f64;
            let (pt, ps) = ((nll_t / d).exp(), (nll_s / d).exp());
            metrics.insert("teacher_perplexity".into(), pt);
            metrics.insert("student_perplexity".into(), ps);
            metrics.insert("perplexity_ratio".into(), ps / pt);
            metrics.insert("top1_agreement".into(), top1 as f64 / d);
        }
    }
    Ok(Fidelity {
        data: data.to_string(),
        examples: n,
        metrics,
    })
}
