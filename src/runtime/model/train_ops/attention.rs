//! The attention core as two differentiable operations on the CPU:
//! `Probs` (`q`, `k` → `softmax(q·kᵀ/√d + mask)`, `[batch, heads, queries,
//! keys]`) and `Context` (`probs`, `v` → `probs·v`, `[batch, queries,
//! heads * head_dim]`). Both read the projections' `[batch, seq, heads *
//! head_dim]` layout directly (no head transposes), work one sequence at a
//! time in parallel, and write their backward passes by hand: `Context`'s
//! gives the probabilities' gradient, to which candle adds any gradient a
//! loss on the probabilities has (attention distillation), and `Probs`'s
//! takes the softmax's gradient to `q` and `k`. The probabilities are the
//! only tensor the pair keeps between the passes.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{axpy, operand, simd_fn, with_values};
use crate::runtime::kernels::fastmath;

/// The additive bias of a score the mask hides (the composite form's).
pub const MASKED: f32 = -1e9;

/// Which keys the queries of a batch may attend to.
#[derive(Debug, Clone)]
pub struct KeyMask {
    /// The additive bias of each batch row's keys, `[batch * keys]`: 0 for a
    /// key that may be attended to, [`MASKED`] for one that may not.
    pub bias: Arc<Vec<f32>>,
    /// Whether a query also may not attend to later keys (queries and keys
    /// are then the same positions).
    pub causal: bool,
}

/// The sizes of one sequence's attention.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    heads: usize,
    head_dim: usize,
    queries: usize,
    keys: usize,
}

impl Sizes {
    fn width(self) -> usize {
        self.heads * self.head_dim
    }

    fn scale(self) -> f32 {
        (1.0 / (self.head_dim as f64).sqrt()) as f32
    }

    /// Elements of one sequence's probabilities.
    fn probs_len(self) -> usize {
        self.heads * self.queries * self.keys
    }

    /// Row `row`'s slice of head `h` in a `[rows, heads * head_dim]` block.
    fn head(self, row: usize, h: usize) -> std::ops::Range<usize> {
        let start = row * self.width() + h * self.head_dim;
        start..start + self.head_dim
    }

    /// Head `h`, query `i`'s row of the probabilities.
    fn probs_row(self, h: usize, i: usize) -> std::ops::Range<usize> {
        let start = (h * self.queries + i) * self.keys;
        start..start + self.keys
    }
}

/// Context `[batch, queries, heads * head_dim]` and probabilities `[batch,
/// heads, queries, keys]` of multi-head attention of `q` `[batch, queries,
/// heads * head_dim]` over `k`, `v` `[batch, keys, heads * head_dim]` under
/// `mask`; both differentiable.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &KeyMask,
    heads: usize,
    head_dim: usize,
) -> Result<(Tensor, Tensor)> {
    let probs = q.contiguous()?.apply_op2(
        &k.contiguous()?,
        Probs {
            heads,
            head_dim,
            mask: mask.clone(),
        },
    )?;
    let ctx = probs.apply_op2(&v.contiguous()?, Context { heads, head_dim })?;
    Ok((ctx, probs))
}

/// The sizes of `a` `[batch, queries, width]` against `b` `[batch, keys,
/// width]`, checked against the head layout.
fn sizes(a: &Shape, b: &Shape, heads: usize, head_dim: usize) -> Result<(usize, Sizes)> {
    let (batch, queries, width) = a.dims3()?;
    let (batch_b, keys, width_b) = b.dims3()?;
    if batch != batch_b || width != heads * head_dim || width_b != width {
        candle_core::bail!(
            "attention: shapes {a:?} and {b:?} do not fit {heads} heads of width {head_dim}"
        )
    }
    let sizes = Sizes {
        heads,
        head_dim,
        queries,
        keys,
    };
    Ok((batch, sizes))
}

struct Probs {
    heads: usize,
    head_dim: usize,
    mask: KeyMask,
}

