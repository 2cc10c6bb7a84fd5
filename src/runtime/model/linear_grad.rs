//! A linear layer's product `y = q(x)·Q(W)ᵀ + b` as one differentiable CPU
//! operation, for training and for float layers without a kernel: `x` of
//! any rank (`[..., in]` → `[..., out]`, no reshapes), `q` an optional input
//! quantizer (the activation quantization of a quantization-aware layer),
//! `W` `[out, in]` read through its quantized values `Q(W)` where given (a
//! fake-quantized weight), and an optional bias; both quantizers are seen
//! through the straight-through estimator. Written as candle operations
//! this is a quantizer node, two reshapes, a transpose, a product and a
//! broadcast add, and the backward pass allocates, zeroes and adds a
//! gradient for each of them; here the backward pass computes the three
//! gradients directly:
//! `dx = dy·Q(W)` (straight through `q`), `dW = dyᵀ·q(x)` (straight
//! through `Q`), `db = Σ_rows dy`.
//! The products run on the `gemm` crate, as candle's own matmul does.
//! Two options serve training: an erf GELU fused after the product (the
//! feed-forward block's first layer: no separate activation node, whose
//! gradient would be zeroed and added at the layer's widest shape), and a
//! [`GradSink`] that takes the weight's and the bias's gradients where they
//! are parameters (summed across shards and micro-batches there, not
//! handed to candle's store).

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, TensorId};
use gemm::Parallelism;

use crate::runtime::kernels::fused_ops::{gelu_erf_grad_in_place, gelu_erf_into};
use crate::runtime::kernels::values::{contiguous, fresh, is_cpu_f32, with_values};
use crate::runtime::model::grad_sink::GradSink;
use crate::runtime::model::straight_through::ValueMap;

/// `input(x)·Wᵀ + bias` over `x`'s last dimension, differentiable in `x`
/// (straight through `input`), `weight` and `bias`, with `W` the values of
/// `weight_values` where given (of `weight`'s shape; the gradient passes
/// straight through to `weight`), else of `weight`; `None` where the
/// operation does not apply (not f32 on the CPU, or shapes that do not fit).
pub fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    input: Option<Arc<ValueMap>>,
    weight_values: Option<&Tensor>,
    sink: Option<&Arc<GradSink>>,
    gelu: bool,
) -> Result<Option<Tensor>> {
    let applies = is_cpu_f32;
    let Ok((out, inp)) = weight.dims2() else {
        return Ok(None);
    };
    if !applies(x)
        || !applies(weight)
        || bias.is_some_and(|b| !applies(b) || b.elem_count() != out)
        || x.dims().last() != Some(&inp)
        || weight_values.is_some_and(|v| !applies(v) || v.dims() != weight.dims())
    {
        return Ok(None);
    }
    let parameter = |t: &Tensor| t.is_variable().then(|| t.id());
    let tracked = x.track_op() || weight.track_op() || bias.is_some_and(Tensor::track_op);
    let op = LinearOp {
        input,
        mapped: Mutex::new(None),
        gelu: gelu.then(|| Gelu {
            keep: tracked,
            pre_activation: Mutex::new(None),
        }),
        weight_values: weight_values.map(Tensor::contiguous).transpose()?,
        sink: sink.map(|sink| SinkTarget {
            sink: sink.clone(),
            weight: parameter(weight),
            bias: bias.and_then(parameter),
        }),
    };
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op).map(Some),
        None => x.apply_op2(&weight, op).map(Some),
    }
}

struct LinearOp {
    /// What the product reads of the input (its quantized values).
    input: Option<Arc<ValueMap>>,
    /// `input(x)` of the forward pass, kept for the weight's gradient.
    mapped: Mutex<Option<Vec<f32>>>,
    /// The erf GELU applied to the product, when fused.
    gelu: Option<Gelu>,
    /// The values the product reads for the weight, if not its own.
    weight_values: Option<Tensor>,
    /// Where the weight's and the bias's gradients go instead of the
    /// backward pass, for those that are parameters.
    sink: Option<SinkTarget>,
}

/// The erf GELU after the product (`y = GELU(x·Wᵀ + b)`), and the product
/// it was applied to, kept for the backward pass when there is one.
struct Gelu {
    keep: bool,
    pre_activation: Mutex<Option<Vec<f32>>>,
}

/// A sink and the parameters of one product whose gradients it takes.
struct SinkTarget {
    sink: Arc<GradSink>,
    weight: Option<TensorId>,
    bias: Option<TensorId>,
}

