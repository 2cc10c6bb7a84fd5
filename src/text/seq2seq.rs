//! Examples of an encoder-decoder (BART) as token ids: a source for the
//! encoder and the decoder's inputs (its start token, then the target). A
//! pair (`text<TAB>text_pair`) is a source and its target; a single text is
//! a denoising example, its source the text corrupted by BART's text
//! infilling (spans of Poisson(3) length, 30% of the tokens, each replaced
//! by one mask token) and its target the text itself. The corruption is
//! drawn from a seed and the example's index, so every run (and a resumed
//! one) sees the same sources.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::data::Example;
use super::TextTokenizer;
use crate::diag::Diag;

/// Share of a sentence's tokens that text infilling masks.
pub const MASK_RATIO: f64 = 0.3;
/// Mean span length of text infilling.
pub const SPAN_MEAN: f64 = 3.0;

/// The special tokens an encoder-decoder example needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq2SeqTokens {
    /// The decoder's first input.
    pub decoder_start: u32,
    /// The token a masked span becomes.
    pub mask: u32,
}

impl Seq2SeqTokens {
    /// The tokens of `tokenizer` (`<mask>`) with `decoder_start`.
    pub fn of(tokenizer: &TextTokenizer, decoder_start: u32) -> Result<Self, Diag> {
        let mask = tokenizer
            .inner
            .token_to_id(super::tokenizer::BART_MASK)
            .ok_or_else(|| {
                Diag::new(
                    "plcc::seq2seq::no-mask-token",
                    "the tokenizer has no `<mask>` token, which text infilling needs",
                )
                .help("give seq2seq data as `source<TAB>target` pairs, or use a BART tokenizer")
            })?;
        Ok(Seq2SeqTokens {
            decoder_start,
            mask,
        })
    }
}

/// One example: the encoder's source and the decoder's inputs
/// (`decoder_start`, then the target's tokens). The decoder at position `i`
/// predicts `decoder[i + 1]`; the last position predicts nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seq2SeqRow {
    pub source: Vec<u32>,
    pub decoder: Vec<u32>,
}

/// A Poisson(`mean`) draw (Knuth's method; `mean` is small).
fn poisson(rng: &mut StdRng, mean: f64) -> usize {
    let limit = (-mean).exp();
    let (mut k, mut p) = (0usize, 1.0f64);
    loop {
        p *= rng.random::<f64>();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

/// `ids` with text infilling applied between its first and last token (the
/// tokenizer's `<s>` and `</s>`, which stay): spans of Poisson(3) length
/// covering about 30% of the inner tokens each become one `mask`; a span of
/// length 0 inserts a `mask`.
pub fn infill(ids: &[u32], mask: u32, rng: &mut StdRng) -> Vec<u32> {
    if ids.len() < 3 {
        return ids.to_vec();
    }
    let inner = &ids[1..ids.len() - 1];
    let n = inner.len();
    let target = (n as f64 * MASK_RATIO).round() as usize;
    let mut masked = vec![false; n];
    let mut inserted = vec![false; n + 1];
    let (mut covered, mut spans) = (0usize, 0usize);
    while covered < target.max(1) && spans < n {
        spans += 1;
        let len = poisson(rng, SPAN_MEAN);
        let start = rng.random_range(0..n);
        if len == 0 {
            inserted[start] = true;
            covered += 1;
            continue;
        }
        for flag in masked.iter_mut().skip(start).take(len) {
            covered += usize::from(!*flag);
            *flag = true;
        }
    }
    let mut out = vec![ids[0]];
    for (i, &id) in inner.iter().enumerate() {
        if inserted[i] && out.last() != Some(&mask) {
            out.push(mask);
        }
        if !masked[i] {
            out.push(id);
        } else if out.last() != Some(&mask) {
            out.push(mask);
        }
    }
    if inserted[n] && out.last() != Some(&mask) {
        out.push(mask);
    }
    out.push(ids[ids.len() - 1]);
    out
}

/// The rows of `examples`, each side cut to `max_len` tokens (the decoder's
/// start token included), and the number of examples that were cut.
/// Single texts are corrupted with a generator seeded by `seed` and the
/// example's index.
pub fn encode(
    tokenizer: &TextTokenizer,
    tokens: Seq2SeqTokens,
    max_len: usize,
    examples: &[Example],
    seed: u64,
) -> Result<(Vec<Seq2SeqRow>, usize), Diag> {
    let mut cut = 0;
    let encode = |text: &str| -> Result<Vec<u32>, Diag> {
        let enc = tokenizer.inner.encode(text, true).map_err(|e| {
            Diag::new("plcc::seq2seq::tokenize", "cannot tokenize an example").note(e.to_string())
        })?;
        Ok(enc.get_ids().to_vec())
    };
    let rows = examples
        .iter()
        .enumerate()
        .map(|(i, ex)| {
            let (mut source, target) = match &ex.pair {
                Some(target) => (encode(&ex.text)?, encode(target)?),
                None => {
                    let target = encode(&ex.text)?;
                    let mut rng = StdRng::seed_from_u64(
                        seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                    (infill(&target, tokens.mask, &mut rng), target)
                }
            };
            let mut decoder = Vec::with_capacity(target.len() + 1);
            decoder.push(tokens.decoder_start);
            decoder.extend(target);
            let long = source.len() > max_len || decoder.len() > max_len;
            cut += usize::from(long);
            source.truncate(max_len);
            decoder.truncate(max_len);
            Ok(Seq2SeqRow { source, decoder })
        })
        .collect::<Result<Vec<_>, Diag>>()?;
    Ok((rows, cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infilling_masks_about_a_third_in_spans_and_keeps_the_ends() {
        let ids: Vec<u32> = std::iter::once(0)
            .chain(10..70)
            .chain(std::iter::once(2))
            .collect();
        let mut rng = StdRng::seed_from_u64(7);
        let (mut kept, mut masks) = (0, 0);
        for _ in 0..50 {
            let out = infill(&ids, 99, &mut rng);
            assert_eq!((out[0], *out.last().unwrap()), (0, 2));
            assert!(out.windows(2).all(|w| !(w[0] == 99 && w[1] == 99)));
            // Kept tokens stay in order.
            let inner: Vec<u32> = out.iter().copied().filter(|&t| t != 99).collect();
            assert!(inner.windows(2).all(|w| w[0] < w[1] || w[1] == 2));
            kept += inner.len() - 2;
            masks += out.iter().filter(|&&t| t == 99).count();
        }
        let share = 1.0 - kept as f64 / (50.0 * 60.0);
        assert!((0.2..0.45).contains(&share), "masked share {share}");
        assert!(masks >= 50, "every example has a mask");
        assert_eq!(
            infill(&ids, 99, &mut StdRng::seed_from_u64(3)),
            infill(&ids, 99, &mut StdRng::seed_from_u64(3))
        );
    }
}
