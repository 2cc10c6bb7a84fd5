//! The f32 values of CPU tensors as slices, for the custom operations and
//! the optimizer: read from a storage and its layout, read from a tensor,
//! or changed in place in a tensor's own storage; and the outputs kernels
//! write, fresh (never zeroed first) or existing.

use std::cell::Cell;
use std::mem::MaybeUninit;

use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Result, Storage, Tensor};

/// An output element a kernel writes (a fresh output is not zeroed first).
pub(crate) type Fresh = MaybeUninit<f32>;

/// Whether `t` is an f32 tensor on the CPU, the tensors these helpers and
/// the CPU custom operations read.
pub(crate) fn is_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The contiguous f32 values a layout covers.
pub(crate) fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused kernel: input not contiguous".into()))?;
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// `out` as the storage a kernel writes: the view a fresh output has too.
pub(crate) fn writable(out: &mut [f32]) -> &mut [Fresh] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and kernels only
    // write initialized values through the view.
    unsafe { &mut *(out as *mut [f32] as *mut [Fresh]) }
}

/// A vector of `len` values that `fill` writes, not zeroed first.
///
/// # Safety
/// `fill` must write every one of the `len` values.
pub(crate) unsafe fn fresh(len: usize, fill: impl FnOnce(&mut [Fresh])) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote all `len` values (the caller's promise).
    unsafe { out.set_len(len) };
    out
}

/// Calls `f` with the values of an f32 CPU tensor, made contiguous.
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(contiguous(cpu, layout)?),
        _ => candle_core::bail!("fused kernel: the tensor is not on the CPU"),
    }
}

/// Calls `f` with the values of a contiguous f32 CPU tensor to change in
/// place: every tensor sharing the storage sees the new values, as with
/// `Var::set`. An error for another device, dtype or a strided layout.
pub fn with_values_mut(t: &Tensor, f: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
    t.inplace_op1(&InPlace(Cell::new(Some(f))))
}

/// [`with_values_mut`]'s operation: runs its function once.
struct InPlace<F>(Cell<Option<F>>);

impl<F: FnOnce(&mut [f32]) -> Result<()>> InplaceOp1 for InPlace<F> {
    fn name(&self) -> &'static str {
        "plcc-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("in place: tensor not contiguous".into()))?;
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("in place: the tensor is not f32")
        };
        match self.0.take() {
            Some(f) => f(&mut values[start..end]),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_change_in_place_for_every_view_of_the_storage() {
        let dev = Device::Cpu;
        let var =
            Var::from_tensor(&Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &dev).unwrap()).unwrap();
        let view = var.as_tensor().clone();
        with_values_mut(var.as_tensor(), |v| {
            v.iter_mut().for_each(|x| *x *= 10.0);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            view.to_vec2::<f32>().unwrap(),
            vec![vec![10.0, 20.0], vec![30.0, 40.0]]
        );
        let sum = with_values(&view.t().unwrap(), |v| Ok(v.iter().sum::<f32>())).unwrap();
        assert_eq!(sum, 100.0);
        let strided = view.t().unwrap();
        assert!(with_values_mut(&strided, |_| Ok(())).is_err());
        let f64s = Tensor::zeros(2, DType::F64, &dev).unwrap();
        assert!(with_values_mut(&f64s, |_| Ok(())).is_err());
    }
}
