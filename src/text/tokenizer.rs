//! Tokenizers: loading a checkpoint's `tokenizer.json`, building the
//! tokenizers of the built-in models (a lower-casing WordPiece over a built-in
//! English word list for tiny-bert; a byte-level BPE for tiny-gpt2, and in
//! BART's layout for tiny-bart), and
//! turning text into truncated id sequences.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationParams};

use crate::base::TeacherRef;
use crate::diag::Diag;
use crate::fsio;

/// A tokenizer plus what plcc needs to know about it.
#[derive(Clone)]
pub struct TextTokenizer {
    pub inner: Tokenizer,
    /// The id used to pad batches.
    pub pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TextTokenizer(vocab {}, pad {})",
            self.inner.get_vocab_size(true),
            self.pad_id
        )
    }
}

impl TextTokenizer {
    /// Reads `dir/tokenizer.json`; padding and truncation settings stored in
    /// the file are dropped (plcc pads and truncates itself).
    pub fn from_dir(dir: &Path, pad_id: Option<u32>) -> Result<Self, Diag> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(Diag::new(
                "plcc::checkpoint::missing-tokenizer",
                format!(
                    "checkpoint directory `{}` has no tokenizer.json",
                    dir.display()
                ),
            )
            .help("save the tokenizer next to the model (`tokenizer.save_pretrained(dir)`)"));
        }
        let bytes = fsio::read_regular(&path, &fsio::TOKENIZER)?;
        Self::from_bytes(&bytes, &path, pad_id)
    }

    /// Parses the contents of a `tokenizer.json` (`path` is only used in
    /// messages), as `from_dir` does.
    pub fn from_bytes(bytes: &[u8], path: &Path, pad_id: Option<u32>) -> Result<Self, Diag> {
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| {
            Diag::new(
                "plcc::checkpoint::bad-tokenizer",
                format!("cannot read tokenizer `{}`", path.display()),
            )
            .note(e.to_string())
        })?;
        inner.with_padding(None);
        let pad_id = pad_id.or_else(|| inner.token_to_id("[PAD]")).unwrap_or(0);
        Ok(TextTokenizer { inner, pad_id })
    }

    /// Token ids of `text` with the model's special tokens, at most `max_len`.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>, Diag> {
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| {
            Diag::new("plcc::run::tokenize", "cannot set truncation").note(e.to_string())
        })?;
        let enc = tok.encode(text, true).map_err(|e| {
            Diag::new("plcc::run::tokenize", "cannot tokenize input").note(e.to_string())
        })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes many lines (in parallel), each truncated to `max_len`; also
    /// returns how many lines were longer and lost tokens.
    pub fn encode_all(
        &self,
        lines: &[String],
        max_len: usize,
    ) -> Result<(Vec<Vec<u32>>, usize), Diag> {
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| {
            Diag::new("plcc::run::tokenize", "cannot set truncation").note(e.to_string())
        })?;
        let encs = tok
            .encode_batch(lines.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| {
                Diag::new("plcc::run::tokenize", "cannot tokenize input").note(e.to_string())
            })?;
        let truncated = encs
            .iter()
            .filter(|e| !e.get_overflowing().is_empty())
            .count();
        Ok((
            encs.iter().map(|e| e.get_ids().to_vec()).collect(),
            truncated,
        ))
    }

    /// Token ids of each of `texts` without special tokens and without
    /// truncation (an encoder-decoder's targets).
    pub fn encode_plain(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, Diag> {
        let encs = self.encodings_plain(texts)?;
        Ok(encs.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// [`Self::encode_plain`] with the whole encodings: pieces and the word
    /// each belongs to beside the ids.
    pub fn encodings_plain(&self, texts: &[&str]) -> Result<Vec<tokenizers::Encoding>, Diag> {
        let mut tok = self.inner.clone();
        tok.with_truncation(None).map_err(|e| {
            Diag::new("plcc::run::tokenize", "cannot unset truncation").note(e.to_string())
        })?;
        tok.encode_batch(texts.to_vec(), false).map_err(|e| {
            Diag::new("plcc::run::tokenize", "cannot tokenize input").note(e.to_string())
        })
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, Diag> {
        self.inner.decode(ids, true).map_err(|e| {
            Diag::new("plcc::run::detokenize", "cannot decode generated tokens").note(e.to_string())
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Special tokens of the built-in WordPiece tokenizer, ids 0..5.
pub const BERT_SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// The tokenizer of a built-in model, or `None` for an unknown name.
pub fn builtin(name: &str) -> Option<Result<TextTokenizer, Diag>> {
    let cfg = crate::base::builtin::config(name)?;
    Some(match cfg.arch {
        crate::base::Arch::Bert => builtin_wordpiece(cfg.vocab_size),
        crate::base::Arch::Gpt2 => builtin_byte_bpe(cfg.vocab_size),
        crate::base::Arch::Bart => builtin_bart_bpe(cfg.vocab_size),
    })
}

/// The tokenizer of `builtin:tiny-bert`: BERT normalizer (lower case) and
/// pre-tokenizer, WordPiece over specials, single characters (plain and
/// `##`-continued) and the built-in word list, at most `vocab_size` entries;
/// `[CLS] text [SEP]`.
pub fn builtin_wordpiece(vocab_size: usize) -> Result<TextTokenizer, Diag> {
    let mut entries: Vec<String> = BERT_SPECIALS.iter().map(|s| s.to_string()).collect();
    let chars: Vec<char> = ('a'..='z')
        .chain('0'..='9')
        .chain("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".chars())
        .collect();
    entries.extend(chars.iter().map(|c| c.to_string()));
    entries.extend(
        chars
            .iter()
            .filter(|c| c.is_alphanumeric())
            .map(|c| format!("##{c}")),
    );
    let suffixes = ["##ed", "##ing", "##er", "##ly", "##es", "##est", "##tion"];
    // Every entry appears once: a repeated token would leave a hole in the ids.
    for w in suffixes.into_iter().chain(WORDS.split_whitespace()) {
        if entries.len() >= vocab_size {
            break;
        }
        if !entries.iter().any(|e| e == w) {
            entries.push(w.to_string());
        }
    }
    entries.truncate(vocab_size);
    let vocab: tokenizers::models::bpe::Vocab = entries
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let model = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| builtin_failed("tiny-bert", e))?;
    let mut inner = Tokenizer::new(model);
    inner.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
    inner.with_pre_tokenizer(Some(BertPreTokenizer));
    let post = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(|e| builtin_failed("tiny-bert", e))?
        .special_tokens(vec![("[CLS]", 2u32), ("[SEP]", 3u32)])
        .build()
        .map_err(|e| builtin_failed("tiny-bert", e))?;
    inner.with_post_processor(Some(post));
    inner.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    inner.add_special_tokens(&BERT_SPECIALS.map(|s| AddedToken::from(s, true)));
    Ok(TextTokenizer { inner, pad_id: 0 })
}

/// The tokenizer of `builtin:tiny-gpt2`: byte-level BPE with the 256 byte
/// symbols, `<|endoftext|>` (id 256), and merges spelling out the built-in
/// words (with and without a leading space) until `vocab_size` is reached.
pub fn builtin_byte_bpe(vocab_size: usize) -> Result<TextTokenizer, Diag> {
    let eot = "<|endoftext|>";
    let mut vocab = tokenizers::models::bpe::Vocab::new();
    for c in byte_alphabet() {
        vocab.insert(c.to_string(), vocab.len() as u32);
    }
    vocab.insert(eot.to_string(), vocab.len() as u32);
    let merges = add_word_merges(&mut vocab, vocab_size);
    let mut inner = byte_level_tokenizer(vocab, merges, "tiny-gpt2")?;
    inner.add_special_tokens(&[AddedToken::from(eot, true)]);
    Ok(TextTokenizer { inner, pad_id: 256 })
}

/// Special tokens of the built-in BART tokenizer at its first ids
/// (`<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3); `<mask>` is its last id.
pub const BART_SPECIALS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// The mask token of BART's text infilling.
pub const BART_MASK: &str = "<mask>";

/// The tokenizer of `builtin:tiny-bart`: BART's layout of the byte-level BPE
/// of tiny-gpt2 (the specials of [`BART_SPECIALS`], the byte alphabet, merges
/// of the built-in words, `<mask>` last); `<s> text </s>`.
pub fn builtin_bart_bpe(vocab_size: usize) -> Result<TextTokenizer, Diag> {
    let mut vocab = tokenizers::models::bpe::Vocab::new();
    for t in BART_SPECIALS {
        vocab.insert(t.to_string(), vocab.len() as u32);
    }
    for c in byte_alphabet() {
        vocab.insert(c.to_string(), vocab.len() as u32);
    }
    let merges = add_word_merges(&mut vocab, vocab_size.saturating_sub(1));
    vocab.insert(BART_MASK.to_string(), vocab.len() as u32);
    let mut inner = byte_level_tokenizer(vocab, merges, "tiny-bart")?;
    let specials: Vec<AddedToken> = BART_SPECIALS
        .iter()
        .chain(&[BART_MASK])
        .map(|t| AddedToken::from(*t, true))
        .collect();
    inner.add_special_tokens(&specials);
    let post = TemplateProcessing::builder()
        .try_single("<s> $A </s>")
        .and_then(|b| b.try_pair("<s> $A </s> </s> $B </s>"))
        .map_err(|e| builtin_failed("tiny-bart", e))?
        .special_tokens(vec![("<s>", 0), ("</s>", 2)])
        .build()
        .map_err(|e| builtin_failed("tiny-bart", e))?;
    inner.with_post_processor(Some(post));
    Ok(TextTokenizer { inner, pad_id: 1 })
}

/// The 256 characters of byte-level BPE, in a fixed order.
fn byte_alphabet() -> Vec<char> {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    alphabet
}

/// Adds merges spelling the built-in words (with and without a leading
/// space) to `vocab` until it has `limit` entries; the merges in order.
fn add_word_merges(
    vocab: &mut tokenizers::models::bpe::Vocab,
    limit: usize,
) -> Vec<(String, String)> {
    let mut merges: Vec<(String, String)> = Vec::new();
    for w in WORDS
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
    {
        for form in [format!("\u{120}{w}"), w.to_string()] {
            let chars: Vec<String> = form.chars().map(|c| c.to_string()).collect();
            let mut acc = chars[0].clone();
            for next in &chars[1..] {
                let merged = format!("{acc}{next}");
                if !vocab.contains_key(&merged) {
                    if vocab.len() >= limit {
                        return merges;
                    }
                    vocab.insert(merged.clone(), vocab.len() as u32);
                    merges.push((acc.clone(), next.clone()));
                }
                acc = merged;
            }
        }
    }
    merges
}

/// A byte-level BPE tokenizer (pre-tokenizer and decoder) over `vocab`
/// and `merges`.
fn byte_level_tokenizer(
    vocab: tokenizers::models::bpe::Vocab,
    merges: Vec<(String, String)>,
    name: &str,
) -> Result<Tokenizer, Diag> {
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| builtin_failed(name, e))?;
    let mut inner = Tokenizer::new(model);
    inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(inner)
}

fn builtin_failed(name: &str, e: impl std::fmt::Display) -> Diag {
    Diag::new(
        "plcc::builtin::tokenizer",
        format!("cannot build the tokenizer of builtin:{name}"),
    )
    .note(e.to_string())
}

/// Common English words, most frequent first (the built-in vocabularies).
const WORDS: &str = "the of and to a in is it you that he was for on are with as i his they be at one have this
from or had by not word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing see him two
has look more day could go come did number sound no most people my over know water than call first who may down
side been now find any new work part take get place made live where after back little only round man year came
show every good me give our under name very through just form sentence great think say help low line differ turn
cause much mean before move right boy old too same tell does set three want air well also play small end put home
read hand port large spell add even land here must big high such follow act why ask men change went light kind
off need house picture try us again animal point mother world near build self earth father head stand own page
should country found answer school grow study still learn plant cover food sun four between state keep eye never
last let thought city tree cross farm hard start might story saw far sea draw left late run while press close
night real life few north open seem together next white children begin got walk example ease paper group always
music those both mark often letter until mile river car feet care second book carry took science eat room friend
began idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual
young ready above ever red list though feel talk bird soon body dog family direct pose leave song measure door
product black short numeral class wind question happen complete ship area half rock order fire south problem piece
told knew pass since top whole king space heard best hour better true during hundred five remember step early hold
west ground interest reach fast verb sing listen six table travel less morning ten simple several vowel toward war
lay against pattern slow center love person money serve appear road map rain rule govern pull cold notice voice
unit power town fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct
able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean warm free
minute strong special mind behind clear tail produce fact street inch multiply nothing course stay wheel full force
blue object decide surface deep moon island foot system busy test record boat common gold possible plane stead dry
wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant fill east
paint language among model compress layer weight token batch cache memory speed data train student teacher
network neural compute value result small smaller fast faster size bit bits input output text file run build";

/// The tokenizer of the recipe's teacher (`pad_id`: the config's padding
/// id; built-in models know their own).
pub fn of_teacher(teacher: &TeacherRef, pad_id: Option<u32>) -> Result<TextTokenizer, Diag> {
    match teacher {
        TeacherRef::Builtin(name) => {
            builtin(name).ok_or_else(|| crate::base::builtin::unknown(name))?
        }
        TeacherRef::Dir(dir) => TextTokenizer::from_dir(dir, pad_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_wordpiece_fits_and_wraps_with_specials() {
        let t = builtin_wordpiece(1024).unwrap();
        assert!(t.vocab_size() <= 1024);
        let ids = t.encode("The model runs quickly!", 128).unwrap();
        assert_eq!(ids.first(), Some(&2));
        assert_eq!(ids.last(), Some(&3));
        assert!(!ids.contains(&1), "no [UNK] for plain English: {ids:?}");
        assert_eq!(t.encode("a b c d e f g h", 4).unwrap().len(), 4);
    }

    #[test]
    fn builtin_bpe_fits_and_covers_every_byte() {
        let t = builtin_byte_bpe(512).unwrap();
        assert!(t.vocab_size() <= 512);
        let ids = t.encode("the water — café 42", 128).unwrap();
        assert!(!ids.is_empty());
        assert!(ids.iter().all(|&i| i < 512));
        let text = t.inner.decode(&ids, false).unwrap();
        assert_eq!(text, "the water — café 42");
        // Common words are single tokens.
        assert_eq!(t.encode(" the", 128).unwrap().len(), 1);
    }
}
