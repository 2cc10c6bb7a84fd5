//! A reference evaluator for the ONNX graphs plcc exports, for tests: every
//! value is an f64 candle tensor (integers of the int8, int32 and int64
//! tensors are exact in f64), each operator as the ONNX specification
//! defines it (ONNX Runtime's contrib `MatMulNBits` as its operator
//! documentation does), for the operators and attributes the exporter writes.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};
use plcc::export::onnx::proto::{data_type, AttributeProto, ModelProto, NodeProto, TensorProto};

fn initializer(t: &TensorProto) -> Tensor {
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let raw = &t.raw_data;
    let values: Vec<f64> = match t.data_type {
        data_type::FLOAT => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        data_type::INT8 => raw.iter().map(|&b| b as i8 as f64).collect(),
        data_type::INT4 => {
            let n: usize = dims.iter().product();
            let nibble = |b: u8| (((b << 4) as i8) >> 4) as f64;
            (0..n)
                .map(|i| {
                    let b = raw[i / 2];
                    nibble(if i % 2 == 0 { b } else { b >> 4 })
                })
                .collect()
        }
        data_type::UINT8 => raw.iter().map(|&b| b as f64).collect(),
        data_type::INT64 => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("initializer `{}` has data type {other}", t.name),
    };
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int_attr(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn axis(a: i64, rank: usize) -> usize {
    if a < 0 {
        (rank as i64 + a) as usize
    } else {
        a as usize
    }
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .iter()
        .map(|&v| v as i64)
        .collect()
}

fn broadcast(op: &str, a: &Tensor, b: &Tensor) -> Tensor {
    match op {
        "Add" => a.broadcast_add(b),
        "Sub" => a.broadcast_sub(b),
        "Mul" => a.broadcast_mul(b),
        "Div" => a.broadcast_div(b),
        "Max" => a.broadcast_maximum(b),
        _ => unreachable!(),
    }
    .unwrap()
}

/// Round half to even.
fn round_even(t: &Tensor) -> Tensor {
    let v: Vec<f64> = t.flatten_all().unwrap().to_vec1().unwrap();
    let r: Vec<f64> = v.iter().map(|x| x.round_ties_even()).collect();
    Tensor::from_vec(r, t.dims(), &Device::Cpu).unwrap()
}

fn reshape(x: &Tensor, spec: &[i64]) -> Tensor {
    let mut dims: Vec<usize> = spec
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if d == 0 {
                x.dims()[i]
            } else {
                d.max(1) as usize
            }
        })
        .collect();
    if let Some(free) = spec.iter().position(|&d| d == -1) {
        let known: usize = dims
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != free)
            .map(|(_, d)| d)
            .product();
        dims[free] = x.elem_count() / known;
    }
    x.reshape(dims).unwrap()
}

