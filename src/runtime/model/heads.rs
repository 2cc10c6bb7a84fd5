//! Heads that read a hidden state: pooling over tokens, and [`Head`] (a
//! pooler and/or a linear classifier placed after any layer: an exit, or
//! the task head after the last). Which kind of exit head a recipe asks for
//! is `base::ExitHead`. A Hugging Face
//! `BertForSequenceClassification` head is an exit head after the last layer
//! with tensors `pooler.dense.*` and `classifier.*`; plcc's own exits after
//! layer `l` use `exit.{l}.dense.*` and `exit.{l}.classifier.*`.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::base::Pooling;
use crate::runtime::model::linear::Linear;

/// A head after layer `after_layer` (0 = embeddings, `L` = the last layer).
#[derive(Debug, Clone)]
pub struct Head {
    pub after_layer: usize,
    pub pooling: Pooling,
    /// `tanh(dense(x))`, as BERT's pooler.
    pub pooler: Option<Linear>,
    /// Final linear map to `n` outputs.
    pub classifier: Option<Linear>,
}

impl Head {
    /// Loads `pooler.dense` (when `with_pooler`) and `classifier` under `vb`.
    pub fn load(
        vb: VarBuilder,
        after_layer: usize,
        pooling: Pooling,
        hidden: usize,
        with_pooler: bool,
        num_outputs: Option<usize>,
    ) -> Result<Self> {
        let pooler = if with_pooler {
            Some(Linear::load(vb.pp("pooler").pp("dense"), hidden, hidden)?)
        } else {
            None
        };
        let classifier = match num_outputs {
            Some(n) => Some(Linear::load(vb.pp("classifier"), hidden, n)?),
            None => None,
        };
        Ok(Head {
            after_layer,
            pooling,
            pooler,
            classifier,
        })
    }

    /// `hidden` `[batch, seq, hidden]`, `mask` `[batch, seq]` → `[batch, n]`.
    pub fn forward(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mut x = pool(hidden, mask, self.pooling)?;
        if let Some(p) = &self.pooler {
            x = crate::runtime::kernels::fused_ops::tanh(&p.forward(&x)?)?;
        }
        if let Some(c) = &self.classifier {
            x = c.forward(&x)?;
        }
        Ok(x)
    }
}

/// Reduces `[batch, seq, hidden]` to `[batch, hidden]`.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Result<Tensor> {
    match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
        Pooling::Mean => {
            // The fused kernel has no backward pass: only for tensors
            // that need no gradient.
            if !hidden.track_op() {
                if let Some(mean) = crate::runtime::kernels::fused_norm::masked_mean(hidden, mask)?
                {
                    return Ok(mean);
                }
            }
            let m = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?.clamp(1.0, f64::MAX)?;
            summed.broadcast_div(&counts)
        }
        Pooling::Last => {
            let (b, s, h) = hidden.dims3()?;
            let lengths: Vec<u32> = mask.to_dtype(DType::U32)?.sum(1)?.to_vec1()?;
            let index: Vec<u32> = lengths
                .iter()
                .enumerate()
                .map(|(i, &n)| (i * s) as u32 + n.max(1) - 1)
                .collect();
            let index = Tensor::from_vec(index, b, hidden.device())?;
            hidden.reshape((b * s, h))?.index_select(&index, 0)
        }
    }
}

/// Applies each exit head to the hidden state after its layer.
pub fn run_exits(exits: &[Head], hidden_states: &[Tensor], mask: &Tensor) -> Result<Vec<Tensor>> {
    exits
        .iter()
        .map(|head| match hidden_states.get(head.after_layer) {
            Some(h) => head.forward(h, mask),
            None => candle_core::bail!(
                "exit head after layer {} but the model has {} layers",
                head.after_layer,
                hidden_states.len().saturating_sub(1)
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn mean_pooling_passes_gradients_to_a_trained_input() {
        let dev = Device::Cpu;
        let h = Var::from_tensor(&Tensor::ones((2, 3, 4), DType::F32, &dev).unwrap()).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0], [1, 0, 0]], &dev).unwrap();
        let pooled = pool(h.as_tensor(), &mask, Pooling::Mean).unwrap();
        let grads = pooled.sum_all().unwrap().backward().unwrap();
        let g: Vec<Vec<Vec<f32>>> = grads.get(h.as_tensor()).unwrap().to_vec3().unwrap();
        assert_eq!(g[0][0][0], 0.5);
        assert_eq!(g[1][0][0], 1.0);
        assert_eq!(g[1][1][0], 0.0);
    }
}
