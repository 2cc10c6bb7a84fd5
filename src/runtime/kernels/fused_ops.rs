//! Fused CPU kernels for inference (no gradient): multi-threaded erf GELU and
//! tanh, and a fused attention that reads q, k, v straight from the projection outputs
//! `[batch, seq, heads * head_dim]` and writes the context in the same
//! layout, avoiding head transposes, 4-d batched matmuls and separate mask
//! and softmax passes. Each kernel is checked against the differentiable
//! formulation in the tests. Other devices use the plain candle ops.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fastmath;

/// Elements per parallel work item of element-wise kernels.
const CHUNK: usize = 4096;

/// erf(x) for f32 by a rational approximation on [-4, 4] (beyond which erf
/// is ±1 in f32); absolute error below 1e-6, branch-free so it vectorizes.
#[inline(always)]
fn erf_fast(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// An element-wise function with a fused, multi-threaded CPU kernel.
#[derive(Debug, Clone, Copy)]
enum Unary {
    GeluErf,
    Tanh,
}

impl Unary {
    #[inline(always)]
    fn apply(self, xs: &[f32], out: &mut [f32]) {
        match self {
            Unary::GeluErf => {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = 0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            }
            Unary::Tanh => {
                for (o, &x) in out.iter_mut().zip(xs) {
                    *o = fastmath::tanh(x);
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(self, xs: &[f32], out: &mut [f32]) {
        self.apply(xs, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn apply_avx2(self, xs: &[f32], out: &mut [f32]) {
        self.apply(xs, out)
    }

    fn apply_chunk(self, xs: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if super::simd_override::avx512f_enabled() {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { self.apply_avx512(xs, out) };
            }
            if super::simd_override::avx2_fma_enabled() {
                // SAFETY: as above.
                return unsafe { self.apply_avx2(xs, out) };
            }
        }
        self.apply(xs, out)
    }

    /// Applies the function to `x`: fused for f32 on the CPU when no
    /// gradient flows through `x`, candle's (differentiable) op otherwise.
    fn run(self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && !x.track_op() {
            return x.contiguous()?.apply_op1_no_bwd(&self);
        }
        match self {
            Unary::GeluErf => x.gelu_erf(),
            Unary::Tanh => x.tanh(),
        }
    }
}

impl CustomOp1 for Unary {
    fn name(&self) -> &'static str {
        match self {
            Unary::GeluErf => "plcc-gelu-erf",
            Unary::Tanh => "plcc-tanh",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: input must be contiguous", self.name()))
        })?;
        let xs = &storage.as_slice::<f32>()?[start..end];
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(|(o, x)| self.apply_chunk(x, o));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Exact (erf) GELU; fused and multi-threaded for f32 on the CPU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    Unary::GeluErf.run(x)
}

/// `tanh`; fused and multi-threaded for f32 on the CPU without gradient
/// (`fastmath::tanh`, absolute error below 3e-7).
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    Unary::Tanh.run(x)
}

/// Fused attention over rows of `[batch, seq, heads * head_dim]`.
struct Attention {
    heads: usize,
    head_dim: usize,
    /// Real tokens per sequence (right padding).
    lengths: Vec<usize>,
    causal: bool,
}

/// The attention of one sequence: inputs, their layouts, and the shape.
struct SequenceAttention<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    /// (start offset, batch stride, seq stride) of q, k, v.
    offsets: [(usize, usize, usize); 3],
    heads: usize,
    head_dim: usize,
    seq: usize,
    causal: bool,
}

impl SequenceAttention<'_> {
    fn run(&self, bi: usize, len: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if super::simd_override::avx512f_enabled() {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { self.run_avx512(bi, len, out) };
            }
            if super::simd_override::avx2_fma_enabled() {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { self.run_avx2(bi, len, out) };
            }
        }
        self.run_generic(bi, len, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, bi: usize, len: usize, out: &mut [f32]) {
        self.run_generic(bi, len, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, bi: usize, len: usize, out: &mut [f32]) {
        self.run_generic(bi, len, out)
    }

    /// Sequence `bi` with `len` real tokens into `out` `[seq, heads * head_dim]`.
    /// Per head the keys are transposed once (`[head_dim, keys]`, padded to
    /// 16 keys), so that a query's scores accumulate over keys in vector
    /// lanes; the softmax uses the vectorizing `fastmath::exp`.
    #[inline(always)]
    fn run_generic(&self, bi: usize, len: usize, out: &mut [f32]) {
        let (d, width) = (self.head_dim, self.heads * self.head_dim);
        let [qo, ko, vo] = self.offsets;
        let row =
            |o: (usize, usize, usize), t: usize, head: usize| o.0 + bi * o.1 + t * o.2 + head * d;
        let scale = 1.0 / (d as f32).sqrt();
        let stride = len.div_ceil(16) * 16;
        let mut keys_t = vec![0f32; d * stride];
        let mut scores = vec![0f32; stride];
        for head in 0..self.heads {
            for j in 0..len {
                for (c, &x) in self.k[row(ko, j, head)..][..d].iter().enumerate() {
                    keys_t[c * stride + j] = x;
                }
            }
            for i in 0..self.seq {
                let qi = &self.q[row(qo, i, head)..][..d];
                let keys = if self.causal { (i + 1).min(len) } else { len };
                scores.fill(0.0);
                for (c, &qc) in qi.iter().enumerate() {
                    let qc = qc * scale;
                    for (s, &kv) in scores.iter_mut().zip(&keys_t[c * stride..][..stride]) {
                        *s += qc * kv;
                    }
                }
                let probs = &mut scores[..keys];
                let max = probs.iter().fold(f32::NEG_INFINITY, |m, &p| m.max(p));
                for p in probs.iter_mut() {
                    *p = fastmath::exp(*p - max);
                }
                let inv = 1.0 / sum(probs);
                let ctx = &mut out[i * width + head * d..][..d];
                for (j, p) in probs.iter().enumerate() {
                    let w = p * inv;
                    for (c, x) in ctx.iter_mut().zip(&self.v[row(vo, j, head)..][..d]) {
                        *c += w * x;
                    }
                }
            }
        }
    }
}

/// Sum with eight independent partial sums (vectorizes).
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Start offset and (batch, seq) strides of a 3-d layout whose last
/// dimension is contiguous.
fn rows_of(layout: &Layout) -> Result<(usize, usize, usize)> {
    match layout.stride() {
        [sb, ss, 1] => Ok((layout.start_offset(), *sb, *ss)),
        _ => candle_core::bail!("attention: the last dimension must be contiguous"),
    }
}

impl candle_core::CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "plcc-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, s, width) = ql.shape().dims3()?;
        let (h, d) = (self.heads, self.head_dim);
        if width != h * d
            || kl.shape() != ql.shape()
            || vl.shape() != ql.shape()
            || self.lengths.len() != b
        {
            candle_core::bail!("attention: inconsistent shapes")
        }
        let (q, k, v) = (
            qs.as_slice::<f32>()?,
            ks.as_slice::<f32>()?,
            vs.as_slice::<f32>()?,
        );
        let (qo, k_o, vo) = (rows_of(ql)?, rows_of(kl)?, rows_of(vl)?);
        let job = SequenceAttention {
            q,
            k,
            v,
            offsets: [qo, k_o, vo],
            heads: h,
            head_dim: d,
            seq: s,
            causal: self.causal,
        };
        let mut out = vec![0f32; b * s * width];
        out.par_chunks_mut(s * width)
            .enumerate()
            .for_each(|(bi, out_b)| job.run(bi, self.lengths[bi].clamp(1, s), out_b));
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }
}

/// Fused inference attention: `q`, `k`, `v` `[batch, seq, heads * head_dim]`
/// (last dimension contiguous), `lengths` the real tokens of each row (right
/// padding). Padded keys get no weight; padded queries attend like real ones
/// to the real keys (causal: to the earlier real keys). Returns `None` where
/// the fused kernel does not apply (not CPU f32).
pub fn fused_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    head_dim: usize,
    lengths: &[usize],
    causal: bool,
) -> Result<Option<Tensor>> {
    if !q.device().is_cpu() || q.dtype() != candle_core::DType::F32 {
        return Ok(None);
    }
    let fix = |t: &Tensor| -> Result<Tensor> {
        if t.stride().last() == Some(&1) {
            Ok(t.clone())
        } else {
            t.contiguous()
        }
    };
    let op = Attention {
        heads,
        head_dim,
        lengths: lengths.to_vec(),
        causal,
    };
    Ok(Some(fix(q)?.apply_op3_no_bwd(&fix(k)?, &fix(v)?, &op)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::model::layers::{attention, attention_bias, Mode};
    use crate::testing::max_diff;
    use candle_core::Device;

    #[test]
    fn fast_erf_matches_libm() {
        let worst = (-6000..=6000)
            .map(|i| i as f32 * 1e-3)
            .map(|x| (erf_fast(x) - candle_core::cpu::erf::erf_f32(x)).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "max error {worst}");
    }

    #[test]
    fn fused_gelu_and_tanh_match_candle_and_keep_gradients() {
        let x = Tensor::randn(0f32, 3.0, (7, 1000), &Device::Cpu).unwrap();
        assert!(max_diff(&gelu_erf(&x).unwrap(), &x.gelu_erf().unwrap()) < 1e-5);
        assert!(max_diff(&tanh(&x).unwrap(), &x.tanh().unwrap()) < 1e-6);
        let v = candle_core::Var::from_tensor(&x).unwrap();
        let y = tanh(v.as_tensor()).unwrap().sum_all().unwrap();
        let grads = y.backward().unwrap();
        assert!(grads.get(v.as_tensor()).is_some());
    }

    #[test]
    fn fused_attention_matches_reference() {
        let dev = Device::Cpu;
        for ((b, s, h, d), lengths) in [
            ((3, 6, 3, 5), vec![6usize, 4, 1]),
            ((2, 37, 2, 32), vec![37, 17]),
        ] {
            let qkv = Tensor::randn(0f32, 1.0, (b, s, 3 * h * d), &dev).unwrap();
            let (q, k, v) = (
                qkv.narrow(2, 0, h * d).unwrap(),
                qkv.narrow(2, h * d, h * d).unwrap(),
                qkv.narrow(2, 2 * h * d, h * d).unwrap(),
            );
            let mask: Vec<u32> = lengths
                .iter()
                .flat_map(|&n| (0..s).map(move |i| (i < n) as u32))
                .collect();
            let mask = Tensor::from_vec(mask, (b, s), &dev).unwrap();
            for causal in [false, true] {
                let bias = attention_bias(&mask, causal).unwrap();
                let (want, _) = attention(&q, &k, &v, &bias, h, d, Mode::Training, false).unwrap();
                let got = fused_attention(&q, &k, &v, h, d, &lengths, causal)
                    .unwrap()
                    .unwrap();
                let diff = max_diff(&want, &got);
                assert!(diff < 1e-5, "seq {s} causal {causal}: {diff}");
            }
        }
    }
}
