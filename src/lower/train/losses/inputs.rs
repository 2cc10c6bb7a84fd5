//! What the loss terms read besides the two models' outputs
//! ([`LossInputs`]), the state they learn (hidden-state projections and the
//! contrastive memory bank, [`LossState`]), and the projection of a student
//! layer's hidden state into the teacher's width.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor, Var};

use crate::base::Pooling;
use crate::ir::{LayerPair, LossPlanKind};
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
/// contrastive memory bank. A clone shares the projections' variables.
#[derive(Clone)]
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

/// The student layer's hidden state mapped into the teacher's width.
pub(super) fn projected(state: &LossState, layer: usize, h: &Tensor) -> Result<Tensor> {
    match state.projections.get(&format!("proj.{layer}")) {
        Some(p) => Linear::from_weights(p.as_tensor().clone(), None).forward(h),
        None => Ok(h.clone()),
    }
}
