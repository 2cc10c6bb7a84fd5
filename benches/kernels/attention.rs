//! The `attention` section: the fused inference attention
//! (`runtime::kernels::attention`) on MiniLM's shape (12 heads of 32) for a
//! batch of 32 sentences of about 27 tokens (a sorted batch of the bench
//! corpus) and for one sentence, on 1 and 2 threads, next to the unfused
//! candle formulation (matmuls, mask, softmax), as median times.

use candle_core::{Device, Tensor};
use plcc::runtime::kernels::attention::fused_attention;

use super::{ms, time};

const HEADS: usize = 12;
const HEAD_DIM: usize = 32;

pub fn run() -> candle_core::Result<()> {
    println!("attention, {HEADS} heads of {HEAD_DIM}: median ms per call");
    println!("threads | batch × seq | fused | unfused (candle)");
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        for (batch, seq) in [(32usize, 27usize), (1, 27), (32, 71)] {
            let width = HEADS * HEAD_DIM;
            let qkv = Tensor::randn(0f32, 1.0, (batch, seq, 3 * width), &Device::Cpu)?;
            let (q, k, v) = (
                qkv.narrow(2, 0, width)?,
                qkv.narrow(2, width, width)?,
                qkv.narrow(2, 2 * width, width)?,
            );
            let lengths: Vec<usize> = (0..batch).map(|b| seq - b % 4).collect();
            let (fused, unfused) = pool.install(|| {
                let fused = time(|| {
                    fused_attention(&q, &k, &v, HEADS, HEAD_DIM, &lengths, false)
                        .expect("fused attention")
                        .expect("a CPU kernel");
                });
                let unfused = time(|| {
                    unfused_attention(&q, &k, &v).expect("unfused attention");
                });
                (fused, unfused)
            });
            println!(
                "{threads:>7} | {:>11} | {:>6.3} | {:>6.3}",
                format!("{batch} × {seq}"),
                ms(fused),
                ms(unfused)
            );
        }
    }
    Ok(())
}

/// Softmax(q kᵀ / √d) v per head with candle's ops (no mask: all keys real).
fn unfused_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    let (b, s, _) = q.dims3()?;
    let heads = |t: &Tensor| {
        t.reshape((b, s, HEADS, HEAD_DIM))?
            .transpose(1, 2)?
            .contiguous()
    };
    let (q, k, v) = (heads(q)?, heads(k)?, heads(v)?);
    let scores = (q.matmul(&k.t()?)? / (HEAD_DIM as f64).sqrt())?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((b, s, HEADS * HEAD_DIM))
}
