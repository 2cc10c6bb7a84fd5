//! The optimizer side of training: AdamW (decoupled weight decay) and SGD
//! with momentum over named variables, the learning-rate schedule (linear
//! warm-up, then linear or cosine decay to zero, or constant), and global
//! gradient-norm clipping. The optimizer's state is a set of named tensors so
//! that checkpoints can store it and a resumed run continues bit for bit.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor, Var};

use crate::ir::Warmup;
use crate::recipe::{LrScheduleKind, OptimizerKind};

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
    /// name (parameters without a gradient are left alone).
    pub fn step(
        &mut self,
        params: &[Param],
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
    ) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        for p in params {
            let Some(g) = grads.get(&p.name) else {
                continue;
            };
            let theta = p.var.as_tensor();
            let decayed = if p.decay && self.weight_decay > 0.0 {
                (theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta.clone()
            };
            let m_prev = &self.first[&p.name];
            let updated = match self.kind {
                OptimizerKind::AdamW => {
                    let v_prev = &self.second[&p.name];
                    let m = ((m_prev * BETA1)? + (g * (1.0 - BETA1))?)?;
                    let v = ((v_prev * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
                    let m_hat = (&m / (1.0 - BETA1.powi(t)))?;
                    let v_hat = (&v / (1.0 - BETA2.powi(t)))?;
                    let delta = (m_hat / (v_hat.sqrt()? + EPS)?)?;
                    self.first.insert(p.name.clone(), m);
                    self.second.insert(p.name.clone(), v);
                    (decayed - (delta * lr)?)?
                }
                OptimizerKind::Sgd => {
                    let m = ((m_prev * MOMENTUM)? + g)?;
                    let next = (decayed - (&m * lr)?)?;
                    self.first.insert(p.name.clone(), m);
                    next
                }
            };
            p.var.set(&updated)?;
        }
        Ok(())
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

/// The global L2 norm of `grads`.
pub fn global_norm(grads: &BTreeMap<String, Tensor>) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.values() {
        total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(total.sqrt())
}

/// Scales `grads` so their global norm is at most `max_norm`; returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut BTreeMap<String, Tensor>, max_norm: Option<f64>) -> Result<f64> {
    let norm = global_norm(grads)?;
    if let Some(max) = max_norm {
        if norm > max && norm.is_finite() {
            let factor = max / (norm + 1e-6);
            for g in grads.values_mut() {
                *g = (&*g * factor)?;
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
        opt.step(&params, &grads, 0.1).unwrap();
        let v: Vec<Vec<f32>> = var.as_tensor().to_vec2().unwrap();
        assert!(
            (v[0][0] - 0.9).abs() < 1e-5 && (v[0][1] + 0.9).abs() < 1e-5,
            "{v:?}"
        );
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let dev = Device::Cpu;
        let mut grads = BTreeMap::new();
        grads.insert("a".to_string(), Tensor::new(&[3.0f32], &dev).unwrap());
        grads.insert("b".to_string(), Tensor::new(&[4.0f32], &dev).unwrap());
        let before = clip_grad_norm(&mut grads, Some(1.0)).unwrap();
        assert!((before - 5.0).abs() < 1e-6);
        assert!((global_norm(&grads).unwrap() - 1.0).abs() < 1e-4);
    }
}
