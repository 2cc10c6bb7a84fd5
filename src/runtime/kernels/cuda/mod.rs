//! The CUDA path of packed linear layers (`cuda` feature): a layer's integer
//! weights, scales and bias uploaded once to a GPU ([`GpuWeights`]), and the
//! forward pass on a CUDA tensor by two kernels of `packed_linear.cu`
//! (compiled to PTX by `build.rs`): per-row int8 quantization of the input,
//! then the integer product by `__dp4a` with the shared `finish` formula.
//! The arithmetic is the CPU kernels' (see the module documentation of
//! `crate::runtime::kernels`), so the outputs are the same bits.
//!
//! Layout on the GPU: activations and weights as rows of `kw = ⌈k / 4⌉`
//! 32-bit words of four int8 (k zero-padded), weights `n × kw` row-major.
//! Any `m`, `k`, `n` (no tile multiple required).

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/packed_linear.ptx"));
const MODULE: &str = "plcc_packed_linear";
/// Threads per block of both kernels (`PLCC_QUANT_THREADS`, `PLCC_THREADS`).
const THREADS: u32 = 256;
/// Output rows and columns of one block of the product (`PLCC_BM`, `PLCC_BN`).
const TILE: usize = 64;

/// The integer weights, per-row scales and bias of one packed layer,
/// resident on one GPU.
pub struct GpuWeights {
    device: CudaDevice,
    n: usize,
    k: usize,
    /// `n × kw` words.
    words: CudaSlice<i32>,
    scales: CudaSlice<f32>,
    /// Zeros when the layer has none (the CPU kernels add `0.0` too).
    bias: CudaSlice<f32>,
}

impl std::fmt::Debug for GpuWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuWeights")
            .field("device", &self.device)
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

/// 32-bit words of four consecutive int8 of each row of the `rows × k`
/// row-major `values`, low byte first, the last word zero-padded.
fn words(values: &[i8], rows: usize, k: usize) -> Vec<i32> {
    let kw = k.div_ceil(4);
    let mut out = vec![0i32; rows * kw];
    for (r, row) in values.chunks_exact(k.max(1)).take(rows).enumerate() {
        for (w, four) in row.chunks(4).enumerate() {
            let mut bytes = [0u8; 4];
            for (b, &v) in bytes.iter_mut().zip(four) {
                *b = v as u8;
            }
            out[r * kw + w] = i32::from_le_bytes(bytes);
        }
    }
    out
}

/// `v` as a kernel's `int` argument.
fn int_arg(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::Msg(format!("{what} = {v} exceeds i32")))
}

/// Device allocations of zero elements are invalid: keep at least one.
fn at_least_one(len: usize) -> usize {
    len.max(1)
}

impl GpuWeights {
    /// Uploads `values` (`n × k` row-major integer weights), one scale per
    /// output row and the optional bias to `device`.
    pub fn upload(
        values: &[i8],
        n: usize,
        k: usize,
        scales: &[f32],
        bias: Option<&[f32]>,
        device: &CudaDevice,
    ) -> Result<Self> {
        if values.len() != n * k || scales.len() != n || bias.is_some_and(|b| b.len() != n) {
            candle_core::bail!("GpuWeights: weights, scales or bias do not match {n} × {k}");
        }
        let mut words = words(values, n, k);
        words.resize(at_least_one(words.len()), 0);
        let mut scales = scales.to_vec();
        scales.resize(at_least_one(n), 0.0);
        let mut bias = bias.map_or_else(|| vec![0.0; n], <[f32]>::to_vec);
        bias.resize(at_least_one(n), 0.0);
        Ok(GpuWeights {
            device: device.clone(),
            n,
            k,
            words: device.clone_htod(&words)?,
            scales: device.clone_htod(&scales)?,
            bias: device.clone_htod(&bias)?,
        })
    }

    pub fn device(&self) -> &CudaDevice {
        &self.device
    }

    /// `y = x · Wᵀ + b` for the contiguous f32 `x` `[.., k]` in `storage`:
    /// `[.., n]` on the same GPU.
    pub fn forward(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        if storage.device.id() != self.device.id() {
            candle_core::bail!("packed linear: the input is on another GPU than the weights");
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("packed linear: input not contiguous");
        };
        let dims = layout.shape().dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("packed linear: input of rank 0");
        };
        if k != self.k {
            candle_core::bail!(
                "packed linear expects inputs of shape [.., {}], got {dims:?}",
                self.k
            );
        }
        let m: usize = lead.iter().product();
        let kw = k.div_ceil(4);
        let mut out_dims = lead.to_vec();
        out_dims.push(self.n);
        let dev = &self.device;
        // SAFETY: every element of the m × n output is written by the
        // product below (none when m or n is zero).
        let y = unsafe { dev.alloc::<f32>(at_least_one(m * self.n))? };
        if m > 0 && self.n > 0 {
            let x = storage.as_cuda_slice::<f32>()?.slice(start..end);
            // SAFETY: written by the quantization kernel before it is read.
            let q = unsafe { dev.alloc::<i32>(at_least_one(m * kw))? };
            let sx = unsafe { dev.alloc::<f32>(m)? };
            let (m_arg, k_arg, kw_arg) = (int_arg(m, "m")?, int_arg(k, "k")?, int_arg(kw, "k/4")?);
            let n_arg = int_arg(self.n, "n")?;
            let quantize = dev.get_or_load_custom_func("plcc_quantize_rows", MODULE, PTX)?;
            let mut launch = quantize.builder();
            launch
                .arg(&x)
                .arg(&m_arg)
                .arg(&k_arg)
                .arg(&kw_arg)
                .arg(&q)
                .arg(&sx);
            let rows = LaunchConfig {
                grid_dim: (m_arg as u32, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: the arguments match the kernel's signature; x holds
            // m × k values, q m × kw words, sx m values.
            unsafe { launch.launch(rows) }.w()?;
            let row_blocks = m.div_ceil(TILE);
            if row_blocks > 65_535 {
                candle_core::bail!("packed linear: {m} input rows exceed the GPU kernel's grid");
            }
            let gemm = dev.get_or_load_custom_func("plcc_gemm_i8", MODULE, PTX)?;
            let mut launch = gemm.builder();
            launch
                .arg(&q)
                .arg(&sx)
                .arg(&self.words)
                .arg(&self.scales)
                .arg(&self.bias)
                .arg(&y)
                .arg(&m_arg)
                .arg(&n_arg)
                .arg(&kw_arg);
            let tiles = LaunchConfig {
                grid_dim: (
                    int_arg(self.n.div_ceil(TILE), "n / 64")? as u32,
                    row_blocks as u32,
                    1,
                ),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: the arguments match the kernel's signature; the
            // weights hold n × kw words, y m × n values.
            unsafe { launch.launch(tiles) }.w()?;
        }
        Ok((
            CudaStorage::wrap_cuda_slice(y, dev.clone()),
            Shape::from(out_dims),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn words_hold_four_values_low_byte_first_and_pad_with_zero() {
        let values = [1i8, -1, 2, -128, 5, 0, 0, 0, 7, 8];
        assert_eq!(
            words(&values, 2, 5),
            vec![
                i32::from_le_bytes([1, 0xff, 2, 0x80]),
                5,
                i32::from_le_bytes([0, 0, 0, 7]),
                8
            ]
        );
        assert!(words(&[], 3, 0).is_empty());
    }
}
