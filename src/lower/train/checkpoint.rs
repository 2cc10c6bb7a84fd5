//! Training checkpoints, crash-safe: each one is a complete directory
//! `step-NNNNNNNN-S/` (global step, stage index) holding the trainable
//! tensors and optimizer moments in safetensors, a pretrained teacher's
//! tensors when the recipe pretrains one, `meta.json`, and `sha256.json`
//! with the SHA-256 of each of those files. It is assembled under a
//! temporary name and renamed into place; then the one-line file `latest` is
//! replaced atomically to name it, and checkpoints older than the one
//! `latest` named before are removed. So the two newest complete checkpoints
//! are always on disk: when the latest one fails to load or its files do not
//! match their recorded checksums (truncated, altered), [`load_usable`]
//! falls back to the one before it and says why.
//!
//! Checkpoints are taken every `checkpoint_every` steps, at least every
//! `checkpoint_minutes` of training, and at the end of each stage. The
//! environment variable `PLCC_CHECKPOINT_SECONDS=S` replaces the minutes of
//! every stage with `S` seconds (`0`: after every step), which makes
//! time-based checkpoints deterministic for tests.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::artifact::output::{LATEST, STEP_PREFIX};
use crate::artifact::{write_file_atomic, StagedDir};
use crate::base::sha256_hex;
use crate::diag::Diag;
use crate::eval::report::{StageEval, StageTotals};
use crate::fault;

const STATE_FILE: &str = "state.safetensors";
const TEACHER_FILE: &str = "teacher.safetensors";
const META_FILE: &str = "meta.json";
const CHECKSUMS_FILE: &str = "sha256.json";
/// Overrides the checkpoint interval of every stage, in seconds.
pub const SECONDS_VAR: &str = "PLCC_CHECKPOINT_SECONDS";

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
    /// The step count of `stage`, fixed when it started (a time budget's
    /// count is measured then, and a resumed run keeps it).
    #[serde(default)]
    pub stage_steps: Option<usize>,
}

impl Progress {
    /// "stage `NAME` step S (global step G)", or "the end of stage `NAME`".
    pub fn describe(&self) -> String {
        if self.stage_done {
            format!(
                "the end of stage `{}` (global step {})",
                self.stage_name, self.global_step
            )
        } else {
            format!(
                "stage `{}` step {} (global step {})",
                self.stage_name, self.step, self.global_step
            )
        }
    }
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
    /// The current stage's best evaluation so far (its weights are the
    /// checkpoint's `best.param.*` tensors).
    #[serde(default)]
    pub best: Option<BestPoint>,
}

/// A stage's best evaluation: its step and score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestPoint {
    pub step: usize,
    pub score: f64,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// Its folder's name, `step-…`.
    pub name: String,
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

/// How long training may run between two checkpoints: `minutes`, or
/// `PLCC_CHECKPOINT_SECONDS` when set.
pub fn interval(minutes: f64) -> Result<Duration, Diag> {
    let seconds = match std::env::var(SECONDS_VAR) {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                Diag::new(
                    "plcc::train::checkpoint-seconds",
                    format!("{SECONDS_VAR} is `{text}`, not a number of seconds"),
                )
                .help(format!(
                    "set {SECONDS_VAR} to 0 or more seconds, or unset it"
                ))
            })?,
        Err(_) => minutes * 60.0,
    };
    Ok(Duration::from_secs_f64(seconds.min(1e12)))
}

/// The name `latest` holds, if it can be read.
fn latest_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(LATEST)).ok()?;
    let name = text.trim();
    is_checkpoint_name(name).then(|| name.to_string())
}

/// `(global step, stage)` of a checkpoint folder's name `step-G-S`.
fn order_key(name: &str) -> Option<(usize, usize)> {
    let (global, stage) = name.strip_prefix(STEP_PREFIX)?.split_once('-')?;
    Some((global.parse().ok()?, stage.parse().ok()?))
}

fn is_checkpoint_name(name: &str) -> bool {
    order_key(name).is_some()
}

/// Writes a checkpoint into `dir` and makes it the latest.
pub fn save(
    dir: &Path,
    meta: &Meta,
    state: &BTreeMap<String, Tensor>,
    teacher: Option<&HashMap<String, Tensor>>,
) -> Result<PathBuf, Diag> {
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let previous = latest_name(dir);
    let name = format!(
        "{STEP_PREFIX}{:08}-{}",
        meta.progress.global_step, meta.progress.stage
    );
    let target = dir.join(&name);
    let staged = StagedDir::begin(&target)?;
    let encode = |file: &str, tensors: &mut dyn Iterator<Item = (&String, &Tensor)>| {
        safetensors::serialize(tensors, None).map_err(|e| io("encode", &target.join(file), e))
    };
    let mut files = vec![(STATE_FILE, encode(STATE_FILE, &mut state.iter())?)];
    if let Some(t) = teacher {
        files.push((TEACHER_FILE, encode(TEACHER_FILE, &mut t.iter())?));
    }
    let mut sums = BTreeMap::new();
    for (file, bytes) in &files {
        staged.write(file, bytes)?;
        sums.insert(file.to_string(), sha256_hex(bytes));
    }
    fault::point("checkpoint-write");
    let json = serde_json::to_vec_pretty(meta).map_err(|e| io("encode", &target, e))?;
    staged.write(META_FILE, &json)?;
    sums.insert(META_FILE.to_string(), sha256_hex(&json));
    let sums = serde_json::to_vec_pretty(&sums).map_err(|e| io("encode", &target, e))?;
    staged.write(CHECKSUMS_FILE, &sums)?;
    staged.commit()?;
    fault::point("checkpoint-latest");
    write_file_atomic(&dir.join(LATEST), name.as_bytes())?;
    let mut keep = vec![name.as_str()];
    keep.extend(previous.as_deref());
    remove_all_but(dir, &keep);
    Ok(target)
}

