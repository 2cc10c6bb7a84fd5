//! The word table trained a few rows at a time. A BERT-family student's word
//! table is read only by the embedding lookup (it is no output layer), so a
//! micro-batch uses just the rows of the tokens it holds: a few hundred of
//! 30,522. Each micro-batch looks those rows up through a small variable of
//! their own, so the gradient, the fake quantization (when the table's
//! quantizer works row by row) and the optimizer update (`Optimizer::step`,
//! lazily: moments and weight decay of untouched rows are left as they are,
//! as sparse Adam does) cost the rows used, not the whole table.
//!
//! A table quantized per tensor or with learned scales, and GPT-2's table
//! (tied to the language-model head), are trained whole as before.

use candle_core::{DType, Result, Tensor, Var};

use crate::runtime::Quantizer;

/// The table and its quantizer.
pub struct RowSparseTable {
    /// The tensor name (`embeddings.word_embeddings.weight`).
    pub name: String,
    /// The whole table, as a variable (also a parameter of the net).
    pub var: Var,
    /// The rows of the current micro-batch: their ids, sorted and distinct,
    /// and the variable holding their values.
    current: Option<(Vec<u32>, Var)>,
}

/// The gradient of the rows a step used.
#[derive(Debug, Clone)]
pub struct RowGrad {
    /// The table's tensor name.
    pub name: String,
    /// Row ids, sorted and distinct.
    pub rows: Vec<u32>,
    /// `[rows.len(), width]`.
    pub grad: Tensor,
}

impl RowSparseTable {
    pub fn new(name: String, var: Var) -> Self {
        RowSparseTable {
            name,
            var,
            current: None,
        }
    }

    /// Looks up the rows `ids` uses: returns the rows, fake-quantized by
    /// `quant` (which must work row by row), and `ids` renumbered into them;
    /// keeps the rows' variable for `grad`.
    pub fn lookup(
        &mut self,
        ids: &Tensor,
        quant: Option<&dyn Quantizer>,
    ) -> Result<(Tensor, Tensor)> {
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let mut rows = flat.clone();
        rows.sort_unstable();
        rows.dedup();
        let index = Tensor::new(rows.as_slice(), ids.device())?;
        let values = Var::from_tensor(&self.var.as_tensor().index_select(&index, 0)?.detach())?;
        let table = match quant {
            Some(q) => q.fake_quant(values.as_tensor())?,
            None => values.as_tensor().clone(),
        };
        let local: Vec<u32> = flat
            .iter()
            .map(|id| rows.binary_search(id).unwrap_or(0) as u32)
            .collect();
        let local = Tensor::from_vec(local, ids.dims(), ids.device())?;
        self.current = Some((rows, values));
        Ok((table, local))
    }

    /// The gradient in `grads` of the current micro-batch's rows, if they
    /// got one.
    pub fn grad(&self, grads: &candle_core::backprop::GradStore) -> Option<RowGrad> {
        let (rows, values) = self.current.as_ref()?;
        let grad = grads.get(values.as_tensor())?.clone();
        Some(RowGrad {
            name: self.name.clone(),
            rows: rows.clone(),
            grad,
        })
    }
}

impl RowGrad {
    /// The sum of two gradients of the same table (micro-batches of one step).
    pub fn merge(self, other: RowGrad) -> Result<RowGrad> {
        let mut rows: Vec<u32> = self.rows.iter().chain(&other.rows).copied().collect();
        rows.sort_unstable();
        rows.dedup();
        let width = self.grad.dim(1)?;
        let device = self.grad.device().clone();
        let position = |of: &[u32]| -> Result<Tensor> {
            let p: Vec<u32> = of
                .iter()
                .map(|r| rows.binary_search(r).unwrap_or(0) as u32)
                .collect();
            Tensor::new(p.as_slice(), &device)
        };
        let grad = Tensor::zeros((rows.len(), width), self.grad.dtype(), &device)?
            .index_add(&position(&self.rows)?, &self.grad, 0)?
            .index_add(&position(&other.rows)?, &other.grad, 0)?;
        Ok(RowGrad {
            name: self.name,
            rows,
            grad,
        })
    }

    /// The row ids as a tensor, and as the index `scatter_set` takes to
    /// write `[rows, width]` values back into the table.
    pub fn indexes(&self) -> Result<(Tensor, Tensor)> {
        let device = self.grad.device();
        let ids = Tensor::new(self.rows.as_slice(), device)?;
        let width = self.grad.dim(1)?;
        let scatter = ids
            .reshape((self.rows.len(), 1))?
            .broadcast_as((self.rows.len(), width))?
            .contiguous()?;
        Ok((ids, scatter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn lookup_renumbers_ids_and_the_gradient_lands_on_the_rows_used() {
        let dev = Device::Cpu;
        let table = Tensor::arange(0f32, 12.0, &dev)
            .unwrap()
            .reshape((6, 2))
            .unwrap();
        let mut t = RowSparseTable::new("w".into(), Var::from_tensor(&table).unwrap());
        let ids = Tensor::new(&[[4u32, 1, 4]], &dev).unwrap();
        let (rows, local) = t.lookup(&ids, None).unwrap();
        assert_eq!(
            rows.to_vec2::<f32>().unwrap(),
            vec![vec![2.0, 3.0], vec![8.0, 9.0]]
        );
        assert_eq!(local.to_vec2::<u32>().unwrap(), vec![vec![1, 0, 1]]);
        let looked = rows.index_select(&local.flatten_all().unwrap(), 0).unwrap();
        let grads = looked.sum_all().unwrap().backward().unwrap();
        let g = t.grad(&grads).unwrap();
        assert_eq!(g.rows, vec![1, 4]);
        assert_eq!(
            g.grad.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 1.0], vec![2.0, 2.0]]
        );
        t.lookup(&Tensor::new(&[[2u32]], &dev).unwrap(), None)
            .unwrap();
        assert!(t.grad(&grads).is_none(), "the next lookup's rows");
    }

    #[test]
    fn merged_gradients_add_on_shared_rows() {
        let dev = Device::Cpu;
        let a = RowGrad {
            name: "w".into(),
            rows: vec![1, 3],
            grad: Tensor::new(&[[1f32], [2.0]], &dev).unwrap(),
        };
        let b = RowGrad {
            name: "w".into(),
            rows: vec![0, 3],
            grad: Tensor::new(&[[10f32], [20.0]], &dev).unwrap(),
        };
        let m = a.merge(b).unwrap();
        assert_eq!(m.rows, vec![0, 1, 3]);
        assert_eq!(
            m.grad.to_vec2::<f32>().unwrap(),
            vec![vec![10.0], vec![1.0], vec![22.0]]
        );
    }
}
