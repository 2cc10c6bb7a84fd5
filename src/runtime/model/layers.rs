//! Building blocks shared by the models: layer norm, softmax and the GELU
//! variants, each with a differentiable formulation for training and a fused
//! one for inference (candle's fused layer norm and softmax record no
//! gradient), and an embedding table that may be factorized.

use candle_core::{Device, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::base::Activation;
use crate::runtime::model::packed_table::PackedRows;

/// Whether a forward pass must be differentiable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Fastest kernels; no gradients through layer norm and softmax.
    #[default]
    Inference,
    /// Every operation records its gradient.
    Training,
}

/// Layer norm over the last dimension with a gain and a bias.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (HF names; GPT-2 uses the same).
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
            eps,
        })
    }

    /// `LN(x + residual)`, fused into one pass for inference on the CPU.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor, mode: Mode) -> Result<Tensor> {
        if mode == Mode::Inference && !x.track_op() && !residual.track_op() {
            let fused = crate::runtime::kernels::fused_norm::add_layer_norm(
                x,
                Some(residual),
                &self.weight,
                &self.bias,
                self.eps,
            )?;
            if let Some(y) = fused {
                return Ok(y);
            }
        }
        self.forward(&(x + residual)?, mode)
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match mode {
            Mode::Inference => {
                match crate::runtime::kernels::fused_norm::add_layer_norm(
                    x,
                    None,
                    &self.weight,
                    &self.bias,
                    self.eps,
                )? {
                    Some(y) => Ok(y),
                    None => {
                        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32)
                    }
                }
            }
            Mode::Training => {
                let fused = crate::runtime::kernels::layer_norm_grad::layer_norm(
                    x,
                    &self.weight,
                    &self.bias,
                    self.eps,
                )?;
                if let Some(y) = fused {
                    return Ok(y);
                }
                let mean = x.mean_keepdim(D::Minus1)?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
                let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
                normed
                    .broadcast_mul(&self.weight)?
                    .broadcast_add(&self.bias)
            }
        }
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Inference => candle_nn::ops::softmax_last_dim(x),
        Mode::Training => {
            if let Some(y) = crate::runtime::kernels::softmax_grad::softmax_last_dim(x)? {
                return Ok(y);
            }
            let max = x.max_keepdim(D::Minus1)?.detach();
            let e = x.broadcast_sub(&max)?.exp()?;
            e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
        }
    }
}

/// The activation of the feed-forward block (every one differentiable; the
/// erf GELU runs the same fused kernel in training and inference).
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    match act {
        Activation::Gelu => crate::runtime::kernels::fused_ops::gelu_erf(x),
        Activation::GeluTanh => x.gelu(),
        Activation::Relu => x.relu(),
    }
}

/// A token embedding table, either `[vocab, hidden]` or factorized into
/// `[vocab, r]` followed by a projection `[hidden, r]`
/// (`<name>.weight` and `<name>_proj.weight`).
#[derive(Debug, Clone)]
pub struct Embedding {
    pub table: EmbeddingTable,
    /// `[hidden, r]` when factorized.
    pub proj: Option<Tensor>,
}

/// The rows of an embedding table: f32, or packed as an artifact stores
/// them (inference; a lookup dequantizes only the rows it reads).
#[derive(Debug, Clone)]
pub enum EmbeddingTable {
    Float(Tensor),
    Packed(std::sync::Arc<PackedRows>),
}

