//! Per-sample early exit inside a batch. The network runs layer by layer;
//! after each layer with an active exit, the exit head is evaluated on the
//! rows still in the batch, the rows whose signal meets the exit's policy
//! take that exit's output and leave, and the rest go on as a smaller dense
//! batch (their hidden states and masks gathered with `index_select`, the
//! sequence cut to the longest remaining row). Fewer rows and shorter rows
//! mean fewer FLOPs in every later layer. Records come back in the order of
//! the batch's rows, each with the layer it left at.
//!
//! A row that leaves at exit `k` gets exactly what exit `k`'s head computes
//! for it in a full forward pass: padding never reaches a real token (keys
//! are masked, BERT is post-LN per token, GPT-2 is causal), so dropping rows
//! and trailing padding changes no real token's hidden state.
//!
//! An encoder-decoder runs its encoder whole, then its decoder layer by
//! layer with the exits on the decoder's layers; each live row keeps its
//! encoder states for the cross-attention.

use candle_core::{DType, Result, Tensor};

use crate::base::ExitHead as HeadKind;
use crate::base::Pooling;
use crate::runtime::load::loaded_model::{LoadedModel, Network};
use crate::runtime::model::heads::{pool, Head};
use crate::runtime::model::layers::{AttentionMask, Mode};
use crate::runtime::model::output::{ForwardOptions, Inputs};
use crate::runtime::run::exit_rule::{signal, ExitPolicy, Track};
use crate::runtime::run::record::Record;

/// The rows still running and their state.
struct Live {
    /// Hidden states `[rows, seq, hidden]`.
    x: Tensor,
    /// `[rows, seq]` u32.
    mask: Tensor,
    attention: AttentionMask,
    /// Batch row of each live row.
    rows: Vec<usize>,
    /// Real tokens of each live row.
    lengths: Vec<usize>,
    /// An encoder-decoder's encoder states `[rows, source, hidden]` and
    /// source mask `[rows, source]`, for the decoder's cross-attention.
    encoder: Option<(Tensor, Tensor)>,
}

impl Live {
    /// Keeps the live rows at positions `keep`, cut to the longest of them.
    fn retain(&mut self, keep: &[usize], causal: bool) -> Result<()> {
        let index = Tensor::from_vec(
            keep.iter().map(|&j| j as u32).collect::<Vec<_>>(),
            keep.len(),
            self.x.device(),
        )?;
        let seq = keep.iter().map(|&j| self.lengths[j]).max().unwrap_or(1);
        let (_, full) = self.mask.dims2()?;
        let mut x = self.x.index_select(&index, 0)?;
        let mut mask = self.mask.index_select(&index, 0)?;
        if seq < full {
            x = x.narrow(1, 0, seq)?.contiguous()?;
            mask = mask.narrow(1, 0, seq)?.contiguous()?;
        }
        self.attention = AttentionMask::new(&mask, causal)?;
        if let Some((states, source_mask)) = &self.encoder {
            self.encoder = Some((
                states.index_select(&index, 0)?,
                source_mask.index_select(&index, 0)?,
            ));
        }
        self.x = x;
        self.mask = mask;
        self.rows = keep.iter().map(|&j| self.rows[j]).collect();
        self.lengths = keep.iter().map(|&j| self.lengths[j]).collect();
        Ok(())
    }
}

fn causal(network: &Network) -> bool {
    matches!(network, Network::Gpt2(_) | Network::Bart(_))
}

/// The input of the first layer with exits, and an encoder-decoder's
/// encoder states and source mask.
fn embed(network: &Network, inputs: &Inputs) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    let opts = ForwardOptions::default();
    match network {
        Network::Bert(m) => Ok((m.embed(inputs, Mode::Inference)?, None)),
        Network::Gpt2(m) => Ok((m.embed(inputs)?, None)),
        Network::Bart(m) => {
            let encoded = m.encode(inputs, opts)?;
            let Some(states) = encoded.hidden_states.last() else {
                candle_core::bail!("the encoder produced no states")
            };
            let decoder = inputs.output_side();
            let x = m.embed(&m.decoder_embedding, &decoder.ids, Mode::Inference)?;
            Ok((x, Some((states.clone(), inputs.mask.clone()))))
        }
    }
}

fn layer(network: &Network, i: usize, live: &Live) -> Result<Tensor> {
    let (x, mask) = (&live.x, &live.attention);
    Ok(match network {
        Network::Bert(m) => m.layers[i].forward(x, mask, Mode::Inference, false)?.0,
        Network::Gpt2(m) => m.blocks[i].forward(x, mask, Mode::Inference, false)?.0,
        Network::Bart(m) => {
            let Some((states, source_mask)) = &live.encoder else {
                candle_core::bail!("a decoder layer runs without the encoder's states")
            };
            let cross = AttentionMask::keys(source_mask)?;
            m.decoder_layers[i]
                .forward(x, mask, Some((states, &cross)), Mode::Inference, false)?
                .0
        }
    })
}

