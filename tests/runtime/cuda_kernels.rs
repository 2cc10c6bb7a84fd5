//! The CUDA kernel for packed weights (`cuda` feature) against the plain CPU
//! references of `plcc::runtime::kernels`: the same int8 activations, the same i32
//! accumulators and the same `finish` formula, so outputs agree to 1e-6
//! relative on every shape (odd sizes included) and weight width; a linear
//! layer and a whole artifact loaded on the GPU run their packed weights
//! there. Each test prints that it was skipped and passes where no CUDA
//! device can be opened (the binary itself needs the driver library,
//! libcuda.so.1, to start).
#![cfg(feature = "cuda")]

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use plcc::base::{Bits, Granularity, ScaleMethod};
use plcc::quant::{dequantize, quantize, QuantSpec, Quantized};
use plcc::runtime::kernels::{
    integer_levels, quantize_activations, reference_f32, reference_i32, PackedLinear, SimdLevel,
};
use plcc::runtime::load::from_artifact::load_artifact;
use plcc::runtime::Linear;

use crate::support::embed::embeddings;
use crate::support::tiny_bert::build_tiny_bert;

/// The first CUDA device, or `None` (with a note) where there is none.
fn gpu(test: &str) -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            // The error's first line (candle appends a backtrace).
            let reason = e.to_string();
            let reason = reason.lines().next().unwrap_or_default();
            eprintln!("{test}: skipped, no usable CUDA device ({reason})");
            None
        }
    }
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn uniform(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32 * 2.0 - 1.0
    }
}

/// Rows of varied magnitude, row 1 all zero when `m > 2`, exact ties
/// (`x · 127 / max` on k + 0.5) in row 0 when `k > 2`.
fn activations(m: usize, k: usize, rng: &mut Lcg) -> Vec<f32> {
    let mut x: Vec<f32> = (0..m * k)
        .map(|i| {
            let r = i / k.max(1);
            if m > 2 && r == 1 {
                0.0
            } else {
                rng.uniform() * [0.01f32, 1.0, 30.0][r % 3]
            }
        })
        .collect();
    if k > 2 {
        x[..3].copy_from_slice(&[127.0, 2.5, -3.5]);
    }
    x
}

fn quantized(bits: Bits, n: usize, k: usize, rng: &mut Lcg) -> Quantized {
    let w: Vec<f32> = (0..n * k).map(|_| rng.uniform() * 0.1).collect();
    let spec = QuantSpec {
        bits,
        symmetric: true,
        granularity: Granularity::Row,
        scale: if matches!(bits, Bits::Binary | Bits::Ternary) {
            ScaleMethod::MeanAbs
        } else {
            ScaleMethod::Max
        },
        learned: None,
    };
    quantize(&w, n, k, &spec).expect("valid quantization request")
}

/// The CPU reference outputs: int8 activations, i32 accumulators, `finish`.
fn reference(x: &[f32], m: usize, q: &Quantized, bias: &[f32]) -> Vec<f32> {
    let a = quantize_activations(x, m, q.cols, SimdLevel::Scalar);
    let levels = integer_levels(q).unwrap();
    let acc = reference_i32(&a, &levels.values, q.rows);
    reference_f32(&acc, &a.scales, &levels.scales, Some(bias))
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &e)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - e).abs() <= 1e-6 * e.abs().max(f32::MIN_POSITIVE),
            "{what} at {i}: GPU {g} vs CPU {e}"
        );
    }
}

const ALL_BITS: [Bits; 5] = [
    Bits::Int(8),
    Bits::Int(4),
    Bits::Int(2),
    Bits::Ternary,
    Bits::Binary,
];

#[test]
fn gpu_kernel_equals_the_cpu_reference_on_odd_shapes_and_every_width() {
    let Some(gpu) = gpu("gpu_kernel_equals_the_cpu_reference") else {
        return;
    };
    let mut rng = Lcg(2024);
    let shapes = [
        (1usize, 1usize, 1usize),
        (3, 37, 5),
        (17, 383, 129),
        (64, 384, 1536),
        (130, 65, 70),
        (5, 4, 64),
    ];
    for bits in ALL_BITS {
        for &(m, k, n) in &shapes {
            let q = quantized(bits, n, k, &mut rng);
            let bias: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
            let x = activations(m, k, &mut rng);
            let layer = PackedLinear::new(&q, Some(bias.clone()))
                .unwrap()
                .to_device(&gpu)
                .unwrap();
            assert!(layer.runs_on(&gpu));
            let xt = Tensor::from_vec(x.clone(), (m, k), &gpu).unwrap();
            let y = layer.forward(&xt).unwrap();
            assert!(y.device().is_cuda());
            assert_eq!(y.dims(), &[m, n]);
            let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let what = format!("{bits:?} m={m} k={k} n={n}");
            assert_close(&got, &reference(&x, m, &q, &bias), &what);
            // The CPU kernel of the same layer gives the same outputs.
            assert_close(&got, &layer.forward_slice(&x, m), &what);
        }
    }
}

