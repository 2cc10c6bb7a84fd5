//! Vocabulary pruning (TextPruner-style) for WordPiece tokenizers: count how
//! often the data uses each piece, choose the pieces to keep, and rewrite the
//! tokenizer so that it tokenizes with the kept pieces only.
//!
//! - Always kept, whatever the data says: every added token (`[PAD]`,
//!   `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, ...), the model's unknown token,
//!   every token the post-processor or the padding names, and every
//!   single-character piece and every `##` + one character piece. WordPiece
//!   matches greedily and falls back to shorter pieces, so with every
//!   character kept in both forms any word still tokenizes: a word the
//!   teacher's vocabulary spells without `[UNK]` is spelled without `[UNK]`
//!   after pruning, possibly in more pieces.
//! - `keep: N`: the always-kept pieces, then the other pieces by descending
//!   count (ties, pieces the data never uses among them, by lower id) until N
//!   in all. `min_count: K`: the always-kept pieces and every piece the data
//!   uses at least K times.
//! - Counting tokenizes every text of the data set (both texts of a pair)
//!   with the teacher's tokenizer, without special tokens, in parallel.
//! - The pruned tokenizer keeps the teacher's pieces in their original
//!   relative order, renumbered 0..K: the student's id `i` is the teacher's
//!   id `kept[i]`. Every id the tokenizer stores is remapped (added tokens,
//!   the post-processor's special tokens, the padding id); the result is
//!   loaded back with `Tokenizer::from_str` and checked piece by piece.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use rayon::prelude::*;
use serde_json::Value;
use tokenizers::{Model, OffsetReferential, OffsetType, PreTokenizer, Tokenizer, TruncationParams};

use crate::base::VocabRule;
use crate::diag::Diag;
use crate::text::data::Example;
use crate::text::TextTokenizer;

/// Texts per unit of parallel work while counting.
const COUNT_CHUNK: usize = 4096;

/// A WordPiece tokenizer's vocabulary and what pruning must keep of it.
#[derive(Debug, Clone)]
pub struct WordPieceVocab {
    /// The tokenizer as JSON (what the pruned tokenizer is rewritten from).
    json: Value,
    /// The piece of each id; `None` for an id without one.
    pieces: Vec<Option<String>>,
    /// Ids kept whatever the data says.
    always: Vec<bool>,
    /// Of the always-kept ids: how many are special (added) tokens.
    specials: usize,
}

/// A tokenizer whose model is not WordPiece: the model's `type` as the
/// tokenizer file writes it (`BPE`, `Unigram`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWordPiece(pub String);

impl WordPieceVocab {
    /// The vocabulary of `tokenizer`, or what kind of tokenizer it is instead.
    pub fn of(tokenizer: &TextTokenizer) -> Result<Result<Self, NotWordPiece>, Diag> {
        let text = tokenizer.inner.to_string(false).map_err(|e| {
            Diag::new("plcc::vocab::tokenizer", "cannot serialise the tokenizer")
                .note(e.to_string())
        })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| {
            Diag::new("plcc::vocab::tokenizer", "cannot read the tokenizer's JSON")
                .note(e.to_string())
        })?;
        let kind = json["model"]["type"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        if kind != "WordPiece" {
            return Ok(Err(NotWordPiece(kind)));
        }
        let vocab = tokenizer.inner.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut pieces = vec![None; size];
        for (piece, id) in vocab {
            pieces[id as usize] = Some(piece);
        }
        let mut always = vec![false; size];
        let mut keep = |id: u32| {
            if let Some(slot) = always.get_mut(id as usize) {
                *slot = true;
            }
        };
        let added = tokenizer.inner.get_added_tokens_decoder();
        for &id in added.keys() {
            keep(id);
        }
        let mut named: Vec<u32> = Vec::new();
        collect_processor_ids(&json["post_processor"], &mut named);
        if let Some(id) = json["padding"]["pad_id"].as_u64() {
            named.push(id as u32);
        }
        if let Some(unk) = json["model"]["unk_token"].as_str() {
            named.extend(tokenizer.inner.token_to_id(unk));
        }
        named.push(tokenizer.pad_id);
        for id in named {
            keep(id);
        }
        let prefix = json["model"]["continuing_subword_prefix"]
            .as_str()
            .unwrap_or("##")
            .to_string();
        for (id, piece) in pieces.iter().enumerate() {
            let Some(piece) = piece else { continue };
            let bare = piece.strip_prefix(prefix.as_str()).unwrap_or(piece);
            if bare.chars().count() == 1 || piece.chars().count() == 1 {
                always[id] = true;
            }
        }
        let specials = added.len();
        Ok(Ok(WordPieceVocab {
            json,
            pieces,
            always,
            specials,
        }))
    }

