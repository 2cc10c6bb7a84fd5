//! Loading a plcc artifact directory (`Artifact::open` validates it) into a
//! runnable `LoadedModel`: packed weights are dequantized to f32, the
//! student's per-layer shapes come from the manifest, and the task head and
//! exit heads are rebuilt from their stored tensors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::heads::{ExitHead, Pooling};
use super::linear::Linear;
use super::loader::{LoadedModel, Network};
use super::tokenizer::TextTokenizer;
use crate::artifact::{Artifact, ExitRecord};
use crate::build::teacher::flip_conv1d;
use crate::diag::Diag;
use crate::recipe::{self, Task};

fn load_failed(dir: &Path, e: candle_core::Error) -> Diag {
    Diag::new(
        "plcc::artifact::load-failed",
        format!("cannot build the model of artifact `{}`", dir.display()),
    )
    .note(e.to_string())
}

/// Every tensor of the artifact as f32 on `device`, in the runtime's layout.
pub fn artifact_tensors(
    artifact: &Artifact,
    device: &Device,
) -> Result<HashMap<String, Tensor>, Diag> {
    let mut tensors = HashMap::new();
    for (name, record) in &artifact.manifest.weights {
        let values = artifact.weight_f32(name)?;
        let t = Tensor::from_vec(values, record.shape.as_slice(), device)
            .map_err(|e| load_failed(&artifact.dir, e))?;
        tensors.insert(name.clone(), t);
    }
    flip_conv1d(artifact.manifest.config.arch, &mut tensors)
        .map_err(|e| load_failed(&artifact.dir, e))?;
    Ok(tensors)
}

fn linear(tensors: &HashMap<String, Tensor>, name: &str) -> Option<Linear> {
    let w = tensors.get(&format!("{name}.weight"))?;
    Some(Linear::from_weights(
        w.clone(),
        tensors.get(&format!("{name}.bias")).cloned(),
    ))
}

/// The task head and exit heads stored in `tensors` (runtime layout): the
/// classifier (`pooler.dense.*`, `classifier.*`) and one head per exit
/// record (`exit.{after}.dense.*`, `exit.{after}.classifier.*`; GPT-2 exits
/// of a causal LM use the tied token embedding).
pub fn heads_from_tensors(
    tensors: &HashMap<String, Tensor>,
    network: &Network,
    task: Task,
    records: &[ExitRecord],
    layers: usize,
) -> candle_core::Result<(Option<ExitHead>, Vec<ExitHead>)> {
    let classifier = linear(tensors, "classifier").map(|c| ExitHead {
        after_layer: layers,
        pooling: Pooling::First,
        pooler: linear(tensors, "pooler.dense"),
        classifier: Some(c),
    });
    let pooling = match task {
        Task::Embedding {
            pooling: recipe::Pooling::Cls,
        } => Pooling::First,
        Task::Embedding { .. } => Pooling::Mean,
        Task::Classification { .. } => Pooling::First,
        Task::CausalLm => Pooling::Last,
    };
    let mut exits = Vec::new();
    for record in records {
        let name = format!("exit.{}", record.after);
        let classifier = match (network, task) {
            (Network::Gpt2(m), Task::CausalLm) => {
                Some(Linear::from_weights(m.wte.full_matrix()?, None))
            }
            _ => linear(tensors, &format!("{name}.classifier")),
        };
        exits.push(ExitHead {
            after_layer: record.after,
            pooling,
            pooler: linear(tensors, &format!("{name}.dense")),
            classifier,
        });
    }
    Ok((classifier, exits))
}

/// Loads the artifact in `dir` onto `device`.
pub fn load_artifact(dir: &Path, device: &Device) -> Result<LoadedModel, Diag> {
    let artifact = Artifact::open(dir)?;
    let config = artifact.manifest.config.clone();
    let tensors = artifact_tensors(&artifact, device)?;
    let vb = VarBuilder::from_backend(Box::new(tensors.clone()), DType::F32, device.clone());
    let network = Network::load(vb, &config).map_err(|e| load_failed(dir, e))?;
    let (classifier, exits) = heads_from_tensors(
        &tensors,
        &network,
        artifact.manifest.task,
        &artifact.manifest.exits,
        config.num_layers(),
    )
    .map_err(|e| load_failed(dir, e))?;
    let tokenizer = TextTokenizer::from_dir(dir, config.pad_token_id)?;
    Ok(LoadedModel {
        name: dir.display().to_string(),
        config,
        network,
        classifier,
        exits,
        tokenizer,
        device: device.clone(),
    })
}