fn num_layers(network: &Network) -> usize {
    match network {
        Network::Bert(m) => m.layers.len(),
        Network::Gpt2(m) => m.blocks.len(),
        Network::Bart(m) => m.decoder_layers.len(),
    }
}

fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    t.to_dtype(DType::F32)?.to_vec2::<f32>()
}

/// Runs one padded batch with early exit; one record per batch row, in order.
pub fn run(model: &LoadedModel, inputs: &Inputs) -> Result<Vec<Record>> {
    let network = &model.network;
    let causal = causal(network);
    // The rows' tokens on the side with the exits (an encoder-decoder's
    // decoder).
    let side = inputs.output_side();
    let (batch, _) = side.mask.dims2()?;
    let lengths: Vec<usize> = side
        .mask
        .to_dtype(DType::U32)?
        .sum(1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|n| n as usize)
        .collect();
    let (x, encoder) = embed(network, inputs)?;
    let mut live = Live {
        x,
        mask: side.mask.clone(),
        attention: AttentionMask::new(&side.mask, causal)?,
        rows: (0..batch).collect(),
        lengths,
        encoder,
    };
    let mut records: Vec<Option<Record>> = vec![None; batch];
    let mut tracks = vec![Track::default(); batch];
    let active: Vec<(&Head, &ExitPolicy)> = model
        .exits
        .iter()
        .zip(&model.exit_policies)
        .filter(|(_, p)| p.active())
        .collect();
    let layers = num_layers(network);
    for i in 0..layers {
        live.x = layer(network, i, &live)?;
        for &(head, policy) in active.iter().filter(|(h, _)| h.after_layer == i + 1) {
            let outputs = rows(&head.forward(&live.x, &live.mask)?)?;
            let mut keep = Vec::with_capacity(outputs.len());
            let mut leaving = Vec::new();
            for (j, row) in outputs.into_iter().enumerate() {
                let track = &mut tracks[live.rows[j]];
                if signal(policy.criterion, &row, track).is_some_and(|s| policy.meets(s)) {
                    leaving.push((j, row));
                } else {
                    keep.push(j);
                }
            }
            if leaving.is_empty() {
                continue;
            }
            let mean = match (policy.head, network) {
                (HeadKind::Classifier, Network::Bert(_)) => {
                    Some(rows(&pool(&live.x, &live.mask, Pooling::Mean)?)?)
                }
                _ => None,
            };
            for (j, row) in leaving {
                let (embedding, logits) = match policy.head {
                    HeadKind::Pooler => (Some(row), None),
                    HeadKind::Classifier => (mean.as_ref().map(|m| m[j].clone()), Some(row)),
                };
                records[live.rows[j]] = Some(Record {
                    embedding,
                    logits,
                    exit_layer: Some(i + 1),
                    ..Record::default()
                });
            }
            if keep.is_empty() {
                return Ok(records.into_iter().flatten().collect());
            }
            live.retain(&keep, causal)?;
        }
    }
    let last = match network {
        Network::Gpt2(m) => m.ln_f.forward(&live.x, Mode::Inference)?,
        Network::Bert(_) | Network::Bart(_) => live.x,
    };
    for (j, record) in final_records(model, &last, &live.mask)?
        .into_iter()
        .enumerate()
    {
        records[live.rows[j]] = Some(record);
    }
    Ok(records.into_iter().flatten().collect())
}

/// Records of rows that ran through every layer: `x` is the final hidden
/// state `[rows, seq, hidden]` (`ModelOutput::last_hidden`: after GPT-2's
/// final layer norm).
pub fn final_records(model: &LoadedModel, x: &Tensor, mask: &Tensor) -> Result<Vec<Record>> {
    let exit_layer = (!model.exits.is_empty()).then_some(model.config.num_layers());
    let (embedding, logits) = match &model.network {
        Network::Gpt2(m) => {
            let last = pool(x, mask, Pooling::Last)?;
            (None, Some(rows(&m.lm_logits(&last)?)?))
        }
        Network::Bart(m) => {
            let last = pool(x, mask, Pooling::Last)?;
            (None, Some(rows(&m.lm_logits(&last)?)?))
        }
        Network::Bert(_) => {
            let pooled = rows(&pool(x, mask, model.pipeline.pooling)?)?;
            let logits = match &model.classifier {
                Some(c) => Some(rows(&c.forward(x, mask)?)?),
                None => None,
            };
            (Some(pooled), logits)
        }
    };
    let n = embedding.as_ref().or(logits.as_ref()).map_or(0, Vec::len);
    let mut embedding = embedding.map(Vec::into_iter);
    let mut logits = logits.map(Vec::into_iter);
    Ok((0..n)
        .map(|_| Record {
            embedding: embedding.as_mut().and_then(Iterator::next),
            logits: logits.as_mut().and_then(Iterator::next),
            exit_layer,
            ..Record::default()
        })
        .collect())
}
