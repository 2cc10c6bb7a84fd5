//! Fused inference attention on the CPU (no gradient): reads q, k, v
//! straight from the projection outputs `[batch, seq, heads * head_dim]` and
//! writes the context in the same layout, without head transposes, 4-d
//! batched matmuls, a `[heads, seq, seq]` score tensor or separate mask and
//! softmax passes.
//!
//! Both products run on the f32 GEMM's register-tiled micro-kernel
//! (`f32_gemm::Kernel`: 12 × 32 tiles on AVX-512, 6 × 16 on AVX2 + FMA).
//! Per sequence and head the keys are packed once as its weight panels
//! (`[keys / cols][head_dim][cols]`) and the values as panels of the head's
//! columns (`[head_dim / cols][keys][cols]`). Queries go a register tile at
//! a time: packed (and scaled by `1/√d`) as the kernel's activations, their
//! scores come out of one tile product per key panel; the softmax runs a
//! whole vector of keys at a time with the vectorizing `fastmath::exp`
//! (masked keys exactly 0); the probabilities, divided by their sum, are
//! packed as activations and one tile product per value panel writes the
//! context straight into the output rows. Without a SIMD level a plain
//! loop computes the same. Sequences run in parallel.

use std::ops::Range;

use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::f32_gemm::{F32Level, Kernel};
use super::fastmath;
use super::values::writable;

/// Transposed keys are padded to a multiple of this many (a whole panel of
/// every level, a whole number of 16-lane softmax vectors).
const KEY_PAD: usize = 32;

/// Fused attention over rows of `[batch, seq, heads * head_dim]`.
struct Attention {
    heads: usize,
    head_dim: usize,
    /// Real tokens per sequence (right padding).
    lengths: Vec<usize>,
    causal: bool,
}

/// The attention's inputs, their layouts, and the shape.
struct SequenceAttention<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    /// (start offset, batch stride, seq stride) of q, k, v.
    offsets: [(usize, usize, usize); 3],
    head_dim: usize,
    seq: usize,
    causal: bool,
    kernel: Option<Kernel>,
}

/// One unit of parallel work: some heads of one sequence, written into
/// `[seq, heads.len() · head_dim]` (`out_width` apart, from column 0).
struct Job {
    bi: usize,
    /// Real tokens of the sequence.
    len: usize,
    heads: Range<usize>,
    out_width: usize,
}

/// A job's operands, every head packed in one pass over the rows: queries
/// (scaled) as the micro-kernel's activation tiles `[head][tile][d][mr]`,
/// keys as its panels `[head][stride / nr][d][nr]`, values as panels of the
/// head's columns `[head][d / nr][len][nr]`; the sizes of that layout, and
/// the zero bias the tile products start from.
struct Packed {
    queries: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
    /// Keys padded to a multiple of [`KEY_PAD`].
    stride: usize,
    /// Query tiles per head.
    tiles: usize,
    /// Value panels per head.
    value_panels: usize,
    zero_bias: Vec<f32>,
}