    /// Pieces in the vocabulary.
    pub fn len(&self) -> usize {
        self.pieces.iter().filter(|p| p.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pieces every pruned vocabulary keeps.
    pub fn always_kept(&self) -> usize {
        self.always.iter().filter(|&&a| a).count()
    }

    /// Of the always-kept pieces, the special (added) tokens.
    pub fn special_tokens(&self) -> usize {
        self.specials
    }

    /// The piece of teacher id `id`.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).and_then(|p| p.as_deref())
    }

    /// Ids (exclusive upper bound) the vocabulary spans.
    pub fn id_space(&self) -> usize {
        self.pieces.len()
    }
}

/// Ids the post-processor names (`TemplateProcessing`'s special tokens,
/// `BertProcessing` / `RobertaProcessing`'s `sep` and `cls`, `Sequence`'s parts).
fn collect_processor_ids(processor: &Value, out: &mut Vec<u32>) {
    match processor["type"].as_str() {
        Some("TemplateProcessing") => {
            if let Some(specials) = processor["special_tokens"].as_object() {
                for token in specials.values() {
                    for id in token["ids"].as_array().into_iter().flatten() {
                        out.extend(id.as_u64().map(|i| i as u32));
                    }
                }
            }
        }
        Some("BertProcessing" | "RobertaProcessing") => {
            for key in ["sep", "cls"] {
                out.extend(processor[key][1].as_u64().map(|i| i as u32));
            }
        }
        Some("Sequence") => {
            for p in processor["processors"].as_array().into_iter().flatten() {
                collect_processor_ids(p, out);
            }
        }
        _ => {}
    }
}

/// Remaps the ids the post-processor names; an id without a new one is an
/// error (the always-kept set includes them all).
fn remap_processor(processor: &mut Value, map: &dyn Fn(u64) -> Option<u64>) -> Result<(), String> {
    let remap = |v: &mut Value| -> Result<(), String> {
        if let Some(id) = v.as_u64() {
            *v = Value::from(map(id).ok_or(format!("post-processor id {id} was pruned"))?);
        }
        Ok(())
    };
    match processor["type"].as_str() {
        Some("TemplateProcessing") => {
            if let Some(specials) = processor["special_tokens"].as_object_mut() {
                for token in specials.values_mut() {
                    if let Some(ids) = token["ids"].as_array_mut() {
                        for id in ids {
                            remap(id)?;
                        }
                    }
                }
            }
        }
        Some("BertProcessing" | "RobertaProcessing") => {
            for key in ["sep", "cls"] {
                remap(&mut processor[key][1])?;
            }
        }
        Some("Sequence") => {
            if let Some(parts) = processor["processors"].as_array_mut() {
                for p in parts {
                    remap_processor(p, map)?;
                }
            }
        }
        Some("ByteLevel") | None => {}
        Some(other) => return Err(format!("unknown post-processor `{other}`")),
    }
    Ok(())
}

/// Every text of `examples` (both texts of a pair).
pub fn texts_of(examples: &[Example]) -> Vec<&str> {
    examples
        .iter()
        .flat_map(|e| std::iter::once(e.text.as_str()).chain(e.pair.as_deref()))
        .collect()
}

/// How often `texts` use each teacher id (no special tokens added, no
/// truncation), over `size` ids: exactly the ids encoding each text gives
/// (added tokens split out, the rest normalized, pre-tokenized and split
/// into pieces by the model, as `Tokenizer::encode` does). With a
/// per-character normalizer and a pre-tokenizer that splits at white space
/// (BERT's), a text's pieces are those of its white-space separated words,
/// so the words are counted first and each distinct word is tokenized once:
/// a large data set costs about what its distinct words cost.
pub fn count_pieces(
    tokenizer: &TextTokenizer,
    texts: &[&str],
    size: usize,
) -> Result<Vec<u64>, Diag> {
    let tok = &tokenizer.inner;
    let add = |counts: &mut Vec<u64>, ids: &[u32], times: u64| {
        for &id in ids {
            if let Some(c) = counts.get_mut(id as usize) {
                *c += times;
            }
        }
    };
    let sum = |mut a: Vec<u64>, b: Vec<u64>| -> tokenizers::Result<Vec<u64>> {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
        Ok(a)
    };
    let counted = if splits_at_white_space(tok) {
        let words: HashMap<&str, u64> = texts
            .par_chunks(COUNT_CHUNK)
            .fold(HashMap::new, |mut words, chunk| {
                for word in chunk.iter().flat_map(|t| t.split(char::is_whitespace)) {
                    if !word.is_empty() {
                        *words.entry(word).or_insert(0) += 1;
                    }
                }
                words
            })
            .reduce(HashMap::new, |mut a, b| {
                for (word, n) in b {
                    *a.entry(word).or_insert(0) += n;
                }
                a
            });
        let words: Vec<(&str, u64)> = words.into_iter().collect();
        words
            .par_chunks(COUNT_CHUNK)
            .try_fold(
                || vec![0u64; size],
                |mut counts, chunk| {
                    for &(word, times) in chunk {
                        add(&mut counts, &pieces_of(tok, word)?, times);
                    }
                    Ok(counts)
                },
            )
            .try_reduce(|| vec![0u64; size], sum)
    } else {
        texts
            .par_chunks(COUNT_CHUNK)
            .try_fold(
                || vec![0u64; size],
                |mut counts, chunk| {
                    for text in chunk {
                        add(&mut counts, &pieces_of(tok, text)?, 1);
                    }
                    Ok(counts)
                },
            )
            .try_reduce(|| vec![0u64; size], sum)
    };
    counted.map_err(|e| tokenize_error(e.to_string()))
}

/// Whether `tok` tokenizes a text as the concatenation of its white-space
/// separated chunks: BERT's normalizer works character by character and
/// turns white space into spaces, BERT's (and the white-space) pre-tokenizers
/// split there, and no added token contains white space.
fn splits_at_white_space(tok: &Tokenizer) -> bool {
    use tokenizers::normalizers::NormalizerWrapper as N;
    use tokenizers::pre_tokenizers::PreTokenizerWrapper as P;
    let normalizer = matches!(tok.get_normalizer(), None | Some(N::BertNormalizer(_)));
    let pre = matches!(
        tok.get_pre_tokenizer(),
        Some(P::BertPreTokenizer(_) | P::Whitespace(_) | P::WhitespaceSplit(_))
    );
    let added = tok
        .get_added_tokens_decoder()
        .values()
        .all(|t| !t.content.chars().any(char::is_whitespace));
    normalizer && pre && added
}

/// The ids encoding `text` gives without special tokens (no truncation).
fn pieces_of(tok: &Tokenizer, text: &str) -> tokenizers::Result<Vec<u32>> {
    let mut split = tok
        .get_added_vocabulary()
        .extract_and_normalize(tok.get_normalizer(), text);
    if let Some(pre) = tok.get_pre_tokenizer() {
        pre.pre_tokenize(&mut split)?;
    }
    let mut ids = Vec::new();
    for (word, _, tokens) in split.get_splits(OffsetReferential::Normalized, OffsetType::None) {
        match tokens {
            Some(tokens) => ids.extend(tokens.iter().map(|t| t.id)),
            None => ids.extend(tok.get_model().tokenize(word)?.iter().map(|t| t.id)),
        }
    }
    Ok(ids)
}

/// The vocabulary data set `data`, named at `span`, tokenizes to nothing.
pub fn no_tokens(data: &str, span: crate::diag::Span) -> Diag {
    Diag::new(
        "plcc::vocab::no-tokens",
        format!("data set `{data}` yields no tokens to count"),
    )
    .label(span, "every text of this data set tokenizes to nothing")
    .help("count the pieces on a data set with text in it")
}

fn tokenize_error(note: String) -> Diag {
    Diag::new(
        "plcc::vocab::tokenize",
        "cannot tokenize the vocabulary data",
    )
    .note(note)
}

/// The teacher ids a pruned vocabulary keeps under `rule`, increasing.
/// `counts` is indexed by teacher id (missing entries count 0).
pub fn select(vocab: &WordPieceVocab, counts: &[u64], rule: VocabRule) -> Vec<u32> {
    let count = |id: usize| counts.get(id).copied().unwrap_or(0);
    let candidates = vocab
        .pieces
        .iter()
        .enumerate()
        .filter(|(id, p)| p.is_some() && !vocab.always[*id])
        .map(|(id, _)| id);
    let mut kept: BTreeSet<usize> = (0..vocab.always.len())
        .filter(|&id| vocab.always[id] && vocab.pieces[id].is_some())
        .collect();
    match rule {
        VocabRule::Keep(n) => {
            let mut rest: Vec<usize> = candidates.collect();
            rest.sort_by_key(|&id| (std::cmp::Reverse(count(id)), id));
            let room = n.saturating_sub(kept.len());
            kept.extend(rest.into_iter().take(room));
        }
        VocabRule::MinCount(k) => kept.extend(candidates.filter(|&id| count(id) >= k)),
    }
    kept.into_iter().map(|id| id as u32).collect()
}

/// A pruned vocabulary: which teacher ids it keeps and the tokenizer that
/// tokenizes with them only.
#[derive(Debug, Clone)]
pub struct PrunedVocab {
    /// Teacher ids kept, increasing: student id `i` is teacher id `kept[i]`.
    pub kept: Vec<u32>,
    /// Teacher id → student id (`None`: pruned).
    pub old_to_new: Vec<Option<u32>>,
    /// The pruned tokenizer (padding off, as plcc pads itself).
    pub tokenizer: TextTokenizer,
    /// Its `tokenizer.json`.
    pub json: String,
}

impl PrunedVocab {
    /// Student vocabulary size.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The student id of teacher id `id`.
    pub fn new_id(&self, id: u32) -> Option<u32> {
        self.old_to_new.get(id as usize).copied().flatten()
    }
}

fn rewrite_error(note: impl Into<String>) -> Diag {
    Diag::new(
        "plcc::vocab::rewrite",
        "cannot rewrite the tokenizer for the pruned vocabulary",
    )
    .note(note.into())
}

/// The tokenizer of `vocab` restricted to the teacher ids `kept`
/// (increasing); `pad_id` is the teacher's padding id.
pub fn prune(vocab: &WordPieceVocab, kept: &[u32], pad_id: u32) -> Result<PrunedVocab, Diag> {
    let mut old_to_new = vec![None; vocab.id_space()];
    for (new, &old) in kept.iter().enumerate() {
        match old_to_new.get_mut(old as usize) {
            Some(slot) if vocab.piece(old).is_some() => *slot = Some(new as u32),
            _ => return Err(rewrite_error(format!("id {old} is not in the vocabulary"))),
        }
    }
    let map = |id: u64| -> Option<u64> {
        old_to_new
            .get(id as usize)
            .copied()
            .flatten()
            .map(u64::from)
    };
    let mut json = vocab.json.clone();
    let model_vocab = json["model"]["vocab"]
        .as_object()
        .ok_or_else(|| rewrite_error("the WordPiece model has no vocabulary"))?;
    let mut new_vocab = serde_json::Map::new();
    for (piece, id) in model_vocab {
        if let Some(new) = id.as_u64().and_then(map) {
            new_vocab.insert(piece.clone(), Value::from(new));
        }
    }
    json["model"]["vocab"] = Value::Object(new_vocab);
    if let Some(added) = json["added_tokens"].as_array_mut() {
        for token in added {
            let id = token["id"].as_u64().unwrap_or(u64::MAX);
            let new = map(id).ok_or_else(|| {
                rewrite_error(format!(
                    "added token {} (id {id}) was pruned",
                    token["content"]
                ))
            })?;
            token["id"] = Value::from(new);
        }
    }
    remap_processor(&mut json["post_processor"], &map).map_err(rewrite_error)?;
    if let Some(pad) = json["padding"]["pad_id"].as_u64() {
        json["padding"]["pad_id"] =
            Value::from(map(pad).ok_or_else(|| rewrite_error("the padding token was pruned"))?);
    }
    let mut inner =
        Tokenizer::from_str(&json.to_string()).map_err(|e| rewrite_error(e.to_string()))?;
    // Every kept piece has its new id, and nothing else is in the vocabulary.
    for (new, &old) in kept.iter().enumerate() {
        let piece = vocab.piece(old).unwrap_or_default();
        if inner.token_to_id(piece) != Some(new as u32) {
            return Err(rewrite_error(format!(
                "piece `{piece}` should have id {new} but has {}",
                inner
                    .token_to_id(piece)
                    .map_or("none".to_string(), |id| format!("id {id}"))
            )));
        }
    }
    if inner.get_vocab_size(true) != kept.len() {
        return Err(rewrite_error(format!(
            "the pruned tokenizer has {} pieces, expected {}",
            inner.get_vocab_size(true),
            kept.len()
        )));
    }
    let text = inner
        .to_string(true)
        .map_err(|e| rewrite_error(e.to_string()))?;
    inner.with_padding(None);
    let pad =
        map(u64::from(pad_id)).ok_or_else(|| rewrite_error("the padding token was pruned"))? as u32;
    Ok(PrunedVocab {
        kept: kept.to_vec(),
        old_to_new,
        tokenizer: TextTokenizer { inner, pad_id: pad },
        json: text,
    })
}

/// How much of some text the pruned vocabulary leaves as the teacher
/// tokenizes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Coverage {
    /// Teacher tokens (no special tokens).
    pub tokens: usize,
    /// Of those, tokens whose piece is kept.
    pub kept_tokens: usize,
    /// Texts.
    pub texts: usize,
    /// Of those, texts the pruned tokenizer tokenizes exactly as the teacher.
    pub unchanged_texts: usize,
}