impl CustomOp2 for Probs {
    fn name(&self) -> &'static str {
        "plcc-attention-probs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (q, k) = (operand(s1, l1, self.name())?, operand(s2, l2, self.name())?);
        let (batch, n) = sizes(l1.shape(), l2.shape(), self.heads, self.head_dim)?;
        if self.mask.bias.len() != batch * n.keys || (self.mask.causal && n.queries != n.keys) {
            candle_core::bail!("attention: the mask does not fit {batch} rows of {n:?}")
        }
        let mut out = vec![0f32; batch * n.probs_len()];
        out.par_chunks_mut(n.probs_len())
            .enumerate()
            .for_each(|(b, out)| {
                let rows = |len: usize| b * len * n.width()..(b + 1) * len * n.width();
                let bias = &self.mask.bias[b * n.keys..(b + 1) * n.keys];
                probs_forward(
                    &q[rows(n.queries)],
                    &k[rows(n.keys)],
                    bias,
                    self.mask.causal,
                    n,
                    out,
                );
            });
        let shape = Shape::from((batch, n.heads, n.queries, n.keys));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        probs: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (batch, n) = sizes(q.shape(), k.shape(), self.heads, self.head_dim)?;
        let mut dq = vec![0f32; q.elem_count()];
        let mut dk = vec![0f32; k.elem_count()];
        let name = self.name();
        with_values(q, name, |qv| {
            with_values(k, name, |kv| {
                with_values(probs, name, |p| {
                    with_values(grad, name, |g| {
                        let (qlen, klen) = (n.queries * n.width(), n.keys * n.width());
                        dq.par_chunks_mut(qlen)
                            .zip(dk.par_chunks_mut(klen))
                            .enumerate()
                            .for_each(|(b, (dq, dk))| {
                                let pr = b * n.probs_len()..(b + 1) * n.probs_len();
                                let (qs, ks) = (&qv[b * qlen..][..qlen], &kv[b * klen..][..klen]);
                                probs_backward(qs, ks, &p[pr.clone()], &g[pr], n, dq, dk);
                            });
                        Ok(())
                    })
                })
            })
        })?;
        debug_assert_eq!(dq.len(), batch * n.queries * n.width());
        let dq = Tensor::from_vec(dq, q.shape(), q.device())?;
        let dk = Tensor::from_vec(dk, k.shape(), k.device())?;
        Ok((Some(dq), Some(dk)))
    }
}

simd_fn! {
    /// One sequence's probabilities: scaled scores, the mask's bias, softmax.
    fn probs_forward(q: &[f32], k: &[f32], bias: &[f32], causal: bool, n: Sizes, out: &mut [f32]) {
        let (scale, hd, keys) = (n.scale(), n.head_dim, n.keys);
        // Head `h` of `k`, transposed: `kt[d * keys + j]`.
        let mut kt = vec![0f32; hd * keys];
        for h in 0..n.heads {
            for j in 0..keys {
                for (d, &x) in k[n.head(j, h)].iter().enumerate() {
                    kt[d * keys + j] = x;
                }
            }
            for i in 0..n.queries {
                let row = &mut out[n.probs_row(h, i)];
                for (d, &x) in q[n.head(i, h)].iter().enumerate() {
                    axpy(row, x * scale, &kt[d * keys..(d + 1) * keys]);
                }
                for (j, (s, &b)) in row.iter_mut().zip(bias).enumerate() {
                    *s += if causal && j > i { MASKED } else { b };
                }
                softmax(row);
            }
        }
    }
}

/// Softmax of `row` in place.
#[inline(always)]
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = fastmath::exp(*x - max);
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

simd_fn! {
    /// One sequence's gradients of `q` and `k` from the probabilities `p`
    /// and their gradient `g`: `dS = p ⊙ (g − Σ p·g)`, `dq = dS·k/√d`,
    /// `dk = dSᵀ·q/√d`.
    fn probs_backward(q: &[f32], k: &[f32], p: &[f32], g: &[f32], n: Sizes, dq: &mut [f32], dk: &mut [f32]) {
        let scale = n.scale();
        for h in 0..n.heads {
            for i in 0..n.queries {
                let r = n.probs_row(h, i);
                let (p, g) = (&p[r.clone()], &g[r]);
                let dot: f32 = p.iter().zip(g).map(|(p, g)| p * g).sum();
                let qi = &q[n.head(i, h)];
                for (j, (&p, &g)) in p.iter().zip(g).enumerate() {
                    let ds = p * (g - dot) * scale;
                    if ds != 0.0 {
                        axpy(&mut dq[n.head(i, h)], ds, &k[n.head(j, h)]);
                        axpy(&mut dk[n.head(j, h)], ds, qi);
                    }
                }
            }
        }
    }
}

struct Context {
    heads: usize,
    head_dim: usize,
}

