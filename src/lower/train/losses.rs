//! The distillation losses of the three methods, computed from one batch's
//! student outputs (with gradient) and teacher outputs (without):
//! logit KL with temperature (T² scaled) at the final layer and at every
//! exit, task cross-entropy, hidden-state MSE through a layer map with
//! learned projections where widths differ, attention KL / MSE with pruned
//! heads mapped to the teacher heads they were kept from, token-level
//! contrastive distillation (InfoNCE over the batch's tokens or a memory
//! bank of teacher token representations), and a cosine loss on sentence
//! embeddings (final layer and every exit).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::ops::log_softmax;

use crate::base::Pooling;
use crate::base::{ExitScope, Negatives};
use crate::ir::{LayerPair, LossPlanKind};
use crate::runtime::model::heads::pool;
use crate::runtime::{Linear, ModelOutput};

/// What the losses need besides the two models' outputs.
pub struct LossInputs<'a> {
    /// `[batch, seq]` u32 real-token mask.
    pub mask: &'a Tensor,
    /// `[batch]` u32 class labels (classification) when the data has them.
    pub labels: Option<&'a Tensor>,
    /// `[batch, seq]` u32 token ids (next-token targets of causal LMs).
    pub ids: &'a Tensor,
    /// Sentence pooling of the task.
    pub pooling: Pooling,
    /// Student outputs; `exits` holds the exit heads' outputs, then the task
    /// head's when the model has one.
    pub student: &'a ModelOutput,
    pub teacher: Option<&'a ModelOutput>,
    /// Number of exit heads (before the task head) in `student.exits`.
    pub n_exits: usize,
    pub has_task_head: bool,
    /// Teacher task-head logits (classification).
    pub teacher_logits: Option<&'a Tensor>,
    /// Student layer (1-based) → teacher layer (1-based) it was taken from.
    pub layer_map: &'a [usize],
    /// Student layer (1-based) → kept teacher head indices.
    pub kept_heads: &'a BTreeMap<usize, Vec<usize>>,
}

/// Learned state of the losses: hidden-state projections and the
/// contrastive memory bank.
pub struct LossState {
    /// `proj.{student_layer}` → `[teacher_hidden, student_hidden]`.
    pub projections: BTreeMap<String, Var>,
    /// Recent teacher token representations (normalised), newest last.
    pub bank: Option<Tensor>,
    /// The token id of every row of `bank` (u32).
    pub bank_ids: Option<Tensor>,
}

impl LossState {
    /// Creates a projection for every hidden pair whose widths differ,
    /// initialised to the (rectangular) identity.
    pub fn new(
        kinds: &[&LossPlanKind],
        student_hidden: usize,
        teacher_hidden: usize,
        device: &Device,
    ) -> Result<Self> {
        let mut projections = BTreeMap::new();
        for kind in kinds {
            let pairs: &[LayerPair] = match kind {
                LossPlanKind::HiddenMse { pairs } => pairs,
                _ => continue,
            };
            for p in pairs.iter().filter(|p| p.projection) {
                let eye = Tensor::eye(teacher_hidden.max(student_hidden), DType::F32, device)?
                    .narrow(0, 0, teacher_hidden)?
                    .narrow(1, 0, student_hidden)?
                    .contiguous()?;
                projections
                    .entry(format!("proj.{}", p.student))
                    .or_insert(Var::from_tensor(&eye)?);
            }
        }
        Ok(LossState {
            projections,
            bank: None,
            bank_ids: None,
        })
    }
}

/// Mean over real tokens of a per-token quantity `[batch, seq]`.
fn masked_mean(per_token: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?;
    let total = (per_token * &m)?.sum_all()?;
    total / m.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64
}

/// KL(teacher ‖ student) of logits `[.., classes]` with temperature `t`,
/// scaled by t², per row.
fn kl_rows(student: &Tensor, teacher: &Tensor, t: f64) -> Result<Tensor> {
    let ls = log_softmax(&(student / t)?, D::Minus1)?;
    let lt = log_softmax(&(teacher / t)?, D::Minus1)?;
    let pt = lt.exp()?;
    (pt * (lt - ls)?)?.sum(D::Minus1)? * (t * t)
}

/// Cross-entropy of logits `[n, classes]` against `targets` `[n]` u32, per row.
fn ce_rows(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let ls = log_softmax(logits, D::Minus1)?;
    ls.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()
}

/// 1 − cosine of `[batch, h]` rows, averaged.
fn cosine_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = (a * b)?.sum(D::Minus1)?;
    let na = a.sqr()?.sum(D::Minus1)?.sqrt()?;
    let nb = b.sqr()?.sum(D::Minus1)?.sqrt()?;
    let cos = (dot / ((na * nb)? + 1e-8)?)?;
    (1.0 - cos)?.mean_all()
}

