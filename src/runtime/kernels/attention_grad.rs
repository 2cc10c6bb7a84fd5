//! Self-attention for training as two differentiable CPU operations that
//! read q, k and v straight from the projections' outputs `[batch, seq,
//! heads · head_dim]`:
//! - the probabilities (`ProbsOp`): scores `q·kᵀ/√d`, the padding mask and
//!   the softmax, giving `P` `[batch, heads, seq, seq]` (the tensor the
//!   attention-distillation loss reads);
//! - the context (`AttendOp`): `P·v`, written back in the projections'
//!   layout `[batch, seq, heads · head_dim]`.
//!
//! As candle operations this is three head splits (reshape, transpose,
//! copy), a scale, a 4-d product, the mask's add, a softmax, a product and
//! the transposes back, and the backward pass allocates, zeroes and adds a
//! gradient for every one of them. Here each operation's backward pass
//! computes its inputs' gradients directly:
//! `dP = dctx·vᵀ`, `dv = Pᵀ·dctx`, and with `dS = P ⊙ (dP − Σⱼ dP ⊙ P)`,
//! `dq = dS·k/√d`, `dk = dSᵀ·q/√d`.
//!
//! Keys past a sequence's length (right padding) get probability exactly 0,
//! as the composite form's −1e9 bias gives after `exp`; padded queries
//! attend like any other. Sequences run in parallel, the loops of each
//! head vectorized at the widest width the CPU allows.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::attention::softmax_unnormalized;
use super::simd_override::widest_simd;
use super::values::{contiguous, fresh, is_cpu_f32, with_values, Fresh};

/// The context `[batch, seq, heads · head_dim]` and the probabilities
/// `[batch, heads, seq, seq]` of self-attention over `q`, `k`, `v`
/// `[batch, seq, heads · head_dim]`, for sequences of `lengths` real tokens
/// followed by padding; differentiable in `q`, `k` and `v` through both
/// outputs. `None` where the operations do not apply (not f32 on the CPU,
/// shapes that do not fit, a length of 0 or past the sequence).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    head_dim: usize,
    lengths: &[usize],
) -> Result<Option<(Tensor, Tensor)>> {
    let Some(shape) = Heads::of(q, k, v, heads, head_dim, lengths) else {
        return Ok(None);
    };
    let probs = q
        .contiguous()?
        .apply_op2(&k.contiguous()?, ProbsOp(shape.clone()))?;
    let ctx = probs.apply_op2(&v.contiguous()?, AttendOp(shape))?;
    Ok(Some((ctx, probs)))
}

/// The shape of one attention: `batch` sequences of `seq` tokens, the
/// first `lengths[b]` of sequence `b` real, `heads` heads of `head_dim`.
#[derive(Clone, Debug)]
struct Heads {
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    lengths: Vec<usize>,
}

impl Heads {
    fn of(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        head_dim: usize,
        lengths: &[usize],
    ) -> Option<Heads> {
        let (batch, seq, width) = q.dims3().ok()?;
        let fits = [q, k, v].iter().all(|t| is_cpu_f32(t))
            && k.dims() == q.dims()
            && v.dims() == q.dims()
            && width == heads * head_dim
            && head_dim > 0
            && lengths.len() == batch
            && lengths.iter().all(|&n| (1..=seq).contains(&n));
        fits.then(|| Heads {
            batch,
            seq,
            heads,
            head_dim,
            lengths: lengths.to_vec(),
        })
    }

    /// Values of one sequence of q, k, v or the context.
    fn rows(&self) -> usize {
        self.seq * self.heads * self.head_dim
    }

    /// Values of one sequence's probabilities.
    fn probs(&self) -> usize {
        self.heads * self.seq * self.seq
    }

    /// Sequence `b`'s values in q, k, v or the context, and in the
    /// probabilities.
    fn spans(&self, b: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        (
            b * self.rows()..(b + 1) * self.rows(),
            b * self.probs()..(b + 1) * self.probs(),
        )
    }

    /// The scores' scale `1/√d` (as the composite form rounds it).
    fn scale(&self) -> f32 {
        (1.0 / (self.head_dim as f64).sqrt()) as f32
    }

    /// The sequence `b` of this shape, the slices of it being `len` long.
    fn sequence(&self, b: usize) -> Sequence {
        Sequence {
            seq: self.seq,
            heads: self.heads,
            head_dim: self.head_dim,
            len: self.lengths[b],
            scale: self.scale(),
        }
    }

