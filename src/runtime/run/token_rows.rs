//! Input lines as token rows: tokenized within the model's positions and
//! vocabulary ([`tokenize`]), and grouped into length-sorted batches
//! ([`plan_batches`]).

use crate::diag::Diag;
use crate::runtime::load::loaded_model::LoadedModel;

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
