//! x86-64 micro-kernels, one file per instruction set. Each computes one
//! micro-tile of exact i32 accumulators from a weight panel in the layout of
//! [`super::IntegerWeights`]; callers check that the CPU supports the set.
//! The `f32_*` modules are the f32 tiles of [`super::f32_gemm`], which packs
//! its own panels.

pub(crate) mod amx;
pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod avxvnni;
pub(crate) mod f32_avx2;
pub(crate) mod f32_avx512;
pub(crate) mod quantize_avx2;
