//! The output folder of a build, from the path it is asked for to the
//! artifact in place: [`OutputFolder`] resolves the path (`-o`, else the
//! recipe's `output:`, else `out`), refuses it when it is not plcc's to
//! replace (`check`), locks it against a second build (`lock`), checks the
//! training folder beside it (`training`), clears the staging leftovers of
//! killed builds, assembles the artifact in a staging folder and renames it
//! into place on `commit`, removing the training folder then. Dropped before
//! `commit` (a failed build), it removes its staging folder and lock and
//! leaves any earlier artifact and the training checkpoints as they were.

pub mod check;
mod lock;
mod training;

use std::path::{Path, PathBuf};

use crate::artifact::StagedDir;
use crate::diag::{Diag, Span, Spanned};
pub use check::Input;
use lock::OutputLock;
pub use lock::WhenBusy;
pub use training::{TrainingFolder, LATEST, STEP_PREFIX};

/// Where a build asks to write, and what it must not replace.
pub struct OutputRequest<'a> {
    /// The folder given on the command line (`-o`).
    pub command_line: Option<&'a Path>,
    /// The recipe's `output:`.
    pub recipe_output: Option<&'a Spanned<PathBuf>>,
    /// The recipe's file: the output must not replace it, and a recipe's
    /// `output:` stays inside its folder unless `allow_outside`.
    pub recipe: &'a Path,
    pub allow_outside: bool,
    /// The build's other inputs (the teacher's checkpoint folder, the data
    /// files), which the output must not replace either.
    pub inputs: Vec<Input<'a>>,
    /// Whether the build trains, and so keeps checkpoints in the training
    /// folder beside the output.
    pub trains: bool,
    /// Whether to wait for another build that writes the same output.
    pub when_busy: WhenBusy<'a>,
}

/// A build's claim on its output folder, held until the artifact is
/// committed or the build fails.
pub struct OutputFolder {
    path: PathBuf,
    training: Option<TrainingFolder>,
    // Dropped before the lock: a failed build's staging folder is removed
    // while the output is still locked.
    staged: Option<StagedDir>,
    _lock: OutputLock,
}

impl OutputFolder {
    /// Resolves and checks the requested output, takes its lock, checks the
    /// training folder when the build trains, and removes what killed
    /// builds left beside it. When the path came from the recipe's
    /// `output:`, a refusal points at it.
    pub fn claim(request: OutputRequest<'_>) -> Result<Self, Diag> {
        let from_recipe = request
            .recipe_output
            .filter(|o| request.command_line.is_none() && o.span != Span::default());
        let path = request
            .command_line
            .map(Path::to_path_buf)
            .or_else(|| request.recipe_output.map(|o| o.value.clone()))
            .unwrap_or_else(|| PathBuf::from("out"));
        let located = |d: Diag| match from_recipe {
            Some(o) => d.label(o.span, "the output directory named here"),
            None => d,
        };
        if from_recipe.is_some() && !request.allow_outside {
            let recipe_dir = match request.recipe.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            check::confine(&path, recipe_dir).map_err(located)?;
        }
        let mut inputs = vec![Input {
            what: "the recipe",
            path: request.recipe,
        }];
        inputs.extend(request.inputs);
        check::check_output(&path, &inputs).map_err(located)?;
        let lock = OutputLock::acquire(&path, request.when_busy)?;
        let training = request.trains.then(|| TrainingFolder::of(&path));
        if let Some(t) = &training {
            t.check()?;
        }
        check::remove_stale_staging(&path);
        Ok(OutputFolder {
            path,
            training,
            staged: None,
            _lock: lock,
        })
    }

    /// The output folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The training folder beside the output, when the build trains.
    pub fn training(&self) -> Option<&TrainingFolder> {
        self.training.as_ref()
    }

    /// Starts assembling the artifact in a staging folder beside the output.
    pub fn stage(&mut self) -> Result<&StagedDir, Diag> {
        Ok(self.staged.insert(StagedDir::begin(&self.path)?))
    }

    /// Moves the staged artifact into place, checking once more that what
    /// is there may be replaced (it may have changed while the build ran),
    /// then removes the training folder: the artifact holds the loss log,
    /// and the checkpoints are no longer needed.
    pub fn commit(mut self) -> Result<PathBuf, Diag> {
        let staged = self.staged.take().ok_or_else(|| {
            Diag::new(
                "plcc::io::write",
                format!("nothing was staged for `{}`", self.path.display()),
            )
        })?;
        check::replaceable(&self.path)?;
        let dir = staged.commit()?;
        crate::fault::point("artifact-commit");
        if let Some(t) = &self.training {
            let _ = std::fs::remove_dir_all(t.path());
        }
        Ok(dir)
    }
}
