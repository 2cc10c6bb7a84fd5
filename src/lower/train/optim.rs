//! The optimizer side of training: AdamW (decoupled weight decay) and SGD
//! with momentum over named variables, the learning-rate schedule (linear
//! warm-up, then linear or cosine decay to zero, or constant), and global
//! gradient-norm clipping. The optimizer's state is a set of named tensors so
//! that checkpoints can store it and a resumed run continues bit for bit.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor, Var};

use super::sparse_rows::RowGrad;
use crate::base::{LrScheduleKind, OptimizerKind};
use crate::ir::Warmup;
use crate::runtime::kernels::values::{is_cpu_f32, with_values, with_values_mut};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
const MOMENTUM: f64 = 0.9;

/// One trainable variable and whether weight decay applies to it.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub decay: bool,
}

/// Weight decay applies to matrices (weights, embeddings, projections), not
/// to biases, layer-norm parameters or quantizer scales.
pub fn decays(name: &str, rank: usize) -> bool {
    rank >= 2 && !name.contains("LayerNorm") && !name.contains(".ln_") && !name.contains("scale")
}

/// AdamW or SGD state for a fixed, name-sorted list of parameters.
pub struct Optimizer {
    kind: OptimizerKind,
    weight_decay: f64,
    /// Steps taken (for bias correction).
    pub steps: usize,
    /// First moments (AdamW) or momentum buffers (SGD), by parameter name.
    first: BTreeMap<String, Tensor>,
    /// Second moments (AdamW only).
    second: BTreeMap<String, Tensor>,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, weight_decay: f64, params: &[Param]) -> Result<Self> {
        let mut first = BTreeMap::new();
        let mut second = BTreeMap::new();
        for p in params {
            first.insert(p.name.clone(), p.var.as_tensor().zeros_like()?);
            if kind == OptimizerKind::AdamW {
                second.insert(p.name.clone(), p.var.as_tensor().zeros_like()?);
            }
        }
        Ok(Optimizer {
            kind,
            weight_decay,
            steps: 0,
            first,
            second,
        })
    }

    /// Applies one update with learning rate `lr`; `grads` are by parameter
    /// name (parameters without a gradient are left alone); `rows` is the
    /// gradient of a table's rows, which updates those rows only.
    pub fn step(
        &mut self,
        params: &[Param],
        grads: &BTreeMap<String, Tensor>,
        rows: Option<&RowGrad>,
        lr: f64,
    ) -> Result<()> {
        self.steps += 1;
        for p in params {
            if let Some(g) = grads.get(&p.name) {
                let moments = (
                    self.first[&p.name].clone(),
                    self.second.get(&p.name).cloned(),
                );
                if let Some((theta, m, v)) = self.update(p, p.var.as_tensor(), moments, g, lr)? {
                    p.var.set(&theta)?;
                    self.first.insert(p.name.clone(), m);
                    if let Some(v) = v {
                        self.second.insert(p.name.clone(), v);
                    }
                }
            }
            if let Some(r) = rows.filter(|r| r.name == p.name) {
                let (ids, scatter) = r.indexes()?;
                let pick = |t: &Tensor| t.index_select(&ids, 0);
                let moments = (
                    pick(&self.first[&p.name])?,
                    self.second.get(&p.name).map(pick).transpose()?,
                );
                let theta = pick(p.var.as_tensor())?;
                let picked = (theta.clone(), moments.0.clone(), moments.1.clone());
                let (theta, m, v) = self
                    .update(p, &theta, moments, &r.grad, lr)?
                    .unwrap_or(picked);
                p.var.as_tensor().scatter_set(&scatter, &theta, 0)?;
                self.first[&p.name].scatter_set(&scatter, &m, 0)?;
                if let Some(v) = v {
                    self.second[&p.name].scatter_set(&scatter, &v, 0)?;
                }
            }
        }
        Ok(())
    }

    /// One update of `theta` (with first and second moments `m`, `v`) by
    /// gradient `g`. On the CPU the three are changed in place, in one
    /// parallel pass over the values (`fused_update`), and the result is
    /// `None`; elsewhere tensor operations give the new values and moments.
    /// Both compute the same f32 arithmetic.
    fn update(
        &self,
        p: &Param,
        theta: &Tensor,
        (m_prev, v_prev): (Tensor, Option<Tensor>),
        g: &Tensor,
        lr: f64,
    ) -> Result<Option<(Tensor, Tensor, Option<Tensor>)>> {
        let c = self.coefficients(p, lr);
        let in_place = [Some(theta), Some(&m_prev), v_prev.as_ref(), Some(g)]
            .into_iter()
            .flatten()
            .all(|t| is_cpu_f32(t) && t.is_contiguous());
        if in_place {
            fused_update(&c, theta, &m_prev, v_prev.as_ref(), g)?;
            Ok(None)
        } else {
            tensor_update(&c, theta, m_prev, v_prev, g).map(Some)
        }
    }

    /// The constants of one parameter's update at this step.
    fn coefficients(&self, p: &Param, lr: f64) -> Coefficients {
        let t = self.steps as i32;
        Coefficients {
            lr: lr as f32,
            keep: (p.decay && self.weight_decay > 0.0)
                .then_some((1.0 - lr * self.weight_decay) as f32),
            adam: (self.kind == OptimizerKind::AdamW).then(|| AdamCoefficients {
                unbias_m: (1.0 / (1.0 - BETA1.powi(t))) as f32,
                unbias_v: (1.0 / (1.0 - BETA2.powi(t))) as f32,
            }),
        }
    }

    /// The state as named tensors (`m.NAME`, `v.NAME`) for a checkpoint.
    pub fn state(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (n, t) in &self.first {
            out.insert(format!("m.{n}"), t.clone());
        }
        for (n, t) in &self.second {
            out.insert(format!("v.{n}"), t.clone());
        }
        out
    }

    /// Restores the state written by `state`; every moment must be present
    /// with its parameter's shape.
    pub fn restore(&mut self, steps: usize, state: &BTreeMap<String, Tensor>) -> Result<()> {
        for (prefix, map) in [("m", &mut self.first), ("v", &mut self.second)] {
            for (n, t) in map.iter_mut() {
                let saved = state.get(&format!("{prefix}.{n}")).ok_or_else(|| {
                    candle_core::Error::Msg(format!("checkpoint lacks {prefix}.{n}"))
                })?;
                if saved.dims() != t.dims() {
                    candle_core::bail!(
                        "checkpoint's {prefix}.{n} has shape {}, expected {}",
                        crate::diag::shape_text(saved.dims()),
                        crate::diag::shape_text(t.dims())
                    )
                }
                *t = saved.to_device(t.device())?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// The constants of one parameter's update.
struct Coefficients {
    lr: f32,
    /// `1 − lr·weight_decay` where weight decay applies.
    keep: Option<f32>,
    /// AdamW's bias corrections; `None` for SGD with momentum.
    adam: Option<AdamCoefficients>,
}

#[derive(Clone, Copy)]
struct AdamCoefficients {
    /// `1 / (1 − β₁ᵗ)`.
    unbias_m: f32,
    /// `1 / (1 − β₂ᵗ)`.
    unbias_v: f32,
}

/// The update as tensor operations (any device).
fn tensor_update(
    c: &Coefficients,
    theta: &Tensor,
    m_prev: Tensor,
    v_prev: Option<Tensor>,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let lr = c.lr as f64;
    let decayed = match c.keep {
        Some(keep) => (theta * keep as f64)?,
        None => theta.clone(),
    };
    match (c.adam, v_prev) {
        (Some(adam), Some(v_prev)) => {
            let m = ((m_prev * BETA1)? + (g * (1.0 - BETA1))?)?;
            let v = ((v_prev * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let m_hat = (&m * adam.unbias_m as f64)?;
            let v_hat = (&v * adam.unbias_v as f64)?;
            let delta = (m_hat / (v_hat.sqrt()? + EPS)?)?;
            Ok(((decayed - (delta * lr)?)?, m, Some(v)))
        }
        _ => {
            let m = ((m_prev * MOMENTUM)? + g)?;
            Ok(((decayed - (&m * lr)?)?, m, None))
        }
    }
}

/// Values per parallel work item of the fused update.
const UPDATE_CHUNK: usize = 1 << 14;

/// The update of a CPU f32 parameter in one parallel pass, in place: each
/// value's new weight, first and (AdamW) second moment computed together,
/// where the tensor operations make a pass and an allocation per operation.
fn fused_update(
    c: &Coefficients,
    theta: &Tensor,
    m: &Tensor,
    v: Option<&Tensor>,
    g: &Tensor,
) -> Result<()> {
    use rayon::prelude::*;
    // The constants as the tensor operations round them (f64 to f32).
    let (b1, b2, eps) = (BETA1 as f32, BETA2 as f32, EPS as f32);
    let (g1, g2) = ((1.0 - BETA1) as f32, (1.0 - BETA2) as f32);
    let (lr, keep) = (c.lr, c.keep);
    let decayed = move |w: f32| keep.map_or(w, |k| w * k);
    with_values(g, |g| {
        with_values_mut(theta, |w| {
            with_values_mut(m, |m| match (v, &c.adam) {
                (Some(v), Some(adam)) => with_values_mut(v, |v| {
                    let (um, uv) = (adam.unbias_m, adam.unbias_v);
                    w.par_chunks_mut(UPDATE_CHUNK)
                        .zip(m.par_chunks_mut(UPDATE_CHUNK))
                        .zip(v.par_chunks_mut(UPDATE_CHUNK))
                        .zip(g.par_chunks(UPDATE_CHUNK))
                        .for_each(|(((w, m), v), g)| {
                            for i in 0..w.len() {
                                m[i] = m[i] * b1 + g[i] * g1;
                                v[i] = v[i] * b2 + g[i] * g[i] * g2;
                                let delta = (m[i] * um) / ((v[i] * uv).sqrt() + eps);
                                w[i] = decayed(w[i]) - delta * lr;
                            }
                        });
                    Ok(())
                }),
                _ => {
                    let momentum = MOMENTUM as f32;
                    w.par_chunks_mut(UPDATE_CHUNK)
                        .zip(m.par_chunks_mut(UPDATE_CHUNK))
                        .zip(g.par_chunks(UPDATE_CHUNK))
                        .for_each(|((w, m), g)| {
                            for i in 0..w.len() {
                                m[i] = m[i] * momentum + g[i];
                                w[i] = decayed(w[i]) - m[i] * lr;
                            }
                        });
                    Ok(())
                }
            })
        })
    })
}

/// The learning rate at `step` (0-based) of a stage of `total` steps.
pub fn learning_rate(
    base: f64,
    kind: LrScheduleKind,
    warmup: Warmup,
    step: usize,
    total: usize,
) -> f64 {
    let warm = match warmup {
        Warmup::Steps(n) => n,
        Warmup::Fraction(f) => (f * total as f64).round() as usize,
    }
    .min(total);
    if step < warm {
        return base * (step + 1) as f64 / warm as f64;
    }
    let span = total.saturating_sub(warm).max(1) as f64;
    let progress = ((step - warm) as f64 / span).min(1.0);
    match kind {
        LrScheduleKind::Constant => base,
        LrScheduleKind::Linear => base * (1.0 - progress),
        LrScheduleKind::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

/// The global L2 norm of `grads` and a table's row gradient (its other
/// rows' gradient is zero).
pub fn global_norm(grads: &BTreeMap<String, Tensor>, rows: Option<&RowGrad>) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.values().chain(rows.map(|r| &r.grad)) {
        total += if is_cpu_f32(g) {
            with_values(g, |v| Ok(sum_of_squares(v)))?
        } else {
            g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64
        };
    }
    Ok(total.sqrt())
}

/// `Σ v²` in one pass, 16 lanes of f32 partial sums (they vectorize)
/// added up in f64 per block of 4,096 values.
fn sum_of_squares(values: &[f32]) -> f64 {
    values
        .chunks(4096)
        .map(|block| {
            let mut lanes = [0f32; 16];
            for chunk in block.chunks(16) {
                for (lane, &v) in lanes.iter_mut().zip(chunk) {
                    *lane += v * v;
                }
            }
            lanes.iter().map(|&l| l as f64).sum::<f64>()
        })
        .sum()
}

/// Scales `grads` and `rows` so their global norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(
    grads: &mut BTreeMap<String, Tensor>,
    mut rows: Option<&mut RowGrad>,
    max_norm: Option<f64>,
) -> Result<f64> {
    let norm = global_norm(grads, rows.as_deref())?;
    if let Some(max) = max_norm {
        if norm > max && norm.is_finite() {
            let factor = max / (norm + 1e-6);
            for g in grads.values_mut() {
                *g = (&*g * factor)?;
            }
            if let Some(r) = rows.as_mut() {
                r.grad = (&r.grad * factor)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let w = Warmup::Steps(10);
        assert!((learning_rate(1.0, LrScheduleKind::Linear, w, 0, 100) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, LrScheduleKind::Linear, w, 9, 100) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, LrScheduleKind::Linear, w, 10, 100) - 1.0).abs() < 1e-12);
        assert!(learning_rate(1.0, LrScheduleKind::Linear, w, 99, 100) < 0.02);
        assert!(learning_rate(1.0, LrScheduleKind::Cosine, w, 99, 100) < 0.001);
        assert_eq!(
            learning_rate(1.0, LrScheduleKind::Constant, w, 50, 100),
            1.0
        );
    }

    #[test]
    fn adamw_first_step_moves_by_lr_against_the_gradient() {
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[[1.0f32, -1.0]], &dev).unwrap()).unwrap();
        let params = vec![Param {
            name: "w".into(),
            var: var.clone(),
            decay: false,
        }];
        let mut opt = Optimizer::new(OptimizerKind::AdamW, 0.0, &params).unwrap();
        let mut grads = BTreeMap::new();
        grads.insert(
            "w".to_string(),
            Tensor::new(&[[0.5f32, -2.0]], &dev).unwrap(),
        );
        opt.step(&params, &grads, None, 0.1).unwrap();
        let v: Vec<Vec<f32>> = var.as_tensor().to_vec2().unwrap();
        assert!(
            (v[0][0] - 0.9).abs() < 1e-5 && (v[0][1] + 0.9).abs() < 1e-5,
            "{v:?}"
        );
    }

    #[test]
    fn a_row_gradient_updates_those_rows_as_a_dense_one_would() {
        let dev = Device::Cpu;
        let table = Tensor::arange(0f32, 8.0, &dev)
            .unwrap()
            .reshape((4, 2))
            .unwrap();
        let dense_grad =
            Tensor::new(&[[0f32, 0.0], [0.5, -1.0], [0.0, 0.0], [2.0, 3.0]], &dev).unwrap();
        let run = |rows: bool| {
            let var = Var::from_tensor(&table).unwrap();
            let params = vec![Param {
                name: "w".into(),
                var: var.clone(),
                decay: true,
            }];
            let mut opt = Optimizer::new(OptimizerKind::AdamW, 0.1, &params).unwrap();
            let mut grads = BTreeMap::new();
            let row_grad = RowGrad {
                name: "w".into(),
                rows: vec![1, 3],
                grad: Tensor::new(&[[0.5f32, -1.0], [2.0, 3.0]], &dev).unwrap(),
            };
            if rows {
                opt.step(&params, &grads, Some(&row_grad), 0.1).unwrap();
            } else {
                grads.insert("w".to_string(), dense_grad.clone());
                opt.step(&params, &grads, None, 0.1).unwrap();
            }
            var.as_tensor().to_vec2::<f32>().unwrap()
        };
        let (sparse, dense) = (run(true), run(false));
        let original = table.to_vec2::<f32>().unwrap();
        // Rows 0 and 2 are untouched (no decay either); 1 and 3 as dense.
        assert_eq!(sparse[0], original[0]);
        assert_eq!(sparse[2], original[2]);
        assert_eq!(sparse[1], dense[1]);
        assert_eq!(sparse[3], dense[3]);
        assert_ne!(sparse[1], original[1]);
    }

    #[test]
    fn the_fused_update_computes_what_the_tensor_operations_do() {
        let dev = Device::Cpu;
        let shape = (37, 1000);
        let theta = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
        let m = Tensor::randn(0f32, 0.1, shape, &dev).unwrap();
        let v = Tensor::randn(0f32, 0.1, shape, &dev)
            .unwrap()
            .abs()
            .unwrap();
        let g = Tensor::randn(0f32, 0.5, shape, &dev).unwrap();
        for (adam, keep) in [(true, Some(0.99f32)), (true, None), (false, Some(0.9))] {
            let c = Coefficients {
                lr: 1e-3,
                keep,
                adam: adam.then_some(AdamCoefficients {
                    unbias_m: 1.0 / (1.0 - BETA1.powi(3)) as f32,
                    unbias_v: 1.0 / (1.0 - BETA2.powi(3)) as f32,
                }),
            };
            let v_prev = adam.then(|| v.clone());
            let ops = tensor_update(&c, &theta, m.clone(), v_prev.clone(), &g).unwrap();
            // The fused update changes its own copies in place.
            let copy = |t: &Tensor| t.copy().unwrap();
            let (w2, m2, v2) = (copy(&theta), copy(&m), v_prev.as_ref().map(copy));
            fused_update(&c, &w2, &m2, v2.as_ref(), &g).unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(flat(&w2), flat(&ops.0), "weights, adam {adam}");
            assert_eq!(flat(&m2), flat(&ops.1), "first moments, adam {adam}");
            assert_eq!(v2.map(|t| flat(&t)), ops.2.map(|t| flat(&t)));
            assert_ne!(flat(&w2), flat(&theta));
        }
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let dev = Device::Cpu;
        let mut grads = BTreeMap::new();
        grads.insert("a".to_string(), Tensor::new(&[3.0f32], &dev).unwrap());
        grads.insert("b".to_string(), Tensor::new(&[4.0f32], &dev).unwrap());
        let before = clip_grad_norm(&mut grads, None, Some(1.0)).unwrap();
        assert!((before - 5.0).abs() < 1e-6);
        assert!((global_norm(&grads, None).unwrap() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn the_global_norm_sums_every_value_and_keeps_a_nan() {
        let dev = Device::Cpu;
        let values: Vec<f32> = (0..10_007)
            .map(|i| ((i % 97) as f32 - 48.0) / 7.0)
            .collect();
        let expected = values
            .iter()
            .map(|&v| (v as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let mut grads = BTreeMap::new();
        let strided = Tensor::from_vec(values, (1, 10_007), &dev)
            .unwrap()
            .t()
            .unwrap();
        grads.insert("a".to_string(), strided);
        let norm = global_norm(&grads, None).unwrap();
        assert!(
            (norm - expected).abs() < 1e-6 * expected,
            "{norm} vs {expected}"
        );
        grads.insert("b".to_string(), Tensor::new(&[f32::NAN], &dev).unwrap());
        assert!(global_norm(&grads, None).unwrap().is_nan());
    }
}
