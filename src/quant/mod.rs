//! Weight quantizers and bit packing, on plain `f32` slices.
//!
//! A weight matrix `[rows, cols]` is quantized to integer codes with one scale
//! (and, for asymmetric quantizers, one zero point) per tensor, per row, or per
//! group of `n` consecutive weights within a row. Codes are then packed into
//! bytes at their real bit width, row by row, each row starting on a byte
//! boundary so kernels can walk rows independently.
//!
//! The quantizers are the ones of the methods plcc implements:
//! binary (sign × mean |w|), ternary (TWN/XTC: threshold 0.7·mean |w|, scale =
//! mean of the kept |w|), and symmetric / asymmetric uniform 2/4/8-bit, whose
//! clipping range is the max |w|, the mean |w| (scaled), or a learned clipping
//! scale supplied by training (module-wise dynamic scaling).
//!
//! Codes are chosen by rounding each weight to its nearest level
//! (`quantize`) or by GPTQ (`gptq`), which rounds column by column and
//! compensates each column's error on the columns still to come, using the
//! layer's inputs on calibration text. Both produce the same `Quantized`
//! form.

mod bitpack;
mod clip_search;
mod fake;
mod gptq;
mod levels;
mod quantize;
mod unit_stats;
mod widest;

pub use bitpack::{pack_rows, packed_row_bytes, unpack_rows};
pub use fake::fake_quantize;
pub use gptq::{gptq, GptqError, GptqOptions};
pub use levels::{decode, encode, UnitParams};
pub use quantize::{dequantize, quantize, unit_params, Layout, QuantError, QuantSpec, Quantized};