    /// An operand's contiguous values, checked to hold `per_sequence`
    /// values for every sequence.
    fn operand<'a>(
        &self,
        op: &str,
        (storage, layout): (&'a CpuStorage, &Layout),
        per_sequence: usize,
    ) -> Result<&'a [f32]> {
        if layout.shape().elem_count() != self.batch * per_sequence {
            candle_core::bail!("{op}: input {:?} does not fit {self:?}", layout.shape())
        }
        contiguous(storage, layout)
    }
}

/// One sequence's dimensions, as the per-sequence loops take them.
#[derive(Clone, Copy)]
struct Sequence {
    seq: usize,
    heads: usize,
    head_dim: usize,
    /// Real tokens.
    len: usize,
    scale: f32,
}

impl Sequence {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Head `head` of token `t` in a `[seq, heads · head_dim]` slice.
    #[inline(always)]
    fn at(&self, t: usize, head: usize) -> std::ops::Range<usize> {
        let start = t * self.width() + head * self.head_dim;
        start..start + self.head_dim
    }

    /// Row `i` of head `head` in a `[heads, seq, seq]` slice.
    #[inline(always)]
    fn row(&self, head: usize, i: usize) -> std::ops::Range<usize> {
        let start = (head * self.seq + i) * self.seq;
        start..start + self.seq
    }

    /// The head's columns of `x` `[seq, width]` for the real tokens,
    /// transposed into `out` `[head_dim][stride]` (the rest left as it is).
    fn transposed(&self, x: &[f32], head: usize, out: &mut [f32], stride: usize) {
        for j in 0..self.len {
            for (c, &x) in x[self.at(j, head)].iter().enumerate() {
                out[c * stride + j] = x;
            }
        }
    }
}

/// `P` from q and k.
struct ProbsOp(Heads);

/// The context from `P` and v.
struct AttendOp(Heads);

impl CustomOp2 for ProbsOp {
    fn name(&self) -> &'static str {
        "plcc-attention-probs"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = &self.0;
        let q = h.operand(self.name(), (qs, ql), h.rows())?;
        let k = h.operand(self.name(), (ks, kl), h.rows())?;
        // SAFETY: every sequence's probabilities are written whole.
        let probs = unsafe {
            fresh(h.batch * h.probs(), |out| {
                out.par_chunks_mut(h.probs())
                    .enumerate()
                    .for_each(|(b, out)| {
                        let (at, _) = h.spans(b);
                        sequence_probs(&q[at.clone()], &k[at], h.sequence(b), out)
                    })
            })
        };
        let shape = Shape::from((h.batch, h.heads, h.seq, h.seq));
        Ok((CpuStorage::F32(probs), shape))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        probs: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let h = &self.0;
        let (mut dq, mut dk) = (vec![0f32; q.elem_count()], vec![0f32; k.elem_count()]);
        with_values(q, |q| {
            with_values(k, |k| {
                with_values(probs, |p| {
                    with_values(grad, |g| {
                        dq.par_chunks_mut(h.rows())
                            .zip(dk.par_chunks_mut(h.rows()))
                            .enumerate()
                            .for_each(|(b, (dq, dk))| {
                                let (at, pt) = h.spans(b);
                                let inputs = [&q[at.clone()], &k[at], &p[pt.clone()], &g[pt]];
                                sequence_probs_grad(inputs, h.sequence(b), dq, dk)
                            });
                        Ok(())
                    })
                })
            })
        })?;
        let dq = Tensor::from_vec(dq, q.shape(), q.device())?;
        let dk = Tensor::from_vec(dk, k.shape(), k.device())?;
        Ok((Some(dq), Some(dk)))
    }
}