impl Embedding {
    /// `vb` points at the parent module; `name` is the table's module name
    /// (`word_embeddings` for BERT, `wte` for GPT-2).
    pub fn load(
        vb: &VarBuilder,
        name: &str,
        vocab: usize,
        hidden: usize,
        rank: Option<usize>,
    ) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let width = rank.unwrap_or(hidden);
        let table = vb.pp(name).get_with_hints((vocab, width), "weight", init)?;
        let proj = match rank {
            None => None,
            Some(r) => Some(vb.pp(format!("{name}_proj")).get_with_hints(
                (hidden, r),
                "weight",
                init,
            )?),
        };
        Ok(Embedding {
            table: EmbeddingTable::Float(table),
            proj,
        })
    }

    /// `ids` `[batch, seq]` → `[batch, seq, hidden]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let rows = match &self.table {
            EmbeddingTable::Float(t) => t.contiguous()?.index_select(&flat, 0)?,
            EmbeddingTable::Packed(p) => {
                let ids: Vec<u32> = flat.to_dtype(candle_core::DType::U32)?.to_vec1()?;
                p.gather(&ids, flat.device())?
            }
        };
        let rows = match &self.proj {
            None => rows,
            Some(p) => rows.matmul(&p.t()?)?,
        };
        rows.reshape((b, s, ()))
    }

    /// The table's rows as an f32 tensor `[vocab, width]` (the packed form
    /// dequantized whole).
    pub fn table_tensor(&self) -> Result<Tensor> {
        match &self.table {
            EmbeddingTable::Float(t) => Ok(t.clone()),
            EmbeddingTable::Packed(p) => p.to_tensor(&Device::Cpu),
        }
    }

    /// Replaces the rows by an f32 table.
    pub fn set_table(&mut self, table: Tensor) {
        self.table = EmbeddingTable::Float(table);
    }

    /// The full `[vocab, hidden]` matrix (for a tied output head).
    pub fn full_matrix(&self) -> Result<Tensor> {
        let table = self.table_tensor()?;
        match &self.proj {
            None => Ok(table),
            Some(p) => table.matmul(&p.t()?),
        }
    }
}

/// The attention mask of a batch: an additive bias `[batch, 1, q, k]` (0 where
/// a query may attend to a key, a large negative number elsewhere) and, when
/// every row is right-padded, the real length of each row (for the fused
/// kernel).
#[derive(Debug, Clone)]
pub struct AttentionMask {
    pub bias: Tensor,
    pub lengths: Option<Vec<usize>>,
    pub causal: bool,
}

impl AttentionMask {
    /// `mask` `[batch, seq]` has 1 for real tokens; `causal` also hides later keys.
    pub fn new(mask: &Tensor, causal: bool) -> Result<Self> {
        let rows: Vec<Vec<u32>> = mask.to_dtype(candle_core::DType::U32)?.to_vec2()?;
        let lengths = rows
            .iter()
            .map(|r| {
                let n = r.iter().take_while(|&&m| m != 0).count();
                r[n..].iter().all(|&m| m == 0).then_some(n)
            })
            .collect();
        Ok(AttentionMask {
            bias: attention_bias(mask, causal)?,
            lengths,
            causal,
        })
    }
}

impl AttentionMask {
    /// The mask of a cross-attention: every query may attend to every real
    /// key of `mask` `[batch, keys]`; the bias is `[batch, 1, 1, keys]`.
    pub fn keys(mask: &Tensor) -> Result<Self> {
        let (b, s) = mask.dims2()?;
        let keys = mask
            .to_dtype(candle_core::DType::F32)?
            .reshape((b, 1, 1, s))?;
        Ok(AttentionMask {
            bias: ((keys - 1.0)? * 1e9)?,
            lengths: None,
            causal: false,
        })
    }
}

/// The additive mask `[batch, 1, q, k]` of `AttentionMask::bias`.
pub fn attention_bias(mask: &Tensor, causal: bool) -> Result<Tensor> {
    let (b, s) = mask.dims2()?;
    let keys = mask
        .to_dtype(candle_core::DType::F32)?
        .reshape((b, 1, 1, s))?;
    let allowed = if causal {
        let tri: Vec<f32> = (0..s)
            .flat_map(|q| (0..s).map(move |k| if k <= q { 1.0 } else { 0.0 }))
            .collect();
        let tri = Tensor::from_vec(tri, (1, 1, s, s), mask.device())?;
        keys.broadcast_mul(&tri)?
    } else {
        keys.broadcast_as((b, 1, s, s))?.contiguous()?
    };
    // (allowed - 1) * 1e9: 0 where allowed, -1e9 where not.
    (allowed - 1.0)? * 1e9
}

