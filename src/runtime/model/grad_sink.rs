//! Gradients an operation adds up itself instead of returning them to
//! candle's backward pass: the linear operation's weight and bias
//! gradients while training.
//!
//! candle's backward pass gives every tensor that receives a gradient a
//! zeroed tensor of its size and adds each contribution to it; for a
//! layer's weights that is a zeroed copy and an add of every weight, per
//! shard and micro-batch, and then the shards' sums are added again. A
//! sink keeps one sum per parameter across the shards and micro-batches of
//! a step: the first contribution is kept as it is, later ones are added
//! to it in place, and the trainer takes the sums when the step's backward
//! passes are done.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{Result, Tensor, TensorId};

/// The gradient sums of parameters, by the id of the parameter's tensor.
#[derive(Debug, Default)]
pub struct GradSink {
    sums: Mutex<HashMap<TensorId, Vec<f32>>>,
}

impl GradSink {
    /// Adds `grad` (the parameter's values in order) to the sum kept for
    /// the parameter `id`.
    pub fn add(&self, id: TensorId, grad: Vec<f32>) -> Result<()> {
        let mut sums = self.sums.lock().unwrap_or_else(|e| e.into_inner());
        match sums.get_mut(&id) {
            None => {
                sums.insert(id, grad);
            }
            Some(sum) if sum.len() == grad.len() => {
                sum.iter_mut().zip(&grad).for_each(|(s, g)| *s += g);
            }
            Some(sum) => candle_core::bail!(
                "gradient sink: {} values added to a sum of {}",
                grad.len(),
                sum.len()
            ),
        }
        Ok(())
    }

    /// Removes the sum kept for `param` and returns it in `param`'s shape,
    /// if anything was added since the last take.
    pub fn take(&self, param: &Tensor) -> Result<Option<Tensor>> {
        let sum = self
            .sums
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&param.id());
        sum.map(|s| Tensor::from_vec(s, param.shape(), param.device()))
            .transpose()
    }

    /// Forgets every sum (a step that failed part way).
    pub fn clear(&self) {
        self.sums.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn sums_add_up_per_parameter_and_are_taken_once() {
        let dev = Device::Cpu;
        let a = Var::new(&[[0f32, 0.0], [0.0, 0.0]], &dev).unwrap();
        let b = Var::new(&[0f32; 3], &dev).unwrap();
        let sink = GradSink::default();
        sink.add(a.id(), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        sink.add(a.id(), vec![0.5, 0.5, 0.5, 0.5]).unwrap();
        sink.add(b.id(), vec![7.0, 8.0, 9.0]).unwrap();
        assert!(
            sink.add(b.id(), vec![1.0]).is_err(),
            "a sum of another size"
        );
        let taken = sink.take(a.as_tensor()).unwrap().unwrap();
        assert_eq!(taken.dims(), &[2, 2]);
        assert_eq!(
            taken.to_vec2::<f32>().unwrap(),
            vec![vec![1.5, 2.5], vec![3.5, 4.5]]
        );
        assert!(sink.take(a.as_tensor()).unwrap().is_none());
        sink.clear();
        assert!(sink.take(b.as_tensor()).unwrap().is_none());
    }
}
