//! Running a loaded model over many inputs: tokenization, length-sorted
//! batching (little padding), one output record per input in input order.
//! Shared by `plcc run` and `plcc bench`.

use serde::Serialize;

use crate::diag::Diag;
use crate::runtime::load::loader::LoadedModel;
use crate::runtime::model::output::Inputs;
use crate::runtime::run::early_exit;
use crate::runtime::run::exit_rule::{argmax, cosine};

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

/// Token rows of the input lines, and how many lines were cut to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub rows: Vec<Vec<u32>>,
    /// Lines longer than the length limit, cut to it.
    pub truncated: usize,
    /// The length limit in tokens.
    pub max_len: usize,
}

impl Tokenized {
    /// The note to show when lines were cut (the library does not print it).
    pub fn truncation_note(&self) -> Option<String> {
        (self.truncated > 0).then(|| {
            format!(
                "{} of {} inputs are longer than {} tokens and were cut to that length",
                self.truncated,
                self.rows.len(),
                self.max_len
            )
        })
    }
}

/// Tokenizes `lines` with special tokens, truncated to `max_len` (default:
/// the model's maximum positions). Every line must yield a token.
pub fn tokenize(
    model: &LoadedModel,
    lines: &[String],
    max_len: Option<usize>,
) -> Result<Tokenized, Diag> {
    let limit = model.config.max_positions;
    let max_len = max_len.unwrap_or(limit);
    if max_len == 0 || max_len > limit {
        return Err(Diag::new(
            "plcc::run::bad-max-len",
            format!("--max-len {max_len} is outside 1..={limit} (the model's maximum positions)"),
        ));
    }
    let (rows, truncated) = model.tokenizer.encode_all(lines, max_len)?;
    if let Some(i) = rows.iter().position(Vec::is_empty) {
        return Err(Diag::new(
            "plcc::run::empty-input",
            format!("input line {} yields no tokens", i + 1),
        )
        .help("remove empty lines from the input file"));
    }
    let vocab = model.config.vocab_size as u32;
    if let Some((i, id)) = rows
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.iter().find(|&&t| t >= vocab).map(|t| (i, *t)))
    {
        return Err(Diag::new(
            "plcc::run::token-out-of-range",
            format!(
                "input line {} has token id {id}, but the model's vocabulary has {vocab} entries",
                i + 1
            ),
        )
        .help("the tokenizer does not belong to this model"));
    }
    Ok(Tokenized {
        rows,
        truncated,
        max_len,
    })
}

/// Groups row indices into batches of at most `batch_size`, longest rows
/// first, so rows of similar length share a batch.
pub fn plan_batches(rows: &[Vec<u32>], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].len()));
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// Runs one batch of token rows, with early exit where the model's exits
/// have thresholds; records in the order of `rows`. An encoder-decoder's
/// rows are its sources, each record the next-token logits after the
/// decoder start token ([`crate::runtime::run::generate::run_sources`]). A batch of more than
/// `TOKENS_PER_PASS` padded tokens runs as several forward passes of whole
/// rows, which bounds the activations held at once (results do not depend
/// on how rows are batched).
pub fn run_batch(model: &LoadedModel, rows: &[Vec<u32>]) -> Result<Vec<Record>, Diag> {
    if model.config.seq2seq.is_some() {
        return crate::runtime::run::generate::run_sources(model, rows);
    }
    let mut records = Vec::with_capacity(rows.len());
    for part in passes(rows, TOKENS_PER_PASS) {
        let inputs =
            Inputs::from_rows(part, model.tokenizer.pad_id, &model.device).map_err(failed)?;
        records.extend(early_exit::run(model, &inputs).map_err(failed)?);
    }
    if model.pipeline.normalize {
        for embedding in records.iter_mut().filter_map(|r| r.embedding.as_mut()) {
            normalize(embedding);
        }
    }
    Ok(records)
}

/// Divides `v` by its length (a zero vector stays zero).
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Padded tokens one forward pass holds at most (unless one row is longer).
const TOKENS_PER_PASS: usize = 1024;

/// `rows` split, in order, into runs whose padded size (rows × longest row)
/// stays within `budget` tokens; each run has at least one row.
fn passes(rows: &[Vec<u32>], budget: usize) -> Vec<&[Vec<u32>]> {
    let mut parts = Vec::new();
    let (mut start, mut longest) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let wider = longest.max(row.len());
        if i > start && wider * (i + 1 - start) > budget {
            parts.push(&rows[start..i]);
            start = i;
            longest = row.len();
        } else {
            longest = wider;
        }
    }
    if start < rows.len() {
        parts.push(&rows[start..]);
    }
    parts
}

/// The diagnostic of a failed forward pass.
pub fn failed(e: candle_core::Error) -> Diag {
    Diag::new("plcc::run::forward-failed", "the forward pass failed").note(e.to_string())
}

/// Runs every row in length-sorted batches; records in input order.
pub fn run_all(
    model: &LoadedModel,
    rows: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<Record>, Diag> {
    let mut records: Vec<Option<Record>> = vec![None; rows.len()];
    for batch in plan_batches(rows, batch_size) {
        let batch_rows: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].clone()).collect();
        for (i, rec) in batch.iter().zip(run_batch(model, &batch_rows)?) {
            records[*i] = Some(rec);
        }
    }
    Ok(records.into_iter().flatten().collect())
}

/// Reads one input per line (a trailing newline is not an input).
pub fn read_lines(path: &std::path::Path) -> Result<Vec<String>, Diag> {
    let text = crate::fsio::read_text(path, &crate::fsio::INPUT)?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return Err(Diag::new(
            "plcc::run::empty-input",
            format!("input file `{}` is empty", path.display()),
        )
        .help("write one input text per line"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::passes;

    #[test]
    fn passes_keep_order_and_stay_within_the_token_budget() {
        let rows: Vec<Vec<u32>> = [9usize, 7, 7, 5, 3, 3, 3, 1]
            .iter()
            .map(|&n| vec![1; n])
            .collect();
        let parts = passes(&rows, 16);
        let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![1, 2, 3, 2]);
        assert_eq!(parts.concat(), rows);
        // A row longer than the budget runs alone.
        assert_eq!(passes(&rows[..1], 4).len(), 1);
        assert!(passes(&[], 16).is_empty());
    }
}
