//! The attention losses (KL or MSE between attention maps), with pruned
//! heads mapped to the teacher heads they were kept from.

use candle_core::{DType, Result, Tensor, D};

use super::inputs::LossInputs;
use crate::ir::LayerPair;
use crate::runtime::ModelOutput;

/// Attention maps of one pair, made comparable: teacher heads selected by
/// the kept indices, or both averaged over heads.
fn attention_pair(
    s: &Tensor,
    t: &Tensor,
    pair: &LayerPair,
    inputs: &LossInputs,
) -> Result<(Tensor, Tensor)> {
    let (sh, th) = (s.dim(1)?, t.dim(1)?);
    if sh == th {
        return Ok((s.clone(), t.clone()));
    }
    if inputs.layer_map.get(pair.student.wrapping_sub(1)) == Some(&pair.teacher) {
        if let Some(kept) = inputs
            .kept_heads
            .get(&pair.student)
            .filter(|k| k.len() == sh)
        {
            let idx: Vec<u32> = kept.iter().map(|&k| k as u32).collect();
            let idx = Tensor::from_vec(idx, sh, t.device())?;
            return Ok((s.clone(), t.index_select(&idx, 1)?));
        }
    }
    Ok((s.mean_keepdim(1)?, t.mean_keepdim(1)?))
}

/// The query mask `[batch, 1, seq]` broadcast over heads.
fn query_mask(mask: &Tensor) -> Result<Tensor> {
    mask.to_dtype(DType::F32)?.unsqueeze(1)
}

pub(super) fn attention_loss(
    pairs: &[LayerPair],
    inputs: &LossInputs,
    teacher: &ModelOutput,
    kl: bool,
) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for pair in pairs {
        let (Some(s), Some(t)) = (
            inputs.student.attentions.get(pair.student - 1),
            teacher.attentions.get(pair.teacher - 1),
        ) else {
            candle_core::bail!(
                "attention pair {} -> {} has no attention maps",
                pair.student,
                pair.teacher
            )
        };
        let (s, t) = attention_pair(s, t, pair, inputs)?;
        let per_query = if kl {
            let ls = (s + 1e-8)?.log()?;
            let lt = (&t + 1e-8)?.log()?;
            (t * (lt - ls)?)?.sum(D::Minus1)?
        } else {
            (s - t)?.sqr()?.mean(D::Minus1)?
        };
        // [batch, heads, seq] masked by the query's reality.
        let qm = query_mask(inputs.mask)?;
        let heads = per_query.dim(1)? as f64;
        let l = (per_query.broadcast_mul(&qm)?.sum_all()?
            / (qm.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64 * heads))?;
        total = Some(match total {
            Some(acc) => (acc + l)?,
            None => l,
        });
    }
    match total {
        Some(t) => t / pairs.len() as f64,
        None => Tensor::new(0f32, inputs.mask.device()),
    }
}
