//! Training checkpoints, crash-safe: each one is a complete directory
//! `step-NNNNNNNN/` (the trainable tensors and optimizer moments in
//! safetensors, a pretrained teacher's tensors when the recipe pretrains
//! one, and `meta.json`), assembled under a temporary name and renamed into
//! place; then the one-line file `latest` is replaced atomically to point at
//! it, and older checkpoints are removed. A process killed at any instant
//! leaves `latest` naming a complete checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::artifact::{write_file_atomic, StagedDir};
use crate::build::report::StageEval;
use crate::diag::Diag;

const STATE_FILE: &str = "state.safetensors";
const TEACHER_FILE: &str = "teacher.safetensors";
const META_FILE: &str = "meta.json";
const LATEST: &str = "latest";

/// Where training is: the stage (0 = pretrain when the recipe has one, then
/// the distillation stages in order) and the optimizer steps done in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: usize,
    pub stage_name: String,
    /// Optimizer steps completed in `stage` (its total when it finished).
    pub step: usize,
    /// Steps completed over all stages.
    pub global_step: usize,
    pub stage_done: bool,
}

/// Everything besides tensors a resumed run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub recipe_sha256: String,
    pub max_steps: Option<usize>,
    pub progress: Progress,
    /// Evaluations so far (before training and after each finished stage).
    pub evaluations: Vec<StageEval>,
    /// Seconds and tokens of finished stages, by stage.
    pub finished: Vec<StageTotals>,
}

/// What one finished stage did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTotals {
    pub name: String,
    pub steps: usize,
    pub tokens: usize,
    pub seconds: f64,
    pub final_loss: f64,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub meta: Meta,
    pub state: BTreeMap<String, Tensor>,
    pub teacher: Option<HashMap<String, Tensor>>,
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> Diag {
    Diag::new(
        "plcc::train::checkpoint",
        format!("cannot {what} `{}`", path.display()),
    )
    .note(e.to_string())
}

/// Writes a checkpoint into `dir` and makes it the latest.
pub fn save(
    dir: &Path,
    meta: &Meta,
    state: &BTreeMap<String, Tensor>,
    teacher: Option<&HashMap<String, Tensor>>,
) -> Result<PathBuf, Diag> {
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let name = format!(
        "step-{:08}-{}",
        meta.progress.global_step, meta.progress.stage
    );
    let target = dir.join(&name);
    let staged = StagedDir::begin(&target)?;
    let state_map: HashMap<String, Tensor> =
        state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    candle_core::safetensors::save(&state_map, staged.path().join(STATE_FILE))
        .map_err(|e| io("write", &staged.path().join(STATE_FILE), e))?;
    if let Some(t) = teacher {
        candle_core::safetensors::save(t, staged.path().join(TEACHER_FILE))
            .map_err(|e| io("write", &staged.path().join(TEACHER_FILE), e))?;
    }
    let json = serde_json::to_vec_pretty(meta).map_err(|e| io("encode", &target, e))?;
    staged.write(META_FILE, &json)?;
    staged.commit()?;
    write_file_atomic(&dir.join(LATEST), name.as_bytes())?;
    // Older checkpoints are no longer needed once `latest` moved on.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("step-") && n != name && e.path().is_dir() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(target)
}

/// Loads the latest checkpoint of `dir`, or `None` when there is none.
pub fn load_latest(dir: &Path, device: &Device) -> Result<Option<Checkpoint>, Diag> {
    let latest = dir.join(LATEST);
    let Ok(name) = std::fs::read_to_string(&latest) else {
        return Ok(None);
    };
    let ckpt = dir.join(name.trim());
    let meta_path = ckpt.join(META_FILE);
    let meta: Meta =
        serde_json::from_slice(&std::fs::read(&meta_path).map_err(|e| io("read", &meta_path, e))?)
            .map_err(|e| io("parse", &meta_path, e))?;
    let state_path = ckpt.join(STATE_FILE);
    let state = candle_core::safetensors::load(&state_path, device)
        .map_err(|e| io("read", &state_path, e))?
        .into_iter()
        .collect();
    let teacher_path = ckpt.join(TEACHER_FILE);
    let teacher = if teacher_path.is_file() {
        Some(
            candle_core::safetensors::load(&teacher_path, device)
                .map_err(|e| io("read", &teacher_path, e))?,
        )
    } else {
        None
    };
    Ok(Some(Checkpoint {
        meta,
        state,
        teacher,
    }))
}
