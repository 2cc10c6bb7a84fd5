//! Kernels for packed low-bit linear layers: `y = x · Wᵀ (+ bias)` with
//! integer weights and dynamically quantized int8 activations, on the CPU
//! and, with the `cuda` feature, on a GPU (see Devices).
//!
//! # What is computed
//! Each row (token) of `x` is quantized symmetrically to int8 with its own
//! scale `sx = max |x_row| / 127` ([`quantize_activations`]). Weights are
//! integers with one f32 scale per output row `sw` (int8: `q·α/127`, 4-bit:
//! `q·α/7`, 2-bit: `{−3,−1,1,3}·α/3`, ternary `{−1,0,1}·α`, binary `{−1,1}·α`).
//! The products are accumulated exactly in i32, and the output is
//! `(acc as f32 · sx) · sw + bias` ([`finish`], one formula shared by every
//! kernel and by the references).
//!
//! # Dispatch
//! [`SimdLevel::detect`] picks the best instruction set at run time:
//! - `Avx512Vnni`: `vpdpbusd` (u8 × s8 → i32, 64 MACs per instruction). The
//!   activations are stored shifted to u8 (`q + 128`); the shift is removed by
//!   subtracting `128 · Σ_k w` per output column, precomputed at load time.
//!   Micro-tile 8 rows × 48 columns (24 zmm accumulators).
//! - `Amx`: AMX-INT8 tiles (`tdpbusd`, 16 × 16 × 64 MACs per instruction)
//!   on the `Avx512Vnni` activations and weight panels: the tile's 16 rows
//!   of u8 activations times each 16-column vector of the panel (16 groups
//!   of 4 k values, loaded with the panel's row stride), 16 × 48 tile; the
//!   k values past the last whole 64 by the AVX-512 VNNI kernel. Chosen
//!   where the CPU has AMX-INT8 and Linux grants the process the tile state
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); `PLCC_SIMD=avx512` leaves it out.
//! - `AvxVnni`: the same instruction on 256-bit registers, 6 × 16 tile.
//! - `Avx2`: activations as i16, weights sign-extended from i8 with
//!   `vpmovsxbw`, products by `vpmaddwd` (i16 × i16 → i32 pairs, exact; the
//!   saturating `vpmaddubsw` is not used), 6 × 16 tile.
//! - `Avx2Narrow`: AVX2 for weights within ±8 (binary, ternary, 2- and
//!   4-bit): activations shifted to u8 as for VNNI, `vpmaddubsw` (u8 × s8,
//!   32 products into 16 i16 pair sums, each at most 2 · 255 · 8) summed in
//!   i16 over 8 steps (at most 32 640, so nothing saturates) before one
//!   `vpmaddwd` by ones widens them to i32: two instructions per 32
//!   products instead of four. Chosen by [`SimdLevel::detect_for`].
//! - `Scalar`: portable Rust, the same tiling with plain loops.
//!
//! Weights are repacked at load time ([`IntegerWeights::new`]) into panels of
//! columns in the order the chosen kernel reads them: for each group of `G`
//! consecutive k (4 for VNNI, 2 for `vpmaddwd`, 1 for scalar), the `G` weights
//! of every column of the panel, so that one vector load feeds one
//! multiply-accumulate. k is zero-padded to a multiple of `G`, the last panel
//! to a multiple of the vector width; tails in m and n are computed on padding
//! and not stored. Work is split over rayon tasks of (row block × panel block).
//!
//! # Low-bit weights
//! Ternary, 2-bit, binary and 4-bit symmetric weights run by default on the
//! same integer GEMM after being expanded at load time to their small integer
//! levels (`{−1,0,1}`, `{−3,−1,1,3}`, `{−1,1}`, `[−7,7]`) in the int8 panel
//! layout ([`integer_weights`]); the artifact keeps the compact codes.
//! A kernel that decodes 2-bit codes in registers also exists
//! ([`integer_weights_codes2`], AVX-512 VBMI: `vpmovzxwq`, `vpmultishiftqb`
//! and `vpshufb` per 64 weights, see `x86::avx512::tile_codes2`). It is exact
//! but measured slower on the MiniLM shapes (m = 1536, Sapphire Rapids, e.g.
//! 1.9 ms vs 1.5 ms for 384×384 and 11.3 vs 9.6 ms for 384×1536 on one
//! thread, `cargo bench --bench kernels`): for batched input the product is
//! bound by `vpdpbusd` throughput, each weight vector feeds 8 activation rows
//! from a register, and the largest expanded MiniLM weight (576 KiB) stays in
//! L2, so the decode's shuffles cost more than the bandwidth they save.
//!
//! # Devices
//! With the `cuda` cargo feature, [`PackedLinear::to_device`] uploads a
//! layer's integer weights (int8 values, low-bit weights expanded to their
//! levels as above), per-row scales and bias once to a GPU, and the layer's
//! `CustomOp1` then also runs on CUDA tensors (`cuda::GpuWeights`): a kernel
//! quantizes each input row to int8 with the CPU's formula, and a tiled
//! kernel multiplies by `__dp4a` (four int8 products per instruction, exact
//! i32 accumulation), any `m`, `k`, `n`, finishing with the same [`finish`]
//! formula without fused multiply-add, so the outputs are meant to be the CPU
//! kernels' bits. The kernels (`cuda/packed_linear.cu`) are compiled to PTX
//! by `build.rs` and checked by `tests/runtime/cuda_kernels.rs` against the plain
//! references where a GPU is present. Status: written and compiled (CUDA
//! 13.0, PTX for compute 7.5), not yet run on a GPU; no speed measured.
//! Without the feature, or for a layer not placed on the GPU,
//! [`PackedLinear::forward`] on a CUDA tensor returns an error saying so.

mod activations;
pub mod attention;
pub mod attention_grad;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod f32_gemm;
pub mod fastmath;
pub mod fused_norm;
pub mod fused_ops;
mod int_gemm;
pub mod layer_norm_grad;
mod levels;
mod machine;
mod packed_linear;
mod quantize_rule;
mod reference;
mod scalar;
mod simd_level;
mod simd_override;
pub mod softmax_grad;
mod tile;
pub mod values;
mod weight_only;
mod weights;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod cuda_sources_tests;
#[cfg(test)]
mod tests;

pub use activations::{dequantized_activations, quantize_activations, QuantizedActivations};
pub use int_gemm::{codes2_available, int_gemm_f32, int_gemm_f32_vec, int_gemm_i32};
pub use levels::{
    integer_levels, integer_weights, integer_weights_codes2, IntegerLevels, KernelError,
};
pub use machine::{kernel_machine, KernelMachine};
pub use packed_linear::PackedLinear;
pub use reference::{
    dequantized_linear_reference, reference_f32, reference_grouped_f32, reference_i32,
};
pub use simd_level::{SimdLevel, NARROW_MAX};
pub use simd_override::{simd_cap, SimdCap};
pub use tile::finish;
pub use weight_only::WeightOnlyLinear;
pub use weights::{IntegerWeights, WeightForm};