impl Coverage {
    /// Share of the teacher's tokens whose piece is kept.
    pub fn token_share(&self) -> f64 {
        self.kept_tokens as f64 / self.tokens.max(1) as f64
    }

    /// Share of texts tokenized exactly as the teacher does.
    pub fn unchanged_share(&self) -> f64 {
        self.unchanged_texts as f64 / self.texts.max(1) as f64
    }
}

/// The coverage of `texts` by `pruned`.
pub fn coverage(
    teacher: &TextTokenizer,
    pruned: &PrunedVocab,
    texts: &[&str],
) -> Result<Coverage, Diag> {
    let encode = |t: &TextTokenizer| -> Result<Vec<Vec<u32>>, Diag> {
        let mut tok = t.inner.clone();
        tok.with_padding(None);
        tok.with_truncation(None::<TruncationParams>)
            .map_err(|e| tokenize_error(e.to_string()))?;
        Ok(tok
            .encode_batch_fast(texts.to_vec(), false)
            .map_err(|e| tokenize_error(e.to_string()))?
            .iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    };
    let (before, after) = (encode(teacher)?, encode(&pruned.tokenizer)?);
    let mut c = Coverage::default();
    for (t, s) in before.iter().zip(&after) {
        c.texts += 1;
        c.tokens += t.len();
        let mapped: Vec<Option<u32>> = t.iter().map(|&id| pruned.new_id(id)).collect();
        c.kept_tokens += mapped.iter().filter(|m| m.is_some()).count();
        if mapped.len() == s.len() && mapped.iter().zip(s).all(|(m, &x)| *m == Some(x)) {
            c.unchanged_texts += 1;
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenizer::{builtin_byte_bpe, builtin_wordpiece};
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;
    use tokenizers::AddedToken;

    /// A lower-casing WordPiece tokenizer over `entries` (id = position)
    /// with `[CLS] x [SEP]` by `BertProcessing` and the five BERT specials
    /// as added tokens.
    fn wordpiece(entries: &[String]) -> Tokenizer {
        let id = |p: &str| entries.iter().position(|e| e == p).unwrap() as u32;
        let vocab: tokenizers::models::bpe::Vocab = entries
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i as u32))
            .collect();
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut inner = Tokenizer::new(model);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), id("[SEP]")),
            ("[CLS]".into(), id("[CLS]")),
        )));
        inner.add_special_tokens(
            &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(|s| AddedToken::from(s, true)),
        );
        inner
    }

    /// A tiny WordPiece: specials, a few characters in both forms, and
    /// longer pieces.
    fn tiny() -> TextTokenizer {
        let mut entries: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .map(String::from)
            .to_vec();
        for c in "abcdefghijklmnopqrstuvwxyz".chars() {
            entries.push(c.to_string());
            entries.push(format!("##{c}"));
        }
        for w in [
            "the", "cat", "sat", "on", "mat", "##at", "un", "##happy", "dog",
        ] {
            entries.push(w.to_string());
        }
        TextTokenizer {
            inner: wordpiece(&entries),
            pad_id: 0,
        }
    }

    fn vocab_of(t: &TextTokenizer) -> WordPieceVocab {
        WordPieceVocab::of(t).unwrap().unwrap()
    }

    #[test]
    fn always_kept_are_specials_and_characters_in_both_forms() {
        let t = tiny();
        let v = vocab_of(&t);
        assert_eq!(v.len(), 5 + 52 + 9);
        assert_eq!(v.always_kept(), 5 + 52);
        assert_eq!(v.special_tokens(), 5);
        assert_eq!(v.piece(2), Some("[CLS]"));
    }

    #[test]
    fn keep_takes_the_most_frequent_with_ties_by_lower_id() {
        let t = tiny();
        let v = vocab_of(&t);
        let counts =
            count_pieces(&t, &["the cat sat", "the dog", "the cat"], v.id_space()).unwrap();
        let the = t.inner.token_to_id("the").unwrap();
        let cat = t.inner.token_to_id("cat").unwrap();
        let dog = t.inner.token_to_id("dog").unwrap();
        let sat = t.inner.token_to_id("sat").unwrap();
        assert_eq!(counts[the as usize], 3);
        assert_eq!(counts[cat as usize], 2);
        // Room for two more than the always-kept: `the` (3) and `cat` (2).
        let kept = select(&v, &counts, VocabRule::Keep(v.always_kept() + 2));
        assert_eq!(kept.len(), v.always_kept() + 2);
        assert!(kept.contains(&the) && kept.contains(&cat) && !kept.contains(&dog));
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        // `sat` and `dog` tie at 1: the lower id wins; then unseen pieces by id.
        let kept = select(&v, &counts, VocabRule::Keep(v.always_kept() + 3));
        assert!(kept.contains(&sat) && !kept.contains(&dog));
        let on = t.inner.token_to_id("on").unwrap();
        let kept = select(&v, &counts, VocabRule::Keep(v.always_kept() + 5));
        assert!(kept.contains(&on), "unseen pieces fill by lower id");
        // min_count keeps exactly what the data uses often enough.
        let kept = select(&v, &counts, VocabRule::MinCount(2));
        assert_eq!(kept.len(), v.always_kept() + 2);
        let kept = select(&v, &counts, VocabRule::MinCount(1));
        assert_eq!(kept.len(), v.always_kept() + 4);
    }

    #[test]
    fn pruned_tokenizer_spells_pruned_words_with_kept_pieces() {
        let t = tiny();
        let v = vocab_of(&t);
        let counts = count_pieces(&t, &["the cat"], v.id_space()).unwrap();
        let kept = select(&v, &counts, VocabRule::MinCount(1));
        let p = prune(&v, &kept, t.pad_id).unwrap();
        let k = p.len() as u32;
        assert_eq!(p.tokenizer.vocab_size(), p.len());
        // Specials keep their order (they were ids 0..5 and stay so).
        for (i, s) in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .enumerate()
        {
            assert_eq!(p.tokenizer.inner.token_to_id(s), Some(i as u32));
        }
        assert_eq!(p.tokenizer.pad_id, 0);
        // `dog` and `unhappy` lost their pieces but still tokenize, no [UNK].
        let ids = p.tokenizer.encode("The cat unhappy dog", 64).unwrap();
        assert!(ids.iter().all(|&i| i < k));
        let tokens: Vec<String> = ids
            .iter()
            .map(|&i| p.tokenizer.inner.id_to_token(i).unwrap())
            .collect();
        let expected = [
            "[CLS]", "the", "cat", "u", "##n", "##h", "##a", "##p", "##p", "##y", "d", "##o",
            "##g", "[SEP]",
        ];
        assert_eq!(tokens, expected);
        // The written file loads back to the same tokenizer.
        let again = Tokenizer::from_str(&p.json).unwrap();
        assert_eq!(again.get_vocab(true), p.tokenizer.inner.get_vocab(true));
        // Coverage: "the cat" is unchanged; "dog" is not.
        let c = coverage(&t, &p, &["the cat", "the dog"]).unwrap();
        assert_eq!(c.texts, 2);
        assert_eq!(c.unchanged_texts, 1);
        assert_eq!(c.tokens, 4);
        assert_eq!(c.kept_tokens, 3);
    }

    #[test]
    fn every_stored_id_follows_its_piece() {
        // Special tokens last, so pruning earlier pieces moves them; padding
        // configured in the file.
        let mut entries: Vec<String> = Vec::new();
        for c in "abcdefghijklmnopqrstuvwxyz".chars() {
            entries.push(c.to_string());
            entries.push(format!("##{c}"));
        }
        entries.extend(
            [
                "the", "cat", "dog", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
            ]
            .map(String::from),
        );
        let id = |p: &str| entries.iter().position(|e| e == p).unwrap() as u32;
        let mut inner = wordpiece(&entries);
        inner.with_padding(Some(tokenizers::PaddingParams {
            pad_id: id("[PAD]"),
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        let t = TextTokenizer {
            inner,
            pad_id: id("[PAD]"),
        };
        let v = vocab_of(&t);
        let counts = count_pieces(&t, &["the the"], v.id_space()).unwrap();
        let p = prune(&v, &select(&v, &counts, VocabRule::MinCount(1)), t.pad_id).unwrap();
        // 52 characters, `the`, then the five special tokens.
        assert_eq!(p.len(), 58);
        assert_eq!(p.tokenizer.pad_id, 53);
        let written: Value = serde_json::from_str(&p.json).unwrap();
        assert_eq!(written["padding"]["pad_id"], 53);
        assert_eq!(written["post_processor"]["cls"][1], 55);
        assert_eq!(written["post_processor"]["sep"][1], 56);
        let added: Vec<u64> = written["added_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        assert_eq!(added, [53, 54, 55, 56, 57]);
        let ids = p.tokenizer.encode("The dog", 16).unwrap();
        let piece = |i: &u32| p.tokenizer.inner.id_to_token(*i).unwrap();
        let tokens: Vec<String> = ids.iter().map(piece).collect();
        assert_eq!(tokens, ["[CLS]", "the", "d", "##o", "##g", "[SEP]"]);
        assert_eq!((ids[0], ids[5]), (55, 56));
    }

    #[test]
    fn renumbering_keeps_relative_order_and_remaps_template_specials() {
        // The built-in tokenizer uses TemplateProcessing.
        let t = builtin_wordpiece(1024).unwrap();
        let v = vocab_of(&t);
        let kept = select(&v, &[], VocabRule::Keep(v.always_kept() + 7));
        let p = prune(&v, &kept, t.pad_id).unwrap();
        for (new, &old) in p.kept.iter().enumerate() {
            assert_eq!(p.new_id(old), Some(new as u32));
            assert_eq!(
                p.tokenizer.inner.id_to_token(new as u32).as_deref(),
                v.piece(old)
            );
        }
        let ids = p.tokenizer.encode("paint the language model", 64).unwrap();
        let cls = p.tokenizer.inner.token_to_id("[CLS]").unwrap();
        let sep = p.tokenizer.inner.token_to_id("[SEP]").unwrap();
        assert_eq!((ids[0], *ids.last().unwrap()), (cls, sep));
        assert!(ids.iter().all(|&i| (i as usize) < p.len()));
        assert!(!ids.contains(&p.tokenizer.inner.token_to_id("[UNK]").unwrap()));
    }

    #[test]
    fn minilm_tokenizer_pruned_to_a_few_words_still_spells_everything() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        if !dir.is_dir() {
            eprintln!(
                "SKIPPED: {} is absent (scripts/fetch-minilm.sh)",
                dir.display()
            );
            return;
        }
        let t = TextTokenizer::from_dir(&dir, Some(0)).unwrap();
        let v = vocab_of(&t);
        assert_eq!(v.len(), 30522);
        assert_eq!(v.special_tokens(), 5);
        // 997 characters in both forms and the five special tokens.
        assert_eq!(v.always_kept(), 1999);
        // Counting agrees with encoding on a thousand sentences.
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("benches/corpus/sentences-en.txt"),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let counts = count_pieces(&t, &lines, v.id_space()).unwrap();
        let mut expected = vec![0u64; v.id_space()];
        let mut plain = t.inner.clone();
        plain.with_truncation(None).unwrap();
        for e in plain.encode_batch(lines, false).unwrap() {
            for &id in e.get_ids() {
                expected[id as usize] += 1;
            }
        }
        assert_eq!(counts, expected);

        let corpus = ["the model reads a recipe", "a smaller model runs faster"];
        let counts = count_pieces(&t, &corpus, v.id_space()).unwrap();
        let kept = select(&v, &counts, VocabRule::Keep(v.always_kept() + 20));
        let p = prune(&v, &kept, t.pad_id).unwrap();
        let k = p.len() as u32;
        assert_eq!(k, 2019);
        assert_eq!(p.tokenizer.vocab_size(), 2019);
        for special in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] {
            let old = t.inner.token_to_id(special).unwrap();
            assert_eq!(
                p.tokenizer.inner.token_to_id(special),
                p.new_id(old),
                "{special}"
            );
        }
        assert_eq!(p.tokenizer.pad_id, 0);
        let text = "Photosynthesis happens in the chloroplasts of café plants, 42 times!";
        let before = t.encode(text, 128).unwrap();
        let after = p.tokenizer.encode(text, 128).unwrap();
        let unk = p.tokenizer.inner.token_to_id("[UNK]").unwrap();
        assert!(!before.contains(&100));
        assert!(!after.contains(&unk), "{after:?}");
        assert!(after.iter().all(|&i| i < k));
        assert!(after.len() > before.len(), "pruned words take more pieces");
        assert_eq!(after[0], p.tokenizer.inner.token_to_id("[CLS]").unwrap());
        // The same text comes back out.
        assert_eq!(
            p.tokenizer.inner.decode(&after, true).unwrap(),
            t.inner.decode(&before, true).unwrap()
        );
        // A covered sentence tokenizes exactly as before, through the id map.
        let same = p.tokenizer.encode(corpus[0], 128).unwrap();
        let mapped: Vec<u32> = t
            .encode(corpus[0], 128)
            .unwrap()
            .iter()
            .map(|&i| p.new_id(i).unwrap())
            .collect();
        assert_eq!(same, mapped);
    }

    #[test]
    fn counting_gives_exactly_the_pieces_encoding_gives() {
        let t = builtin_wordpiece(1024).unwrap();
        let texts = [
            "The model reads a recipe; the MODEL reads it again.",
            "unbelievably café-style [MASK] tokens\t[SEP]and 3.14 numbers\u{3000}ÉTÉ 中文字",
            "",
            "\u{7}",
        ];
        let counts = count_pieces(&t, &texts, 1024).unwrap();
        let mut expected = vec![0u64; 1024];
        for e in t.inner.encode_batch(texts.to_vec(), false).unwrap() {
            for &id in e.get_ids() {
                expected[id as usize] += 1;
            }
        }
        assert_eq!(counts, expected);
        assert!(
            counts[4] == 1 && counts[3] == 1,
            "special tokens in text count"
        );
    }

    #[test]
    fn byte_level_bpe_is_not_wordpiece() {
        let t = builtin_byte_bpe(512).unwrap();
        assert_eq!(
            WordPieceVocab::of(&t).unwrap().unwrap_err(),
            NotWordPiece("BPE".into())
        );
    }
}
