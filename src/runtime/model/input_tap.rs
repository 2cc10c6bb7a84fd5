//! Recording what a linear layer sees: an `InputTap` attached to a
//! [`Linear`](crate::runtime::Linear) accumulates the Gram matrix `XᵀX` of the layer's
//! inputs (after its input quantizer), one row per token, over every forward
//! pass until it is read. Rows of padding can be left out by naming the rows
//! to keep before each pass. GPTQ calibration reads the layer's Hessian from
//! it.

use std::sync::Mutex;

use candle_core::{DType, Result, Tensor};

/// Accumulates `XᵀX` of a layer's inputs.
#[derive(Debug)]
pub struct InputTap {
    state: Mutex<TapState>,
}

#[derive(Debug)]
struct TapState {
    dim: usize,
    /// Flattened row indices (u32) to keep in the next passes; all rows when
    /// `None`.
    keep: Option<Tensor>,
    gram: Vec<f64>,
    rows: usize,
}

impl InputTap {
    /// A tap for inputs of width `dim`.
    pub fn new(dim: usize) -> Self {
        InputTap {
            state: Mutex::new(TapState {
                dim,
                keep: None,
                gram: vec![0.0; dim * dim],
                rows: 0,
            }),
        }
    }

    /// Keeps only these rows of the flattened `[tokens, dim]` input in the
    /// following passes (`None`: every row).
    pub fn keep_rows(&self, keep: Option<Tensor>) {
        self.lock().keep = keep;
    }

    /// Adds the rows of `x` (`[..., dim]`) to the Gram matrix.
    pub fn record(&self, x: &Tensor) -> Result<()> {
        let mut s = self.lock();
        let dim = s.dim;
        let flat = x.detach().to_dtype(DType::F32)?.reshape(((), dim))?;
        let flat = match &s.keep {
            Some(rows) => flat.index_select(rows, 0)?,
            None => flat,
        };
        let n = flat.dim(0)?;
        if n == 0 {
            return Ok(());
        }
        let g = flat.t()?.matmul(&flat)?.flatten_all()?.to_vec1::<f32>()?;
        for (acc, v) in s.gram.iter_mut().zip(g) {
            *acc += v as f64;
        }
        s.rows += n;
        Ok(())
    }

    /// The accumulated `XᵀX` (`dim × dim`, row-major) and the number of rows
    /// it sums.
    pub fn gram(&self) -> (Vec<f64>, usize) {
        let s = self.lock();
        (s.gram.clone(), s.rows)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        // A panic while holding the lock leaves plain numbers behind: keep
        // using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
