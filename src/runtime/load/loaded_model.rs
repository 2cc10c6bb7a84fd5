//! What loading gives: a [`LoadedModel`] (configuration, [`Network`],
//! heads, exit policies, tokenizer, device, sentence pipeline), whichever
//! source it came from, and the network's view of its layers by checkpoint
//! name.

use candle_core::{Device, Result as CResult, Tensor};
use candle_nn::VarBuilder;

use crate::base::{Arch, ModelConfig, SentencePipeline};
use crate::runtime::model::bart::BartModel;
use crate::runtime::model::bert::{BertLayer, BertModel};
use crate::runtime::model::gpt2::Gpt2Model;
use crate::runtime::model::heads::Head;
use crate::runtime::model::layers::Mode;
use crate::runtime::model::linear::Linear;
use crate::runtime::model::output::{ForwardOptions, Inputs, ModelOutput};
use crate::runtime::run::exit_rule::ExitPolicy;
use crate::text::TextTokenizer;

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

    /// Every layer's linear modules with their checkpoint names
    /// (`encoder.layer.0.attention.self.query`, `h.0.attn.c_attn`). As the
    /// caller may change them, joined projections are dropped
    /// (`fuse_projections` joins them again).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        match self {
            Network::Bert(m) => m
                .layers
                .iter_mut()
                .enumerate()
                .flat_map(|(i, l)| {
                    l.qkv = None;
                    [
                        ("attention.self.query", &mut l.query),
                        ("attention.self.key", &mut l.key),
                        ("attention.self.value", &mut l.value),
                        ("attention.output.dense", &mut l.attn_out),
                        ("intermediate.dense", &mut l.ffn_in),
                        ("output.dense", &mut l.ffn_out),
                    ]
                    .map(|(name, lin)| (format!("encoder.layer.{i}.{name}"), lin))
                })
                .collect(),
            Network::Gpt2(m) => m
                .blocks
                .iter_mut()
                .enumerate()
                .flat_map(|(i, b)| {
                    [
                        ("attn.c_attn", &mut b.qkv),
                        ("attn.c_proj", &mut b.attn_out),
                        ("mlp.c_fc", &mut b.ffn_in),
                        ("mlp.c_proj", &mut b.ffn_out),
                    ]
                    .map(|(name, lin)| (format!("h.{i}.{name}"), lin))
                })
                .collect(),
            Network::Bart(m) => m.linears_mut(),
        }
    }

    /// The token embedding and its module name (`embeddings.word_embeddings`, `wte`).
    pub fn word_embeddings_mut(
        &mut self,
    ) -> (&'static str, &mut crate::runtime::model::layers::Embedding) {
        match self {
            Network::Bert(m) => ("embeddings.word_embeddings", &mut m.word_embeddings),
            Network::Gpt2(m) => ("wte", &mut m.wte),
            Network::Bart(m) => ("model.shared", &mut m.shared),
        }
    }

    /// The position tables' module names and tables `[positions, hidden]`
    /// (BART has one per stack).
    pub fn position_embeddings_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        match self {
            Network::Bert(m) => {
                vec![("embeddings.position_embeddings", &mut m.position_embeddings)]
            }
            Network::Gpt2(m) => vec![("wpe", &mut m.wpe)],
            Network::Bart(m) => vec![
                (
                    "model.encoder.embed_positions",
                    &mut m.encoder_embedding.positions,
                ),
                (
                    "model.decoder.embed_positions",
                    &mut m.decoder_embedding.positions,
                ),
            ],
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
