//! Opening the device a build trains on or a model runs on: the CPU always,
//! the first CUDA GPU when this plcc was built with CUDA support and one is
//! there. The diagnostic for an unusable device names where it was asked for.

use candle_core::Device as CandleDevice;

use crate::base::Device;
use crate::diag::Diag;

/// Opens `device`. `asked` says where it was asked for (`--device cuda`,
/// `` `device: cuda` ``) and `instead` how to ask for the CPU there.
pub fn open(device: Device, asked: &str, instead: &str) -> Result<CandleDevice, Diag> {
    match device {
        Device::Cpu => Ok(CandleDevice::Cpu),
        Device::Cuda => {
            if !candle_core::utils::cuda_is_available() {
                return Err(Diag::new(
                    "plcc::device::cuda-unavailable",
                    format!("{asked}: this plcc was built without CUDA support"),
                )
                .help(format!(
                    "rebuild with `cargo build --release --features cuda`, or {instead}"
                )));
            }
            CandleDevice::new_cuda(0).map_err(|e| {
                Diag::new(
                    "plcc::device::cuda-unavailable",
                    format!("{asked}: no usable CUDA GPU"),
                )
                .note(e.to_string())
                .help(instead.to_string())
            })
        }
    }
}
