//! Each fused training operation against candle's autograd on the composite
//! form it replaces (`layers`): values and every gradient, on odd shapes,
//! padded and causal masks, and a whole encoder layer.

use candle_core::{Device, Result, Tensor, Var};

use super::{attention, gelu, layer_norm};
use crate::base::{Activation, LayerShape};
use crate::runtime::model::bert::BertLayer;
use crate::runtime::model::layers::{
    attention as composite_attention, AttentionMask, LayerNorm, Mode,
};
use crate::runtime::model::linear::Linear;

/// Relative tolerance, against the largest magnitude of the expected tensor.
const TOLERANCE: f32 = 1e-5;

fn randn(shape: &[usize], seed: u64) -> Var {
    // A seeded generator, so a failure reproduces.
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
        })
        .collect();
    Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu).unwrap()).unwrap()
}

fn magnitude(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts `got` is within [`TOLERANCE`] of `want`, relative to `want`'s
/// largest magnitude or to `floor`, whichever is larger.
#[track_caller]
fn assert_close(got: &Tensor, want: &Tensor, floor: f32, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    let scale = magnitude(want).max(floor).max(1e-6);
    let diff = magnitude(&(got - want).unwrap());
    assert!(
        diff <= TOLERANCE * scale,
        "{what}: max difference {diff} against magnitude {scale}"
    );
}

/// `Σ out·weights` for fixed random weights, so every output element's
/// gradient differs.
fn weighted_sum(outs: &[&Tensor], seed: u64) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (i, out) in outs.iter().enumerate() {
        let w = randn(out.dims(), seed + i as u64);
        let term = (*out * w.as_tensor()).unwrap().sum_all().unwrap();
        total = Some(match total {
            Some(t) => (t + term).unwrap(),
            None => term,
        });
    }
    total.unwrap()
}

/// Values and the gradients of `inputs` of `fused` and `composite`, each
/// given the same inputs, compared.
fn check_against_composite(
    inputs: &[Var],
    fused: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    composite: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    what: &str,
) {
    let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let got = fused(&ts).unwrap();
    let want = composite(&ts).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(g, w, 0.0, &format!("{what}: output {i}"));
    }
    let got_grads = weighted_sum(&got.iter().collect::<Vec<_>>(), 7)
        .backward()
        .unwrap();
    let want_grads = weighted_sum(&want.iter().collect::<Vec<_>>(), 7)
        .backward()
        .unwrap();
    let grads: Vec<(&Tensor, &Tensor)> = inputs
        .iter()
        .map(|v| {
            let g = got_grads.get(v.as_tensor()).expect("fused gradient");
            (
                g,
                want_grads.get(v.as_tensor()).expect("composite gradient"),
            )
        })
        .collect();
    // A gradient that is zero in exact arithmetic (a key projection's bias:
    // softmax ignores a constant added to every score) is rounding noise in
    // both forms; it is held to 1% of the largest gradient.
    let largest = grads.iter().map(|(_, w)| magnitude(w)).fold(0f32, f32::max);
    for (i, (g, w)) in grads.into_iter().enumerate() {
        assert_close(
            g,
            w,
            0.01 * largest,
            &format!("{what}: gradient of input {i}"),
        );
    }
}

fn check_attention(mask: &AttentionMask, batch: usize, queries: usize, keys: usize, seed: u64) {
    let (heads, head_dim) = (3, 5);
    let width = heads * head_dim;
    let inputs = [
        randn(&[batch, queries, width], seed),
        randn(&[batch, keys, width], seed + 1),
        randn(&[batch, keys, width], seed + 2),
    ];
    let what = format!("attention {batch}x{queries}x{keys}, causal {}", mask.causal);
    check_against_composite(
        &inputs,
        |t| {
            let (ctx, probs) =
                attention::attention(&t[0], &t[1], &t[2], &mask.keys, heads, head_dim)?;
            Ok(vec![ctx, probs])
        },
        |t| {
            let (ctx, probs) = composite_attention(
                &t[0],
                &t[1],
                &t[2],
                &mask.bias,
                heads,
                head_dim,
                Mode::Training,
                true,
            )?;
            Ok(vec![ctx, probs.unwrap()])
        },
        &what,
    );
}

fn padding_mask(rows: &[&[u32]]) -> Tensor {
    Tensor::new(rows.to_vec().concat(), &Device::Cpu)
        .unwrap()
        .reshape((rows.len(), rows[0].len()))
        .unwrap()
}

#[test]
fn attention_matches_composite_with_padding() {
    let mask = padding_mask(&[
        &[1, 1, 1, 1, 1, 1, 1],
        &[1, 1, 1, 0, 0, 0, 0],
        &[1, 0, 1, 1, 0, 1, 0],
    ]);
    check_attention(&AttentionMask::new(&mask, false).unwrap(), 3, 7, 7, 11);
}

#[test]
fn attention_matches_composite_causal() {
    let mask = padding_mask(&[&[1, 1, 1, 1, 1], &[1, 1, 1, 0, 0]]);
    check_attention(&AttentionMask::new(&mask, true).unwrap(), 2, 5, 5, 21);
}