fn run_node(node: &NodeProto, inputs: &[Tensor]) -> Tensor {
    let x = &inputs[0];
    match node.op_type.as_str() {
        "Identity" | "Cast" => x.clone(),
        "Add" | "Sub" | "Mul" | "Div" | "Max" => broadcast(&node.op_type, x, &inputs[1]),
        "Abs" => x.abs().unwrap(),
        "Erf" => x.erf().unwrap(),
        "Tanh" => x.tanh().unwrap(),
        "Sqrt" => x.sqrt().unwrap(),
        "Floor" => x.floor().unwrap(),
        "Sign" => {
            let pos = x.gt(0.0).unwrap().to_dtype(DType::F64).unwrap();
            let neg = x.lt(0.0).unwrap().to_dtype(DType::F64).unwrap();
            (pos - neg).unwrap()
        }
        "Relu" => x.relu().unwrap(),
        "Round" => round_even(x),
        "Clip" => x
            .broadcast_maximum(&inputs[1])
            .unwrap()
            .broadcast_minimum(&inputs[2])
            .unwrap(),
        "MatMul" | "MatMulInteger" => x.broadcast_matmul(&inputs[1]).unwrap(),
        "Gather" => {
            let a = axis(int_attr(node, "axis", 0), x.rank());
            let idx = &inputs[1];
            let flat: Vec<u32> = ints(idx).iter().map(|&i| i as u32).collect();
            let picked = x
                .index_select(&Tensor::new(flat, &Device::Cpu).unwrap(), a)
                .unwrap();
            let mut dims = x.dims()[..a].to_vec();
            dims.extend_from_slice(idx.dims());
            dims.extend_from_slice(&x.dims()[a + 1..]);
            picked.reshape(dims).unwrap()
        }
        "Reshape" => reshape(x, &ints(&inputs[1])),
        "DequantizeLinear" => {
            let a = axis(int_attr(node, "axis", 1), x.rank());
            let block = int_attr(node, "block_size", 0) as usize;
            let scale = &inputs[1];
            let scale = if block > 0 {
                // Each scale serves `block` consecutive values along `a`.
                let mut dims = scale.dims().to_vec();
                let repeated = scale.unsqueeze(a + 1).unwrap();
                dims[a] *= block;
                let mut rep_dims = repeated.dims().to_vec();
                rep_dims[a + 1] = block;
                repeated
                    .broadcast_as(rep_dims)
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .reshape(dims)
                    .unwrap()
            } else if scale.rank() == 1 && x.rank() > 1 {
                let mut dims = vec![1; x.rank()];
                dims[a] = scale.dims()[0];
                scale.reshape(dims).unwrap()
            } else {
                scale.clone()
            };
            x.broadcast_mul(&scale).unwrap()
        }
        "LessOrEqual" => {
            let d = inputs[1].broadcast_sub(x).unwrap();
            d.ge(0.0).unwrap().to_dtype(DType::F64).unwrap()
        }
        "Slice" => {
            let (start, end) = (ints(&inputs[1])[0], ints(&inputs[2])[0]);
            let a = axis(ints(&inputs[3])[0], x.rank());
            let end = (end as usize).min(x.dims()[a]);
            x.narrow(a, start as usize, end - start as usize).unwrap()
        }
        "Transpose" => {
            let perm: Vec<usize> = attr(node, "perm")
                .unwrap()
                .ints
                .iter()
                .map(|&p| p as usize)
                .collect();
            x.permute(perm).unwrap().contiguous().unwrap()
        }
        "Unsqueeze" => {
            let mut t = x.clone();
            let mut axes = ints(&inputs[1]);
            let rank = x.rank() + axes.len();
            axes.iter_mut().for_each(|a| *a = axis(*a, rank) as i64);
            axes.sort();
            for a in axes {
                t = t.unsqueeze(a as usize).unwrap();
            }
            t
        }
        "Squeeze" => {
            let mut axes: Vec<usize> = ints(&inputs[1])
                .iter()
                .map(|&a| axis(a, x.rank()))
                .collect();
            axes.sort();
            let mut t = x.clone();
            for a in axes.into_iter().rev() {
                t = t.squeeze(a).unwrap();
            }
            t
        }
        "Shape" => {
            let dims: Vec<f64> = x.dims().iter().map(|&d| d as f64).collect();
            Tensor::new(dims, &Device::Cpu).unwrap()
        }
        "Range" => {
            let (s, l, d) = (ints(x)[0], ints(&inputs[1])[0], ints(&inputs[2])[0]);
            let v: Vec<f64> = (s..l).step_by(d as usize).map(|v| v as f64).collect();
            Tensor::new(v, &Device::Cpu).unwrap()
        }
        "ReduceMax" => {
            let keep = int_attr(node, "keepdims", 1) == 1;
            match inputs.get(1).map(ints) {
                Some(a) => {
                    let ax = axis(a[0], x.rank());
                    if keep { x.max_keepdim(ax) } else { x.max(ax) }.unwrap()
                }
                None => x.flatten_all().unwrap().max(0).unwrap(),
            }
        }
        "ReduceSum" => {
            let ax = axis(ints(&inputs[1])[0], x.rank());
            let keep = int_attr(node, "keepdims", 1) == 1;
            if keep { x.sum_keepdim(ax) } else { x.sum(ax) }.unwrap()
        }
        "Softmax" => {
            let m = x.max_keepdim(D::Minus1).unwrap();
            let e = x.broadcast_sub(&m).unwrap().exp().unwrap();
            e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
        }
        "LayerNormalization" => {
            let eps = attr(node, "epsilon").map_or(1e-5, |a| a.f as f64);
            let mean = x.mean_keepdim(D::Minus1).unwrap();
            let c = x.broadcast_sub(&mean).unwrap();
            let var = c.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let n = c
                .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
                .unwrap();
            n.broadcast_mul(&inputs[1])
                .unwrap()
                .broadcast_add(&inputs[2])
                .unwrap()
        }
        other => panic!("the reference evaluator has no `{other}`"),
    }
}

