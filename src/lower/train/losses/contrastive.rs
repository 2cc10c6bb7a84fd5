//! Token-level contrastive distillation: InfoNCE of each real student
//! token against the teacher's tokens of the batch or a memory bank of them,
//! with other occurrences of the same token masked out.

use candle_core::{DType, Result, Tensor};

use super::inputs::{projected, LossInputs, LossState};
use super::math::{ce_rows, l2_normalize, real_token_index, rows_at};
use crate::base::Negatives;
use crate::runtime::ModelOutput;

/// Token-level contrastive distillation at student layer `layer`: InfoNCE
/// of each real token against the batch's teacher tokens (and the memory
/// bank, which it then grows), other occurrences of the same token hidden.
pub(super) fn contrastive(
    inputs: &LossInputs,
    t: &ModelOutput,
    state: &mut LossState,
    temperature: f64,
    negatives: &Negatives,
    layer: usize,
) -> Result<Tensor> {
    let s = inputs.student;
    let teacher_layer = match layer {
        0 => 0,
        l => inputs.layer_map.get(l - 1).copied().unwrap_or(l),
    };
    let (Some(hs), Some(ht)) = (
        s.hidden_states.get(layer),
        t.hidden_states.get(teacher_layer),
    ) else {
        candle_core::bail!("contrastive layer {layer} is out of range")
    };
    let index = real_token_index(inputs.mask)?;
    let zs = l2_normalize(&rows_at(&projected(state, layer, hs)?, &index)?)?;
    let zt = l2_normalize(&rows_at(ht, &index)?)?.detach();
    let ids = inputs.ids.flatten_all()?.index_select(&index, 0)?;
    let banked = match (&state.bank, &state.bank_ids, negatives) {
        (Some(bank), Some(bank_ids), Negatives::Memory(_)) if bank.dim(1)? == zt.dim(1)? => {
            Some((bank, bank_ids))
        }
        _ => None,
    };
    let (keys, key_ids) = match banked {
        Some((bank, bank_ids)) => (
            Tensor::cat(&[&zt, bank], 0)?,
            Tensor::cat(&[&ids, bank_ids], 0)?,
        ),
        None => (zt.clone(), ids.clone()),
    };
    // Token i's positive is the teacher's token i (column i).
    let logits = ((zs.matmul(&keys.t()?)? / temperature)? + same_token_mask(&ids, &key_ids)?)?;
    let n = zs.dim(0)?;
    let targets = Tensor::arange(0u32, n as u32, zs.device())?;
    if let Negatives::Memory(size) = negatives {
        let (grown, grown_ids) = match banked {
            Some((bank, bank_ids)) => (
                Tensor::cat(&[bank, &zt], 0)?,
                Tensor::cat(&[bank_ids, &ids], 0)?,
            ),
            None => (zt.clone(), ids.clone()),
        };
        let len = grown.dim(0)?;
        let keep = len.min(*size);
        state.bank = Some(grown.narrow(0, len - keep, keep)?);
        state.bank_ids = Some(grown_ids.narrow(0, len - keep, keep)?);
    }
    ce_rows(&logits, &targets)?.mean_all()
}

/// Additive logit mask `[n, m]` of the contrastive loss: −∞ (a large
/// negative) where key `j` is the same token type as query `i` but not its
/// own positive (`j == i`). Another occurrence of the same token is not a
/// negative: pushing a token away from itself would fight the positive.
fn same_token_mask(query_ids: &Tensor, key_ids: &Tensor) -> Result<Tensor> {
    let n = query_ids.dim(0)?;
    let same = query_ids
        .unsqueeze(1)?
        .broadcast_eq(&key_ids.unsqueeze(0)?)?
        .to_dtype(DType::F32)?;
    let m = key_ids.dim(0)?;
    let own = Tensor::eye(n, DType::F32, query_ids.device())?;
    let own = if m > n {
        Tensor::cat(
            &[&own, &Tensor::zeros((n, m - n), DType::F32, own.device())?],
            1,
        )?
    } else {
        own
    };
    (same - own)? * -1e4
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn same_token_mask_hides_other_occurrences_of_the_token_but_not_the_positive() {
        let dev = Device::Cpu;
        let queries = Tensor::new(&[7u32, 3, 7], &dev).unwrap();
        // Keys: the three queries' own teacher tokens, then a bank of two.
        let keys = Tensor::new(&[7u32, 3, 7, 3, 9], &dev).unwrap();
        let m: Vec<Vec<f32>> = same_token_mask(&queries, &keys).unwrap().to_vec2().unwrap();
        let hidden =
            |row: &[f32]| -> Vec<usize> { (0..row.len()).filter(|&j| row[j] < -1.0).collect() };
        assert_eq!(hidden(&m[0]), vec![2]);
        assert_eq!(hidden(&m[1]), vec![3]);
        assert_eq!(hidden(&m[2]), vec![0]);
    }
}
