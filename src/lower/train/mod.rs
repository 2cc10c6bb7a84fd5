//! Training: the `pretrain` stage (a teacher trained from scratch on text,
//! next-token cross-entropy; an encoder-decoder reconstructs text corrupted
//! by text infilling) and the distillation stages of the plan, run
//! with the recipe's optimizer, schedule, clipping and accumulation; a
//! progress report per stage; the loss log; crash-safe checkpoints every N
//! steps, every M minutes and at the end of each stage (see [`checkpoint`]);
//! resumption from any of them that reaches the same weights as an unbroken
//! run; and an evaluation of the student after each stage.
//!
//! With the environment variable `PLCC_DUMP_BATCHES=PATH` set, every
//! micro-batch a stage trains on is appended to `PATH` as one JSON line
//! `{"stage", "step", "micro", "ids"}` (`step` 1-based, `ids` the unpadded
//! token id rows), so that another trainer can replay exactly the same
//! batches (`scripts/train_pytorch.py`).

pub mod batches;
pub mod budget;
pub mod checkpoint;
pub mod distill;
pub mod evaluation;
pub mod fake_quant;
pub mod log;
pub mod losses;
pub mod optim;
pub mod plot;
pub mod session;
pub mod sparse_rows;
mod stage;
pub mod step;
pub mod student_net;

pub use session::Session;
pub use stage::run_stage;

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::diag::Diag;
use crate::eval::fidelity::Fidelity;
use crate::eval::report::{StageEval, StageTotals};
use crate::ir::StagePlan;
use crate::runtime::LoadedModel;
use crate::text::data::Example;
use evaluation::{Best, EvalData};
use losses::LossState;
use optim::{Optimizer, Param};
use student_net::TrainableNet;

/// A training failure inside candle (a bug or an impossible shape).
pub fn train_error(e: impl std::fmt::Display) -> Diag {
    Diag::new(
        "plcc::train::failed",
        "a tensor operation failed during training",
    )
    .note(e.to_string())
}

/// One stage to run.
pub struct StageJob<'a> {
    pub index: usize,
    pub plan: &'a StagePlan,
    pub examples: &'a [Example],
    /// The teacher for distillation; `None` for pretraining.
    pub teacher: Option<&'a LoadedModel>,
    /// Student layer (1-based) → teacher layer (1-based).
    pub layer_map: Vec<usize>,
    /// Student layer (1-based) → kept teacher heads.
    pub kept_heads: BTreeMap<usize, Vec<usize>>,
    pub pad_id: u32,
    /// The student's tokenizer: batches are its ids.
    pub tokenizer: &'a crate::text::TextTokenizer,
    /// With a pruned vocabulary: the teacher id of each student id. The
    /// teacher then reads the student's pieces through it (the same tokens
    /// at the same positions, so every loss compares aligned tokens).
    pub teacher_ids: Option<&'a [u32]>,
    /// What the stage evaluates the student on (`eval_every`); `None` for
    /// pretraining.
    pub eval: Option<EvalData<'a>>,
    /// The evaluation of the weights the stage starts from (before training,
    /// or the previous stage's): with `keep: best` they are a candidate too.
    pub start_eval: Option<&'a Fidelity>,
}

/// A finished stage: its totals, and the evaluation of the weights it hands
/// on when it measured them (`eval_every`).
pub struct StageOutcome {
    pub totals: StageTotals,
    pub eval: Option<Fidelity>,
}

/// The name under which a checkpoint taken during a stage keeps that
/// stage's totals so far.
const PARTIAL: &str = "(partial)";

/// Sets every parameter to its value in a checkpoint's `state`.
fn restore_params(params: &[Param], state: &BTreeMap<String, Tensor>) -> Result<(), Diag> {
    for p in params {
        let saved = state.get(&param_key(&p.name)).ok_or_else(|| {
            Diag::new(
                "plcc::train::checkpoint",
                format!("the checkpoint lacks `{}`", p.name),
            )
            .help("the checkpoint does not belong to this build; build without --resume")
        })?;
        if saved.dims() != p.var.as_tensor().dims() {
            return Err(Diag::new(
                "plcc::train::checkpoint",
                format!(
                    "the checkpoint's `{}` has shape {}, the model's {}",
                    p.name,
                    crate::diag::shape_text(saved.dims()),
                    crate::diag::shape_text(p.var.as_tensor().dims())
                ),
            ));
        }
        p.var.set(saved).map_err(train_error)?;
    }
    Ok(())
}

/// Checkpoints the stage in the middle: the parameters, the best weights
/// kept, the optimizer moments, the memory bank, and the stage's totals so
/// far under [`PARTIAL`].
fn save(
    session: &mut Session,
    (params, opt, state): (&[Param], &Optimizer, &LossState),
    totals: &StageTotals,
    best: Option<&Best>,
) -> Result<(), Diag> {
    let mut tensors = param_state(params);
    tensors.extend(best.into_iter().flat_map(Best::state));
    for (k, v) in opt.state() {
        tensors.insert(format!("opt.{k}"), v);
    }
    if let (Some(b), Some(ids)) = (&state.bank, &state.bank_ids) {
        tensors.insert("bank".into(), b.clone());
        tensors.insert("bank_ids".into(), ids.clone());
    }
    let mut meta = session.meta.clone();
    meta.finished.retain(|t| t.name != PARTIAL);
    meta.finished.push(StageTotals {
        name: PARTIAL.into(),
        ..totals.clone()
    });
    checkpoint::save(
        &session.folder.checkpoints(),
        &meta,
        &tensors,
        session.teacher_tensors.as_ref(),
    )?;
    Ok(())
}

/// Records a finished stage (with its evaluation) and checkpoints it.
pub fn finish_stage(
    session: &mut Session,
    net: &TrainableNet,
    index: usize,
    totals: StageTotals,
    eval: Option<StageEval>,
) -> Result<(), Diag> {
    session.meta.finished.retain(|t| t.name != PARTIAL);
    session.meta.finished.push(totals.clone());
    session.meta.evaluations.extend(eval);
    session.meta.progress.stage = index;
    session.meta.progress.stage_name = totals.name.clone();
    session.meta.progress.step = totals.steps;
    session.meta.progress.stage_done = true;
    let state = param_state(&net.params());
    checkpoint::save(
        &session.folder.checkpoints(),
        &session.meta,
        &state,
        session.teacher_tensors.as_ref(),
    )?;
    Ok(())
}

/// The checkpoint tensor name of parameter `name`.
pub fn param_key(name: &str) -> String {
    format!("param.{name}")
}

/// The parameters as checkpoint tensors (`param.NAME`).
fn param_state(params: &[Param]) -> BTreeMap<String, Tensor> {
    params
        .iter()
        .map(|p| (param_key(&p.name), p.var.as_tensor().clone()))
        .collect()
}

/// Restores a finished stage's parameters from the resumed checkpoint into `net`.
pub fn restore_finished(session: &Session, net: &TrainableNet) -> Result<(), Diag> {
    let Some(ckpt) = &session.resume_from else {
        return Ok(());
    };
    for p in net.params() {
        if let Some(saved) = ckpt.state.get(&param_key(&p.name)) {
            p.var.set(saved).map_err(train_error)?;
        }
    }
    Ok(())
}