#[test]
fn gpu_kernel_takes_leading_dims_strides_and_no_bias() {
    let Some(gpu) = gpu("gpu_kernel_takes_leading_dims_strides_and_no_bias") else {
        return;
    };
    let mut rng = Lcg(7);
    let q = quantized(Bits::Ternary, 10, 24, &mut rng);
    let layer = PackedLinear::new(&q, None)
        .unwrap()
        .to_device(&gpu)
        .unwrap();
    let x: Vec<f32> = (0..2 * 3 * 24).map(|_| rng.uniform()).collect();
    let y = layer
        .forward(&Tensor::from_vec(x.clone(), (2, 3, 24), &gpu).unwrap())
        .unwrap();
    assert_eq!(y.dims(), &[2, 3, 10]);
    let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(&got, &reference(&x, 6, &q, &[0.0; 10]), "leading dims");
    // A transposed (non-contiguous) input gives the same as its copy.
    let t = Tensor::from_vec(x, (24, 6), &gpu).unwrap().t().unwrap();
    let a = layer.forward(&t).unwrap().to_vec2::<f32>().unwrap();
    let b = layer
        .forward(&t.contiguous().unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(a, b);
    // A layer not placed on the GPU refuses GPU inputs.
    let cpu_only = PackedLinear::new(&q, None).unwrap();
    assert!(!cpu_only.runs_on(&gpu));
    assert!(cpu_only.forward(&t).is_err());
}

#[test]
fn linear_layer_on_the_gpu_runs_its_packed_weights_there() {
    let Some(gpu) = gpu("linear_layer_on_the_gpu_runs_its_packed_weights_there") else {
        return;
    };
    let mut rng = Lcg(31);
    let (m, k, n) = (9, 71, 33);
    let q = quantized(Bits::Int(4), n, k, &mut rng);
    let bias: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
    let layer_on = |device: &Device| {
        let w = Tensor::from_vec(dequantize(&q), (n, k), device).unwrap();
        let b = Tensor::from_vec(bias.clone(), n, device).unwrap();
        let mut lin = Linear::from_weights(w, Some(b));
        lin.use_packed(&q).unwrap();
        lin
    };
    let lin = layer_on(&gpu);
    assert!(lin
        .kernel()
        .is_some_and(|kl| kl.is_int8() && kl.runs_on(&gpu)));
    let x = activations(m, k, &mut rng);
    let y = lin
        .forward(&Tensor::from_vec(x.clone(), (m, k), &gpu).unwrap())
        .unwrap();
    assert!(y.device().is_cuda());
    let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_close(&got, &reference(&x, m, &q, &bias), "Linear on the GPU");
    let cpu = layer_on(&Device::Cpu)
        .forward(&Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap())
        .unwrap();
    assert_close(
        &got,
        &cpu.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        "Linear GPU vs CPU",
    );
}

const LINES: &[&str] = &[
    "the compiler reads a recipe and writes a smaller model",
    "hi",
    "rain is expected across the northern valleys by thursday afternoon",
    "numbers like 3 and 42",
];

/// Builds the tiny-bert embedding model with `quantize` blocks.
fn build_artifact(name: &str, quantize: &str) -> PathBuf {
    build_tiny_bert(&format!("cuda-{name}"), &LINES.join("\n"), quantize)
}

#[test]
fn artifact_loaded_on_the_gpu_runs_packed_weights_there() {
    let Some(gpu) = gpu("artifact_loaded_on_the_gpu_runs_packed_weights_there") else {
        return;
    };
    for (name, block) in [
        (
            "int8",
            "quantize weights \"encoder.layer.*\" {\n    bits: 8\n}\n",
        ),
        (
            "ternary",
            "quantize weights \"encoder.layer.*\" {\n    bits: ternary\n}\n",
        ),
    ] {
        let dir = build_artifact(name, block);
        let mut on_gpu = load_artifact(&dir, &gpu).unwrap();
        let on_cpu = load_artifact(&dir, &Device::Cpu).unwrap();
        // Other operations (layer norm, attention) round differently on the
        // GPU, which may move a quantized activation by one level.
        let (g, c) = (embeddings(&on_gpu, LINES), embeddings(&on_cpu, LINES));
        let scale = c.iter().fold(1e-3f32, |s, v| s.max(v.abs()));
        let diff = g
            .iter()
            .zip(&c)
            .fold(0.0f32, |d, (a, b)| d.max((a - b).abs()));
        assert!(
            diff <= 0.01 * scale,
            "{name}: GPU vs CPU {diff} (scale {scale})"
        );
        for (module, lin) in on_gpu.network.linears_mut() {
            assert!(
                lin.kernel()
                    .is_some_and(|kl| kl.is_int8() && kl.runs_on(&gpu)),
                "{name}: {module} is not on the GPU integer kernel"
            );
        }
    }
}
