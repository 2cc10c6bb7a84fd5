//! One description per model family, free of candle: how its checkpoints
//! name their tensors (embeddings, layer stacks, blocks and their linear
//! modules, norms, the head), how they store them (GPT-2's fused `c_attn`,
//! `Conv1D` weights kept `[in, out]`, BART's position offset), how its
//! `config.json` is read, and what plcc can do with it. The IR builder,
//! slicing, loading, GPTQ, the report and both exporters read these
//! descriptions instead of spelling names themselves; each family's file
//! (`bert`, `gpt2`, `bart`) also names its modules as constants for the
//! model code that loads them one by one.

pub mod bart;
pub mod bert;
pub mod gpt2;

use super::config::{Arch, ModelConfig};
use super::config_json::ConfigJson;
use super::task::Task;
use crate::diag::Diag;

/// What one model family's checkpoints look like and what plcc does with them.
#[derive(Debug)]
pub struct Family {
    pub arch: Arch,
    /// The `model_type`s of `config.json` read as this family.
    pub model_types: &'static [&'static str],
    /// Reads the family's `config.json` (parsed) with its `model_type`.
    pub read_config: fn(&ConfigJson<'_>, String) -> Result<ModelConfig, Diag>,
    /// The prefix transformers' task models put before the base model's
    /// tensor names (`bert.`, `transformer.`); found and stripped on load.
    pub base_prefix: &'static str,
    /// The tensor every checkpoint of the family has (finds the prefix).
    pub anchor: &'static str,
    /// Whether the layers' linear weights are stored `[in, out]` (GPT-2's
    /// `Conv1D`) rather than `[out, in]`.
    pub transposed_linears: bool,
    pub embeddings: Embeddings,
    /// The stack of layers that ends in the head (an encoder-decoder's
    /// decoder); the layers plcc drops, maps and slices.
    pub layers: Stack,
    /// An encoder-decoder's encoder stack.
    pub encoder: Option<Stack>,
    pub head: HeadNames,
    pub supports: Supports,
}

/// The embedding tables and norms.
#[derive(Debug)]
pub struct Embeddings {
    /// The IR node of the embeddings.
    pub node: &'static str,
    /// The token table (`{word}.weight`; a factorized table adds
    /// `{word}_proj.weight`).
    pub word: &'static str,
    /// The position table (an encoder-decoder's encoder's).
    pub position: &'static str,
    /// Rows of every position table before position 0.
    pub position_offset: usize,
    /// The token-type (segment) table, for a family that has one.
    pub token_types: Option<&'static str>,
    /// The layer norm on the embeddings' sum, if any.
    pub norm: Option<&'static str>,
    /// An encoder-decoder's decoder's own position table and norm.
    pub decoder: Option<DecoderEmbeddings>,
    /// Name prefixes covering every embedding tensor (tables, the
    /// factorized projection, norms).
    pub prefixes: &'static [&'static str],
    /// Whether the token table is also the output head (tied).
    pub tied_head: bool,
}

/// The decoder side of an encoder-decoder's embeddings.
#[derive(Debug)]
pub struct DecoderEmbeddings {
    pub position: &'static str,
    pub norm: &'static str,
}

/// A stack of layers, each named `{root}{i}`.
#[derive(Debug)]
pub struct Stack {
    pub root: &'static str,
    /// Self-attention.
    pub attention: Block,
    /// Attention over the encoder's states (an encoder-decoder's decoder).
    pub cross_attention: Option<Block>,
    pub ffn: Block,
    /// Pre-LN (each block's norm before it) rather than post-LN (after the
    /// residual sum).
    pub norm_first: bool,
    /// Whether self-attention is causal.
    pub causal: bool,
}

/// One block of a layer: attention or the feed-forward network.
#[derive(Debug)]
pub struct Block {
    /// The block's module under its layer; empty when its linears sit
    /// directly under the layer (BERT's and BART's FFN).
    pub name: &'static str,
    /// Its linear modules under the block, in checkpoint order.
    pub linears: &'static [Linear],
    /// Its layer norm, under the layer.
    pub norm: &'static str,
}

/// A linear module of a block and what it computes.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub name: &'static str,
    pub role: Role,
}

/// What a linear module of a block computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Query,
    Key,
    Value,
    /// Query, key and value fused into one product, in that order (GPT-2's
    /// `c_attn`).
    QueryKeyValue,
    /// Attention heads back to the hidden width.
    Output,
    /// Hidden width to the FFN's neurons.
    Up,
    /// FFN neurons back to the hidden width.
    Down,
}

impl Role {
    /// `(out, in)` of a linear of this role in a layer of `hidden` width
    /// with `inner` (heads × head width) attention and `ffn` neurons.
    pub fn shape(self, hidden: usize, inner: usize, ffn: usize) -> (usize, usize) {
        match self {
            Role::Query | Role::Key | Role::Value => (inner, hidden),
            Role::QueryKeyValue => (3 * inner, hidden),
            Role::Output => (hidden, inner),
            Role::Up => (ffn, hidden),
            Role::Down => (hidden, ffn),
        }
    }
}

/// The modules of the output side.
#[derive(Debug)]
pub struct HeadNames {
    /// A norm after the last layer (GPT-2's `ln_f`).
    pub final_norm: Option<&'static str>,
    /// A bias added to the LM logits (BART's `final_logits_bias`).
    pub logits_bias: Option<&'static str>,
    /// The sequence classifier's linear.
    pub classifier: &'static str,
    /// The pooler before the classifier (BERT's `pooler.dense`), when the
    /// family has one.
    pub pooler: Option<&'static str>,
}

