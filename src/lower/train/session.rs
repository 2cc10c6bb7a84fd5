//! One training run of a build: its folder (checkpoints and loss log), the
//! checkpoint it resumes from, and what opening it found — a resumed or
//! skipped checkpoint, no usable checkpoint (training starts over), or an
//! earlier run's folder discarded — as notes for the build's report.

use candle_core::{Device, Tensor};

use super::checkpoint::{self, Meta, Progress};
use super::log::LossLog;
use crate::artifact::output::TrainingFolder;
use crate::diag::Diag;

/// What stays the same over a whole training run.
pub struct Session<'r> {
    pub max_steps: Option<usize>,
    /// Checkpoints and the loss log live here until the artifact is written.
    pub folder: TrainingFolder,
    pub device: Device,
    pub log: LossLog,
    pub meta: Meta,
    /// The checkpoint a resumed run continues from (consumed by the stage it belongs to).
    pub resume_from: Option<checkpoint::Checkpoint>,
    /// Teacher tensors to store with every checkpoint (a pretrained teacher).
    pub teacher_tensors: Option<std::collections::HashMap<String, Tensor>>,
    /// Where the stages report their steps.
    pub reporter: &'r dyn crate::lower::reporter::Reporter,
    /// What opening the run found and did (a resumed or skipped checkpoint,
    /// a discarded earlier run), one line each for the build's notes.
    pub notes: Vec<String>,
}

/// What an earlier run left in the training folder, in words; `None` when
/// there is nothing.
fn held_by(folder: &TrainingFolder) -> Option<String> {
    let mut entries = std::fs::read_dir(folder.path()).ok()?;
    entries.next()?.ok()?;
    Some(match checkpoint::latest_progress(&folder.checkpoints()) {
        Some(p) => format!("its latest checkpoint was taken at {}", p.describe()),
        None => "a loss log and no checkpoint".to_string(),
    })
}

impl<'r> Session<'r> {
    /// Starts a run, or continues the one checkpointed in `folder` when
    /// `resume`. The folder must be plcc's or absent (claiming the output
    /// checks it: [`crate::artifact::output::OutputFolder::claim`]).
    ///
    /// Resuming continues from the newest whole checkpoint (a damaged latest
    /// one is passed over for the one before it); with none, training starts
    /// from the beginning. Without `resume`, an earlier run's folder is
    /// cleared. Each of these is told in [`Session::notes`].
    pub fn open(
        folder: TrainingFolder,
        recipe_sha256: String,
        max_steps: Option<usize>,
        resume: bool,
        device: Device,
        reporter: &'r dyn crate::lower::reporter::Reporter,
    ) -> Result<Self, Diag> {
        let checkpoints = folder.checkpoints();
        let mut notes = Vec::new();
        let resume_from = if resume {
            let found = checkpoint::load_usable(&checkpoints, &device);
            for (name, why) in &found.skipped {
                notes.push(format!(
                    "skipped checkpoint `{}`: {why}",
                    checkpoints.join(name).display()
                ));
            }
            match found.checkpoint {
                Some(ckpt) => Some(ckpt),
                None => {
                    notes.push(format!(
                        "--resume found no usable checkpoint in `{}`; training starts from the beginning",
                        folder.path().display()
                    ));
                    folder.clear()?;
                    None
                }
            }
        } else {
            if let Some(held) = held_by(&folder) {
                notes.push(format!(
                    "discarded the training folder `{}` of an earlier build ({held}); \
                     build with --resume to continue from it",
                    folder.path().display()
                ));
            }
            folder.clear()?;
            None
        };
        if let Some(ckpt) = &resume_from {
            if ckpt.meta.recipe_sha256 != recipe_sha256 {
                return Err(Diag::new(
                    "plcc::train::recipe-changed",
                    "the checkpoint was written for a different version of the recipe",
                )
                .note(format!("checkpoint in `{}`", folder.path().display()))
                .help("build without --resume to start over with the edited recipe"));
            }
            if ckpt.meta.max_steps != max_steps {
                return Err(Diag::new(
                    "plcc::train::max-steps-changed",
                    format!(
                        "the checkpoint was written with {}, this run has {}",
                        max_steps_text(ckpt.meta.max_steps),
                        max_steps_text(max_steps)
                    ),
                )
                .help("resume with the same --max-steps as the interrupted run"));
            }
            checkpoint::continue_from(&checkpoints, &ckpt.name)?;
            notes.push(format!(
                "resumed from checkpoint `{}` at {}",
                checkpoints.join(&ckpt.name).display(),
                ckpt.meta.progress.describe()
            ));
        }
        folder.create()?;
        let keep = resume_from
            .as_ref()
            .map_or(0, |c| c.meta.progress.global_step);
        let log = LossLog::open(&folder.loss_log(), Some(keep))?;
        let meta = match &resume_from {
            Some(c) => c.meta.clone(),
            None => Meta {
                recipe_sha256: recipe_sha256.clone(),
                max_steps,
                progress: Progress {
                    stage: 0,
                    stage_name: String::new(),
                    step: 0,
                    global_step: 0,
                    stage_done: false,
                    stage_steps: None,
                },
                evaluations: Vec::new(),
                finished: Vec::new(),
                best: None,
            },
        };
        Ok(Session {
            max_steps,
            folder,
            device,
            log,
            meta,
            resume_from,
            teacher_tensors: None,
            reporter,
            notes,
        })
    }

    /// Whether stage `index` finished in an earlier (resumed) run.
    pub fn stage_finished(&self, index: usize) -> bool {
        let p = &self.meta.progress;
        self.resume_from.is_some() && (index < p.stage || (index == p.stage && p.stage_done))
    }

    /// The teacher tensors of the resumed checkpoint (a pretrained teacher).
    pub fn resumed_teacher(&self) -> Option<&std::collections::HashMap<String, Tensor>> {
        self.resume_from.as_ref().and_then(|c| c.teacher.as_ref())
    }
}

/// `--max-steps 100`, or `no --max-steps`, as messages show the option.
fn max_steps_text(max_steps: Option<usize>) -> String {
    match max_steps {
        Some(n) => format!("--max-steps {n}"),
        None => "no --max-steps".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::max_steps_text;

    #[test]
    fn max_steps_read_as_the_command_line_option() {
        assert_eq!(max_steps_text(Some(100)), "--max-steps 100");
        assert_eq!(max_steps_text(None), "no --max-steps");
    }
}
