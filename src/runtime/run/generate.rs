//! Running an encoder-decoder (BART) over text. Each input is a source and
//! an optional target (`source` or `source<TAB>target`): the encoder reads
//! the source (with special tokens), the decoder its start token then the
//! target's tokens (without special tokens), and the record holds the
//! next-token logits at the decoder's last position. On request the decoder
//! then continues greedily (the most likely token at every step) until it
//! produces the end-of-sequence token, reaches a token budget or fills its
//! positions. The encoder runs once per batch; the decoder reruns over the
//! whole prefix at every step (no key/value cache) on the rows still going.

use candle_core::{DType, Device, Result, Tensor};

use crate::base::Pooling;
use crate::diag::Diag;
use crate::runtime::load::loaded_model::{LoadedModel, Network};
use crate::runtime::model::bart::BartModel;
use crate::runtime::model::heads::pool;
use crate::runtime::model::layers::Mode;
use crate::runtime::model::output::{EncoderOutput, ForwardOptions, Inputs};
use crate::runtime::run::exit_rule::argmax;
use crate::runtime::run::record::{failed, Record};
use crate::runtime::run::token_rows::{self, Tokenized};

/// Tokenized encoder-decoder inputs: the sources and, per source, the
/// decoder's prefix (its start token, then the target's tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seq2SeqRows {
    pub sources: Tokenized,
    pub prefixes: Vec<Vec<u32>>,
}

/// The diagnostic for a model that is not an encoder-decoder.
pub fn not_seq2seq(model: &LoadedModel) -> Diag {
    Diag::new(
        "plcc::run::not-seq2seq",
        format!(
            "`{}` ({}) is not an encoder-decoder model",
            model.name, model.config.model_type
        ),
    )
}

/// The BART network of `model`, or a diagnostic saying it has none.
fn bart(model: &LoadedModel) -> std::result::Result<&BartModel, Diag> {
    match &model.network {
        Network::Bart(m) => Ok(m),
        _ => Err(not_seq2seq(model)),
    }
}

/// Splits each line at its first tab into source and target (none: empty)
/// and tokenizes both: sources with special tokens, cut to `max_len` as
/// [`token_rows::tokenize`] does; targets without special tokens, after the
/// decoder start token, within the model's positions.
pub fn tokenize(
    model: &LoadedModel,
    lines: &[String],
    max_len: Option<usize>,
) -> std::result::Result<Seq2SeqRows, Diag> {
    let seq2seq = model
        .config
        .seq2seq
        .as_ref()
        .ok_or_else(|| not_seq2seq(model))?;
    let (sources, targets): (Vec<String>, Vec<&str>) = lines
        .iter()
        .map(|l| match l.split_once('\t') {
            Some((s, t)) => (s.to_string(), t),
            None => (l.clone(), ""),
        })
        .unzip();
    let sources = token_rows::tokenize(model, &sources, max_len)?;
    let limit = model.config.max_positions;
    let vocab = model.config.vocab_size as u32;
    let mut prefixes = Vec::with_capacity(lines.len());
    for (i, target) in model
        .tokenizer
        .encode_plain(&targets)?
        .into_iter()
        .enumerate()
    {
        if target.len() >= limit {
            return Err(Diag::new(
                "plcc::run::target-too-long",
                format!(
                    "the target of input line {} has {} tokens; the decoder holds {} after its start token",
                    i + 1,
                    target.len(),
                    limit - 1
                ),
            )
            .help("shorten the text after the tab"));
        }
        if let Some(id) = target.iter().find(|&&t| t >= vocab) {
            return Err(Diag::new(
                "plcc::run::token-out-of-range",
                format!(
                    "the target of input line {} has token id {id}, but the model's vocabulary has {vocab} entries",
                    i + 1
                ),
            )
            .help("the tokenizer does not belong to this model"));
        }
        let mut prefix = Vec::with_capacity(target.len() + 1);
        prefix.push(seq2seq.decoder_start_token_id);
        prefix.extend(target);
        prefixes.push(prefix);
    }
    Ok(Seq2SeqRows { sources, prefixes })
}

/// Runs every row in length-sorted batches of at most `batch_size`; with
/// `generate`, each record also gets up to that many greedy tokens and their
/// text. Records in input order.
pub fn run_all(
    model: &LoadedModel,
    rows: &Seq2SeqRows,
    batch_size: usize,
    generate: Option<usize>,
) -> std::result::Result<Vec<Record>, Diag> {
    let mut records: Vec<Option<Record>> = vec![None; rows.prefixes.len()];
    for batch in token_rows::plan_batches(&rows.sources.rows, batch_size) {
        let sources: Vec<Vec<u32>> = batch
            .iter()
            .map(|&i| rows.sources.rows[i].clone())
            .collect();
        let prefixes: Vec<Vec<u32>> = batch.iter().map(|&i| rows.prefixes[i].clone()).collect();
        for (&i, record) in batch
            .iter()
            .zip(run_batch(model, &sources, prefixes, generate)?)
        {
            records[i] = Some(record);
        }
    }
    Ok(records.into_iter().flatten().collect())
}

/// Records of source rows without targets: the next-token logits after the
/// decoder start token alone (what [`crate::runtime::run::runner::run_batch`] gives for an
/// encoder-decoder).
pub fn run_sources(
    model: &LoadedModel,
    sources: &[Vec<u32>],
) -> std::result::Result<Vec<Record>, Diag> {
    let start = model
        .config
        .seq2seq
        .as_ref()
        .ok_or_else(|| not_seq2seq(model))?
        .decoder_start_token_id;
    run_batch(model, sources, vec![vec![start]; sources.len()], None)
}

