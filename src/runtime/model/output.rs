//! What goes into and comes out of a model's forward pass.

use candle_core::{Result, Tensor};

use crate::runtime::model::layers::Mode;

/// One padded batch of token ids.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `[batch, seq]` u32 token ids.
    pub ids: Tensor,
    /// `[batch, seq]` u32, 1 for real tokens and 0 for padding.
    pub mask: Tensor,
    /// `[batch, seq]` u32 segment ids (BERT only); zeros when absent.
    pub token_types: Option<Tensor>,
    /// An encoder-decoder's decoder inputs (its start token, then the
    /// target's tokens); `ids` and `mask` are then the encoder's source.
    pub decoder: Option<Box<Inputs>>,
}

impl Inputs {
    /// Right-pads `rows` with `pad_id` into one batch on `device`.
    pub fn from_rows(rows: &[Vec<u32>], pad_id: u32, device: &candle_core::Device) -> Result<Self> {
        let seq = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * seq);
        let mut mask = Vec::with_capacity(rows.len() * seq);
        for row in rows {
            ids.extend(
                row.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, seq - row.len())),
            );
            mask.extend(
                std::iter::repeat_n(1u32, row.len()).chain(std::iter::repeat_n(0, seq - row.len())),
            );
        }
        Ok(Inputs {
            ids: Tensor::from_vec(ids, (rows.len(), seq), device)?,
            mask: Tensor::from_vec(mask, (rows.len(), seq), device)?,
            token_types: None,
            decoder: None,
        })
    }

    /// Sources and decoder inputs of an encoder-decoder, each right-padded
    /// with `pad_id`.
    pub fn seq2seq(
        sources: &[Vec<u32>],
        decoder_rows: &[Vec<u32>],
        pad_id: u32,
        device: &candle_core::Device,
    ) -> Result<Self> {
        Ok(Inputs {
            decoder: Some(Box::new(Inputs::from_rows(decoder_rows, pad_id, device)?)),
            ..Inputs::from_rows(sources, pad_id, device)?
        })
    }

    /// Rows `start .. start + len` of the batch, padded as the whole batch
    /// is (the decoder's rows too).
    pub fn rows(&self, start: usize, len: usize) -> Result<Inputs> {
        let narrow = |t: &Tensor| t.narrow(0, start, len);
        Ok(Inputs {
            ids: narrow(&self.ids)?,
            mask: narrow(&self.mask)?,
            token_types: self.token_types.as_ref().map(narrow).transpose()?,
            decoder: match &self.decoder {
                Some(d) => Some(Box::new(d.rows(start, len)?)),
                None => None,
            },
        })
    }

    /// The inputs of the stack that produces the outputs: the decoder's of
    /// an encoder-decoder, else these.
    pub fn output_side(&self) -> &Inputs {
        self.decoder.as_deref().unwrap_or(self)
    }
}

/// What a forward pass computes besides the hidden states.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    pub mode: Mode,
    /// Keep every layer's attention probabilities `[batch, heads, seq, seq]`.
    pub output_attentions: bool,
    /// Compute language-model logits over every position (GPT-2, BART).
    pub lm_logits: bool,
}

/// The outputs of a forward pass.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// `L + 1` tensors `[batch, seq, hidden]`: index 0 is the embedding
    /// output, index `i` the output of layer `i` (for GPT-2 the last one is
    /// taken after the final layer norm, as Hugging Face returns it); the
    /// decoder's of an encoder-decoder.
    pub hidden_states: Vec<Tensor>,
    /// The final hidden state `[batch, seq, hidden]`.
    pub last_hidden: Tensor,
    /// Per layer `[batch, heads_i, seq, seq]`, when requested.
    pub attentions: Vec<Tensor>,
    /// `[batch, seq, vocab]` when requested and the model has an LM head.
    pub logits: Option<Tensor>,
    /// One `[batch, n]` tensor per exit head passed to the forward, in order.
    pub exits: Vec<Tensor>,
    /// An encoder-decoder's encoder outputs and cross-attentions; the fields
    /// above are then the decoder's.
    pub encoder: Option<EncoderOutput>,
}

/// The encoder half of an encoder-decoder's outputs.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// `E + 1` tensors `[batch, source, hidden]`, as `hidden_states`.
    pub hidden_states: Vec<Tensor>,
    /// Per encoder layer `[batch, heads_i, source, source]`, when requested.
    pub attentions: Vec<Tensor>,
    /// Per decoder layer `[batch, heads_i, target, source]`, when requested.
    pub cross_attentions: Vec<Tensor>,
}
