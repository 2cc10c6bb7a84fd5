//! Layer norm over the last dimension, with a gain and a bias, as one
//! differentiable CPU operation for training. The forward pass is the
//! inference kernel's row normalization (`fused_norm::normalize`), so a
//! student trains on the values it will run with; the backward pass
//! recomputes each row's moments from the input and gives the input's, the
//! gain's and the bias's gradients in one pass over the rows, the last two
//! summed per block of rows and the blocks added in order (the same sums
//! whatever the threads).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fused_norm::{moments, normalize, ROWS_PER_TASK};
use super::simd_override::widest_simd;
use super::values::{contiguous, is_cpu_f32, with_values};

/// `LN(x)·gain + bias` over the last dimension, differentiable in all three;
/// `None` where the operation does not apply (not f32 on the CPU, or a gain
/// or bias that does not fit `x`'s rows).
pub fn layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor, eps: f64) -> Result<Option<Tensor>> {
    let width = gain.elem_count();
    let applies = is_cpu_f32;
    if ![x, gain, bias].into_iter().all(applies)
        || x.dims().last() != Some(&width)
        || bias.elem_count() != width
    {
        return Ok(None);
    }
    x.contiguous()?
        .apply_op3(
            &gain.contiguous()?,
            &bias.contiguous()?,
            LayerNormOp { eps: eps as f32 },
        )
        .map(Some)
}

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "plcc-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, gain, bias) = (
            contiguous(xs, xl)?,
            contiguous(gs, gl)?,
            contiguous(bs, bl)?,
        );
        let out = normalize(x, None, gain, bias, self.eps);
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gain: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let width = gain.elem_count();
        let block = width * ROWS_PER_TASK;
        let mut dx = vec![0f32; x.elem_count()];
        let sums = with_values(x, |x| {
            with_values(gain, |w| {
                with_values(grad, |g| {
                    let partial: Vec<Vec<f32>> = dx
                        .par_chunks_mut(block)
                        .zip(x.par_chunks(block).zip(g.par_chunks(block)))
                        .map(|(dx, (x, g))| {
                            let mut sums = vec![0f32; 2 * width];
                            backward_rows(x, w, g, self.eps, dx, &mut sums);
                            sums
                        })
                        .collect();
                    let mut total = vec![0f32; 2 * width];
                    for p in &partial {
                        total.iter_mut().zip(p).for_each(|(t, p)| *t += p);
                    }
                    Ok(total)
                })
            })
        })?;
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        let dw = Tensor::from_slice(&sums[..width], gain.shape(), gain.device())?;
        let db = Tensor::from_slice(&sums[width..], bias.shape(), bias.device())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

widest_simd! {
    /// The input gradient of rows `x` into `dx` and, added to `sums`, the
    /// gain's gradient (first `width` values) and the bias's (last `width`).
    /// With `x̂` the normalized row and `gx̂ = g·w`:
    /// `dx = (gx̂ − mean(gx̂) − x̂·mean(gx̂·x̂)) / √(var + eps)`.
    fn backward_rows(x: &[f32], w: &[f32], g: &[f32], eps: f32, dx: &mut [f32], sums: &mut [f32]) {
        let width = w.len();
        let n = width as f32;
        let (dw, db) = sums.split_at_mut(width);
        let rows = x.chunks_exact(width).zip(g.chunks_exact(width));
        for ((x, g), dx) in rows.zip(dx.chunks_exact_mut(width)) {
            let (mean, inv) = moments(x, eps);
            let (mut mean_gx, mut mean_gx_x) = ([0f32; 16], [0f32; 16]);
            for (i, (((&x, &g), &w), (dw, db))) in x
                .iter()
                .zip(g)
                .zip(w)
                .zip(dw.iter_mut().zip(db.iter_mut()))
                .enumerate()
            {
                let xhat = (x - mean) * inv;
                *dw += g * xhat;
                *db += g;
                mean_gx[i % 16] += g * w;
                mean_gx_x[i % 16] += g * w * xhat;
            }
            let mean_gx = mean_gx.iter().sum::<f32>() / n;
            let mean_gx_x = mean_gx_x.iter().sum::<f32>() / n;
            for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                let xhat = (x - mean) * inv;
                *dx = (g * w - mean_gx - xhat * mean_gx_x) * inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{Device, Var, D};

    /// The layer norm as candle operations (what training ran before).
    fn composite(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let centered = x.broadcast_sub(&mean).unwrap();
        let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let normed = centered
            .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
            .unwrap();
        normed.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
    }

    #[test]
    fn the_fused_layer_norm_and_its_gradients_match_the_composite_form() {
        let dev = Device::Cpu;
        // 70 rows: more than one block of rows; width 40: a 16-lane tail.
        let x = Tensor::randn(0.5f32, 2.0, (2, 35, 40), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.3, 40, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.3, 40, &dev).unwrap();
        let upstream = Tensor::randn(0f32, 1.0, (2, 35, 40), &dev).unwrap();
        let run = |fused: bool| {
            let (xv, wv, bv) = (
                Var::from_tensor(&x).unwrap(),
                Var::from_tensor(&w).unwrap(),
                Var::from_tensor(&b).unwrap(),
            );
            let (xt, wt, bt) = (xv.as_tensor(), wv.as_tensor(), bv.as_tensor());
            let y = if fused {
                layer_norm(xt, wt, bt, 1e-12).unwrap().unwrap()
            } else {
                composite(xt, wt, bt, 1e-12)
            };
            let grads = (&y * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g = |t: &Tensor| grads.get(t).unwrap().clone();
            (y, g(xt), g(wt), g(bt))
        };
        let (fused, composite) = (run(true), run(false));
        assert!(max_diff(&fused.0, &composite.0) < 1e-5, "values");
        assert!(max_diff(&fused.1, &composite.1) < 1e-4, "input gradient");
        assert!(max_diff(&fused.2, &composite.2) < 1e-4, "gain gradient");
        assert!(max_diff(&fused.3, &composite.3) < 1e-4, "bias gradient");
    }
}
