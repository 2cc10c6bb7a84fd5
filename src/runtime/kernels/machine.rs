//! What this machine runs the kernels on, in words: the CPU's model name
//! and the instruction set each kind of kernel picks here (after the
//! `PLCC_SIMD` cap), for benchmarks and reports.

use std::sync::OnceLock;

use serde::Serialize;

use super::f32_gemm::F32Level;
use super::simd_level::SimdLevel;

/// The CPU and the kernels' instruction sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelMachine {
    /// The CPU's model name (`/proc/cpuinfo` on Linux), or `unknown`.
    pub cpu: String,
    /// The instruction set of the integer GEMM (int8 activations).
    pub int8_kernels: &'static str,
    /// The instruction set of plcc's f32 GEMM (`portable` where none fits:
    /// candle's own then).
    pub f32_kernels: &'static str,
}

/// This machine's [`KernelMachine`], found once per process (the CPU and
/// the `PLCC_SIMD` cap do not change while it runs).
pub fn kernel_machine() -> KernelMachine {
    static MACHINE: OnceLock<KernelMachine> = OnceLock::new();
    MACHINE
        .get_or_init(|| KernelMachine {
            cpu: cpu_model_name().unwrap_or_else(|| "unknown".to_string()),
            int8_kernels: SimdLevel::detect().name(),
            f32_kernels: F32Level::detect().map_or("portable", F32Level::name),
        })
        .clone()
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_levels_this_cpu_picks() {
        let m = kernel_machine();
        assert_eq!(m.int8_kernels, SimdLevel::detect().name());
        assert!(!m.cpu.is_empty());
        let mut names: Vec<&str> = SimdLevel::ALL.iter().map(|l| l.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            SimdLevel::ALL.len(),
            "every level has its own name"
        );
    }
}