impl CustomOp2 for AttendOp {
    fn name(&self) -> &'static str {
        "plcc-attention-context"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let h = &self.0;
        let p = h.operand(self.name(), (ps, pl), h.probs())?;
        let v = h.operand(self.name(), (vs, vl), h.rows())?;
        let mut ctx = vec![0f32; h.batch * h.rows()];
        ctx.par_chunks_mut(h.rows())
            .enumerate()
            .for_each(|(b, ctx)| {
                let (at, pt) = h.spans(b);
                sequence_context(&p[pt], &v[at], h.sequence(b), ctx)
            });
        let shape = Shape::from((h.batch, h.seq, h.heads * h.head_dim));
        Ok((CpuStorage::F32(ctx), shape))
    }

    fn bwd(
        &self,
        probs: &Tensor,
        v: &Tensor,
        _ctx: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let h = &self.0;
        let mut dv = vec![0f32; v.elem_count()];
        let dp = with_values(probs, |p| {
            with_values(v, |v| {
                with_values(grad, |g| {
                    // SAFETY: every sequence's probability gradient is written whole.
                    Ok(unsafe {
                        fresh(probs.elem_count(), |dp| {
                            dp.par_chunks_mut(h.probs())
                                .zip(dv.par_chunks_mut(h.rows()))
                                .enumerate()
                                .for_each(|(b, (dp, dv))| {
                                    let (at, pt) = h.spans(b);
                                    let inputs = [&p[pt], &v[at.clone()], &g[at]];
                                    sequence_context_grad(inputs, h.sequence(b), dp, dv)
                                })
                        })
                    })
                })
            })
        })?;
        let dp = Tensor::from_vec(dp, probs.shape(), probs.device())?;
        let dv = Tensor::from_vec(dv, v.shape(), v.device())?;
        Ok((Some(dp), Some(dv)))
    }
}

/// Values a register holds on the widest level; the loops below keep their
/// sums in arrays of this many, which stay in registers.
const LANES: usize = 16;

/// `Σᵢ w[i] · row(i)` of [`LANES`] values, over four partial sums.
#[inline(always)]
fn lane_sum<'a>(w: &[f32], row: impl Fn(usize) -> &'a [f32; LANES]) -> [f32; LANES] {
    let (mut a0, mut a1, mut a2, mut a3) =
        ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let whole = w.len() / 4 * 4;
    for i in (0..whole).step_by(4) {
        let (x0, x1, x2, x3) = (row(i), row(i + 1), row(i + 2), row(i + 3));
        let (w0, w1, w2, w3) = (w[i], w[i + 1], w[i + 2], w[i + 3]);
        for l in 0..LANES {
            a0[l] += w0 * x0[l];
            a1[l] += w1 * x1[l];
            a2[l] += w2 * x2[l];
            a3[l] += w3 * x3[l];
        }
    }
    for (i, &wi) in w.iter().enumerate().skip(whole) {
        let x = row(i);
        for l in 0..LANES {
            a0[l] += wi * x[l];
        }
    }
    for l in 0..LANES {
        a0[l] += a1[l] + (a2[l] + a3[l]);
    }
    a0
}

/// [`LANES`] values of `t` from `at` as an array.
#[inline(always)]
fn lanes(t: &[f32], at: usize) -> &[f32; LANES] {
    t[at..at + LANES].try_into().expect("a whole block")
}

/// `out[j] = Σ_c x[c] · t[c·stride + j]`: the products of `x` with the rows
/// of a matrix stored transposed (`stride` a multiple of [`LANES`], `out`
/// `stride` long), [`LANES`] outputs at a time.
#[inline(always)]
fn transposed_products(x: &[f32], t: &[f32], stride: usize, out: &mut [f32]) {
    for (block, out) in out.chunks_exact_mut(LANES).enumerate() {
        let sum = lane_sum(x, |c| lanes(t, c * stride + block * LANES));
        out.copy_from_slice(&sum);
    }
}

/// `out = Σⱼ w[j] · rows[j·stride ..][..out.len()]`, [`LANES`] columns of
/// `out` at a time.
#[inline(always)]
fn weighted_rows(w: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let width = out.len();
    if w.is_empty() {
        out.fill(0.0);
        return;
    }
    let rows = &rows[..(w.len() - 1) * stride + width];
    let mut blocks = out.chunks_exact_mut(LANES);
    for (block, out) in (&mut blocks).enumerate() {
        let sum = lane_sum(w, |j| lanes(rows, j * stride + block * LANES));
        out.copy_from_slice(&sum);
    }
    let done = width - blocks.into_remainder().len();
    for (c, o) in out[done..].iter_mut().enumerate() {
        *o = w
            .iter()
            .enumerate()
            .map(|(j, &wj)| wj * rows[j * stride + done + c])
            .sum();
    }
}

/// `rows[at(j)] += w[j] · x` for every `j`.
#[inline(always)]
fn add_scaled(
    w: &[f32],
    x: &[f32],
    rows: &mut [f32],
    at: impl Fn(usize) -> std::ops::Range<usize>,
) {
    for (j, &wj) in w.iter().enumerate() {
        for (o, &x) in rows[at(j)].iter_mut().zip(x) {
            *o += wj * x;
        }
    }
}

