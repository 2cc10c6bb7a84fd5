//! The evaluation data a report's fidelity was measured on, recorded so
//! that `plcc calibrate` can measure again on the same held-out examples:
//! the data file (its path and SHA-256) and its layout, and whether the
//! teacher the build compared against can be loaded again as it was.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::{sha256_hex, Column, DataFormat, DataSpec, LabelSet};
use crate::diag::{Span, Spanned};
use crate::fsio::{decode_utf8, DATA};
use crate::text::data::{parse_dataset, read_dataset, Example};

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
    /// The file's first row names the columns (`header: true`).
    #[serde(default)]
    pub header: bool,
    /// A retrieval set: `text` holds the queries, `text_pair` the documents.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retrieval: bool,
    /// Why the teacher cannot be loaded again as the build compared against
    /// it, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_differs: Option<String>,
}

impl EvalSource {
    /// The record of the data set `spec`, whose file's SHA-256 is `sha256`.
    pub fn of(spec: &DataSpec, sha256: String, teacher_differs: Option<String>) -> EvalSource {
        EvalSource {
            name: spec.name.value.clone(),
            path: spec.path.value.clone(),
            sha256,
            format: spec.format,
            text: spec.text.clone(),
            text_pair: spec.text_pair.clone(),
            label: spec.label.clone(),
            header: spec.header,
            retrieval: spec.retrieval,
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
            header: self.header,
            retrieval: self.retrieval,
        }
    }
}

/// The evaluation examples of an artifact (a classifier's labels read by
/// `labels`): from `file`
/// when given (laid out as `source` records, or one text per line), else
/// from the file `source` records when it is still there with the same
/// SHA-256; with the data's name. `Err` says why there is nothing to
/// measure on (also when the build's teacher cannot be had again).
pub fn eval_examples(
    labels: Option<&LabelSet>,
    source: Option<&EvalSource>,
    file: Option<&Path>,
) -> Result<(String, Vec<Example>), String> {
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
        header: false,
        retrieval: false,
        teacher_differs: None,
    };
    let (layout, path, name) = match (file, source) {
        (Some(f), s) => (
            s.unwrap_or(&plain),
            f.to_path_buf(),
            f.display().to_string(),
        ),
        (None, Some(s)) => {
            // The recorded file, read once: hashed, then parsed.
            let bytes = std::fs::read(&s.path)
                .map_err(|_| format!("its evaluation data `{}` is gone", s.path.display()))?;
            if sha256_hex(&bytes) != s.sha256 {
                return Err(format!(
                    "its evaluation data `{}` changed since the build",
                    s.path.display()
                ));
            }
            let spec = s.spec(&s.name, &s.path);
            let examples = decode_utf8(&s.path, &DATA, bytes)
                .and_then(|text| parse_dataset(&spec, &text, labels))
                .map_err(|d| cannot_read(&s.path, &d))?;
            return Ok((s.name.clone(), examples));
        }
        (None, None) => return Err("the report records no evaluation data".into()),
    };
    let examples =
        read_dataset(&layout.spec(&name, &path), labels).map_err(|d| cannot_read(&path, &d))?;
    Ok((name, examples))
}

fn cannot_read(path: &Path, d: &crate::diag::Diag) -> String {
    format!("cannot read `{}`: {}", path.display(), d.message)
}
