//! BERT-family encoder (BERT, MiniLM, ...): post-LN layers, erf GELU,
//! absolute position and token-type embeddings, padding mask. Per-layer head
//! counts, head widths and FFN widths come from `ModelConfig::layers`.
//! Tensor names are the family's (`base::family::bert`).

use candle_core::{Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::base::family::bert;
use crate::base::{Activation, LayerShape, ModelConfig};
use crate::runtime::model::heads::{run_exits, Head};
use crate::runtime::model::joined_linear::join_outputs;
use crate::runtime::model::layers::{
    multi_head_attention, AttentionMask, Embedding, LayerNorm, Mode,
};
use crate::runtime::model::linear::Linear;
use crate::runtime::model::output::{ForwardOptions, Inputs, ModelOutput};

/// Tokens per feed-forward chunk at inference.
const FFN_CHUNK_ROWS: usize = 256;

/// One encoder layer.
#[derive(Debug, Clone)]
pub struct BertLayer {
    pub shape: LayerShape,
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// The attention's output projection.
    pub attn_out: Linear,
    pub attn_norm: LayerNorm,
    /// The FFN's projections up to its neurons and back.
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub ffn_norm: LayerNorm,
    pub activation: Activation,
    /// Query, key and value joined into one product for inference
    /// (`fuse_projections`, a snapshot of their kernels).
    pub qkv: Option<Linear>,
}

impl BertLayer {
    pub fn load(vb: VarBuilder, shape: LayerShape, cfg: &ModelConfig) -> Result<Self> {
        let (h, inner, eps) = (
            cfg.hidden_size,
            shape.heads * shape.head_dim,
            cfg.layer_norm_eps,
        );
        let att = vb.pp(bert::ATTENTION);
        Ok(BertLayer {
            shape,
            query: Linear::load(att.pp(bert::QUERY), h, inner)?,
            key: Linear::load(att.pp(bert::KEY), h, inner)?,
            value: Linear::load(att.pp(bert::VALUE), h, inner)?,
            attn_out: Linear::load(att.pp(bert::ATTENTION_OUT), inner, h)?,
            attn_norm: LayerNorm::load(vb.pp(bert::ATTENTION_NORM), h, eps)?,
            ffn_in: Linear::load(vb.pp(bert::FFN_IN), h, shape.ffn)?,
            ffn_out: Linear::load(vb.pp(bert::FFN_OUT), shape.ffn, h)?,
            ffn_norm: LayerNorm::load(vb.pp(bert::FFN_NORM), h, eps)?,
            activation: cfg.activation,
            qkv: None,
        })
    }

    /// Joins the query, key and value projections into one inference
    /// product where their kernels allow (`join_outputs`); call it after
    /// their kernels are set, and again after changing them.
    pub fn fuse_projections(&mut self) -> Result<()> {
        self.qkv = join_outputs(&[&self.query, &self.key, &self.value])?;
        Ok(())
    }

    /// The query, key and value projections of `x`.
    fn project(&self, x: &Tensor, mode: Mode) -> Result<(Tensor, Tensor, Tensor)> {
        match (&self.qkv, mode) {
            (Some(qkv), Mode::Inference) => {
                let inner = self.shape.heads * self.shape.head_dim;
                let y = qkv.forward(x)?;
                Ok((
                    y.narrow(D::Minus1, 0, inner)?,
                    y.narrow(D::Minus1, inner, inner)?,
                    y.narrow(D::Minus1, 2 * inner, inner)?,
                ))
            }
            _ => Ok((
                self.query.forward(x)?,
                self.key.forward(x)?,
                self.value.forward(x)?,
            )),
        }
    }

    /// The feed-forward block `ffn_out(act(ffn_in(x)))`; for inference a
    /// large batch runs [`FFN_CHUNK_ROWS`] tokens at a time, so the wide
    /// intermediate activation is never held for the whole batch.
    fn feed_forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let block = |x: &Tensor| -> Result<Tensor> {
            let f = self.ffn_in.forward_activated(x, self.activation)?;
            self.ffn_out.forward(&f)
        };
        let dims = x.dims().to_vec();
        let width = dims.last().copied().unwrap_or(0);
        let rows = x.elem_count() / width.max(1);
        // A tap records whole passes (its kept rows index the whole batch).
        let tapped = self.ffn_in.has_tap() || self.ffn_out.has_tap();
        if mode != Mode::Inference || rows <= FFN_CHUNK_ROWS || tapped {
            return block(x);
        }
        let flat = x.reshape((rows, width))?;
        let chunks = (0..rows)
            .step_by(FFN_CHUNK_ROWS)
            .map(|start| block(&flat.narrow(0, start, FFN_CHUNK_ROWS.min(rows - start))?))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&chunks, 0)?.reshape(dims)
    }

    /// `x` `[batch, seq, hidden]` → (output, attention probabilities if kept).
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &AttentionMask,
        mode: Mode,
        keep_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (q, k, v) = self.project(x, mode)?;
        let (ctx, probs) = multi_head_attention(
            &q,
            &k,
            &v,
            mask,
            self.shape.heads,
            self.shape.head_dim,
            mode,
            keep_probs,
        )?;
        let x = self
            .attn_norm
            .forward_residual(&self.attn_out.forward(&ctx)?, x, mode)?;
        let out = self
            .ffn_norm
            .forward_residual(&self.feed_forward(&x, mode)?, &x, mode)?;
        Ok((out, probs))
    }
}

