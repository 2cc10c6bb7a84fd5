//! The evaluation data a report's fidelity was measured on, recorded so
//! that `plcc calibrate` can measure again on the same held-out examples:
//! the data file (its path and SHA-256) and its layout, and whether the
//! teacher the build compared against can be loaded again as it was.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::artifact::Manifest;
use crate::base::{sha256_hex, Column, DataFormat, DataSpec, TeacherRef};
use crate::diag::{Span, Spanned};
use crate::lower::teacher::load_teacher;
use crate::runtime::LoadedModel;
use crate::text::data::{read_dataset, Example};

/// Where the report's fidelity was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSource {
    /// The data set's name in the recipe.
    pub name: String,
    /// The file, as the build read it, and its SHA-256.
    pub path: PathBuf,
    pub sha256: String,
    pub format: DataFormat,
    pub text: Column,
    pub text_pair: Option<Column>,
    pub label: Option<Column>,
    /// Why the teacher cannot be loaded again as the build compared against
    /// it, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_differs: Option<String>,
}

impl EvalSource {
    /// The record of the data set `spec`, whose file holds `bytes`.
    pub fn of(spec: &DataSpec, bytes: &[u8], teacher_differs: Option<String>) -> EvalSource {
        EvalSource {
            name: spec.name.value.clone(),
            path: spec.path.value.clone(),
            sha256: sha256_hex(bytes),
            format: spec.format,
            text: spec.text.clone(),
            text_pair: spec.text_pair.clone(),
            label: spec.label.clone(),
            teacher_differs,
        }
    }

    /// The data set read from `path` with this layout.
    fn spec(&self, name: &str, path: &Path) -> DataSpec {
        DataSpec {
            span: Span::default(),
            name: Spanned::new(name.to_string(), Span::default()),
            path: Spanned::new(path.to_path_buf(), Span::default()),
            format: self.format,
            text: self.text.clone(),
            text_pair: self.text_pair.clone(),
            label: self.label.clone(),
        }
    }
}

/// What a measurement against the teacher needs: the teacher as the build
/// loaded it, and the evaluation examples.
pub struct Reference {
    pub teacher: LoadedModel,
    pub data: String,
    pub examples: Vec<Example>,
}

/// The teacher and the evaluation examples of the artifact with `manifest`:
/// from `file` when given (laid out as `source` records, or one text per
/// line), else from the file `source` records when it is still there with
/// the same SHA-256. `Err` says why there is nothing to measure on.
pub fn reference(
    manifest: &Manifest,
    source: Option<&EvalSource>,
    file: Option<&Path>,
) -> Result<Reference, String> {
    if let Some(why) = source.and_then(|s| s.teacher_differs.as_ref()) {
        return Err(why.clone());
    }
    let plain = EvalSource {
        name: String::new(),
        path: PathBuf::new(),
        sha256: String::new(),
        format: DataFormat::Text,
        text: Column::Index(0),
        text_pair: None,
        label: None,
        teacher_differs: None,
    };
    let (layout, path, name) = match (file, source) {
        (Some(f), s) => (
            s.unwrap_or(&plain),
            f.to_path_buf(),
            f.display().to_string(),
        ),
        (None, Some(s)) => {
            let bytes = std::fs::read(&s.path)
                .map_err(|_| format!("its evaluation data `{}` is gone", s.path.display()))?;
            if sha256_hex(&bytes) != s.sha256 {
                return Err(format!(
                    "its evaluation data `{}` changed since the build",
                    s.path.display()
                ));
            }
            (s, s.path.clone(), s.name.clone())
        }
        (None, None) => return Err("the report records no evaluation data".into()),
    };
    let examples = read_dataset(&layout.spec(&name, &path), manifest.task.labels())
        .map_err(|d| format!("cannot read `{}`: {}", path.display(), d.message))?;
    let teacher_ref = match manifest.source.teacher.strip_prefix("builtin:") {
        Some(n) => TeacherRef::Builtin(n.to_string()),
        None => TeacherRef::Dir(PathBuf::from(&manifest.source.teacher)),
    };
    let cannot = |why: String| format!("the teacher `{}` {why}", manifest.source.teacher);
    let teacher = load_teacher(&teacher_ref, &Device::Cpu)
        .map_err(|d| cannot(format!("cannot be loaded: {}", d.message)))?;
    if teacher.checkpoint_sha256 != manifest.source.checkpoint_sha256 {
        return Err(cannot("changed since the build".into()));
    }
    let teacher = teacher
        .loaded(&Device::Cpu)
        .map_err(|d| cannot(format!("cannot be loaded: {}", d.message)))?;
    Ok(Reference {
        teacher,
        data: name,
        examples,
    })
}
