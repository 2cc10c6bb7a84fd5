//! The distillation losses of the three methods, computed from one batch's
//! student outputs (with gradient) and teacher outputs (without):
//! logit KL with temperature (T² scaled) at the final layer and at every
//! exit, task cross-entropy, hidden-state MSE through a layer map with
//! learned projections where widths differ, attention KL / MSE with pruned
//! heads mapped to the teacher heads they were kept from, token-level
//! contrastive distillation (InfoNCE over the batch's tokens or a memory
//! bank of teacher token representations), and a cosine loss on sentence
//! embeddings (final layer and every exit).

mod attention;
mod contrastive;
mod inputs;
mod math;

pub use inputs::{LossInputs, LossState};
pub use math::real_token_index;

use candle_core::{DType, Result, Tensor, D};

use crate::base::ExitScope;
use crate::ir::{LayerPair, LossPlanKind};
use crate::runtime::model::heads::pool;
use crate::runtime::ModelOutput;
use attention::attention_loss;
use contrastive::contrastive;
use inputs::projected;
use math::{ce_rows, cosine_loss, kl_rows, masked_mean};

/// Computes one loss term. Returns `None` where the term does not apply
/// (e.g. task cross-entropy on unlabelled data).
pub fn loss_term(
    kind: &LossPlanKind,
    inputs: &LossInputs,
    state: &mut LossState,
) -> Result<Option<Tensor>> {
    let need_teacher = || {
        inputs.teacher.ok_or_else(|| {
            candle_core::Error::Msg(format!("the `{}` loss needs a teacher", kind.name()))
        })
    };
    match kind {
        LossPlanKind::LogitKl { temperature, over } => {
            logit_kl(inputs, need_teacher()?, *temperature, *over)
        }
        LossPlanKind::TaskCe => task_ce(inputs),
        LossPlanKind::HiddenMse { pairs } => hidden_mse(pairs, inputs, need_teacher()?, state),
        LossPlanKind::AttentionKl { pairs } => {
            attention_loss(pairs, inputs, need_teacher()?, true).map(Some)
        }
        LossPlanKind::AttentionMse { pairs } => {
            attention_loss(pairs, inputs, need_teacher()?, false).map(Some)
        }
        LossPlanKind::Contrastive {
            temperature,
            negatives,
            layer,
        } => {
            let teacher = need_teacher()?;
            contrastive(inputs, teacher, state, *temperature, negatives, *layer).map(Some)
        }
        LossPlanKind::Cosine => cosine(inputs, need_teacher()?).map(Some),
    }
}

/// What a loss term is the mean of, so that a batch split into shards of
/// rows adds up to the batch's term: each shard's term weighted by its
/// share of the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeanOver {
    /// The real tokens (the output side's mask).
    Tokens,
    /// The real tokens that are next-token targets (all but each row's first).
    Targets,
    /// The rows (sentences, pairs).
    Rows,
}

impl MeanOver {
    /// What `kind` averages over; `token_logits` when the student computes
    /// logits at every position (a language model). `None` for a term that
    /// couples the batch's rows (contrastive in-batch negatives and memory
    /// bank): it is computed on the whole batch only.
    pub fn of(kind: &LossPlanKind, token_logits: bool) -> Option<MeanOver> {
        match kind {
            LossPlanKind::HiddenMse { .. }
            | LossPlanKind::AttentionKl { .. }
            | LossPlanKind::AttentionMse { .. } => Some(MeanOver::Tokens),
            LossPlanKind::LogitKl { .. } if token_logits => Some(MeanOver::Tokens),
            LossPlanKind::TaskCe if token_logits => Some(MeanOver::Targets),
            LossPlanKind::LogitKl { .. } | LossPlanKind::TaskCe | LossPlanKind::Cosine => {
                Some(MeanOver::Rows)
            }
            LossPlanKind::Contrastive { .. } => None,
        }
    }

    /// The count in the rows of `mask` (`[batch, seq]` u32).
    pub fn count(self, mask: &Tensor) -> Result<f64> {
        let (rows, seq) = mask.dims2()?;
        let sum = |m: &Tensor| -> Result<f64> {
            Ok(m.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64)
        };
        match self {
            MeanOver::Rows => Ok(rows as f64),
            MeanOver::Tokens => sum(mask),
            MeanOver::Targets if seq < 2 => Ok(0.0),
            MeanOver::Targets => sum(&mask.narrow(1, 1, seq - 1)?),
        }
    }
}

