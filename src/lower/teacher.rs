//! The teacher a build starts from: its configuration, every tensor the
//! runtime reads (recorded while the runtime builds the network, so built-in
//! seeded models and checkpoints are handled alike), its tokenizer and the
//! hash of its weights. Linear weights are kept in the logical `[out, in]`
//! layout; GPT-2's `Conv1D` weights are transposed on the way in and out.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::artifact::{RawTensor, TensorSet};
use crate::base::sha256_hex;
use crate::base::TeacherRef;
use crate::base::{builtin, read_pipeline, ModelConfig, SentencePipeline};
use crate::diag::Diag;
use crate::runtime::load::from_artifact::classifier_head;
use crate::runtime::load::loaded_model::Network;
use crate::runtime::load::weights::flip_conv1d;
use crate::runtime::load::weights::{load_error, Checkpoint, SeededWeights};
use crate::runtime::tensor_error;
use crate::runtime::LoadedModel;
use crate::text::tokenizer::of_teacher;
use crate::text::TextTokenizer;

/// Named f32 tensors (no model prefix), linear weights `[out, in]`.
pub type Tensors = HashMap<String, Tensor>;

/// The loaded teacher.
pub struct Teacher {
    /// `builtin:NAME` or the checkpoint directory.
    pub source: String,
    pub config: ModelConfig,
    pub tensors: Tensors,
    /// Tensors the checkpoint has beyond the network (`pooler.dense.*`, `classifier.*`).
    pub extra: Tensors,
    pub tokenizer: TextTokenizer,
    pub checkpoint_sha256: String,
    /// The checkpoint's sentence-embedding pipeline (`modules.json`), if any.
    pub pipeline: Option<SentencePipeline>,
}

/// Wraps a backend and keeps a copy of every tensor handed out.
struct Recorder {
    inner: Box<dyn SimpleBackend>,
    seen: Arc<Mutex<Tensors>>,
}

impl Recorder {
    fn keep(&self, name: &str, t: &Tensor) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(name.to_string(), t.clone());
        }
    }
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.inner.get(s, name, h, dtype, dev)?;
        self.keep(name, &t);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.inner.get_unchecked(name, dtype, dev)?;
        self.keep(name, &t);
        Ok(t)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

/// Builds the network for `config` from `backend`, returning every tensor it read.
fn record(
    backend: Box<dyn SimpleBackend>,
    config: &ModelConfig,
    device: &Device,
) -> candle_core::Result<Tensors> {
    let seen = Arc::new(Mutex::new(Tensors::new()));
    let recorder = Recorder {
        inner: backend,
        seen: seen.clone(),
    };
    let vb = VarBuilder::from_backend(Box::new(recorder), DType::F32, device.clone());
    Network::load(vb, config)?;
    let tensors = seen.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(tensors)
}

/// A network of `config` on `device` from logical-layout `tensors`
/// (GPT-2 `Conv1D` weights flipped back to the checkpoint layout the loader
/// reads).
pub fn network_from(
    config: &ModelConfig,
    tensors: &Tensors,
    device: &Device,
) -> Result<Network, Diag> {
    let mut tensors = tensors.clone();
    flip_conv1d(config.arch, &mut tensors).map_err(tensor_error)?;
    let vb = VarBuilder::from_backend(Box::new(tensors), DType::F32, device.clone());
    Network::load(vb, config).map_err(tensor_error)
}

pub fn load_teacher(teacher: &TeacherRef, device: &Device) -> Result<Teacher, Diag> {
    match teacher {
        TeacherRef::Builtin(name) => {
            let config = builtin::config(name).ok_or_else(|| builtin::unknown(name))?;
            let tokenizer = of_teacher(teacher, config.pad_token_id)?;
            let mut tensors = builtin_tensors(name, &config, device)?;
            let checkpoint_sha256 = builtin_sha256(&tensors)?;
            flip_conv1d(config.arch, &mut tensors).map_err(tensor_error)?;
            Ok(Teacher {
                source: format!("builtin:{name}"),
                config,
                tensors,
                extra: Tensors::new(),
                tokenizer,
                checkpoint_sha256,
                pipeline: None,
            })
        }
        TeacherRef::Dir(dir) => {
            let config = ModelConfig::from_dir(dir)?;
            let (weights, bytes) = checkpoint_weights(dir)?;
            let checkpoint_sha256 = sha256_hex(&bytes);
            let checkpoint =
                Checkpoint::from_bytes(&bytes, &weights, config.arch.family().anchor, device)?;
            let mut tensors = record(
                Box::new(checkpoint_map(&checkpoint, |_| true)),
                &config,
                device,
            )
            .map_err(|e| load_error(e, &weights))?;
            flip_conv1d(config.arch, &mut tensors).map_err(tensor_error)?;
            let extra = checkpoint_map(&checkpoint, |n| {
                n.starts_with("pooler.") || n.starts_with("classifier.")
            });
            let tokenizer = of_teacher(teacher, config.pad_token_id)?;
            Ok(Teacher {
                source: dir.display().to_string(),
                config,
                tensors,
                extra,
                tokenizer,
                checkpoint_sha256,
                pipeline: read_pipeline(dir)?,
            })
        }
    }
}