fn l2_normalize(x: &Tensor) -> Result<Tensor> {
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
fn rows_at(x: &Tensor, index: &Tensor) -> Result<Tensor> {
    let (b, s, h) = x.dims3()?;
    x.reshape((b * s, h))?.index_select(index, 0)
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

/// The student layer's hidden state mapped into the teacher's width.
fn projected(state: &LossState, layer: usize, h: &Tensor) -> Result<Tensor> {
    match state.projections.get(&format!("proj.{layer}")) {
        Some(p) => Linear::from_weights(p.as_tensor().clone(), None).forward(h),
        None => Ok(h.clone()),
    }
}

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

fn attention_loss(
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

/// Computes one loss term. Returns `None` where the term does not apply
/// (e.g. task cross-entropy on unlabelled data).
pub fn loss_term(
    kind: &LossPlanKind,
    inputs: &LossInputs,
    state: &mut LossState,
) -> Result<Option<Tensor>> {
    let s = inputs.student;
    let need_teacher = || {
        inputs.teacher.ok_or_else(|| {
            candle_core::Error::Msg(format!("the `{}` loss needs a teacher", kind.name()))
        })
    };
    let exits = &s.exits[..inputs.n_exits];
    let task_logits = if inputs.has_task_head {
        s.exits.get(inputs.n_exits)
    } else {
        None
    };
    Ok(Some(match kind {
        LossPlanKind::LogitKl { temperature, over } => {
            let t = need_teacher()?;
            if let (Some(sl), Some(tl)) = (&s.logits, &t.logits) {
                // Causal LM: every position.
                let per_token = kl_rows(sl, tl, *temperature)?;
                masked_mean(&per_token, inputs.mask)?
            } else {
                let Some(tl) = inputs.teacher_logits else {
                    return Ok(None);
                };
                let mut terms = Vec::new();
                if let Some(sl) = task_logits {
                    terms.push(kl_rows(sl, tl, *temperature)?.mean_all()?);
                }
                if *over == ExitScope::AllExits {
                    for e in exits {
                        terms.push(kl_rows(e, tl, *temperature)?.mean_all()?);
                    }
                }
                if terms.is_empty() {
                    return Ok(None);
                }
                let n = terms.len() as f64;
                (Tensor::stack(&terms, 0)?.sum_all()? / n)?
            }
        }
        LossPlanKind::TaskCe => {
            if let Some(sl) = &s.logits {
                // Next-token prediction: position i predicts token i + 1.
                let (b, seq, v) = sl.dims3()?;
                if seq < 2 {
                    return Ok(None);
                }
                let pred = sl.narrow(1, 0, seq - 1)?.reshape((b * (seq - 1), v))?;
                let targets = inputs.ids.narrow(1, 1, seq - 1)?.flatten_all()?;
                let m = inputs.mask.narrow(1, 1, seq - 1)?.reshape((b, seq - 1))?;
                let per = ce_rows(&pred, &targets)?.reshape((b, seq - 1))?;
                masked_mean(&per, &m)?
            } else {
                let (Some(labels), Some(sl)) = (inputs.labels, task_logits) else {
                    return Ok(None);
                };
                let mut terms = vec![ce_rows(sl, labels)?.mean_all()?];
                for e in exits.iter().filter(|e| e.dim(1).ok() == sl.dim(1).ok()) {
                    terms.push(ce_rows(e, labels)?.mean_all()?);
                }
                let n = terms.len() as f64;
                (Tensor::stack(&terms, 0)?.sum_all()? / n)?
            }
        }
        LossPlanKind::HiddenMse { pairs } => {
            let t = need_teacher()?;
            let mut total: Option<Tensor> = None;
            for p in pairs {
                let (Some(hs), Some(ht)) = (
                    s.hidden_states.get(p.student),
                    t.hidden_states.get(p.teacher),
                ) else {
                    candle_core::bail!("hidden pair {} -> {} is out of range", p.student, p.teacher)
                };
                let hs = projected(state, p.student, hs)?;
                let per_token = (hs - ht)?.sqr()?.mean(D::Minus1)?;
                let l = masked_mean(&per_token, inputs.mask)?;
                total = Some(match total {
                    Some(acc) => (acc + l)?,
                    None => l,
                });
            }
            match total {
                Some(t) => (t / pairs.len() as f64)?,
                None => return Ok(None),
            }
        }
        LossPlanKind::AttentionKl { pairs } => {
            attention_loss(pairs, inputs, need_teacher()?, true)?
        }
        LossPlanKind::AttentionMse { pairs } => {
            attention_loss(pairs, inputs, need_teacher()?, false)?
        }
        LossPlanKind::Contrastive {
            temperature,
            negatives,
            layer,
        } => {
            let t = need_teacher()?;
            let teacher_layer = match *layer {
                0 => 0,
                l => inputs.layer_map.get(l - 1).copied().unwrap_or(l),
            };
            let (Some(hs), Some(ht)) = (
                s.hidden_states.get(*layer),
                t.hidden_states.get(teacher_layer),
            ) else {
                candle_core::bail!("contrastive layer {layer} is out of range")
            };
            let index = real_token_index(inputs.mask)?;
            let zs = l2_normalize(&rows_at(&projected(state, *layer, hs)?, &index)?)?;
            let zt = l2_normalize(&rows_at(ht, &index)?)?.detach();
            let ids = inputs.ids.flatten_all()?.index_select(&index, 0)?;
            let banked = match (&state.bank, &state.bank_ids, negatives) {
                (Some(bank), Some(bank_ids), Negatives::Memory(_))
                    if bank.dim(1)? == zt.dim(1)? =>
                {
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
            let logits =
                ((zs.matmul(&keys.t()?)? / *temperature)? + same_token_mask(&ids, &key_ids)?)?;
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
            ce_rows(&logits, &targets)?.mean_all()?
        }
        LossPlanKind::Cosine => {
            let t = need_teacher()?;
            let target = pool(&t.last_hidden, inputs.mask, inputs.pooling)?;
            let student = pool(&s.last_hidden, inputs.mask, inputs.pooling)?;
            let mut terms = vec![cosine_loss(&student, &target)?];
            for e in exits.iter().filter(|e| e.dim(1).ok() == target.dim(1).ok()) {
                terms.push(cosine_loss(e, &target)?);
            }
            let n = terms.len() as f64;
            (Tensor::stack(&terms, 0)?.sum_all()? / n)?
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