impl Context {
    /// The sizes of `probs` `[batch, heads, queries, keys]` against `v`.
    fn sizes(&self, probs: &Shape, v: &Shape) -> Result<(usize, Sizes)> {
        let (batch, heads, queries, keys) = probs.dims4()?;
        let (batch_v, keys_v, width) = v.dims3()?;
        if heads != self.heads
            || batch_v != batch
            || keys_v != keys
            || width != heads * self.head_dim
        {
            candle_core::bail!("attention: probabilities {probs:?} do not fit values {v:?}")
        }
        let sizes = Sizes {
            heads,
            head_dim: self.head_dim,
            queries,
            keys,
        };
        Ok((batch, sizes))
    }
}

impl CustomOp2 for Context {
    fn name(&self) -> &'static str {
        "plcc-attention-context"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, v) = (operand(s1, l1, self.name())?, operand(s2, l2, self.name())?);
        let (batch, n) = self.sizes(l1.shape(), l2.shape())?;
        let (qlen, klen) = (n.queries * n.width(), n.keys * n.width());
        let mut out = vec![0f32; batch * qlen];
        out.par_chunks_mut(qlen).enumerate().for_each(|(b, out)| {
            let p = &p[b * n.probs_len()..(b + 1) * n.probs_len()];
            context_forward(p, &v[b * klen..(b + 1) * klen], n, out);
        });
        Ok((
            CpuStorage::F32(out),
            Shape::from((batch, n.queries, n.width())),
        ))
    }

    fn bwd(
        &self,
        probs: &Tensor,
        v: &Tensor,
        _ctx: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, n) = self.sizes(probs.shape(), v.shape())?;
        let mut dp = vec![0f32; probs.elem_count()];
        let mut dv = vec![0f32; v.elem_count()];
        let name = self.name();
        with_values(probs, name, |p| {
            with_values(v, name, |vv| {
                with_values(grad, name, |g| {
                    let (qlen, klen) = (n.queries * n.width(), n.keys * n.width());
                    dp.par_chunks_mut(n.probs_len())
                        .zip(dv.par_chunks_mut(klen))
                        .enumerate()
                        .for_each(|(b, (dp, dv))| {
                            let ps = &p[b * n.probs_len()..(b + 1) * n.probs_len()];
                            let (vs, gs) = (&vv[b * klen..][..klen], &g[b * qlen..][..qlen]);
                            context_backward(ps, vs, gs, n, dp, dv);
                        });
                    Ok(())
                })
            })
        })?;
        let dp = Tensor::from_vec(dp, probs.shape(), probs.device())?;
        let dv = Tensor::from_vec(dv, v.shape(), v.device())?;
        Ok((Some(dp), Some(dv)))
    }
}

simd_fn! {
    /// One sequence's context: each query's row of `p` times `v`, per head.
    fn context_forward(p: &[f32], v: &[f32], n: Sizes, out: &mut [f32]) {
        for h in 0..n.heads {
            for i in 0..n.queries {
                let o = &mut out[n.head(i, h)];
                for (j, &pj) in p[n.probs_row(h, i)].iter().enumerate() {
                    if pj != 0.0 {
                        axpy(o, pj, &v[n.head(j, h)]);
                    }
                }
            }
        }
    }
}

simd_fn! {
    /// One sequence's gradients of the probabilities (`g·vᵀ`) and of `v`
    /// (`pᵀ·g`) from the context's gradient `g`.
    fn context_backward(p: &[f32], v: &[f32], g: &[f32], n: Sizes, dp: &mut [f32], dv: &mut [f32]) {
        let (hd, keys) = (n.head_dim, n.keys);
        let mut vt = vec![0f32; hd * keys];
        for h in 0..n.heads {
            for j in 0..keys {
                for (d, &x) in v[n.head(j, h)].iter().enumerate() {
                    vt[d * keys + j] = x;
                }
            }
            for i in 0..n.queries {
                let gi = &g[n.head(i, h)];
                let row = &mut dp[n.probs_row(h, i)];
                for (d, &x) in gi.iter().enumerate() {
                    axpy(row, x, &vt[d * keys..(d + 1) * keys]);
                }
                for (j, &pj) in p[n.probs_row(h, i)].iter().enumerate() {
                    if pj != 0.0 {
                        axpy(&mut dv[n.head(j, h)], pj, gi);
                    }
                }
            }
        }
    }
}