/// `row` written from `values` (its first `values.len()`) and zeros.
#[inline(always)]
fn write_row(row: &mut [Fresh], values: &[f32], scale: f32) {
    let (real, padding) = row.split_at_mut(values.len());
    for (o, &v) in real.iter_mut().zip(values) {
        o.write(v * scale);
    }
    for o in padding {
        o.write(0.0);
    }
}

widest_simd! {
    /// One sequence's probabilities `out` `[heads, seq, seq]` from its
    /// queries and keys `[seq, heads · head_dim]`: per query a row of
    /// scaled scores over the real keys, its softmax, zeros for padding.
    fn sequence_probs(q: &[f32], k: &[f32], s: Sequence, out: &mut [Fresh]) {
        let (d, len) = (s.head_dim, s.len);
        let stride = len.div_ceil(LANES) * LANES;
        let mut keys = vec![0f32; d * stride];
        let mut scores = vec![0f32; stride];
        let mut query = vec![0f32; d];
        for head in 0..s.heads {
            s.transposed(k, head, &mut keys, stride);
            for i in 0..s.seq {
                for (o, &x) in query.iter_mut().zip(&q[s.at(i, head)]) {
                    *o = x * s.scale;
                }
                transposed_products(&query, &keys, stride, &mut scores);
                let sum = softmax_unnormalized(&mut scores, len);
                write_row(&mut out[s.row(head, i)], &scores[..len], 1.0 / sum);
            }
        }
    }
}

widest_simd! {
    /// One sequence's context `ctx` `[seq, heads · head_dim]` from its
    /// probabilities `[heads, seq, seq]` and values.
    fn sequence_context(p: &[f32], v: &[f32], s: Sequence, ctx: &mut [f32]) {
        for head in 0..s.heads {
            for i in 0..s.seq {
                let weights = &p[s.row(head, i)][..s.len];
                let values = &v[head * s.head_dim..];
                weighted_rows(weights, values, s.width(), &mut ctx[s.at(i, head)]);
            }
        }
    }
}

widest_simd! {
    /// The attention product's gradients for one sequence from
    /// `[P, v, dctx]`: `dp` `[heads, seq, seq]` (0 for padding keys, whose
    /// probability is 0 whatever it is) and `dv` (zeroed, added to).
    fn sequence_context_grad(inputs: [&[f32]; 3], s: Sequence, dp: &mut [Fresh], dv: &mut [f32]) {
        let [p, v, g] = inputs;
        let (d, len) = (s.head_dim, s.len);
        let stride = len.div_ceil(LANES) * LANES;
        let mut values = vec![0f32; d * stride];
        let mut products = vec![0f32; stride];
        for head in 0..s.heads {
            s.transposed(v, head, &mut values, stride);
            for i in 0..s.seq {
                let gi = &g[s.at(i, head)];
                transposed_products(gi, &values, stride, &mut products);
                write_row(&mut dp[s.row(head, i)], &products[..len], 1.0);
                let weights = &p[s.row(head, i)][..len];
                add_scaled(weights, gi, dv, |j| s.at(j, head));
            }
        }
    }
}