/// The hash that identifies a teacher's weights (what a manifest records as
/// `checkpoint_sha256`): over the bytes of a checkpoint's
/// `model.safetensors`, or, for a built-in model, over the tensors the
/// runtime reads (checkpoint layout) serialised as safetensors.
pub fn checkpoint_sha256(teacher: &TeacherRef) -> Result<String, Diag> {
    match teacher {
        TeacherRef::Builtin(name) => {
            let config = builtin::config(name).ok_or_else(|| builtin::unknown(name))?;
            builtin_sha256(&builtin_tensors(name, &config, &Device::Cpu)?)
        }
        TeacherRef::Dir(dir) => Ok(sha256_hex(&checkpoint_weights(dir)?.1)),
    }
}

/// Every tensor the runtime reads from the seeded built-in model `name`.
fn builtin_tensors(name: &str, config: &ModelConfig, device: &Device) -> Result<Tensors, Diag> {
    record(
        Box::new(SeededWeights {
            seed: builtin::SEED,
        }),
        config,
        device,
    )
    .map_err(|e| {
        Diag::new(
            "plcc::builtin::build-failed",
            format!("cannot build builtin:{name}"),
        )
        .note(e.to_string())
    })
}

/// The hash of a built-in model's tensors (checkpoint layout).
fn builtin_sha256(tensors: &Tensors) -> Result<String, Diag> {
    Ok(sha256_hex(&to_tensor_set(tensors)?.to_bytes()?))
}

/// The path and bytes of the checkpoint's `model.safetensors`.
fn checkpoint_weights(dir: &Path) -> Result<(PathBuf, Vec<u8>), Diag> {
    let weights = dir.join("model.safetensors");
    let bytes = crate::fsio::read_regular(&weights, &crate::fsio::WEIGHTS)?;
    Ok((weights, bytes))
}

fn checkpoint_map(checkpoint: &Checkpoint, keep: impl Fn(&str) -> bool) -> Tensors {
    checkpoint
        .names()
        .filter(|n| keep(n))
        .filter_map(|n| checkpoint.get(n).map(|t| (n.to_string(), t.clone())))
        .collect()
}

/// Copies tensors into an artifact `TensorSet` (f32), sorted by name.
pub fn to_tensor_set(tensors: &Tensors) -> Result<TensorSet, Diag> {
    let sorted: BTreeMap<_, _> = tensors.iter().collect();
    let mut set = TensorSet::default();
    for (name, t) in sorted {
        let values = t
            .flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .map_err(tensor_error)?;
        set.insert(name.clone(), RawTensor::f32(t.dims().to_vec(), &values));
    }
    Ok(set)
}

/// `tensors` copied to `device` (shared, not copied, where they already are).
pub fn tensors_on(tensors: &Tensors, device: &Device) -> Result<Tensors, Diag> {
    tensors
        .iter()
        .map(|(name, t)| Ok((name.clone(), t.to_device(device)?)))
        .collect::<candle_core::Result<Tensors>>()
        .map_err(tensor_error)
}

impl Teacher {
    /// The teacher as a runnable model on `device` (inference kernels
    /// prepared), with its sequence-classification head when it has one.
    pub fn loaded(&self, device: &Device) -> Result<LoadedModel, Diag> {
        let mut network = network_from(&self.config, &self.tensors, device)?;
        network.prepare_inference().map_err(tensor_error)?;
        let extra = tensors_on(&self.extra, device)?;
        let classifier = classifier_head(&extra, self.config.num_layers());
        Ok(LoadedModel {
            classifier,
            ..LoadedModel::new(
                self.source.clone(),
                self.config.clone(),
                network,
                self.tokenizer.clone(),
                device,
            )
        })
    }
}