/// The student's exit-head outputs, and its task head's when it has one.
fn head_outputs<'a>(inputs: &LossInputs<'a>) -> (&'a [Tensor], Option<&'a Tensor>) {
    let s = inputs.student;
    let exits = &s.exits[..inputs.n_exits];
    let task_logits = if inputs.has_task_head {
        s.exits.get(inputs.n_exits)
    } else {
        None
    };
    (exits, task_logits)
}

/// The mean of scalar `terms`.
fn mean_of(terms: &[Tensor]) -> Result<Tensor> {
    let n = terms.len() as f64;
    Tensor::stack(terms, 0)?.sum_all()? / n
}

/// Logit KL: over every position of a language model, else between the
/// task heads (and, over all exits, each exit head and the teacher's head).
fn logit_kl(
    inputs: &LossInputs,
    t: &ModelOutput,
    temperature: f64,
    over: ExitScope,
) -> Result<Option<Tensor>> {
    let s = inputs.student;
    if let (Some(sl), Some(tl)) = (&s.logits, &t.logits) {
        // Causal LM: every position.
        let per_token = kl_rows(sl, tl, temperature)?;
        return masked_mean(&per_token, inputs.mask).map(Some);
    }
    let Some(tl) = inputs.teacher_logits else {
        return Ok(None);
    };
    let (exits, task_logits) = head_outputs(inputs);
    let mut terms = Vec::new();
    if let Some(sl) = task_logits {
        terms.push(kl_rows(sl, tl, temperature)?.mean_all()?);
    }
    if over == ExitScope::AllExits {
        for e in exits {
            terms.push(kl_rows(e, tl, temperature)?.mean_all()?);
        }
    }
    if terms.is_empty() {
        return Ok(None);
    }
    mean_of(&terms).map(Some)
}

/// Task cross-entropy: next-token prediction for a language model, else the
/// labels at the task head and every exit head of the same width.
fn task_ce(inputs: &LossInputs) -> Result<Option<Tensor>> {
    if let Some(sl) = &inputs.student.logits {
        // Next-token prediction: position i predicts token i + 1.
        let (b, seq, v) = sl.dims3()?;
        if seq < 2 {
            return Ok(None);
        }
        let pred = sl.narrow(1, 0, seq - 1)?.reshape((b * (seq - 1), v))?;
        let targets = inputs.ids.narrow(1, 1, seq - 1)?.flatten_all()?;
        let m = inputs.mask.narrow(1, 1, seq - 1)?.reshape((b, seq - 1))?;
        let per = ce_rows(&pred, &targets)?.reshape((b, seq - 1))?;
        return masked_mean(&per, &m).map(Some);
    }
    let (exits, task_logits) = head_outputs(inputs);
    let (Some(labels), Some(sl)) = (inputs.labels, task_logits) else {
        return Ok(None);
    };
    let mut terms = vec![ce_rows(sl, labels)?.mean_all()?];
    for e in exits.iter().filter(|e| e.dim(1).ok() == sl.dim(1).ok()) {
        terms.push(ce_rows(e, labels)?.mean_all()?);
    }
    mean_of(&terms).map(Some)
}

/// Hidden-state MSE over the layer pairs, the student's states projected
/// into the teacher's width.
fn hidden_mse(
    pairs: &[LayerPair],
    inputs: &LossInputs,
    t: &ModelOutput,
    state: &LossState,
) -> Result<Option<Tensor>> {
    let s = inputs.student;
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
        Some(t) => (t / pairs.len() as f64).map(Some),
        None => Ok(None),
    }
}

/// The cosine loss between the pooled sentence embeddings of student and
/// teacher, and of each exit head of the teacher's width.
fn cosine(inputs: &LossInputs, t: &ModelOutput) -> Result<Tensor> {
    let target = pool(&t.last_hidden, inputs.mask, inputs.pooling)?;
    let student = pool(&inputs.student.last_hidden, inputs.mask, inputs.pooling)?;
    let (exits, _) = head_outputs(inputs);
    let mut terms = vec![cosine_loss(&student, &target)?];
    for e in exits.iter().filter(|e| e.dim(1).ok() == target.dim(1).ok()) {
        terms.push(cosine_loss(e, &target)?);
    }
    mean_of(&terms)
}
