//! Turns a model reference (`builtin:NAME` or a Hugging Face checkpoint
//! directory) into a ready-to-run `LoadedModel`: configuration, network,
//! task head and tokenizer. Each kind of source is one `ModelSource` variant
//! with its own loading function, so further formats (plcc artifacts) slot in
//! as one more variant.

use std::path::{Path, PathBuf};

use candle_core::{Device, Result as CResult, Tensor};
use candle_nn::VarBuilder;

use crate::base::builtin;
use crate::base::family::{bart, bert, gpt2, join};
use crate::base::{read_pipeline, Pooling, SentencePipeline};
use crate::base::{Arch, ModelConfig};
use crate::diag::Diag;
use crate::runtime::load::weights::{load_error, Checkpoint};
use crate::runtime::model::bart::BartModel;
use crate::runtime::model::bert::{BertLayer, BertModel};
use crate::runtime::model::gpt2::Gpt2Model;
use crate::runtime::model::heads::Head;
use crate::runtime::model::linear::Linear;
use crate::runtime::model::output::{ForwardOptions, Inputs, ModelOutput};
use crate::runtime::run::exit_rule::ExitPolicy;
use crate::runtime::Mode;
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

/// The network of a loaded model.
#[derive(Debug, Clone)]
pub enum Network {
    Bert(BertModel),
    Gpt2(Gpt2Model),
    Bart(BartModel),
}

impl Network {
    /// Builds the network for `cfg` from `vb` (a checkpoint, a `VarMap` or seeded weights).
    pub fn load(vb: VarBuilder, cfg: &ModelConfig) -> CResult<Self> {
        Ok(match cfg.arch {
            Arch::Bert => Network::Bert(BertModel::load(vb, cfg)?),
            Arch::Gpt2 => Network::Gpt2(Gpt2Model::load(vb, cfg)?),
            Arch::Bart => Network::Bart(BartModel::load(vb, cfg)?),
        })
    }