/// The shapes of one product: `rows` inputs of width `inp`, `out` outputs.
#[derive(Clone, Copy)]
struct Dims {
    rows: usize,
    inp: usize,
    out: usize,
}

impl Dims {
    fn of(x_elems: usize, weight: &Shape) -> Result<Dims> {
        let (out, inp) = weight.dims2()?;
        Ok(Dims {
            rows: x_elems.checked_div(inp).unwrap_or(0),
            inp,
            out,
        })
    }

    /// `x`'s shape with its last dimension `out`.
    fn out_shape(self, x: &Shape) -> Shape {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.out;
        }
        Shape::from(dims)
    }
}

fn parallelism() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// A matrix operand of [`gemm_rows`]: its values, column stride and row
/// stride.
#[derive(Clone, Copy)]
struct Operand<'a>(&'a [f32], isize, isize);

/// `dst = lhs · rhs` (`m × k` times `k × n`) into the row-major `m × n`
/// `dst`, or with `accumulate` `dst += lhs · rhs`, on the `gemm` crate.
///
/// # Safety
/// `dst` must hold `m · n` values (initialized when accumulating), and each
/// operand's values must cover its `m × k` or `k × n` elements at its
/// strides.
unsafe fn gemm_rows(
    dst: *mut f32,
    (m, n, k): (usize, usize, usize),
    Operand(lhs, lhs_cs, lhs_rs): Operand,
    Operand(rhs, rhs_cs, rhs_rs): Operand,
    accumulate: bool,
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            alpha,
            1.0,
            false,
            false,
            false,
            parallelism(),
        )
    }
}

/// `x·Wᵀ + bias` for row-major `x` `[rows, inp]` and `w` `[out, inp]`.
fn product(x: &[f32], w: &[f32], bias: Option<&[f32]>, d: Dims) -> Vec<f32> {
    let mut y = Vec::with_capacity(d.rows * d.out);
    match bias {
        Some(b) => (0..d.rows).for_each(|_| y.extend_from_slice(b)),
        None => y.resize(d.rows * d.out, 0.0),
    }
    if d.rows == 0 || d.out == 0 || d.inp == 0 {
        return y;
    }
    let inp = d.inp as isize;
    // SAFETY: `y` holds `rows · out` initialized values, `x` `rows · inp`
    // (row stride `inp`) and `w` `out · inp`, read as `Wᵀ` `[inp, out]`:
    // element (k, j) at `j · inp + k`.
    unsafe {
        let (x, wt) = (Operand(x, 1, inp), Operand(w, inp, 1));
        gemm_rows(y.as_mut_ptr(), (d.rows, d.out, d.inp), x, wt, true);
    }
    y
}

/// `lhs · rhs` (`m × k` times `k × n`) as a fresh row-major `m × n` vector.
///
/// # Safety
/// Each operand's values must cover its elements at its strides.
unsafe fn fresh_product((m, n, k): (usize, usize, usize), lhs: Operand, rhs: Operand) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    // SAFETY: the product writes all `m · n` values (it reads none); the
    // operands as the caller promises.
    unsafe {
        fresh(m * n, |dst| {
            gemm_rows(dst.as_mut_ptr().cast(), (m, n, k), lhs, rhs, false)
        })
    }
}

/// The input's gradient `dy·W` `[rows, inp]`.
fn input_grad(dy: &[f32], w: &[f32], d: Dims) -> Vec<f32> {
    let (inp, out) = (d.inp as isize, d.out as isize);
    // SAFETY: `dy` holds `rows · out` values (row stride `out`), `w`
    // `out · inp` (row stride `inp`).
    unsafe {
        fresh_product(
            (d.rows, d.inp, d.out),
            Operand(dy, 1, out),
            Operand(w, 1, inp),
        )
    }
}

/// The weight's gradient `dyᵀ·x` `[out, inp]`.
fn weight_grad(dy: &[f32], x: &[f32], d: Dims) -> Vec<f32> {
    let (inp, out) = (d.inp as isize, d.out as isize);
    // SAFETY: `dy` holds `rows · out` values, read as `dyᵀ` `[out, rows]`:
    // element (o, r) at `r · out + o`; `x` `rows · inp` (row stride `inp`).
    unsafe {
        fresh_product(
            (d.out, d.inp, d.rows),
            Operand(dy, out, 1),
            Operand(x, 1, inp),
        )
    }
}

/// The bias's gradient: `dy` `[rows, out]` summed over its rows.
fn bias_grad(dy: &[f32], out: usize) -> Vec<f32> {
    let mut db = vec![0f32; out];
    for row in dy.chunks_exact(out.max(1)) {
        db.iter_mut().zip(row).for_each(|(s, g)| *s += g);
    }
    db
}