/// Removes every checkpoint folder of `dir` not named in `keep`, and the
/// staging folders of checkpoint writes that never finished.
fn remove_all_but(dir: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let leftover = n.starts_with(&format!(".{STEP_PREFIX}"));
        let stale = is_checkpoint_name(&n) && !keep.contains(&n.as_str());
        if (leftover || stale) && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Makes `name` the latest checkpoint of `dir` and removes every other (a
/// resumed run continues from it; newer ones are retaken).
pub fn continue_from(dir: &Path, name: &str) -> Result<(), Diag> {
    write_file_atomic(&dir.join(LATEST), name.as_bytes())?;
    remove_all_but(dir, &[name]);
    Ok(())
}

/// The progress recorded by the latest checkpoint of `dir`, read without
/// checking its tensors.
pub fn latest_progress(dir: &Path) -> Option<Progress> {
    let name = latest_name(dir)?;
    let bytes = std::fs::read(dir.join(name).join(META_FILE)).ok()?;
    serde_json::from_slice::<Meta>(&bytes)
        .ok()
        .map(|m| m.progress)
}

/// What [`load_usable`] found.
pub struct Found {
    /// The newest checkpoint that loaded and matched its checksums.
    pub checkpoint: Option<Checkpoint>,
    /// Each newer checkpoint passed over, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Loads the checkpoint `latest` names or, when it is damaged, the newest
/// one before it that is whole.
pub fn load_usable(dir: &Path, device: &Device) -> Found {
    let latest = latest_name(dir);
    let mut others: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| is_checkpoint_name(n) && Some(n) != latest.as_ref())
                .collect()
        })
        .unwrap_or_default();
    others.sort_by_key(|n| std::cmp::Reverse(order_key(n)));
    let mut skipped = Vec::new();
    for name in latest.into_iter().chain(others) {
        match load_verified(&dir.join(&name), device) {
            Ok((meta, state, teacher)) => {
                return Found {
                    checkpoint: Some(Checkpoint {
                        name,
                        meta,
                        state,
                        teacher,
                    }),
                    skipped,
                }
            }
            Err(why) => skipped.push((name, why)),
        }
    }
    Found {
        checkpoint: None,
        skipped,
    }
}

type Loaded = (
    Meta,
    BTreeMap<String, Tensor>,
    Option<HashMap<String, Tensor>>,
);

/// Reads one checkpoint folder, checking every file against `sha256.json`;
/// the error says what is wrong, in words.
fn load_verified(ckpt: &Path, device: &Device) -> Result<Loaded, String> {
    if !ckpt.is_dir() {
        return Err("it is not a folder (missing)".into());
    }
    let sums: BTreeMap<String, String> = std::fs::read(ckpt.join(CHECKSUMS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("its `{CHECKSUMS_FILE}` is missing or unreadable"))?;
    let read = |file: &str| -> Result<Option<Vec<u8>>, String> {
        let present = ckpt.join(file).exists();
        match sums.get(file) {
            None if present => Err(format!("`{file}` has no recorded checksum")),
            None => Ok(None),
            Some(sum) => {
                let bytes = std::fs::read(ckpt.join(file))
                    .map_err(|e| format!("`{file}` cannot be read ({e})"))?;
                if &sha256_hex(&bytes) != sum {
                    return Err(format!(
                        "`{file}` does not match its recorded SHA-256 (truncated or altered)"
                    ));
                }
                Ok(Some(bytes))
            }
        }
    };
    let required =
        |file: &str| read(file)?.ok_or_else(|| format!("`{file}` has no recorded checksum"));
    let meta: Meta = serde_json::from_slice(&required(META_FILE)?)
        .map_err(|e| format!("`{META_FILE}` cannot be parsed ({e})"))?;
    let tensors = |file: &str, bytes: &[u8]| {
        candle_core::safetensors::load_buffer(bytes, device)
            .map_err(|e| format!("`{file}` cannot be read ({e})"))
    };
    let state = tensors(STATE_FILE, &required(STATE_FILE)?)?
        .into_iter()
        .collect();
    let teacher = match read(TEACHER_FILE)? {
        Some(bytes) => Some(tensors(TEACHER_FILE, &bytes)?),
        None => None,
    };
    Ok((meta, state, teacher))
}