    /// Every layer's linear modules with their checkpoint names, as the
    /// family names them. As the caller may change them, joined projections
    /// are dropped (`fuse_projections` joins them again).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        match self {
            Network::Bert(m) => {
                let stack = &bert::FAMILY.layers;
                m.layers
                    .iter_mut()
                    .enumerate()
                    .flat_map(|(i, l)| {
                        l.qkv = None;
                        let (attention, ffn) = (stack.block(i, &stack.attention), stack.layer(i));
                        [
                            (&attention, bert::QUERY, &mut l.query),
                            (&attention, bert::KEY, &mut l.key),
                            (&attention, bert::VALUE, &mut l.value),
                            (&attention, bert::ATTENTION_OUT, &mut l.attn_out),
                            (&ffn, bert::FFN_IN, &mut l.ffn_in),
                            (&ffn, bert::FFN_OUT, &mut l.ffn_out),
                        ]
                        .map(|(block, name, lin)| (join(block, name), lin))
                    })
                    .collect()
            }
            Network::Gpt2(m) => {
                let stack = &gpt2::FAMILY.layers;
                m.blocks
                    .iter_mut()
                    .enumerate()
                    .flat_map(|(i, b)| {
                        let attention = stack.block(i, &stack.attention);
                        let ffn = stack.block(i, &stack.ffn);
                        [
                            (&attention, gpt2::QKV, &mut b.qkv),
                            (&attention, gpt2::ATTENTION_OUT, &mut b.attn_out),
                            (&ffn, gpt2::FFN_IN, &mut b.ffn_in),
                            (&ffn, gpt2::FFN_OUT, &mut b.ffn_out),
                        ]
                        .map(|(block, name, lin)| (join(block, name), lin))
                    })
                    .collect()
            }
            Network::Bart(m) => m.linears_mut(),
        }
    }

    /// The token embedding and its module name.
    pub fn word_embeddings_mut(
        &mut self,
    ) -> (&'static str, &mut crate::runtime::model::layers::Embedding) {
        match self {
            Network::Bert(m) => (bert::WORD_EMBEDDINGS, &mut m.word_embeddings),
            Network::Gpt2(m) => (gpt2::TOKEN_EMBEDDINGS, &mut m.wte),
            Network::Bart(m) => (bart::FAMILY.embeddings.word, &mut m.shared),
        }
    }

    /// The position tables' module names and tables `[positions, hidden]`
    /// (BART has one per stack).
    pub fn position_embeddings_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        match self {
            Network::Bert(m) => vec![(bert::POSITION_EMBEDDINGS, &mut m.position_embeddings)],
            Network::Gpt2(m) => vec![(gpt2::POSITION_EMBEDDINGS, &mut m.wpe)],
            Network::Bart(m) => {
                let e = &bart::FAMILY.embeddings;
                let decoder = e.decoder.as_ref().map_or(e.position, |d| d.position);
                vec![
                    (e.position, &mut m.encoder_embedding.positions),
                    (decoder, &mut m.decoder_embedding.positions),
                ]
            }
        }
    }

    /// Packs every layer's float weights for the fast inference kernel (the
    /// network must not be trained afterwards).
    pub fn prepare_inference(&mut self) -> CResult<()> {
        self.linears_mut()
            .into_iter()
            .try_for_each(|(_, l)| l.prepare_inference())?;
        self.fuse_projections()
    }

    /// Joins each layer's separate query, key and value projections into one
    /// inference product where their kernels allow (BERT; GPT-2's are one
    /// module already).
    pub fn fuse_projections(&mut self) -> CResult<()> {
        match self {
            Network::Bert(m) => m
                .layers
                .iter_mut()
                .try_for_each(BertLayer::fuse_projections),
            Network::Gpt2(_) | Network::Bart(_) => Ok(()),
        }
    }

    pub fn forward(
        &self,
        inputs: &Inputs,
        exits: &[Head],
        opts: ForwardOptions,
    ) -> CResult<ModelOutput> {
        match self {
            Network::Bert(m) => m.forward(inputs, exits, opts),
            Network::Gpt2(m) => m.forward(inputs, exits, opts),
            Network::Bart(m) => m.forward(inputs, exits, opts),
        }
    }
}

/// A model ready to run on text.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    /// The reference it was loaded from (for reports).
    pub name: String,
    pub config: ModelConfig,
    pub network: Network,
    /// A classification head after the last layer, when the checkpoint has one.
    pub classifier: Option<Head>,
    /// Exit heads after inner layers.
    pub exits: Vec<Head>,
    /// When samples leave at each exit (parallel to `exits`).
    pub exit_policies: Vec<ExitPolicy>,
    pub tokenizer: TextTokenizer,
    pub device: Device,
    /// How an encoder's final states become its embedding: the
    /// checkpoint's or artifact's pipeline, else the mean, not normalized.
    pub pipeline: SentencePipeline,
}

impl LoadedModel {
    /// `network` reading `tokenizer` on `device`, without heads; set
    /// `classifier`, `exits` and `exit_policies` where the model has them.
    pub fn new(
        name: impl Into<String>,
        config: ModelConfig,
        network: Network,
        tokenizer: TextTokenizer,
        device: &Device,
    ) -> Self {
        LoadedModel {
            name: name.into(),
            config,
            network,
            classifier: None,
            exits: Vec::new(),
            exit_policies: Vec::new(),
            tokenizer,
            device: device.clone(),
            pipeline: SentencePipeline::default(),
        }
    }

    /// Runs a batch in inference mode through the network and its heads.
    pub fn forward(&self, inputs: &Inputs) -> CResult<(ModelOutput, Option<Tensor>)> {
        let mut heads = self.exits.clone();
        heads.extend(self.classifier.clone());
        let opts = ForwardOptions {
            mode: Mode::Inference,
            ..Default::default()
        };
        let mut out = self.network.forward(inputs, &heads, opts)?;
        let logits = if self.classifier.is_some() {
            out.exits.pop()
        } else {
            None
        };
        Ok((out, logits))
    }
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