/// The encoder: embeddings and layers (no pooler; see `heads`).
#[derive(Debug, Clone)]
pub struct BertModel {
    pub config: ModelConfig,
    pub word_embeddings: Embedding,
    /// `[max_positions, hidden]`.
    pub position_embeddings: Tensor,
    /// `[type_vocab, hidden]`, absent when the type vocabulary is 0.
    pub token_type_embeddings: Option<Tensor>,
    pub embedding_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
}

impl BertModel {
    /// `vb` points at the encoder root (the `bert.` prefix already removed).
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let token_type_embeddings = if cfg.type_vocab_size > 0 {
            Some(vb.pp(bert::TOKEN_TYPE_EMBEDDINGS).get_with_hints(
                (cfg.type_vocab_size, h),
                "weight",
                init,
            )?)
        } else {
            None
        };
        let layers = cfg
            .layers
            .iter()
            .enumerate()
            .map(|(i, shape)| BertLayer::load(vb.pp(bert::FAMILY.layers.layer(i)), *shape, cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(BertModel {
            config: cfg.clone(),
            word_embeddings: Embedding::load(
                &vb,
                bert::WORD_EMBEDDINGS,
                cfg.vocab_size,
                h,
                cfg.embedding_rank,
            )?,
            position_embeddings: vb.pp(bert::POSITION_EMBEDDINGS).get_with_hints(
                (cfg.max_positions, h),
                "weight",
                init,
            )?,
            token_type_embeddings,
            embedding_norm: LayerNorm::load(vb.pp(bert::EMBEDDINGS_NORM), h, cfg.layer_norm_eps)?,
            layers,
        })
    }

    /// The embedding output `[batch, seq, hidden]` (after the embedding layer norm).
    pub fn embed(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        let (_, s) = inputs.ids.dims2()?;
        let mut x = self
            .word_embeddings
            .forward(&inputs.ids)?
            .broadcast_add(&self.position_embeddings.narrow(0, 0, s)?)?;
        if let Some(tt) = &self.token_type_embeddings {
            x = match &inputs.token_types {
                Some(types) => {
                    let (b, s) = types.dims2()?;
                    let rows = tt
                        .index_select(&types.flatten_all()?, 0)?
                        .reshape((b, s, ()))?;
                    (x + rows)?
                }
                None => x.broadcast_add(&tt.narrow(0, 0, 1)?)?,
            };
        }
        self.embedding_norm.forward(&x, mode)
    }

    pub fn forward(
        &self,
        inputs: &Inputs,
        exits: &[Head],
        opts: ForwardOptions,
    ) -> Result<ModelOutput> {
        let mask = AttentionMask::new(&inputs.mask, false)?;
        let mut x = self.embed(inputs, opts.mode)?;
        let mut hidden_states = vec![x.clone()];
        let mut attentions = Vec::new();
        for layer in &self.layers {
            let (out, probs) = layer.forward(&x, &mask, opts.mode, opts.output_attentions)?;
            x = out;
            hidden_states.push(x.clone());
            attentions.extend(probs);
        }
        let exits = run_exits(exits, &hidden_states, &inputs.mask)?;
        Ok(ModelOutput {
            hidden_states,
            last_hidden: x,
            attentions,
            logits: None,
            exits,
            encoder: None,
        })
    }
}
