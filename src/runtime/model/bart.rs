//! BART (`BartForConditionalGeneration`): a post-LN encoder and decoder
//! sharing one token embedding (`model.shared`, also the output head, plus
//! `final_logits_bias`), learned positions offset by 2, a layer norm on each
//! stack's embeddings (`layernorm_embedding`), GELU feed-forward blocks, and
//! in each decoder layer causal self-attention then cross-attention over the
//! encoder's final states. Encoder and decoder may differ in depth, heads and
//! FFN width, and every layer in its own shape (a pruned student). Tensor
//! names are the family's (`base::family::bart`), the `model.` prefix kept.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::base::family::bart::{self, POSITION_OFFSET};
use crate::base::{Activation, LayerShape, ModelConfig};
use crate::runtime::model::heads::{run_exits, Head};
use crate::runtime::model::layers::{
    multi_head_attention, AttentionMask, Embedding, LayerNorm, Mode,
};
use crate::runtime::model::linear::Linear;
use crate::runtime::model::output::{EncoderOutput, ForwardOptions, Inputs, ModelOutput};

/// Multi-head attention with separate query, key, value and output
/// projections.
#[derive(Debug, Clone)]
pub struct BartAttention {
    pub heads: usize,
    pub head_dim: usize,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
}

impl BartAttention {
    fn load(vb: VarBuilder, hidden: usize, heads: usize, head_dim: usize) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(BartAttention {
            heads,
            head_dim,
            q_proj: Linear::load(vb.pp(bart::Q_PROJ), hidden, inner)?,
            k_proj: Linear::load(vb.pp(bart::K_PROJ), hidden, inner)?,
            v_proj: Linear::load(vb.pp(bart::V_PROJ), hidden, inner)?,
            out_proj: Linear::load(vb.pp(bart::OUT_PROJ), inner, hidden)?,
        })
    }

    /// Queries from `x`, keys and values from `source` (`x` itself for
    /// self-attention); the output projection applied.
    fn forward(
        &self,
        x: &Tensor,
        source: &Tensor,
        mask: &AttentionMask,
        mode: Mode,
        keep_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (ctx, probs) = multi_head_attention(
            &self.q_proj.forward(x)?,
            &self.k_proj.forward(source)?,
            &self.v_proj.forward(source)?,
            mask,
            self.heads,
            self.head_dim,
            mode,
            keep_probs,
        )?;
        Ok((self.out_proj.forward(&ctx)?, probs))
    }

    fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 4] {
        [
            (bart::Q_PROJ, &mut self.q_proj),
            (bart::K_PROJ, &mut self.k_proj),
            (bart::V_PROJ, &mut self.v_proj),
            (bart::OUT_PROJ, &mut self.out_proj),
        ]
    }
}

/// The feed-forward block `fc2(act(fc1(x)))` with its post-LN.
#[derive(Debug, Clone)]
pub struct BartFeedForward {
    pub fc1: Linear,
    pub fc2: Linear,
    pub norm: LayerNorm,
    pub activation: Activation,
}