/// What plcc can do with a family.
#[derive(Debug)]
pub struct Supports {
    /// The language-modelling task of a generative family (next-token
    /// prediction, or seq2seq for an encoder-decoder): the default task of
    /// its checkpoints and what `pretrain` trains. An encoder has none.
    pub language_model: Option<Task>,
    /// Whether a student with a classification head can be built.
    pub classification: bool,
}

/// Every family plcc knows.
pub const FAMILIES: [&Family; 3] = [&bert::FAMILY, &gpt2::FAMILY, &bart::FAMILY];

impl Arch {
    /// The description of this family.
    pub fn family(self) -> &'static Family {
        match self {
            Arch::Bert => &bert::FAMILY,
            Arch::Gpt2 => &gpt2::FAMILY,
            Arch::Bart => &bart::FAMILY,
        }
    }
}

impl Family {
    /// The family whose checkpoints carry `model_type`.
    pub fn of_model_type(model_type: &str) -> Option<&'static Family> {
        FAMILIES
            .into_iter()
            .find(|f| f.model_types.contains(&model_type))
    }

    /// The stacks, encoder first.
    pub fn stacks(&self) -> impl Iterator<Item = &Stack> {
        self.encoder.iter().chain([&self.layers])
    }

    /// The attention block of a layer: cross-attention when `cross`, else
    /// self-attention (alike in every stack).
    pub fn attention_block(&self, cross: bool) -> &Block {
        match (&self.layers.cross_attention, cross) {
            (Some(block), true) => block,
            _ => &self.layers.attention,
        }
    }

    /// Whether `name` (prefix stripped) is a layer weight stored
    /// transposed, `[in, out]`.
    pub fn is_transposed(&self, name: &str) -> bool {
        self.transposed_linears && self.layers.is_linear_weight(name)
    }

    /// The side of the batch `module` reads in an encoder-decoder: the decoder's
    /// modules read the decoder's tokens, except the cross-attention's keys
    /// and values, which read the encoder's final states; every other
    /// module reads the source.
    pub fn input_side(&self, module: &str) -> InputSide {
        if !self.runs_after_encoder(module) {
            return InputSide::Source;
        }
        let cross = self.layers.cross_attention.as_ref().map(|c| c.name);
        match self.layers.locate(module) {
            Some((_, block, linear))
                if Some(block.name) == cross && matches!(linear.role, Role::Key | Role::Value) =>
            {
                InputSide::Source
            }
            _ => InputSide::Decoder,
        }
    }

    /// Whether `module` runs after an encoder-decoder's whole encoder (it is
    /// in the decoder stack).
    pub fn runs_after_encoder(&self, module: &str) -> bool {
        self.encoder.is_some() && module.starts_with(self.layers.root)
    }
}

/// The side of an encoder-decoder's batch that a linear module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSide {
    /// The source: the encoder's tokens, or the encoder's final states.
    Source,
    /// The decoder's tokens (its start token, then the target).
    Decoder,
}

impl Stack {
    /// Layer `i`'s module (`encoder.layer.3`).
    pub fn layer(&self, i: usize) -> String {
        format!("{}{i}", self.root)
    }

    /// The prefix of layer `i`'s tensors (`encoder.layer.3.`).
    pub fn prefix(&self, i: usize) -> String {
        format!("{}{i}.", self.root)
    }

    /// The blocks of a layer in forward order.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        [&self.attention]
            .into_iter()
            .chain(self.cross_attention.as_ref())
            .chain([&self.ffn])
    }

    /// `block`'s module in layer `i` (the layer itself for a block without
    /// a name of its own).
    pub fn block(&self, i: usize, block: &Block) -> String {
        join(&self.layer(i), block.name)
    }

    /// The layer index, block and linear of a linear module's name
    /// (`model.decoder.layers.1.encoder_attn.k_proj`).
    pub fn locate(&self, module: &str) -> Option<(usize, &Block, &Linear)> {
        let rest = module.strip_prefix(self.root)?;
        let (index, rest) = rest.split_once('.')?;
        let i = index.parse().ok()?;
        self.blocks().find_map(|b| {
            b.linears
                .iter()
                .find(|l| join(b.name, l.name) == rest)
                .map(|l| (i, b, l))
        })
    }

    /// Whether `name` is the weight of one of the stack's linears.
    pub fn is_linear_weight(&self, name: &str) -> bool {
        name.strip_suffix(".weight")
            .is_some_and(|m| self.locate(m).is_some())
    }
}

/// `prefix.suffix`, or either alone when the other is empty.
pub fn join(prefix: &str, suffix: &str) -> String {
    match (prefix.is_empty(), suffix.is_empty()) {
        (true, _) => suffix.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{suffix}"),
    }
}

/// True for the tensors of a model's embeddings, of any family: token and
/// position tables (with a factorized table's projection) and the norms on
/// their sum.
pub fn is_embedding_tensor(name: &str) -> bool {
    FAMILIES
        .iter()
        .any(|f| f.embeddings.prefixes.iter().any(|p| name.starts_with(p)))
}

/// True for the tensors of a transformer layer of any family and stack.
pub fn is_layer_tensor(name: &str) -> bool {
    FAMILIES
        .iter()
        .flat_map(|f| f.stacks())
        .any(|s| name.starts_with(s.root))
}