/// `com.microsoft` `MatMulNBits`: `A · dequant(B)^T + bias`. `B` is uint8
/// `[N, k_blocks, block_size · bits / 8]`, each row's codes along K packed
/// low bits first; a code `c` of block `b` of row `n` is
/// `(c − zero_point) · scales[n, b]`, the zero point `2^(bits − 1)` when
/// none is given. Codes past K (a last block's padding) are not read.
fn matmul_nbits(node: &NodeProto, inputs: &[Option<Tensor>]) -> Tensor {
    let given = |i: usize| inputs.get(i).and_then(Option::as_ref);
    let (a, b, scales) = (given(0).unwrap(), given(1).unwrap(), given(2).unwrap());
    assert!(given(3).is_none(), "plcc writes no zero points");
    assert!(given(4).is_none(), "plcc writes no g_idx");
    let k = int_attr(node, "K", 0) as usize;
    let n = int_attr(node, "N", 0) as usize;
    let bits = int_attr(node, "bits", 4) as usize;
    let block = int_attr(node, "block_size", 0) as usize;
    assert_eq!(bits, 4, "plcc writes 4-bit codes");
    assert!(block >= 16 && block.is_power_of_two(), "block_size {block}");
    let accuracy = int_attr(node, "accuracy_level", 0);
    assert!((0..=4).contains(&accuracy), "accuracy_level {accuracy}");
    let k_blocks = k.div_ceil(block);
    assert_eq!(
        b.dims(),
        [n, k_blocks, block * bits / 8],
        "B of `{}`",
        node.name
    );
    assert_eq!(
        scales.elem_count(),
        n * k_blocks,
        "scales of `{}`",
        node.name
    );
    assert_eq!(*a.dims().last().unwrap(), k, "A of `{}`", node.name);
    let codes: Vec<f64> = b.flatten_all().unwrap().to_vec1().unwrap();
    let scales: Vec<f64> = scales.flatten_all().unwrap().to_vec1().unwrap();
    let zero_point = (1u32 << (bits - 1)) as f64;
    let mut w = vec![0.0; n * k];
    for row in 0..n {
        for kk in 0..k {
            let (blk, within) = (kk / block, kk % block);
            let byte = codes[(row * k_blocks + blk) * (block / 2) + within / 2] as u8;
            let code = if within % 2 == 0 {
                byte & 0x0f
            } else {
                byte >> 4
            };
            w[row * k + kk] = (code as f64 - zero_point) * scales[row * k_blocks + blk];
        }
    }
    let w_t = Tensor::from_vec(w, (n, k), &Device::Cpu)
        .unwrap()
        .t()
        .unwrap()
        .contiguous()
        .unwrap();
    let y = a.broadcast_matmul(&w_t).unwrap();
    match given(5) {
        Some(bias) => y.broadcast_add(bias).unwrap(),
        None => y,
    }
}

/// Runs `model` on `feeds` (name → tensor) and returns every graph output by name.
pub fn evaluate(model: &ModelProto, feeds: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let graph = model.graph.as_ref().unwrap();
    let mut values: HashMap<String, Tensor> = feeds;
    for t in &graph.initializer {
        values.insert(t.name.clone(), initializer(t));
    }
    for node in &graph.node {
        // An empty name leaves an optional input out.
        let inputs: Vec<Option<Tensor>> = node
            .input
            .iter()
            .map(|n| {
                (!n.is_empty()).then(|| {
                    values
                        .get(n)
                        .unwrap_or_else(|| panic!("`{n}` is not computed before `{}`", node.name))
                        .clone()
                })
            })
            .collect();
        let out = match (node.domain.as_str(), node.op_type.as_str()) {
            ("com.microsoft", "MatMulNBits") => matmul_nbits(node, &inputs),
            ("", _) => {
                let given: Vec<Tensor> = inputs
                    .into_iter()
                    .map(|t| t.unwrap_or_else(|| panic!("`{}` lacks an input", node.name)))
                    .collect();
                run_node(node, &given)
            }
            (domain, op) => panic!("the reference evaluator has no `{op}` of `{domain}`"),
        };
        values.insert(node.output[0].clone(), out.to_dtype(DType::F64).unwrap());
    }
    graph
        .output
        .iter()
        .map(|o| (o.name.clone(), values[&o.name].clone()))
        .collect()
}

/// The batch of `lines` as the export's graph inputs (padded to the longest).
pub fn feeds(tokenizer: &std::path::Path, lines: &[&str]) -> HashMap<String, Tensor> {
    let mut tok = tokenizers::Tokenizer::from_file(tokenizer).unwrap();
    tok.with_padding(None);
    let enc = tok.encode_batch(lines.to_vec(), true).unwrap();
    let width = enc.iter().map(|e| e.get_ids().len()).max().unwrap();
    let mut inputs: HashMap<String, Vec<f64>> = HashMap::new();
    for e in &enc {
        let n = e.get_ids().len();
        let pad = |v: &[u32]| {
            v.iter()
                .map(|&x| x as f64)
                .chain(std::iter::repeat_n(0.0, width - n))
                .collect::<Vec<_>>()
        };
        inputs
            .entry("input_ids".into())
            .or_default()
            .extend(pad(e.get_ids()));
        inputs
            .entry("attention_mask".into())
            .or_default()
            .extend(pad(e.get_attention_mask()));
        inputs
            .entry("token_type_ids".into())
            .or_default()
            .extend(pad(e.get_type_ids()));
    }
    inputs
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                Tensor::from_vec(v, (lines.len(), width), &Device::Cpu).unwrap(),
            )
        })
        .collect()
}