impl BartFeedForward {
    fn load(vb: &VarBuilder, shape: LayerShape, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(BartFeedForward {
            fc1: Linear::load(vb.pp(bart::FC1), h, shape.ffn)?,
            fc2: Linear::load(vb.pp(bart::FC2), shape.ffn, h)?,
            norm: LayerNorm::load(vb.pp(bart::FFN_NORM), h, cfg.layer_norm_eps)?,
            activation: cfg.activation,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let f = self.fc1.forward_activated(x, self.activation)?;
        self.norm.forward_residual(&self.fc2.forward(&f)?, x, mode)
    }
}

/// One layer of either stack; a decoder layer also attends to the encoder.
#[derive(Debug, Clone)]
pub struct BartLayer {
    pub shape: LayerShape,
    pub self_attn: BartAttention,
    pub self_attn_layer_norm: LayerNorm,
    /// Cross-attention and its norm (decoder layers only).
    pub cross_attn: Option<(BartAttention, LayerNorm)>,
    pub ffn: BartFeedForward,
}

impl BartLayer {
    fn load(vb: VarBuilder, shape: LayerShape, cfg: &ModelConfig, decoder: bool) -> Result<Self> {
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let attention =
            |name: &str| BartAttention::load(vb.pp(name), h, shape.heads, shape.head_dim);
        let cross_attn = if decoder {
            Some((
                attention(bart::CROSS_ATTENTION)?,
                LayerNorm::load(vb.pp(bart::CROSS_ATTENTION_NORM), h, eps)?,
            ))
        } else {
            None
        };
        Ok(BartLayer {
            shape,
            self_attn: attention(bart::SELF_ATTENTION)?,
            self_attn_layer_norm: LayerNorm::load(vb.pp(bart::SELF_ATTENTION_NORM), h, eps)?,
            cross_attn,
            ffn: BartFeedForward::load(&vb, shape, cfg)?,
        })
    }

    /// The layer's output, its self-attention probabilities and (decoder)
    /// its cross-attention probabilities, when `keep_probs`. `encoder` is
    /// the encoder's final states and the cross-attention's mask.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &AttentionMask,
        encoder: Option<(&Tensor, &AttentionMask)>,
        mode: Mode,
        keep_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
        let (a, probs) = self.self_attn.forward(x, x, mask, mode, keep_probs)?;
        let mut x = self.self_attn_layer_norm.forward_residual(&a, x, mode)?;
        let mut cross_probs = None;
        if let (Some((attn, norm)), Some((states, source_mask))) = (&self.cross_attn, encoder) {
            let (c, p) = attn.forward(&x, states, source_mask, mode, keep_probs)?;
            x = norm.forward_residual(&c, &x, mode)?;
            cross_probs = p;
        }
        Ok((self.ffn.forward(&x, mode)?, probs, cross_probs))
    }

    /// The layer's linear modules, named below the layer.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out: Vec<(String, &mut Linear)> = self
            .self_attn
            .linears_mut()
            .into_iter()
            .map(|(n, l)| (format!("{}.{n}", bart::SELF_ATTENTION), l))
            .collect();
        if let Some((attn, _)) = &mut self.cross_attn {
            out.extend(
                attn.linears_mut()
                    .into_iter()
                    .map(|(n, l)| (format!("{}.{n}", bart::CROSS_ATTENTION), l)),
            );
        }
        out.push((bart::FC1.into(), &mut self.ffn.fc1));
        out.push((bart::FC2.into(), &mut self.ffn.fc2));
        out
    }
}

/// One stack's embedding side: its position table (`[max_positions + 2,
/// hidden]`) and the norm on its embeddings.
#[derive(Debug, Clone)]
pub struct BartStackEmbedding {
    pub positions: Tensor,
    pub norm: LayerNorm,
}