impl SequenceAttention<'_> {
    /// Row `t` of head `head` of sequence `bi` in the tensor at `o`.
    fn row(&self, o: (usize, usize, usize), bi: usize, t: usize, head: usize) -> usize {
        o.0 + bi * o.1 + t * o.2 + head * self.head_dim
    }

    /// Keys query `i` sees of a sequence of `len` real tokens.
    fn keys_of(&self, i: usize, len: usize) -> usize {
        if self.causal {
            (i + 1).min(len)
        } else {
            len
        }
    }

    fn run(&self, job: &Job, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = self.kernel {
            if super::simd_override::avx512f_enabled() {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { self.run_avx512(kernel, job, out) };
            }
            // SAFETY: a kernel was detected, so the CPU has at least AVX2 + FMA.
            return unsafe { self.run_avx2(kernel, job, out) };
        }
        self.run_plain(job, out)
    }

    /// [`Self::run_tiled`] with the packing and the softmax compiled for AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn run_avx512(&self, kernel: Kernel, job: &Job, out: &mut [f32]) {
        self.run_tiled(kernel, job, out)
    }

    /// [`Self::run_tiled`] with the packing and the softmax compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, kernel: Kernel, job: &Job, out: &mut [f32]) {
        self.run_tiled(kernel, job, out)
    }

    #[inline(always)]
    fn run_tiled(&self, kernel: Kernel, job: &Job, out: &mut [f32]) {
        let packed = self.pack(&kernel, job);
        let mut scratch = vec![0f32; 2 * kernel.rows * packed.stride];
        for index in 0..job.heads.len() {
            self.head_tiles(
                &kernel,
                job,
                &packed,
                index,
                &mut scratch,
                &mut out[index * self.head_dim..],
            );
        }
    }

    /// Packs a job's queries, keys and values (see [`Packed`]).
    #[inline(always)]
    fn pack(&self, kernel: &Kernel, job: &Job) -> Packed {
        let (mr, nr, d) = (kernel.rows, kernel.cols, self.head_dim);
        let (bi, len, heads) = (job.bi, job.len, job.heads.len());
        let [qo, ko, vo] = self.offsets;
        let scale = 1.0 / (d as f32).sqrt();
        let (stride, tiles, value_panels) = (
            len.div_ceil(KEY_PAD) * KEY_PAD,
            self.seq.div_ceil(mr),
            d.div_ceil(nr),
        );
        let mut queries = vec![0f32; heads * tiles * d * mr];
        let mut keys = vec![0f32; heads * stride * d];
        let mut values = vec![0f32; heads * value_panels * len * nr];
        let first = job.heads.start;
        for i in 0..self.seq {
            let row = &self.q[self.row(qo, bi, i, first)..][..heads * d];
            for (head, q) in row.chunks_exact(d).enumerate() {
                let tile = &mut queries[(head * tiles + i / mr) * d * mr..][..d * mr];
                for (c, &x) in q.iter().enumerate() {
                    tile[c * mr + i % mr] = x * scale;
                }
            }
        }
        for j in 0..len {
            let (panel, l) = (j / nr, j % nr);
            let row = &self.k[self.row(ko, bi, j, first)..][..heads * d];
            for (head, key) in row.chunks_exact(d).enumerate() {
                let panel = &mut keys[(head * stride / nr + panel) * d * nr..][..d * nr];
                for (c, &x) in key.iter().enumerate() {
                    panel[c * nr + l] = x;
                }
            }
            let row = &self.v[self.row(vo, bi, j, first)..][..heads * d];
            for (head, value) in row.chunks_exact(d).enumerate() {
                for (panel, part) in value.chunks(nr).enumerate() {
                    let at = ((head * value_panels + panel) * len + j) * nr;
                    values[at..][..part.len()].copy_from_slice(part);
                }
            }
        }
        Packed {
            queries,
            keys,
            values,
            stride,
            tiles,
            value_panels,
            zero_bias: vec![0f32; nr],
        }
    }

    /// Head `index` of a job, a register tile of queries at a time: scores
    /// (one tile product per key panel), softmax, probabilities divided by
    /// their sum packed as activations, context (one tile product per value
    /// panel) into `out`, whose first column is the head's.
    #[inline(always)]
    fn head_tiles(
        &self,
        kernel: &Kernel,
        job: &Job,
        packed: &Packed,
        index: usize,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        let (mr, nr, d, len) = (kernel.rows, kernel.cols, self.head_dim, job.len);
        let (stride, tiles, value_panels) = (packed.stride, packed.tiles, packed.value_panels);
        let zeros = &packed.zero_bias;
        let keys = &packed.keys[index * stride * d..][..stride * d];
        let values = &packed.values[index * value_panels * len * nr..][..value_panels * len * nr];
        let (scores, a) = scratch.split_at_mut(mr * stride);
        for (tile_index, i0) in (0..self.seq).step_by(mr).enumerate() {
            let rows = mr.min(self.seq - i0);
            let q = &packed.queries[(index * tiles + tile_index) * d * mr..][..d * mr];
            let most = self.keys_of(i0 + rows - 1, len);
            for panel in 0..most.div_ceil(nr) {
                let cols = nr.min(most - panel * nr);
                // SAFETY: the kernel's level is supported (it was detected);
                // `q` holds d·mr values, the panel d·nr, the zero bias nr,
                // and `scores` (rows − 1)·stride + cols past the panel's
                // first column.
                unsafe {
                    (kernel.tile)(
                        q,
                        rows,
                        &keys[panel * d * nr..][..d * nr],
                        Some(zeros),
                        writable(&mut scores[panel * nr..]),
                        stride,
                        cols,
                    )
                };
            }
            let padded = most.div_ceil(16) * 16;
            a[..most * mr].fill(0.0);
            for r in 0..rows {
                let probs = &mut scores[r * stride..][..padded];
                let inv = 1.0 / softmax_unnormalized(probs, self.keys_of(i0 + r, len));
                for (j, &p) in probs[..most].iter().enumerate() {
                    a[j * mr + r] = p * inv;
                }
            }
            for panel in 0..value_panels {
                let cols = nr.min(d - panel * nr);
                let at = i0 * job.out_width + panel * nr;
                // SAFETY: as above; `a` holds most·mr values, the panel
                // most·nr, and `out` (rows − 1)·out_width + cols past `at`.
                unsafe {
                    (kernel.tile)(
                        &a[..most * mr],
                        rows,
                        &values[panel * len * nr..][..most * nr],
                        Some(zeros),
                        writable(&mut out[at..]),
                        job.out_width,
                        cols,
                    )
                };
            }
        }
    }

    /// The same without SIMD: one query and key at a time.
    fn run_plain(&self, job: &Job, out: &mut [f32]) {
        let (d, bi, len) = (self.head_dim, job.bi, job.len);
        let [qo, ko, vo] = self.offsets;
        let scale = 1.0 / (d as f32).sqrt();
        let mut probs = vec![0f32; len.div_ceil(16) * 16];
        for (index, head) in job.heads.clone().enumerate() {
            for i in 0..self.seq {
                let q = &self.q[self.row(qo, bi, i, head)..][..d];
                let keys = self.keys_of(i, len);
                for (j, p) in probs[..keys].iter_mut().enumerate() {
                    let k = &self.k[self.row(ko, bi, j, head)..][..d];
                    *p = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                }
                let inv = 1.0 / softmax_unnormalized(&mut probs, keys);
                let ctx = &mut out[i * job.out_width + index * d..][..d];
                ctx.fill(0.0);
                for (j, &p) in probs[..keys].iter().enumerate() {
                    let v = &self.v[self.row(vo, bi, j, head)..][..d];
                    for (c, &x) in ctx.iter_mut().zip(v) {
                        *c += p * inv * x;
                    }
                }
            }
        }
    }
}