/// Multi-head attention of `q`, `k`, `v` `[batch, seq, heads * head_dim]`
/// under `mask`. Returns the context `[batch, seq, heads * head_dim]` and,
/// when `keep_probs`, the probabilities `[batch, heads, seq, seq]`. Inference
/// without probabilities uses the fused kernel where it applies; training,
/// or inference that keeps the probabilities, the two differentiable
/// operations of `kernels::attention_grad` for a padding mask.
#[allow(clippy::too_many_arguments)]
pub fn multi_head_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    heads: usize,
    head_dim: usize,
    mode: Mode,
    keep_probs: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    if mode == Mode::Inference && !keep_probs {
        if let Some(lengths) = &mask.lengths {
            if let Some(ctx) = crate::runtime::kernels::attention::fused_attention(
                q,
                k,
                v,
                heads,
                head_dim,
                lengths,
                mask.causal,
            )? {
                return Ok((ctx, None));
            }
        }
    }
    if !mask.causal && (mode == Mode::Training || keep_probs) {
        if let Some(lengths) = &mask.lengths {
            let joined = crate::runtime::kernels::attention_grad::attention(
                q, k, v, heads, head_dim, lengths,
            )?;
            if let Some((ctx, probs)) = joined {
                return Ok((ctx, keep_probs.then_some(probs)));
            }
        }
    }
    attention(q, k, v, &mask.bias, heads, head_dim, mode, keep_probs)
}

/// Unfused scaled dot-product attention over `heads` heads of width `head_dim`.
/// `q` is `[batch, seq, heads * head_dim]`, `k` and `v` `[batch, keys,
/// heads * head_dim]` (`keys` differs from `seq` in cross-attention), `bias`
/// the additive mask of `attention_bias` or `AttentionMask::keys`. Returns
/// the context `[batch, seq, heads * head_dim]` and, when `keep_probs`, the
/// probabilities `[batch, heads, seq, keys]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    heads: usize,
    head_dim: usize,
    mode: Mode,
    keep_probs: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (b, s, _) = q.dims3()?;
    let split = |t: &Tensor| -> Result<Tensor> {
        let len = t.dim(1)?;
        t.reshape((b, len, heads, head_dim))?
            .transpose(1, 2)?
            .contiguous()
    };
    let q = (split(q)? * (1.0 / (head_dim as f64).sqrt()))?;
    let k = split(k)?;
    let v = split(v)?;
    let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
    let probs = softmax_last_dim(&scores, mode)?;
    let ctx = probs
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((b, s, heads * head_dim))?;
    Ok((ctx, keep_probs.then_some(probs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{DType, Device};

    #[test]
    fn fused_and_differentiable_forms_agree() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (3, 5, 37), &dev).unwrap();
        let ln = LayerNorm {
            weight: Tensor::randn(1f32, 0.5, 37, &dev).unwrap(),
            bias: Tensor::randn(0f32, 0.5, 37, &dev).unwrap(),
            eps: 1e-12,
        };
        let a = ln.forward(&x, Mode::Inference).unwrap();
        let b = ln.forward(&x, Mode::Training).unwrap();
        assert!(max_diff(&a, &b) < 1e-5);
        let a = softmax_last_dim(&x, Mode::Inference).unwrap();
        let b = softmax_last_dim(&x, Mode::Training).unwrap();
        assert!(max_diff(&a, &b) < 1e-6);
    }

    #[test]
    fn causal_bias_hides_future_and_padding() {
        let mask = Tensor::new(&[[1u32, 1, 0]], &Device::Cpu).unwrap();
        let bias = attention_bias(&mask, true)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let v: Vec<f32> = bias.flatten_all().unwrap().to_vec1().unwrap();
        let allowed: Vec<bool> = v.iter().map(|x| *x == 0.0).collect();
        assert_eq!(
            allowed,
            [true, false, false, true, true, false, true, true, false]
        );
    }
}
