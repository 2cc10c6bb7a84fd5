//! The artifact manifest (`manifest.json`): everything needed to load the
//! compressed model back and to know where it came from: format version, the
//! recipe and its hash, the source checkpoint's hash, the student's shapes,
//! each weight's storage (float or packed bits with its scale layout), the
//! kept head / neuron indices, exits and their thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::ModelConfig;
use crate::recipe::{Bits, ExitCriterion, ExitHead, Granularity, Task};

pub const FORMAT: &str = "plcc-artifact";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub plcc_version: String,
    pub recipe: RecipeRecord,
    pub source: SourceRecord,
    pub task: Task,
    /// The student's architecture and per-layer shapes.
    pub config: ModelConfig,
    /// Every weight matrix by module name, with how it is stored.
    pub weights: BTreeMap<String, WeightRecord>,
    /// Activation quantizers by module name.
    pub activation_quant: BTreeMap<String, ActivationQuant>,
    /// Kept structure indices into the teacher, e.g.
    /// `encoder.layer.0.attention.heads` → `[0, 3, 7]`.
    pub kept: BTreeMap<String, Vec<usize>>,
    /// Teacher layer index of each student layer.
    pub layer_map: Vec<usize>,
    pub exits: Vec<ExitRecord>,
    /// SHA-256 of `model.safetensors`.
    pub weights_sha256: String,
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
    /// SHA-256 of the teacher's weights file (or of the built-in model's bytes).
    pub checkpoint_sha256: String,
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
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationQuant {
    pub bits: u8,
    pub symmetric: bool,
    pub granularity: Granularity,
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