impl LinearOp {
    /// Calls `f` with the weight values the forward product reads: `own`
    /// (the weight argument's storage) or the given ones.
    fn with_weight<R>(&self, own: &[f32], f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
        match &self.weight_values {
            Some(v) => with_values(v, f),
            None => f(own),
        }
    }

    fn forward(
        &self,
        (xs, xl): (&CpuStorage, &Layout),
        (ws, wl): (&CpuStorage, &Layout),
        bias: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl)?;
        let d = Dims::of(x.len(), wl.shape())?;
        let y = self.with_weight(contiguous(ws, wl)?, |w| {
            Ok(match &self.input {
                Some(map) => {
                    let mapped = map(x, d.rows, d.inp)?;
                    let y = product(&mapped, w, bias, d);
                    *self.mapped.lock().unwrap_or_else(|e| e.into_inner()) = Some(mapped);
                    y
                }
                None => product(x, w, bias, d),
            })
        })?;
        let y = match &self.gelu {
            Some(gelu) => {
                let mut out = vec![0f32; y.len()];
                gelu_erf_into(&y, &mut out);
                if gelu.keep {
                    *gelu
                        .pre_activation
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(y);
                }
                out
            }
            None => y,
        };
        Ok((CpuStorage::F32(y), d.out_shape(xl.shape())))
    }

    /// The gradients of the input, the weight and (with `with_bias`) the bias.
    fn backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        grad: &Tensor,
        with_bias: bool,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
        let d = Dims::of(x.elem_count(), weight.shape())?;
        let read_weight = self.weight_values.as_ref().unwrap_or(weight);
        // Through a fused GELU, the product's gradient is `grad ⊙ GELU′`.
        let through_gelu = match &self.gelu {
            Some(gelu) => {
                let kept = gelu
                    .pre_activation
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let Some(pre) = kept.as_deref() else {
                    candle_core::bail!("plcc-linear: the GELU's input was not kept")
                };
                let mut dy = with_values(grad, |g| Ok(g.to_vec()))?;
                gelu_erf_grad_in_place(pre, &mut dy);
                Some(Tensor::from_vec(dy, grad.shape(), grad.device())?)
            }
            None => None,
        };
        let grad = through_gelu.as_ref().unwrap_or(grad);
        let (dx, dw, db) = with_values(grad, |dy| {
            with_values(read_weight, |w| {
                with_values(x, |x| {
                    let kept = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
                    let recomputed = match (&self.input, kept.as_deref()) {
                        (Some(map), None) => Some(map(x, d.rows, d.inp)?),
                        _ => None,
                    };
                    let read = recomputed.as_deref().or(kept.as_deref()).unwrap_or(x);
                    Ok((
                        input_grad(dy, w, d),
                        weight_grad(dy, read, d),
                        with_bias.then(|| bias_grad(dy, d.out)),
                    ))
                })
            })
        })?;
        let dev = x.device();
        let target = self.sink.as_ref();
        let dw = self.hand_on(target.and_then(|t| t.weight), dw, weight.shape())?;
        let db = match db {
            Some(db) => self.hand_on(target.and_then(|t| t.bias), db, &Shape::from(d.out))?,
            None => None,
        };
        Ok((Tensor::from_vec(dx, x.shape(), dev)?, dw, db))
    }

    /// A parameter's gradient `grad`: added to the sink when the parameter
    /// `id` has one (then `None`: the backward pass gets nothing), else as
    /// a tensor of `shape` for the backward pass.
    fn hand_on(
        &self,
        id: Option<TensorId>,
        grad: Vec<f32>,
        shape: &Shape,
    ) -> Result<Option<Tensor>> {
        match (&self.sink, id) {
            (Some(target), Some(id)) => {
                target.sink.add(id, grad)?;
                Ok(None)
            }
            _ => Tensor::from_vec(grad, shape, &candle_core::Device::Cpu).map(Some),
        }
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "plcc-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((xs, xl), (ws, wl), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, weight, grad, false)?;
        Ok((Some(dx), dw))
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "plcc-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((xs, xl), (ws, wl), Some(contiguous(bs, bl)?))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.backward(x, weight, grad, true)?;
        let db = db.map(|db| db.reshape(bias.shape())).transpose()?;
        Ok((Some(dx), dw, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use candle_core::{DType, Device, Var};

    /// The same product and gradients from candle's own operations.
    fn reference(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        input: Option<Arc<ValueMap>>,
        weight_values: Option<&Tensor>,
    ) -> Result<Tensor> {
        let w = match weight_values {
            Some(v) => (w + (v - w)?.detach())?,
            None => w.clone(),
        };
        let x = match input {
            Some(map) => crate::runtime::model::straight_through::straight_through(x, map)?,
            None => x.clone(),
        };
        let dims = x.dims().to_vec();
        let inp = *dims.last().unwrap();
        let y = x.reshape((x.elem_count() / inp, inp))?.matmul(&w.t()?)?;
        let y = match b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().unwrap() = w.dim(0)?;
        y.reshape(out)
    }

    fn halves() -> Arc<ValueMap> {
        Arc::new(|v: &[f32], _, _| Ok(v.iter().map(|x| (x * 2.0).round() / 2.0).collect()))
    }

    #[test]
    fn values_and_gradients_match_candles_operations() {
        let dev = Device::Cpu;
        for (shape, with_bias, quantized, weight_values, sunk, gelu) in [
            (vec![2usize, 5, 7], true, false, false, false, false),
            (vec![9, 7], false, false, true, false, true),
            (vec![3, 4, 7], true, true, false, true, false),
            (vec![1, 7], true, true, true, false, false),
            (vec![6, 7], false, true, true, true, true),
            (vec![2, 3, 7], true, true, true, true, true),
        ] {
            let sink = sunk.then(|| Arc::new(GradSink::default()));
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape.as_slice(), &dev).unwrap())
                .unwrap();
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (11, 7), &dev).unwrap()).unwrap();
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 11, &dev).unwrap()).unwrap();
            let bias = with_bias.then(|| b.as_tensor());
            let input = quantized.then(halves);
            let values = weight_values.then(|| w.as_tensor().detach().round().unwrap());
            let ours = linear(
                x.as_tensor(),
                w.as_tensor(),
                bias,
                input.clone(),
                values.as_ref(),
                sink.as_ref(),
                gelu,
            )
            .unwrap()
            .unwrap();
            let theirs =
                reference(x.as_tensor(), w.as_tensor(), bias, input, values.as_ref()).unwrap();
            let theirs = if gelu {
                theirs.gelu_erf().unwrap()
            } else {
                theirs
            };
            assert_eq!(ours.dims(), theirs.dims());
            assert!(max_diff(&ours, &theirs) < 1e-5, "{shape:?}");
            // A loss that weighs every output differently.
            let weights = Tensor::randn(0f32, 1.0, ours.shape(), &dev).unwrap();
            let g_ours = (&ours * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g_theirs = (&theirs * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let mut vars = vec![&x, &w];
            if with_bias {
                vars.push(&b);
            }
            for (i, v) in vars.into_iter().enumerate() {
                // With a sink, the parameters' gradients are taken from it
                // and the backward pass has none.
                let a = match &sink {
                    Some(sink) if i > 0 => {
                        assert!(g_ours.get(v.as_tensor()).is_none());
                        sink.take(v.as_tensor()).unwrap().unwrap()
                    }
                    _ => g_ours.get(v.as_tensor()).unwrap().clone(),
                };
                let e = g_theirs.get(v.as_tensor()).unwrap();
                assert_eq!(a.dims(), e.dims());
                assert!(max_diff(&a, e) < 1e-4, "{shape:?}: {}", max_diff(&a, e));
            }
            if !with_bias {
                assert!(g_ours.get(b.as_tensor()).is_none());
            }
        }
    }

    #[test]
    fn empty_inputs_and_other_devices_or_shapes() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap();
        let b = Tensor::new(&[1f32, 2.0, 3.0], &dev).unwrap();
        let empty = Tensor::zeros((0, 4), DType::F32, &dev).unwrap();
        let y = linear(&empty, &w, Some(&b), None, None, None, false)
            .unwrap()
            .unwrap();
        assert_eq!(y.dims(), &[0, 3]);
        let wrong = Tensor::zeros((2, 5), DType::F32, &dev).unwrap();
        assert!(linear(&wrong, &w, Some(&b), None, None, None, false)
            .unwrap()
            .is_none());
        let f64x = Tensor::zeros((2, 4), DType::F64, &dev).unwrap();
        assert!(linear(&f64x, &w, None, None, None, None, false)
            .unwrap()
            .is_none());
        assert!(linear(&empty, &w, Some(&w), None, None, None, false)
            .unwrap()
            .is_none());
        let short = Tensor::zeros((3, 3), DType::F32, &dev).unwrap();
        assert!(linear(&empty, &w, None, None, Some(&short), None, false)
            .unwrap()
            .is_none());
    }
}
