//! The artifact manifest (`manifest.json`): everything needed to load the
//! compressed model back and to know where it came from: format version, the
//! recipe and its hash, the source checkpoint's hash, the student's shapes,
//! each weight's storage (float or packed bits with its scale layout), the
//! kept head / neuron indices, exits and their thresholds, and the size and
//! SHA-256 of every file the loader reads. The manifest is sealed with a hash
//! of its own text (`manifest_file`), so every byte of an artifact that
//! loading reads is checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::base::WeightInputs;
use crate::base::{Bits, ExitCriterion, ExitHead, Granularity, SentencePipeline, Task};
use crate::base::{LabelSet, ModelConfig};

pub const FORMAT: &str = "plcc-artifact";
/// Version 2 added `files` (every loaded file's size and hash, replacing
/// `weights_sha256`), `manifest_sha256` and `source.layers`.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// SHA-256 of this file's text with this value left empty; the first
    /// field, so it is found before anything the hash covers.
    pub manifest_sha256: String,
    pub format: String,
    pub format_version: u32,
    pub plcc_version: String,
    pub recipe: RecipeRecord,
    pub source: SourceRecord,
    pub task: Task,
    /// How an embedding model's token states become its sentence embedding,
    /// as the teacher checkpoint's `modules.json` says (pooling, Normalize);
    /// absent when the teacher has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<SentencePipeline>,
    /// The student's architecture and per-layer shapes.
    pub config: ModelConfig,
    /// Every weight matrix by module name, with how it is stored.
    pub weights: BTreeMap<String, WeightRecord>,
    /// How each linear module's input is quantized, by module name: the
    /// recipe's activation quantizers, and the packed integer kernel's int8
    /// per token (`kernel: true`) on the linears that kernel runs. A module
    /// absent here has float inputs, except in artifacts written before the
    /// kernel's entries were recorded: `Manifest::input_quant` reads both.
    pub activation_quant: BTreeMap<String, ActivationQuant>,
    /// Kept structure indices into the teacher, e.g.
    /// `encoder.layer.0.attention.heads` → `[0, 3, 7]`.
    pub kept: BTreeMap<String, Vec<usize>>,
    /// Teacher layer index of each student layer.
    pub layer_map: Vec<usize>,
    pub exits: Vec<ExitRecord>,
    /// Every file of the artifact that loading reads (`model.safetensors`,
    /// `tokenizer.json`) by name. The report files are not loaded and not
    /// listed.
    pub files: BTreeMap<String, FileRecord>,
}

impl Manifest {
    /// How the model's embedding is made: the recorded pipeline, else the
    /// task's pooling (mean for models that are not embedding models), not
    /// normalized.
    pub fn sentence_pipeline(&self) -> SentencePipeline {
        self.pipeline.unwrap_or(SentencePipeline {
            pooling: match self.task {
                Task::Embedding { pooling } => pooling,
                _ => crate::base::Pooling::Mean,
            },
            normalize: false,
        })
    }
}

impl Manifest {
    /// A classifier's labels: the student configuration's, else numbered
    /// classes (`LABEL_0`, ...) as many as the task has; `None` for other
    /// tasks.
    pub fn labels(&self) -> Option<LabelSet> {
        let n = self.task.labels()?;
        Some(match &self.config.labels {
            Some(set) if set.len() == n => set.clone(),
            _ => LabelSet::numbered(n),
        })
    }
}

/// Size and hash of one artifact file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub bytes: u64,
    pub sha256: String,
}

impl FileRecord {
    /// The record of a file with contents `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        FileRecord {
            bytes: bytes.len() as u64,
            sha256: crate::base::sha256_hex(bytes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeRecord {
    pub file: Option<String>,
    pub text: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// `builtin:NAME` or the checkpoint directory.
    pub teacher: String,
    /// SHA-256 of the teacher's weights file (or of the built-in model's
    /// bytes); see `lower::teacher::checkpoint_sha256`.
    pub checkpoint_sha256: String,
    /// Layers of the teacher; `layer_map` indexes them.
    pub layers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightRecord {
    /// `[rows, cols]` of the logical (unpacked) matrix.
    pub shape: Vec<usize>,
    pub storage: Storage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Storage {
    /// f32 as `NAME`.
    Float,
    /// Packed codes `NAME.codes`, scales `NAME.scales` (and `NAME.zeros`).
    Packed {
        bits: Bits,
        symmetric: bool,
        granularity: Granularity,
        /// Weights per scale unit.
        unit_len: usize,
        /// The module's inputs without an activation quantizer: the integer
        /// kernel's int8 per token (the default, not written), or `float`
        /// (weight-only quantization).
        #[serde(default, skip_serializing_if = "WeightInputs::is_kernel")]
        inputs: WeightInputs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationQuant {
    pub bits: u8,
    pub symmetric: bool,
    pub granularity: Granularity,
    /// The packed integer kernel's own input quantization (no activation
    /// quantizer placed by the recipe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kernel: bool,
}

impl ActivationQuant {
    /// What the packed integer kernel does to its input: symmetric int8,
    /// one scale per token.
    pub const KERNEL: ActivationQuant = ActivationQuant {
        bits: 8,
        symmetric: true,
        granularity: Granularity::Token,
        kernel: true,
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// 1-based student layer the exit reads.
    pub after: usize,
    pub head: ExitHead,
    pub criterion: ExitCriterion,
    pub threshold: Option<f64>,
    pub patience: Option<usize>,
}