widest_simd! {
    /// The probabilities' gradients for one sequence from `[q, k, P, dP]`:
    /// `dq` and `dk` (zeroed, added to) through
    /// `dS = P ⊙ (dP − Σⱼ dP ⊙ P)` and the scaled scores.
    fn sequence_probs_grad(inputs: [&[f32]; 4], s: Sequence, dq: &mut [f32], dk: &mut [f32]) {
        let [q, k, p, g] = inputs;
        let len = s.len;
        let mut ds = vec![0f32; len];
        for head in 0..s.heads {
            for i in 0..s.seq {
                let (pi, gi) = (&p[s.row(head, i)][..len], &g[s.row(head, i)][..len]);
                let mut lanes = [0f32; LANES];
                for (p, g) in pi.chunks(LANES).zip(gi.chunks(LANES)) {
                    for ((l, &p), &g) in lanes.iter_mut().zip(p).zip(g) {
                        *l += p * g;
                    }
                }
                let dot: f32 = lanes.iter().sum();
                for ((d, &p), &g) in ds.iter_mut().zip(pi).zip(gi) {
                    *d = p * (g - dot) * s.scale;
                }
                let keys = &k[head * s.head_dim..];
                weighted_rows(&ds, keys, s.width(), &mut dq[s.at(i, head)]);
                add_scaled(&ds, &q[s.at(i, head)], dk, |j| s.at(j, head));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::model::layers::{attention as composite, attention_bias, Mode};
    use crate::testing::max_diff;
    use candle_core::{DType, Device, Var};

    /// Context, probabilities and the three input gradients of a loss that
    /// reads both outputs, from the operations or from candle's composite form.
    fn run(fused: bool, inputs: &[Tensor], lengths: &[usize], heads: usize) -> Vec<Tensor> {
        let dev = Device::Cpu;
        let (_, seq, width) = inputs[0].dims3().unwrap();
        let d = width / heads;
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let [q, k, v] = [0, 1, 2].map(|i| vars[i].as_tensor().clone());
        let (ctx, probs) = if fused {
            attention(&q, &k, &v, heads, d, lengths).unwrap().unwrap()
        } else {
            let mask: Vec<Vec<u32>> = lengths
                .iter()
                .map(|&n| (0..seq).map(|t| u32::from(t < n)).collect())
                .collect();
            let mask = Tensor::new(mask, &dev).unwrap();
            let bias = attention_bias(&mask, false).unwrap();
            let (ctx, probs) =
                composite(&q, &k, &v, &bias, heads, d, Mode::Training, true).unwrap();
            (ctx, probs.unwrap())
        };
        let upstream_ctx = &inputs[3];
        let upstream_probs = &inputs[4];
        let loss = ((&ctx * upstream_ctx).unwrap().sum_all().unwrap()
            + (&probs * upstream_probs).unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let mut out = vec![ctx, probs];
        out.extend([q, k, v].iter().map(|t| grads.get(t).unwrap().clone()));
        out
    }

    #[test]
    fn outputs_and_gradients_match_the_composite_form() {
        for (lengths, seq, heads, d) in [(vec![7, 4, 1], 7, 3, 5), (vec![19, 33, 2, 40], 40, 2, 32)]
        {
            let dev = Device::Cpu;
            let b = lengths.len();
            let mut inputs: Vec<Tensor> = (0..4)
                .map(|_| Tensor::randn(0f32, 1.5, (b, seq, heads * d), &dev).unwrap())
                .collect();
            inputs.push(Tensor::randn(0f32, 1.0, (b, heads, seq, seq), &dev).unwrap());
            let ours = run(true, &inputs, &lengths, heads);
            let theirs = run(false, &inputs, &lengths, heads);
            let names = ["context", "probabilities", "dq", "dk", "dv"];
            for ((a, b), name) in ours.iter().zip(&theirs).zip(names) {
                assert_eq!(a.dims(), b.dims(), "{name}");
                let scale = b
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                let diff = max_diff(a, b);
                assert!(
                    diff <= 1e-5 * scale.max(1.0),
                    "{name}: {diff} (scale {scale})"
                );
            }
            // Padding keys get exactly zero probability.
            let probs = ours[1].to_dtype(DType::F32).unwrap();
            let row: Vec<f32> = probs
                .get(2)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(row
                .chunks(seq)
                .all(|r| r[lengths[2]..].iter().all(|&p| p == 0.0)));
        }
    }

    #[test]
    fn shapes_it_cannot_run_are_declined() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 4, 6), DType::F32, &dev).unwrap();
        let declined = |q: &Tensor, heads, d, lengths: &[usize]| {
            attention(q, &x, &x, heads, d, lengths).unwrap().is_none()
        };
        assert!(!declined(&x, 2, 3, &[4, 1]));
        assert!(declined(&x, 2, 3, &[4, 0]), "an empty sequence");
        assert!(declined(&x, 2, 3, &[5, 1]), "a length past the sequence");
        assert!(declined(&x, 2, 3, &[4]), "a length per sequence");
        assert!(declined(&x, 4, 3, &[4, 1]), "heads that do not fit");
        let f64s = x.to_dtype(DType::F64).unwrap();
        assert!(declined(&f64s, 2, 3, &[4, 1]), "f64");
        let other = Tensor::zeros((2, 5, 6), DType::F32, &dev).unwrap();
        assert!(
            declined(&other, 2, 3, &[4, 1]),
            "q and k of different lengths"
        );
    }
}