/// `exp(p − max p)` in place over the first `keys` of `probs` (a multiple of
/// 16 long), exactly 0 beyond; returns the sum.
#[inline(always)]
pub(crate) fn softmax_unnormalized(probs: &mut [f32], keys: usize) -> f32 {
    const LANES: usize = 16;
    probs[keys..].fill(f32::NEG_INFINITY);
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for chunk in probs.chunks_exact(LANES) {
        for (m, &p) in lanes.iter_mut().zip(chunk) {
            *m = if p > *m { p } else { *m };
        }
    }
    let max = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |m, &p| if p > m { p } else { m });
    for chunk in probs.chunks_exact_mut(LANES) {
        for p in chunk {
            *p = fastmath::exp(*p - max);
        }
    }
    probs[keys..].fill(0.0);
    let mut sums = [0f32; LANES];
    for chunk in probs.chunks_exact(LANES) {
        for (s, p) in sums.iter_mut().zip(chunk) {
            *s += p;
        }
    }
    sums.iter().sum()
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
            head_dim: d,
            seq: s,
            causal: self.causal,
            kernel: F32Level::detect().map(F32Level::kernel),
        };
        let len = |bi: usize| self.lengths[bi].clamp(1, s);
        let mut out = vec![0f32; b * s * width];
        let threads = rayon::current_num_threads();
        if b >= threads {
            out.par_chunks_mut(s * width)
                .enumerate()
                .for_each(|(bi, out)| {
                    let all = Job {
                        bi,
                        len: len(bi),
                        heads: 0..h,
                        out_width: width,
                    };
                    job.run(&all, out)
                });
        } else {
            // Fewer sequences than threads (one sentence at a time): groups
            // of heads run in parallel into their own buffers.
            let per_group = h.div_ceil(threads.div_ceil(b)).max(1);
            let jobs: Vec<Job> = (0..b)
                .flat_map(|bi| {
                    (0..h).step_by(per_group).map(move |h0| Job {
                        bi,
                        len: len(bi),
                        heads: h0..(h0 + per_group).min(h),
                        out_width: (per_group.min(h - h0)) * d,
                    })
                })
                .collect();
            let parts: Vec<Vec<f32>> = jobs
                .par_iter()
                .map(|group| {
                    let mut part = vec![0f32; s * group.out_width];
                    job.run(group, &mut part);
                    part
                })
                .collect();
            for (group, part) in jobs.iter().zip(parts) {
                for (i, row) in part.chunks_exact(group.out_width).enumerate() {
                    let at = (group.bi * s + i) * width + group.heads.start * d;
                    out[at..][..group.out_width].copy_from_slice(row);
                }
            }
        }
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
    fn fused_attention_matches_reference() {
        let dev = Device::Cpu;
        for ((b, s, h, d), lengths) in [
            ((3, 6, 3, 5), vec![6usize, 4, 1]),
            ((2, 37, 2, 32), vec![37, 17]),
            ((2, 21, 2, 64), vec![16, 21]),
            // One sequence: groups of heads in parallel (with 2+ threads).
            ((1, 29, 5, 32), vec![23]),
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
                assert!(diff < 1e-5, "seq {s} head {d} causal {causal}: {diff}");
            }
        }
    }
}