impl BartStackEmbedding {
    fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(BartStackEmbedding {
            positions: vb.pp(bart::POSITIONS).get_with_hints(
                (cfg.max_positions + POSITION_OFFSET, h),
                "weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            norm: LayerNorm::load(vb.pp(bart::EMBEDDING_NORM), h, cfg.layer_norm_eps)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BartModel {
    pub config: ModelConfig,
    /// The token embedding of both stacks and the output head.
    pub shared: Embedding,
    pub encoder_embedding: BartStackEmbedding,
    pub decoder_embedding: BartStackEmbedding,
    pub encoder_layers: Vec<BartLayer>,
    pub decoder_layers: Vec<BartLayer>,
    /// `[1, vocab]`, added to the logits.
    pub final_logits_bias: Tensor,
    /// √hidden when the config scales embeddings, else 1.
    pub embed_scale: f64,
}

impl BartModel {
    /// `vb` points at the checkpoint root.
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> Result<Self> {
        let Some(seq2seq) = &cfg.seq2seq else {
            candle_core::bail!("a BART configuration needs its encoder's layers")
        };
        let m = vb.pp(bart::MODEL);
        let stack = |name: &str, shapes: &[LayerShape], decoder: bool| {
            let layers = m.pp(name).pp(bart::STACK_LAYERS);
            shapes
                .iter()
                .enumerate()
                .map(|(i, s)| BartLayer::load(layers.pp(i), *s, cfg, decoder))
                .collect::<Result<Vec<_>>>()
        };
        Ok(BartModel {
            config: cfg.clone(),
            shared: Embedding::load(
                &m,
                bart::SHARED,
                cfg.vocab_size,
                cfg.hidden_size,
                cfg.embedding_rank,
            )?,
            encoder_embedding: BartStackEmbedding::load(m.pp(bart::ENCODER), cfg)?,
            decoder_embedding: BartStackEmbedding::load(m.pp(bart::DECODER), cfg)?,
            encoder_layers: stack(bart::ENCODER, &seq2seq.encoder_layers, false)?,
            decoder_layers: stack(bart::DECODER, &cfg.layers, true)?,
            final_logits_bias: vb.get_with_hints(
                (1, cfg.vocab_size),
                bart::LOGITS_BIAS,
                Init::Const(0.0),
            )?,
            embed_scale: if seq2seq.scale_embedding {
                (cfg.hidden_size as f64).sqrt()
            } else {
                1.0
            },
        })
    }

    /// Every linear module with its checkpoint name, encoder then decoder.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let family = &bart::FAMILY;
        let mut out = Vec::new();
        for (stack, layers) in [
            (family.encoder.as_ref(), &mut self.encoder_layers),
            (Some(&family.layers), &mut self.decoder_layers),
        ] {
            let Some(stack) = stack else { continue };
            for (i, layer) in layers.iter_mut().enumerate() {
                out.extend(
                    layer
                        .linears_mut()
                        .into_iter()
                        .map(|(n, l)| (format!("{}{n}", stack.prefix(i)), l)),
                );
            }
        }
        out
    }

    /// Scaled token plus position embeddings of `ids` `[batch, seq]`, after
    /// the stack's embedding norm.
    pub fn embed(&self, stack: &BartStackEmbedding, ids: &Tensor, mode: Mode) -> Result<Tensor> {
        let (_, s) = ids.dims2()?;
        let tokens = self.shared.forward(ids)?;
        let tokens = if self.embed_scale == 1.0 {
            tokens
        } else {
            (tokens * self.embed_scale)?
        };
        let x = tokens.broadcast_add(&stack.positions.narrow(0, POSITION_OFFSET, s)?)?;
        stack.norm.forward(&x, mode)
    }

    /// Runs the encoder over `inputs` (the source): its hidden states
    /// (embedding output first) and, when requested, its attentions.
    pub fn encode(&self, inputs: &Inputs, opts: ForwardOptions) -> Result<EncoderOutput> {
        let mask = AttentionMask::new(&inputs.mask, false)?;
        let mut x = self.embed(&self.encoder_embedding, &inputs.ids, opts.mode)?;
        let mut hidden_states = vec![x.clone()];
        let mut attentions = Vec::new();
        for layer in &self.encoder_layers {
            let (out, probs, _) =
                layer.forward(&x, &mask, None, opts.mode, opts.output_attentions)?;
            x = out;
            hidden_states.push(x.clone());
            attentions.extend(probs);
        }
        Ok(EncoderOutput {
            hidden_states,
            attentions,
            cross_attentions: Vec::new(),
        })
    }

    /// Next-token logits `[..., vocab]` of decoder states (the tied head plus
    /// `final_logits_bias`).
    pub fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Linear::from_weights(self.shared.full_matrix()?, None)
            .forward(hidden)?
            .broadcast_add(&self.final_logits_bias.squeeze(0)?)
    }

    /// Runs the decoder over `decoder` inputs, attending to `encoded` (the
    /// encoder's outputs for `source_mask`).
    pub fn decode(
        &self,
        decoder: &Inputs,
        encoded: EncoderOutput,
        source_mask: &Tensor,
        exits: &[Head],
        opts: ForwardOptions,
    ) -> Result<ModelOutput> {
        let Some(states) = encoded.hidden_states.last() else {
            candle_core::bail!("the encoder produced no states")
        };
        let cross_mask = AttentionMask::keys(source_mask)?;
        let mask = AttentionMask::new(&decoder.mask, true)?;
        let mut x = self.embed(&self.decoder_embedding, &decoder.ids, opts.mode)?;
        let mut hidden_states = vec![x.clone()];
        let (mut attentions, mut cross_attentions) = (Vec::new(), Vec::new());
        for layer in &self.decoder_layers {
            let (out, probs, cross) = layer.forward(
                &x,
                &mask,
                Some((states, &cross_mask)),
                opts.mode,
                opts.output_attentions,
            )?;
            x = out;
            hidden_states.push(x.clone());
            attentions.extend(probs);
            cross_attentions.extend(cross);
        }
        let exits = run_exits(exits, &hidden_states, &decoder.mask)?;
        let logits = if opts.lm_logits {
            Some(self.lm_logits(&x)?)
        } else {
            None
        };
        Ok(ModelOutput {
            hidden_states,
            last_hidden: x,
            attentions,
            logits,
            exits,
            encoder: Some(EncoderOutput {
                cross_attentions,
                ..encoded
            }),
        })
    }

    /// Encoder then decoder; `inputs.decoder` must hold the decoder's inputs.
    pub fn forward(
        &self,
        inputs: &Inputs,
        exits: &[Head],
        opts: ForwardOptions,
    ) -> Result<ModelOutput> {
        let Some(decoder) = inputs.decoder.as_deref() else {
            candle_core::bail!(
                "an encoder-decoder model needs decoder inputs (its start token, then the target)"
            )
        };
        let encoded = self.encode(inputs, opts)?;
        self.decode(decoder, encoded, &inputs.mask, exits, opts)
    }
}
