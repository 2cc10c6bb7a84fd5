//! The tensor arithmetic the loss terms share: masked means, KL and
//! cross-entropy per row, the cosine loss, L2 normalisation and the rows of
//! the real tokens.

use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// Mean over real tokens of a per-token quantity `[batch, seq]`.
pub(super) fn masked_mean(per_token: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?;
    let total = (per_token * &m)?.sum_all()?;
    total / m.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64
}

/// KL(teacher ‖ student) of logits `[.., classes]` with temperature `t`,
/// scaled by t², per row.
pub(super) fn kl_rows(student: &Tensor, teacher: &Tensor, t: f64) -> Result<Tensor> {
    let ls = log_softmax(&(student / t)?, D::Minus1)?;
    let lt = log_softmax(&(teacher / t)?, D::Minus1)?;
    let pt = lt.exp()?;
    (pt * (lt - ls)?)?.sum(D::Minus1)? * (t * t)
}

/// Cross-entropy of logits `[n, classes]` against `targets` `[n]` u32, per row.
pub(super) fn ce_rows(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let ls = log_softmax(logits, D::Minus1)?;
    ls.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()
}

/// 1 − cosine of `[batch, h]` rows, averaged.
pub(super) fn cosine_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = (a * b)?.sum(D::Minus1)?;
    let na = a.sqr()?.sum(D::Minus1)?.sqrt()?;
    let nb = b.sqr()?.sum(D::Minus1)?.sqrt()?;
    let cos = (dot / ((na * nb)? + 1e-8)?)?;
    (1.0 - cos)?.mean_all()
}

pub(super) fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = (x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()? + 1e-8)?;
    x.broadcast_div(&n)
}

/// Flat indices of the real tokens of a `[batch, seq]` mask.
pub fn real_token_index(mask: &Tensor) -> Result<Tensor> {
    let flags: Vec<u32> = mask.flatten_all()?.to_vec1()?;
    let idx: Vec<u32> = flags
        .iter()
        .enumerate()
        .filter(|(_, &f)| f != 0)
        .map(|(i, _)| i as u32)
        .collect();
    Tensor::from_vec(idx.clone(), idx.len(), mask.device())
}

/// The rows of `[batch, seq, h]` at the flat token indices `index`, `[n, h]`.
pub(super) fn rows_at(x: &Tensor, index: &Tensor) -> Result<Tensor> {
    let (b, s, h) = x.dims3()?;
    x.reshape((b * s, h))?.index_select(index, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kl_of_equal_logits_is_zero_and_positive_otherwise() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1.0f32, 2.0, 0.5]], &dev).unwrap();
        let b = Tensor::new(&[[0.0f32, 2.0, 1.5]], &dev).unwrap();
        let same = kl_rows(&a, &a, 2.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = kl_rows(&a, &b, 2.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(same.abs() < 1e-6 && diff > 1e-3, "{same} {diff}");
    }

    #[test]
    fn cross_entropy_matches_log_softmax() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[0.0f32, 0.0], [3.0, 0.0]], &dev).unwrap();
        let targets = Tensor::new(&[1u32, 0], &dev).unwrap();
        let v: Vec<f32> = ce_rows(&logits, &targets).unwrap().to_vec1().unwrap();
        assert!((v[0] - std::f32::consts::LN_2).abs() < 1e-5);
        assert!((v[1] - (1.0 + (-3.0f32).exp()).ln()).abs() < 1e-5);
    }
}
