//! Turns a model reference (`builtin:NAME`, a Hugging Face checkpoint
//! directory or a plcc artifact directory) into a ready-to-run
//! [`LoadedModel`]: configuration, network, task head and tokenizer. Each
//! kind of source is one `ModelSource` variant with its own loading function
//! (built-in models and checkpoints here, artifacts in `from_artifact`).

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::base::builtin;
use crate::base::ModelConfig;
use crate::base::{read_pipeline, Pooling};
use crate::diag::Diag;
use crate::runtime::load::loaded_model::{LoadedModel, Network};
use crate::runtime::load::weights::{load_error, Checkpoint};
use crate::runtime::model::heads::Head;
use crate::text::TextTokenizer;

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    Builtin(String),
    /// A Hugging Face directory with config.json, model.safetensors, tokenizer.json.
    Checkpoint(PathBuf),
    /// A plcc artifact directory (with `manifest.json`).
    Artifact(PathBuf),
}

impl ModelSource {
    /// Parses a command-line model reference.
    pub fn parse(spec: &str) -> Result<Self, Diag> {
        if let Some(name) = spec.strip_prefix("builtin:") {
            return Ok(ModelSource::Builtin(name.to_string()));
        }
        let path = PathBuf::from(spec);
        if !path.exists() {
            return Err(Diag::new("plcc::model::not-found", format!("model `{spec}` does not exist"))
                .help("give a checkpoint directory (config.json, model.safetensors, tokenizer.json) or `builtin:NAME`"));
        }
        if !path.is_dir() {
            return Err(Diag::new(
                "plcc::model::not-a-directory",
                format!("model `{spec}` is not a directory"),
            )
            .help("give the checkpoint directory, not a file inside it"));
        }
        if crate::artifact::is_artifact_dir(&path) {
            return Ok(ModelSource::Artifact(path));
        }
        if !path.join("config.json").is_file() {
            return Err(neither_artifact_nor_checkpoint(spec, &path));
        }
        Ok(ModelSource::Checkpoint(path))
    }
}

/// A directory with neither `manifest.json` nor `config.json`; when it
/// holds a build report it is an artifact whose manifest is missing.
fn neither_artifact_nor_checkpoint(spec: &str, dir: &Path) -> Diag {
    let report = ["report.json", "report.md"]
        .into_iter()
        .find(|f| dir.join(f).is_file());
    let d = match report {
        Some(report) => Diag::new(
            "plcc::artifact::missing-manifest",
            format!("`{spec}` has no `manifest.json`, so it is not a plcc artifact"),
        )
        .note(format!(
            "it holds `{report}` as plcc artifacts do, but without the manifest nothing in it can be loaded or checked"
        ))
        .help(crate::artifact::REBUILD_HELP),
        None => Diag::new(
            "plcc::model::not-a-model",
            format!("`{spec}` is neither a plcc artifact nor a checkpoint"),
        )
        .help("give an artifact directory (with manifest.json), a checkpoint directory (config.json, model.safetensors, tokenizer.json) or `builtin:NAME`"),
    };
    d.note("it has no `manifest.json` (plcc artifacts have one) and no `config.json` (checkpoints have one)")
}

/// Loads `spec` (`builtin:NAME` or a checkpoint directory) onto `device`.
pub fn load_model(spec: &str, device: &Device) -> Result<LoadedModel, Diag> {
    match ModelSource::parse(spec)? {
        ModelSource::Builtin(name) => load_builtin(&name, device),
        ModelSource::Checkpoint(dir) => load_checkpoint(&dir, device),
        ModelSource::Artifact(dir) => {
            crate::runtime::load::from_artifact::load_artifact(&dir, device)
        }
    }
}

/// Builds a built-in model from its seed.
pub fn load_builtin(name: &str, device: &Device) -> Result<LoadedModel, Diag> {
    let config = builtin::config(name).ok_or_else(|| builtin::unknown(name))?;
    let tokenizer =
        crate::text::tokenizer::builtin(name).ok_or_else(|| builtin::unknown(name))??;
    let network = Network::load(
        crate::runtime::load::builtin_weights::var_builder(device),
        &config,
    )
    .map_err(|e| {
        Diag::new(
            "plcc::builtin::build-failed",
            format!("cannot build builtin:{name}"),
        )
        .note(e.to_string())
    })?;
    Ok(LoadedModel::new(
        format!("builtin:{name}"),
        config,
        network,
        tokenizer,
        device,
    ))
}

/// Reads the configuration and weights of a checkpoint directory (no tokenizer).
pub fn load_network(
    dir: &Path,
    device: &Device,
) -> Result<(ModelConfig, Network, Checkpoint), Diag> {
    let config = ModelConfig::from_dir(dir)?;
    let weights = dir.join("model.safetensors");
    if !weights.exists() {
        return Err(Diag::new(
            "plcc::checkpoint::missing-weights",
            format!("checkpoint directory `{}` has no model.safetensors", dir.display()),
        )
        .help("plcc reads safetensors weights (`model.save_pretrained(dir, safe_serialization=True)`)"));
    }
    let checkpoint = Checkpoint::load(&weights, config.arch.family().anchor, device)?;
    let network = Network::load(checkpoint.var_builder(device), &config)
        .map_err(|e| load_error(e, &checkpoint.path))?;
    Ok((config, network, checkpoint))
}

/// Loads a Hugging Face checkpoint directory, with a sequence-classification
/// head when its family has a pooled classifier and the checkpoint has its
/// weight (`classifier.weight`).
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<LoadedModel, Diag> {
    let (config, mut network, checkpoint) = load_network(dir, device)?;
    let head = &config.arch.family().head;
    let weight = |module: &str| checkpoint.get(&format!("{module}.weight"));
    let classifier = match (head.pooler, weight(head.classifier)) {
        (Some(pooler), Some(w)) => {
            let labels = w.dims().first().copied().unwrap_or(0);
            if let Some(named) = config.labels.as_ref().filter(|n| n.len() != labels) {
                return Err(Diag::new(
                    "plcc::checkpoint::labels-mismatch",
                    format!(
                        "`{}`'s config.json names {} labels ({}) but its classifier has {labels} outputs",
                        dir.display(),
                        named.len(),
                        named.shown()
                    ),
                )
                .help("`id2label` in config.json lists one name per row of `classifier.weight`"));
            }
            let with_pooler = weight(pooler).is_some();
            let head = Head::load(
                checkpoint.var_builder(device),
                config.num_layers(),
                Pooling::Cls,
                config.hidden_size,
                with_pooler,
                Some(labels),
            )
            .map_err(|e| load_error(e, &checkpoint.path))?;
            Some(head)
        }
        _ => None,
    };
    // With the checkpoint's tensors released, each float weight is freed as
    // soon as its kernel holds it, so the model is never in memory twice.
    let path = checkpoint.path.clone();
    drop(checkpoint);
    network
        .prepare_inference()
        .map_err(|e| load_error(e, &path))?;
    let tokenizer = TextTokenizer::from_dir(dir, config.pad_token_id)?;
    Ok(LoadedModel {
        classifier,
        pipeline: read_pipeline(dir)?.unwrap_or_default(),
        ..LoadedModel::new(
            dir.display().to_string(),
            config,
            network,
            tokenizer,
            device,
        )
    })
}
