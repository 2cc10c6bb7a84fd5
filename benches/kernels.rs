//! Kernel benchmarks, in sections chosen by name:
//! - `int`: the packed-weight integer kernels against candle's f32 matmul on
//!   the MiniLM linear shapes (32 sequences × 48 tokens), on 1 and 2
//!   threads, as a table of median times.
//! - `f32`: the f32 GEMM (`runtime::kernels::f32_gemm`) at every level the
//!   CPU supports on the MiniLM shapes, on one thread, in GFLOP/s, next to
//!   candle's matmul and each level's peak FMA throughput (`kernels/f32_gemm.rs`).
//! - `attention`: the fused inference attention against candle's unfused
//!   formulation on MiniLM's heads (`kernels/attention.rs`).
//!
//! Run all with `cargo bench --bench kernels`, or some with
//! `cargo bench --bench kernels -- f32` (a section runs when its name
//! contains one of the words given).

use std::time::{Duration, Instant};

use candle_core::{Device, Module, Tensor};
use plcc::base::{Bits, Granularity, ScaleMethod};
use plcc::quant::{quantize, QuantSpec};
use plcc::runtime::kernels::{int_gemm_f32, quantize_activations, PackedLinear, SimdLevel};

#[path = "kernels/attention.rs"]
mod attention;
#[path = "kernels/f32_gemm.rs"]
mod f32_gemm;

const TOKENS: usize = 32 * 48;
const SHAPES: [(usize, usize); 3] = [(384, 384), (384, 1536), (1536, 384)];

/// Median wall time of `f` over enough runs to fill about half a second.
pub(crate) fn time(mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    f();
    let once = start.elapsed().max(Duration::from_micros(1));
    let runs = (Duration::from_millis(500).as_secs_f64() / once.as_secs_f64()).clamp(5.0, 200.0);
    let mut times: Vec<Duration> = (0..runs as usize)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

pub(crate) fn values(len: usize, seed: u64, amplitude: f32) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * amplitude
        })
        .collect()
}

fn spec(bits: Bits, scale: ScaleMethod) -> QuantSpec {
    QuantSpec {
        bits,
        symmetric: true,
        granularity: Granularity::Row,
        scale,
        learned: None,
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> candle_core::Result<()> {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |section: &str| words.is_empty() || words.iter().any(|w| section.contains(w));
    if wanted("int") {
        int_table()?;
    }
    if wanted("f32") {
        f32_gemm::run()?;
    }
    if wanted("attention") {
        attention::run()?;
    }
    Ok(())
}

/// The integer kernels' table.
fn int_table() -> candle_core::Result<()> {
    let best = SimdLevel::detect();
    println!("plcc kernels benchmark: m = {TOKENS} tokens, best kernel level {best:?}");
    println!("median ms per call; speed-up vs candle f32 in parentheses\n");
    println!(
        "{:>3} {:>10} | {:>9} | {:>15} | {:>15} | {:>15} | {:>15} | {:>15}",
        "thr",
        "k x n",
        "candle f32",
        "int8",
        "int8 gemm only",
        "int8 AVX2",
        "ternary (i8)",
        "ternary (2-bit)"
    );
    let device = Device::Cpu;
    for threads in [1usize, 2] {
        // candle sizes its matmul parallelism from RAYON_NUM_THREADS.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        for (k, n) in SHAPES {
            let w = values(n * k, 1 + (k * n) as u64, 0.05);
            let bias = values(n, 2, 0.1);
            let x = Tensor::from_vec(values(TOKENS * k, 3, 1.0), (32, 48, k), &device)?;
            let x_flat = x.flatten_all()?.to_vec1::<f32>()?;
            let float = candle_nn::Linear::new(
                Tensor::from_vec(w.clone(), (n, k), &device)?,
                Some(Tensor::from_vec(bias.clone(), n, &device)?),
            );
            let q8 = quantize(&w, n, k, &spec(Bits::Int(8), ScaleMethod::Max))
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let q3 = quantize(&w, n, k, &spec(Bits::Ternary, ScaleMethod::MeanAbs))
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let packed = |q, level| {
                PackedLinear::with_level(q, Some(bias.clone()), level)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))
            };
            let int8 = packed(&q8, best)?;
            let int8_avx2 = SimdLevel::Avx2
                .is_available()
                .then(|| packed(&q8, SimdLevel::Avx2))
                .transpose()?;
            let ternary = packed(&q3, best)?;
            let ternary_codes = PackedLinear::with_codes2(&q3, Some(bias.clone()))
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let activations = quantize_activations(&x_flat, TOKENS, k, best);
            let mut out = vec![0.0f32; TOKENS * n];

            let (t_f32, t_int8, t_gemm, t_avx2, t_ternary, t_codes) = pool.install(|| {
                let t_f32 = time(|| {
                    float.forward(&x).expect("candle matmul");
                });
                let t_int8 = time(|| {
                    int8.forward(&x).expect("int8 forward");
                });
                let t_gemm =
                    time(|| int_gemm_f32(&activations, int8.weights(), int8.bias(), &mut out));
                let t_avx2 = int8_avx2.as_ref().map(|l| {
                    time(|| {
                        l.forward(&x).expect("avx2 forward");
                    })
                });
                let t_ternary = time(|| {
                    ternary.forward(&x).expect("ternary forward");
                });
                let t_codes = ternary_codes.as_ref().map(|l| {
                    time(|| {
                        l.forward(&x).expect("ternary codes forward");
                    })
                });
                (t_f32, t_int8, t_gemm, t_avx2, t_ternary, t_codes)
            });
            let cell = |t: Duration| format!("{:.3} ({:.2}x)", ms(t), ms(t_f32) / ms(t));
            println!(
                "{:>3} {:>10} | {:>10.3} | {:>15} | {:>15} | {:>15} | {:>15} | {:>15}",
                threads,
                format!("{k}x{n}"),
                ms(t_f32),
                cell(t_int8),
                cell(t_gemm),
                t_avx2.map_or("n/a".to_string(), cell),
                cell(t_ternary),
                t_codes.map_or("n/a".to_string(), cell),
            );
        }
    }
    Ok(())
}
