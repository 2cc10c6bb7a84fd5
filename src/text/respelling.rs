//! How many words of some text a model's tokenizer spells in other pieces
//! than a reference tokenizer does. A vocabulary pruned on one kind of text
//! splits the words of another kind into pieces the model learned less
//! about, which costs fidelity; `plcc eval` and `plcc bench` warn when a
//! model they compare with its teacher re-spells more than
//! [`WARN_SHARE`] of the input's words.

use tokenizers::Encoding;

use super::tokenizer::TextTokenizer;
use crate::diag::Diag;

/// The share of re-spelled words above which a comparison warns.
pub const WARN_SHARE: f64 = 0.02;

/// Words counted, and those spelled in other pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Respelling {
    pub words: usize,
    pub respelled: usize,
}

impl Respelling {
    /// Share of the words spelled in other pieces.
    pub fn share(&self) -> f64 {
        self.respelled as f64 / self.words.max(1) as f64
    }

    /// The warning a comparison of `model` with `reference` gives, when it
    /// re-spells more than [`WARN_SHARE`] of the words of `input`.
    pub fn warning(&self, model: &str, reference: &str, input: &str) -> Option<Diag> {
        (self.share() > WARN_SHARE).then(|| {
            Diag::warning(
                "plcc::vocab::respelled",
                format!(
                    "`{model}` spells {:.1}% of the words of {input} ({} of {}) in other pieces than `{reference}`",
                    100.0 * self.share(),
                    self.respelled,
                    self.words
                ),
            )
            .note("its vocabulary was pruned on other text; words split into other pieces cost fidelity")
            .help("prune the vocabulary on text of the kind the model will serve (the recipe's `vocab { data: ... }`)")
        })
    }
}

/// Counts the words of `texts` that `model` spells in other pieces than
/// `reference` (words as the tokenizers' pre-tokenizer splits them).
pub fn respelling(
    reference: &TextTokenizer,
    model: &TextTokenizer,
    texts: &[&str],
) -> Result<Respelling, Diag> {
    let (a, b) = (
        reference.encodings_plain(texts)?,
        model.encodings_plain(texts)?,
    );
    let mut out = Respelling::default();
    for (a, b) in a.iter().zip(&b) {
        let (wa, wb) = (word_pieces(a), word_pieces(b));
        out.words += wa.len();
        out.respelled += wa
            .iter()
            .enumerate()
            .filter(|(i, pieces)| wb.get(*i) != Some(*pieces))
            .count();
    }
    Ok(out)
}

/// The pieces of each word of an encoding, in word order.
fn word_pieces(e: &Encoding) -> Vec<Vec<&str>> {
    let mut words: Vec<Vec<&str>> = Vec::new();
    for (token, word) in e.get_tokens().iter().zip(e.get_word_ids()) {
        let Some(w) = word.map(|w| w as usize) else {
            continue;
        };
        if words.len() <= w {
            words.resize(w + 1, Vec::new());
        }
        words[w].push(token.as_str());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenizer::builtin_wordpiece;

    #[test]
    fn the_same_tokenizer_respells_nothing_and_a_smaller_vocabulary_does() {
        let full = builtin_wordpiece(2000).unwrap();
        let small = builtin_wordpiece(120).unwrap();
        let texts = ["the cat sleeps", "a train leaves the station"];
        let same = respelling(&full, &full, &texts).unwrap();
        assert_eq!(same.words, 8);
        assert_eq!(same.respelled, 0);
        assert!(same.warning("m", "t", "the input").is_none());
        let pruned = respelling(&full, &small, &texts).unwrap();
        assert_eq!(pruned.words, 8);
        assert!(pruned.respelled > 0, "{pruned:?}");
        let w = pruned.warning("m", "t", "the input").unwrap();
        assert!(
            w.message.contains("in other pieces than `t`"),
            "{}",
            w.message
        );
    }
}