#[test]
fn cross_attention_matches_composite() {
    let mask = padding_mask(&[&[1, 1, 1, 1, 1, 1], &[1, 1, 0, 0, 0, 0]]);
    check_attention(&AttentionMask::keys(&mask).unwrap(), 2, 4, 6, 31);
}

#[test]
fn attention_rejects_a_mask_of_another_batch() {
    let mask = AttentionMask::new(&padding_mask(&[&[1, 1, 1]]), false).unwrap();
    let q = randn(&[2, 3, 6], 1);
    let err = attention::attention(
        q.as_tensor(),
        q.as_tensor(),
        q.as_tensor(),
        &mask.keys,
        2,
        3,
    );
    assert!(err.is_err());
}

#[test]
fn layer_norm_matches_composite() {
    let inputs = [randn(&[3, 5, 37], 41), randn(&[37], 42), randn(&[37], 43)];
    check_against_composite(
        &inputs,
        |t| Ok(vec![layer_norm::layer_norm(&t[0], &t[1], &t[2], 1e-12)?]),
        |t| {
            let ln = LayerNorm {
                weight: t[1].clone(),
                bias: t[2].clone(),
                eps: 1e-12,
            };
            Ok(vec![ln.forward_composite(&t[0])?])
        },
        "layer norm",
    );
}

#[test]
fn gelu_matches_candle() {
    let x = randn(&[3, 129], 51);
    // Magnitudes out to ±6 reach the flat tails.
    let wide = Var::from_tensor(&(x.as_tensor() * 4.0).unwrap()).unwrap();
    check_against_composite(
        &[wide],
        |t| Ok(vec![gelu::gelu_erf(&t[0])?]),
        |t| Ok(vec![t[0].gelu_erf()?]),
        "gelu",
    );
}

fn linear(out: usize, inp: usize, seed: u64) -> (Linear, Vec<Var>) {
    let w = randn(&[out, inp], seed);
    let w_scaled = Var::from_tensor(&(w.as_tensor() * 0.3).unwrap()).unwrap();
    let b = randn(&[out], seed + 1);
    let lin = Linear::from_weights(w_scaled.as_tensor().clone(), Some(b.as_tensor().clone()));
    (lin, vec![w_scaled, b])
}

/// An encoder layer with random weights, and its variables.
fn random_layer(hidden: usize, shape: LayerShape) -> (BertLayer, Vec<Var>) {
    let inner = shape.heads * shape.head_dim;
    let mut vars = Vec::new();
    let mut lin = |out, inp, seed| {
        let (l, v) = linear(out, inp, seed);
        vars.extend(v);
        l
    };
    let (query, key, value) = (
        lin(inner, hidden, 1),
        lin(inner, hidden, 3),
        lin(inner, hidden, 5),
    );
    let attn_out = lin(hidden, inner, 7);
    let (ffn_in, ffn_out) = (lin(shape.ffn, hidden, 9), lin(hidden, shape.ffn, 11));
    let mut norm = |seed| {
        let (w, b) = (randn(&[hidden], seed), randn(&[hidden], seed + 1));
        let ln = LayerNorm {
            weight: w.as_tensor().clone(),
            bias: b.as_tensor().clone(),
            eps: 1e-12,
        };
        vars.extend([w, b]);
        ln
    };
    let (attn_norm, ffn_norm) = (norm(13), norm(15));
    let layer = BertLayer {
        shape,
        query,
        key,
        value,
        attn_out,
        attn_norm,
        ffn_in,
        ffn_out,
        ffn_norm,
        activation: Activation::Gelu,
        qkv: None,
    };
    (layer, vars)
}

/// The layer's forward pass written with the composite forms.
fn composite_layer(layer: &BertLayer, x: &Tensor, mask: &AttentionMask) -> Result<Vec<Tensor>> {
    let s = layer.shape;
    let (q, k, v) = (
        layer.query.forward(x)?,
        layer.key.forward(x)?,
        layer.value.forward(x)?,
    );
    let (ctx, probs) = composite_attention(
        &q,
        &k,
        &v,
        &mask.bias,
        s.heads,
        s.head_dim,
        Mode::Training,
        true,
    )?;
    let h = (layer.attn_out.forward(&ctx)? + x)?;
    let h = layer.attn_norm.forward_composite(&h)?;
    let f = layer
        .ffn_out
        .forward(&layer.ffn_in.forward(&h)?.gelu_erf()?)?;
    let out = layer.ffn_norm.forward_composite(&(f + &h)?)?;
    Ok(vec![out, probs.unwrap()])
}

#[test]
fn encoder_layer_gradients_match_composite() {
    let (hidden, shape) = (
        12,
        LayerShape {
            heads: 2,
            head_dim: 5,
            ffn: 19,
        },
    );
    let (layer, mut vars) = random_layer(hidden, shape);
    vars.insert(0, randn(&[2, 6, hidden], 61));
    let mask = AttentionMask::new(
        &padding_mask(&[&[1, 1, 1, 1, 1, 1], &[1, 1, 1, 1, 0, 0]]),
        false,
    )
    .unwrap();
    check_against_composite(
        &vars,
        |t| {
            let (out, probs) = layer.forward(&t[0], &mask, Mode::Training, true)?;
            Ok(vec![out, probs.unwrap()])
        },
        |t| composite_layer(&layer, &t[0], &mask),
        "encoder layer",
    );
}
