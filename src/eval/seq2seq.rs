//! Fidelity of an encoder-decoder student: teacher and student read the same
//! examples (a source, or a text corrupted by text infilling, and its
//! target) and the decoder's next-token predictions over the target are
//! compared: each side's perplexity of the target, their ratio, and the
//! positions where both predict the same token.

use candle_core::Device;

use super::fidelity::{next_token_stats, Fidelity, LmCounts, BATCH, MEASURED_TOKENS};
use crate::diag::Diag;
use crate::runtime::{tensor_error, Inputs, LoadedModel};
use crate::text::data::Example;
use crate::text::seq2seq::{self, Seq2SeqRow, Seq2SeqTokens};

/// The seed of the held-out corruption: every build measures on the same
/// sources.
pub const EVAL_SEED: u64 = 0x5EED_0E7A;

/// The examples as `model` reads them (`seed` draws the corruption of
/// single texts), each side cut to `max_len`; with the number cut.
pub fn rows(
    model: &LoadedModel,
    examples: &[Example],
    max_len: usize,
    seed: u64,
) -> Result<(Vec<Seq2SeqRow>, usize), Diag> {
    let start = model
        .config
        .seq2seq
        .as_ref()
        .map(|s| s.decoder_start_token_id)
        .ok_or_else(|| {
            Diag::new(
                "plcc::seq2seq::not-encoder-decoder",
                format!("`{}` is not an encoder-decoder model", model.name),
            )
            .help("the seq2seq task needs a BART model")
        })?;
    let tokens = Seq2SeqTokens::of(&model.tokenizer, start)?;
    seq2seq::encode(&model.tokenizer, tokens, max_len, examples, seed)
}

/// One padded batch of rows.
pub fn batch(rows: &[Seq2SeqRow], pad_id: u32, device: &Device) -> Result<Inputs, Diag> {
    let sources: Vec<Vec<u32>> = rows.iter().map(|r| r.source.clone()).collect();
    let decoder: Vec<Vec<u32>> = rows.iter().map(|r| r.decoder.clone()).collect();
    Inputs::seq2seq(&sources, &decoder, pad_id, device).map_err(tensor_error)
}

/// Runs teacher and student over `examples` and compares their decoders.
pub fn measure(
    teacher: &LoadedModel,
    student: &LoadedModel,
    data: &str,
    examples: &[Example],
) -> Result<Fidelity, Diag> {
    let max_len = teacher.config.max_positions.min(MEASURED_TOKENS);
    let (rows_t, truncated) = rows(teacher, examples, max_len, EVAL_SEED)?;
    let (rows_s, _) = rows(student, examples, max_len, EVAL_SEED)?;
    let mut counts = LmCounts::default();
    for (chunk_t, chunk_s) in rows_t.chunks(BATCH).zip(rows_s.chunks(BATCH)) {
        let (t_lp, t_top) = next_token_stats(
            teacher,
            &batch(chunk_t, teacher.tokenizer.pad_id, &teacher.device)?,
        )?;
        let (s_lp, s_top) = next_token_stats(
            student,
            &batch(chunk_s, student.tokenizer.pad_id, &student.device)?,
        )?;
        for (i, (rt, rs)) in chunk_t.iter().zip(chunk_s).enumerate() {
            let (nt, ns) = (rt.decoder.len() - 1, rs.decoder.len() - 1);
            counts.nll_teacher -= t_lp[i][..nt].iter().map(|&x| x as f64).sum::<f64>();
            counts.nll_student -= s_lp[i][..ns].iter().map(|&x| x as f64).sum::<f64>();
            counts.tokens_teacher += nt;
            counts.tokens_student += ns;
            // Compared where both read the same tokens (the same vocabulary).
            if rt == rs {
                counts.top1 += t_top[i][..nt]
                    .iter()
                    .zip(&s_top[i][..nt])
                    .filter(|(a, b)| a == b)
                    .count();
                counts.compared += nt;
            }
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
