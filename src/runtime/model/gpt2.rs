//! GPT-2: pre-LN decoder layers, tanh GELU, causal and padding mask, final
//! layer norm, LM head tied to the token embedding. Checkpoint projections are
//! `Conv1D` weights stored `[in, out]`; they are transposed on load. Tensor
//! names are the family's (`base::family::gpt2`; the `transformer.` prefix
//! removed).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::base::family::gpt2;
use crate::base::{Activation, LayerShape, ModelConfig};
use crate::runtime::model::heads::{run_exits, Head};
use crate::runtime::model::layers::{
    activate, multi_head_attention, AttentionMask, Embedding, LayerNorm, Mode,
};
use crate::runtime::model::linear::Linear;
use crate::runtime::model::output::{ForwardOptions, Inputs, ModelOutput};

/// One decoder block.
#[derive(Debug, Clone)]
pub struct Gpt2Block {
    pub shape: LayerShape,
    pub ln_1: LayerNorm,
    /// hidden → 3 × heads × head_dim (q, k, v).
    pub qkv: Linear,
    pub attn_out: Linear,
    pub ln_2: LayerNorm,
    pub ffn_in: Linear,
    pub ffn_out: Linear,
    pub activation: Activation,
}

impl Gpt2Block {
    pub fn load(vb: VarBuilder, shape: LayerShape, cfg: &ModelConfig) -> Result<Self> {
        let (h, inner, eps) = (
            cfg.hidden_size,
            shape.heads * shape.head_dim,
            cfg.layer_norm_eps,
        );
        let (attn, mlp) = (vb.pp(gpt2::ATTENTION), vb.pp(gpt2::FFN));
        Ok(Gpt2Block {
            shape,
            ln_1: LayerNorm::load(vb.pp(gpt2::ATTENTION_NORM), h, eps)?,
            qkv: Linear::load_conv1d(attn.pp(gpt2::QKV), h, 3 * inner)?,
            attn_out: Linear::load_conv1d(attn.pp(gpt2::ATTENTION_OUT), inner, h)?,
            ln_2: LayerNorm::load(vb.pp(gpt2::FFN_NORM), h, eps)?,
            ffn_in: Linear::load_conv1d(mlp.pp(gpt2::FFN_IN), h, shape.ffn)?,
            ffn_out: Linear::load_conv1d(mlp.pp(gpt2::FFN_OUT), shape.ffn, h)?,
            activation: cfg.activation,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        mask: &AttentionMask,
        mode: Mode,
        keep_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let inner = self.shape.heads * self.shape.head_dim;
        let qkv = self.qkv.forward(&self.ln_1.forward(x, mode)?)?;
        let (q, k, v) = (
            qkv.narrow(2, 0, inner)?,
            qkv.narrow(2, inner, inner)?,
            qkv.narrow(2, 2 * inner, inner)?,
        );
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
        let x = (x + self.attn_out.forward(&ctx)?)?;
        let f = activate(
            &self.ffn_in.forward(&self.ln_2.forward(&x, mode)?)?,
            self.activation,
        )?;
        let out = (&x + self.ffn_out.forward(&f)?)?;
        Ok((out, probs))
    }
}

#[derive(Debug, Clone)]
pub struct Gpt2Model {
    pub config: ModelConfig,
    pub wte: Embedding,
    /// `[max_positions, hidden]`.
    pub wpe: Tensor,
    pub blocks: Vec<Gpt2Block>,
    pub ln_f: LayerNorm,
}

impl Gpt2Model {
    /// `vb` points at the transformer root (the `transformer.` prefix removed).
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        let blocks = cfg
            .layers
            .iter()
            .enumerate()
            .map(|(i, shape)| Gpt2Block::load(vb.pp(gpt2::FAMILY.layers.layer(i)), *shape, cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Gpt2Model {
            config: cfg.clone(),
            wte: Embedding::load(
                &vb,
                gpt2::TOKEN_EMBEDDINGS,
                cfg.vocab_size,
                h,
                cfg.embedding_rank,
            )?,
            wpe: vb.pp(gpt2::POSITION_EMBEDDINGS).get_with_hints(
                (cfg.max_positions, h),
                "weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.01,
                },
            )?,
            blocks,
            ln_f: LayerNorm::load(vb.pp(gpt2::FINAL_NORM), h, cfg.layer_norm_eps)?,
        })
    }

    /// Next-token logits `[..., vocab]` of final hidden states (tied head).
    pub fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Linear::from_weights(self.wte.full_matrix()?, None).forward(hidden)
    }

    /// Token plus position embeddings `[batch, seq, hidden]`.
    pub fn embed(&self, inputs: &Inputs) -> Result<Tensor> {
        let (_, s) = inputs.ids.dims2()?;
        self.wte
            .forward(&inputs.ids)?
            .broadcast_add(&self.wpe.narrow(0, 0, s)?)
    }

    pub fn forward(
        &self,
        inputs: &Inputs,
        exits: &[Head],
        opts: ForwardOptions,
    ) -> Result<ModelOutput> {
        let mask = AttentionMask::new(&inputs.mask, true)?;
        let mut x = self.embed(inputs)?;
        let mut hidden_states = vec![x.clone()];
        let mut attentions = Vec::new();
        for block in &self.blocks {
            let (out, probs) = block.forward(&x, &mask, opts.mode, opts.output_attentions)?;
            x = out;
            hidden_states.push(x.clone());
            attentions.extend(probs);
        }
        let last_hidden = self.ln_f.forward(&x, opts.mode)?;
        if let Some(last) = hidden_states.last_mut() {
            *last = last_hidden.clone();
        }
        let exits = run_exits(exits, &hidden_states, &inputs.mask)?;
        let logits = if opts.lm_logits {
            Some(self.lm_logits(&last_hidden)?)
        } else {
            None
        };
        Ok(ModelOutput {
            hidden_states,
            last_hidden,
            attentions,
            logits,
            exits,
            encoder: None,
        })
    }
}
