//! What loading gives: a [`LoadedModel`] (configuration, [`Network`],
//! heads, exit policies, tokenizer, device, sentence pipeline), whichever
//! source it came from, and the network's view of its layers by checkpoint
//! name.

use candle_core::{Device, Result as CResult, Tensor};
use candle_nn::VarBuilder;

use crate::base::family::{bart, bert, gpt2, join};
use crate::base::{Arch, LabelSet, ModelConfig, SentencePipeline};
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

    /// The classes of its classification head: the configuration's labels
    /// (config.json's `id2label`, an artifact's manifest), else as many
    /// numbered classes (`LABEL_0`, ...) as the head has outputs; `None`
    /// without a classification head.
    pub fn labels(&self) -> Option<LabelSet> {
        let (outputs, _) = self.classifier.as_ref()?.classifier.as_ref()?.dims().ok()?;
        match &self.config.labels {
            Some(set) if set.len() == outputs => Some(set.clone()),
            _ => Some(LabelSet::numbered(outputs)),
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
