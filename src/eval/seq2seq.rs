//! An encoder-decoder's examples as the measurements read them: a source
//! (a pair's first text, or a single text corrupted by text infilling) and
//! the decoder's row (its start token, then the target). The fidelity
//! measurement and `plcc eval` then score the decoder's next-token
//! predictions over the target as they score a causal LM's
//! (`eval::fidelity::encode_with` carries the rows).

use crate::base::ModelConfig;
use crate::diag::Diag;
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
