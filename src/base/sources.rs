//! Where a teacher comes from, how data files are laid out, and the device
//! a build trains on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diag::{Span, Spanned};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TeacherRef {
    /// `builtin:NAME`, e.g. `builtin:tiny-bert`.
    Builtin(String),
    /// A Hugging Face style checkpoint directory, already resolved against `base_dir`.
    Dir(PathBuf),
}

/// Where training runs (`device:` in a recipe, `--device` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    /// Every device with its spelling in recipes and on the command line.
    pub const ALL: [(&'static str, Device); 2] = [("cpu", Device::Cpu), ("cuda", Device::Cuda)];

    /// `cpu`, `cuda`.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

/// What `plcc build` writes at its output (`output "DIR" { format: ... }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// A plcc artifact (packed weights, manifest, report).
    #[default]
    Artifact,
    /// A float Hugging Face checkpoint (what `plcc export --format hf`
    /// writes), with the artifact it was made from beside it as
    /// `DIR.artifact`.
    Hf,
}

impl OutputFormat {
    /// Every format with its spelling in recipes.
    pub const ALL: [(&'static str, OutputFormat); 2] = [
        ("artifact", OutputFormat::Artifact),
        ("hf", OutputFormat::Hf),
    ];

    pub fn is_artifact(&self) -> bool {
        *self == OutputFormat::Artifact
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataFormat {
    /// One example per line.
    Text,
    /// JSON Lines: one object per line.
    Jsonl,
    /// Tab-separated values.
    Tsv,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Column {
    Index(usize),
    Key(String),
}

impl std::fmt::Display for Column {
    /// An index as a number (`2`), a key in backquotes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Index(i) => write!(f, "{i}"),
            Column::Key(k) => write!(f, "`{k}`"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DataSpec {
    pub span: Span,
    pub name: Spanned<String>,
    /// Resolved against the recipe's folder.
    pub path: Spanned<PathBuf>,
    pub format: DataFormat,
    /// Which column/field holds the text (TSV index or JSONL key). Text files have one.
    pub text: Column,
    /// Optional second text (sentence pairs).
    pub text_pair: Option<Column>,
    pub label: Option<Column>,
    /// The first row names the columns and is not an example (`header: true`).
    pub header: bool,
    /// A retrieval set (`query` and `document` named): each example is a
    /// query (`text`) and a document relevant to it (`text_pair`).
    pub retrieval: bool,
}