/// Runs one batch of sources and decoder prefixes; records in row order.
/// Without generation, a model whose decoder exits have thresholds runs
/// with early exit (`early_exit::run`: each record's logits are those of
/// the exit its row left at).
fn run_batch(
    model: &LoadedModel,
    sources: &[Vec<u32>],
    prefixes: Vec<Vec<u32>>,
    generate: Option<usize>,
) -> std::result::Result<Vec<Record>, Diag> {
    if generate.is_none() && model.exit_policies.iter().any(|p| p.active()) {
        let inputs = Inputs::seq2seq(sources, &prefixes, model.tokenizer.pad_id, &model.device)
            .map_err(failed)?;
        return crate::runtime::run::early_exit::run(model, &inputs).map_err(failed);
    }
    let step = Step {
        model: bart(model)?,
        pad: model.tokenizer.pad_id,
        device: &model.device,
    };
    let eos = model.config.seq2seq.as_ref().map(|s| s.eos_token_id);
    let (logits, tokens) = step
        .run(sources, prefixes, generate, eos, model.config.max_positions)
        .map_err(failed)?;
    let mut records = Vec::with_capacity(logits.len());
    for (k, logits) in logits.into_iter().enumerate() {
        let (tokens, text) = match &tokens {
            Some(t) => (Some(t[k].clone()), Some(model.tokenizer.decode(&t[k])?)),
            None => (None, None),
        };
        records.push(Record {
            logits: Some(logits),
            tokens,
            text,
            ..Record::default()
        });
    }
    Ok(records)
}

/// A batch's next-token logits per row and, when generating, each row's
/// greedy tokens.
type BatchOutput = (Vec<Vec<f32>>, Option<Vec<Vec<u32>>>);

/// One batch's decoding steps.
struct Step<'a> {
    model: &'a BartModel,
    pad: u32,
    device: &'a Device,
}

impl Step<'_> {
    /// The next-token logits after each prefix, and with `generate` the
    /// greedy continuation of each row.
    fn run(
        &self,
        sources: &[Vec<u32>],
        mut prefixes: Vec<Vec<u32>>,
        generate: Option<usize>,
        eos: Option<u32>,
        max_positions: usize,
    ) -> Result<BatchOutput> {
        let source = Inputs::from_rows(sources, self.pad, self.device)?;
        let opts = ForwardOptions {
            mode: Mode::Inference,
            ..Default::default()
        };
        let encoded = self.model.encode(&source, opts)?;
        let Some(states) = encoded.hidden_states.last() else {
            candle_core::bail!("the encoder produced no states")
        };
        let all: Vec<usize> = (0..sources.len()).collect();
        let first = self.next_logits(states, &source.mask, &prefixes, &all)?;
        let Some(budget) = generate else {
            return Ok((first, None));
        };
        let mut generated = vec![Vec::new(); sources.len()];
        let mut live = all;
        let mut logits = first.clone();
        for step in 0..budget {
            let mut still = Vec::with_capacity(live.len());
            for (&i, row) in live.iter().zip(&logits) {
                let token = argmax(row) as u32;
                if extend(
                    &mut prefixes[i],
                    &mut generated[i],
                    token,
                    eos,
                    max_positions,
                ) {
                    still.push(i);
                }
            }
            live = still;
            if live.is_empty() || step + 1 == budget {
                break;
            }
            logits = self.next_logits(states, &source.mask, &prefixes, &live)?;
        }
        Ok((first, Some(generated)))
    }

    /// The decoder's next-token logits after `prefixes[i]` for each `i` in
    /// `rows`, attending to those rows of the encoder's final `states`.
    fn next_logits(
        &self,
        states: &Tensor,
        source_mask: &Tensor,
        prefixes: &[Vec<u32>],
        rows: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let index = Tensor::from_vec(
            rows.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            rows.len(),
            self.device,
        )?;
        let selected: Vec<Vec<u32>> = rows.iter().map(|&i| prefixes[i].clone()).collect();
        let decoder = Inputs::from_rows(&selected, self.pad, self.device)?;
        let encoded = EncoderOutput {
            hidden_states: vec![states.index_select(&index, 0)?],
            attentions: Vec::new(),
            cross_attentions: Vec::new(),
        };
        let opts = ForwardOptions {
            mode: Mode::Inference,
            ..Default::default()
        };
        let out = self.model.decode(
            &decoder,
            encoded,
            &source_mask.index_select(&index, 0)?,
            &[],
            opts,
        )?;
        let last = pool(&out.last_hidden, &decoder.mask, Pooling::Last)?;
        self.model
            .lm_logits(&last)?
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()
    }
}

/// Appends `token` to a row's decoder `prefix` and its `generated` tokens;
/// whether the row goes on (it stops at `eos` or when the prefix fills
/// `max_positions`).
fn extend(
    prefix: &mut Vec<u32>,
    generated: &mut Vec<u32>,
    token: u32,
    eos: Option<u32>,
    max_positions: usize,
) -> bool {
    prefix.push(token);
    generated.push(token);
    Some(token) != eos && prefix.len() < max_positions
}

#[cfg(test)]
mod tests {
    use super::extend;

    #[test]
    fn a_row_stops_at_the_end_token_or_when_its_positions_are_full() {
        let (mut prefix, mut generated) = (vec![2], Vec::new());
        assert!(extend(&mut prefix, &mut generated, 7, Some(2), 8));
        assert!(!extend(&mut prefix, &mut generated, 2, Some(2), 8));
        assert_eq!((prefix, generated), (vec![2, 7, 2], vec![7, 2]));
        let (mut prefix, mut generated) = (vec![2, 5], Vec::new());
        assert!(!extend(&mut prefix, &mut generated, 9, Some(2), 3));
        assert_eq!(generated, vec![9]);
    }
}
