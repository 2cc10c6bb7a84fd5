//! The `f32` section: the f32 GEMM at every level the CPU supports on the
//! MiniLM linear shapes (m = 1536 tokens; the joined q/k/v projection
//! 384 → 1152, attention output 384 → 384, feed-forward 384 → 1536 and
//! 1536 → 384), on one thread, in GFLOP/s (`2 · m · k · n` per call), next
//! to candle's matmul and to each level's peak: a register-only loop of 12
//! independent FMA chains, which bounds what any f32 kernel on one core of
//! this CPU can reach.

use std::hint::black_box;
use std::time::Duration;

use candle_core::{Device, Module, Tensor};
use plcc::runtime::kernels::f32_gemm::{F32Level, PackedWeight};

use super::{ms, time, values, TOKENS};

/// `(k, n)` of the MiniLM linears.
const SHAPES: [(usize, usize); 4] = [(384, 1152), (384, 384), (384, 1536), (1536, 384)];
/// FMA loop iterations per peak measurement (12 vector FMAs each).
const PEAK_ITERS: usize = 20_000_000;

fn gflops(flops: f64, t: Duration) -> f64 {
    flops / t.as_secs_f64() / 1e9
}

pub fn run() -> candle_core::Result<()> {
    // candle sizes its matmul parallelism from RAYON_NUM_THREADS.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let levels = F32Level::supported();
    println!("\nf32 GEMM, m = {TOKENS}, one thread: GFLOP/s (ms per call)");
    let peaks: Vec<f64> = levels.iter().map(|&l| peak(l)).collect();
    for (level, p) in levels.iter().zip(&peaks) {
        println!("peak FMA throughput {level:?}: {p:.1} GFLOP/s");
    }
    let mut header = format!("{:>10} | {:>17}", "k x n", "candle");
    for level in &levels {
        header += &format!(" | {:>26}", format!("{level:?} (% of peak)"));
    }
    println!("{header}");
    let device = Device::Cpu;
    for (k, n) in SHAPES {
        let flops = 2.0 * (TOKENS * k * n) as f64;
        let w = values(n * k, 1 + (k * n) as u64, 0.05);
        let bias = values(n, 2, 0.1);
        let x = values(TOKENS * k, 3, 1.0);
        let x_t = Tensor::from_vec(x.clone(), (TOKENS, k), &device)?;
        let float = candle_nn::Linear::new(
            Tensor::from_vec(w.clone(), (n, k), &device)?,
            Some(Tensor::from_vec(bias.clone(), n, &device)?),
        );
        float.forward(&x_t)?;
        let t_candle = pool.install(|| {
            time(|| {
                let _ = black_box(float.forward(&x_t));
            })
        });
        let mut row = format!(
            "{:>10} | {:>7.1} ({:>6.2})",
            format!("{k}x{n}"),
            gflops(flops, t_candle),
            ms(t_candle)
        );
        for (&level, p) in levels.iter().zip(&peaks) {
            let packed = PackedWeight::with_level(&w, Some(&bias), n, k, level)
                .ok_or_else(|| candle_core::Error::Msg(format!("{level:?} did not pack")))?;
            let t = pool.install(|| time(|| drop(black_box(packed.matmul(&x, TOKENS)))));
            let g = gflops(flops, t);
            row += &format!(
                " | {:>7.1} ({:>6.2}) {:>7}",
                g,
                ms(t),
                format!("{:.0}%", 100.0 * g / p)
            );
        }
        println!("{row}");
    }
    Ok(())
}

/// The level's single-thread FMA peak in GFLOP/s.
fn peak(level: F32Level) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let (lanes, t) = match level {
            // SAFETY: `F32Level::supported` listed the level, so the CPU has
            // the instructions the loop is compiled for.
            F32Level::Avx512 => (
                16,
                time(|| unsafe {
                    black_box(fma_loop_512());
                }),
            ),
            // SAFETY: as above, for AVX2 and FMA.
            F32Level::Avx2Fma => (
                8,
                time(|| unsafe {
                    black_box(fma_loop_256());
                }),
            ),
        };
        gflops((PEAK_ITERS * 12 * lanes * 2) as f64, t)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = level;
        f64::NAN
    }
}

/// 12 independent chains `acc = acc · x + y` on zmm registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_512() -> f32 {
    use std::arch::x86_64::*;
    let x = _mm512_set1_ps(black_box(0.999_9));
    let y = _mm512_set1_ps(black_box(1e-4));
    let mut acc = [_mm512_setzero_ps(); 12];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm512_set1_ps(i as f32);
    }
    for _ in 0..black_box(PEAK_ITERS) {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, x, y);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a));
    _mm512_reduce_add_ps(sum)
}

/// 12 independent chains `acc = acc · x + y` on ymm registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_256() -> f32 {
    use std::arch::x86_64::*;
    let x = _mm256_set1_ps(black_box(0.999_9));
    let y = _mm256_set1_ps(black_box(1e-4));
    let mut acc = [_mm256_setzero_ps(); 12];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm256_set1_ps(i as f32);
    }
    for _ in 0..black_box(PEAK_ITERS) {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, x, y);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}
