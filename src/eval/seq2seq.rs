//! Fidelity of an encoder-decoder student: teacher and student read the same
//! examples (a source, or a text corrupted by text infilling, and its
//! target) and the decoder's next-token predictions over the target are
//! compared: each side's perplexity of the target, their ratio, and the
//! positions where both predict the same token. `plcc eval` scores one
//! model's perplexity of the targets with the same rows and scores.

use candle_core::Device;

use super::fidelity::{next_token_stats, Fidelity, LmCounts, BATCH, MEASURED_TOKENS};
use crate::base::ModelConfig;
use crate::diag::Diag;
use crate::runtime::{tensor_error, Inputs, LoadedModel};
use crate::text::data::Example;
use crate::text::seq2seq::{self, Seq2SeqRow, Seq2SeqTokens};
use crate::text::TextTokenizer;

/// The seed of the held-out corruption: every build measures on the same
/// sources.
pub const EVAL_SEED: u64 = 0x5EED_0E7A;

/// The examples as a model with `config` and `tokenizer` reads them
/// (`seed` draws the corruption of single texts), each side cut to
/// `max_len`; with the number cut.
pub fn rows(
    config: &ModelConfig,
    tokenizer: &TextTokenizer,
    examples: &[Example],
    max_len: usize,
    seed: u64,
) -> Result<(Vec<Seq2SeqRow>, usize), Diag> {
    let start = config
        .seq2seq
        .as_ref()
        .map(|s| s.decoder_start_token_id)
        .ok_or_else(|| {
            Diag::new(
                "plcc::seq2seq::not-encoder-decoder",
                format!("a `{}` model is not an encoder-decoder", config.model_type),
            )
            .help("the seq2seq task needs a BART model")
        })?;
    let tokens = Seq2SeqTokens::of(tokenizer, start)?;
    seq2seq::encode(tokenizer, tokens, max_len, examples, seed)
}

/// One padded batch of rows.
pub fn batch(rows: &[Seq2SeqRow], pad_id: u32, device: &Device) -> Result<Inputs, Diag> {
    let sources: Vec<Vec<u32>> = rows.iter().map(|r| r.source.clone()).collect();
    let decoder: Vec<Vec<u32>> = rows.iter().map(|r| r.decoder.clone()).collect();
    Inputs::seq2seq(&sources, &decoder, pad_id, device).map_err(tensor_error)
}

/// How a model predicts one row's target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetScore {
    /// The negative log-likelihood of the target's tokens (every decoder
    /// token after the start token).
    pub nll: f64,
    /// The number of tokens predicted.
    pub tokens: usize,
    /// The most likely token at each predicted position.
    pub top1: Vec<u32>,
}

/// How `model`'s decoder predicts the target of each row, in batches.
pub fn score_targets(model: &LoadedModel, rows: &[Seq2SeqRow]) -> Result<Vec<TargetScore>, Diag> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH) {
        let (lp, top) =
            next_token_stats(model, &batch(chunk, model.tokenizer.pad_id, &model.device)?)?;
        for ((row, lp), top) in chunk.iter().zip(lp).zip(top) {
            let n = row.decoder.len().saturating_sub(1).min(lp.len());
            out.push(TargetScore {
                nll: -lp[..n].iter().map(|&x| f64::from(x)).sum::<f64>(),
                tokens: n,
                top1: top[..n].to_vec(),
            });
        }
    }
    Ok(out)
}

/// Runs teacher and student over `examples` and compares their decoders.
pub fn measure(
    teacher: &LoadedModel,
    student: &LoadedModel,
    data: &str,
    examples: &[Example],
) -> Result<Fidelity, Diag> {
    let max_len = teacher.config.max_positions.min(MEASURED_TOKENS);
    let read = |m: &LoadedModel| rows(&m.config, &m.tokenizer, examples, max_len, EVAL_SEED);
    let (rows_t, truncated) = read(teacher)?;
    let (rows_s, _) = read(student)?;
    let scores_t = score_targets(teacher, &rows_t)?;
    let scores_s = score_targets(student, &rows_s)?;
    let mut counts = LmCounts::default();
    for ((rt, rs), (t, s)) in rows_t
        .iter()
        .zip(&rows_s)
        .zip(scores_t.iter().zip(&scores_s))
    {
        counts.nll_teacher += t.nll;
        counts.nll_student += s.nll;
        counts.tokens_teacher += t.tokens;
        counts.tokens_student += s.tokens;
        // Compared where both read the same tokens (the same vocabulary).
        if rt == rs {
            counts.top1 += t.top1.iter().zip(&s.top1).filter(|(a, b)| a == b).count();
            counts.compared += t.tokens;
        }
    }
    Ok(Fidelity {
        data: data.to_string(),
        examples: examples.len(),
        truncated,
        max_tokens: max_len,
        metrics: counts.metrics(),
    })
}
