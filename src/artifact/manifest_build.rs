//! The manifest of a freshly built artifact: the format and plcc version,
//! where the model came from (the recipe, the teacher checkpoint) and what
//! the student is (its configuration, weights, kept structure and exits).
//! Its file records and seal are added when the artifact is written
//! ([`super::write_into`]).

use std::collections::BTreeMap;

use super::manifest::{
    ActivationQuant, ExitRecord, Manifest, RecipeRecord, SourceRecord, WeightRecord, FORMAT,
    FORMAT_VERSION,
};
use crate::base::{ModelConfig, SentencePipeline, Task};

/// The student a build made, as its manifest records it.
pub struct BuiltStudent {
    /// The student's architecture and per-layer shapes.
    pub config: ModelConfig,
    /// Every weight matrix by module name, with how it is stored.
    pub weights: BTreeMap<String, WeightRecord>,
    /// Activation quantizers by module name.
    pub activation_quant: BTreeMap<String, ActivationQuant>,
    /// Kept structure indices into the teacher.
    pub kept: BTreeMap<String, Vec<usize>>,
    /// Teacher layer index of each student layer.
    pub layer_map: Vec<usize>,
    pub exits: Vec<ExitRecord>,
}

impl Manifest {
    /// The manifest of `student`, built by the recipe `recipe` for `task`
    /// from the teacher `source`, whose sentence pipeline is
    /// `teacher_pipeline`.
    pub fn of_build(
        recipe: RecipeRecord,
        source: SourceRecord,
        task: Task,
        teacher_pipeline: Option<SentencePipeline>,
        student: BuiltStudent,
    ) -> Manifest {
        Manifest {
            manifest_sha256: String::new(),
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            plcc_version: env!("CARGO_PKG_VERSION").into(),
            recipe,
            source,
            task,
            pipeline: embedding_pipeline(task, teacher_pipeline),
            config: student.config,
            weights: student.weights,
            activation_quant: student.activation_quant,
            kept: student.kept,
            layer_map: student.layer_map,
            exits: student.exits,
            files: Default::default(),
        }
    }
}

/// The pipeline an embedding artifact records: the recipe's pooling and the
/// teacher pipeline's normalization; none when the teacher has no pipeline.
fn embedding_pipeline(task: Task, teacher: Option<SentencePipeline>) -> Option<SentencePipeline> {
    match (task, teacher) {
        (Task::Embedding { pooling }, Some(p)) => Some(SentencePipeline {
            pooling,
            normalize: p.normalize,
        }),
        _ => None,
    }
}
