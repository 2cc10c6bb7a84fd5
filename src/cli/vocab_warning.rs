//! The warning `plcc eval --against` and `plcc bench` print when the model
//! they compare with another reads the input through a smaller vocabulary
//! that spells many of its words in other pieces (`text::respelling`).

use super::output::render;
use crate::diag::Diag;
use crate::runtime::LoadedModel;
use crate::text::respelling::respelling;
use crate::text::TextTokenizer;

/// A model as the warning names it: its name, tokenizer and vocabulary size.
pub struct Reader<'a> {
    pub name: &'a str,
    pub tokenizer: &'a TextTokenizer,
    pub vocab_size: usize,
}

impl<'a> Reader<'a> {
    pub fn of(name: &'a str, model: &'a LoadedModel) -> Self {
        Reader {
            name,
            tokenizer: &model.tokenizer,
            vocab_size: model.config.vocab_size,
        }
    }
}

/// Renders the warning when `model` has a smaller vocabulary than
/// `reference` and re-spells more than the warned share of the words of
/// `texts` (the contents of `input`).
pub fn warn_if_respelled(
    model: &Reader,
    reference: &Reader,
    texts: &[&str],
    input: &str,
) -> Result<(), Diag> {
    if model.vocab_size >= reference.vocab_size {
        return Ok(());
    }
    let counted = respelling(reference.tokenizer, model.tokenizer, texts)?;
    if let Some(w) = counted.warning(model.name, reference.name, input) {
        render(&w);
    }
    Ok(())
}
