//! Loading a plcc artifact directory (`Artifact::open` validates it) into a
//! runnable `LoadedModel`: the student's per-layer shapes come from the
//! manifest, and the task head and exit heads are rebuilt from their stored
//! tensors.
//!
//! Each linear runs on the kernel `Manifest::linear_kernel` names (the rule
//! the plan and the packer share). Linear weights stored packed in a form the
//! integer kernels take (binary, ternary, symmetric 2/4/8-bit with one scale
//! per tensor, row or group of a multiple of 4) run on those kernels
//! (`crate::runtime::kernels`), which quantize each input token to int8; on a
//! CUDA device (`cuda` feature) the packed weights are uploaded once and run
//! on the GPU kernel. Weight-only linears (`inputs: float` in their weight
//! record) run on the weight-only kernel, float inputs and the levels decoded
//! in the product, on the CPU. Packed weights the kernels do not take
//! (asymmetric, or groups of other lengths) are dequantized to f32 and run on
//! the float kernel, as float weights do. Every linear's input is quantized
//! as `Manifest::input_quant` says (its activation quantizer, or the integer
//! kernel's int8 per token), so what runs (and the build's fidelity,
//! measured on the loaded artifact) includes activation quantization.
//! [`LoadOptions::dequantized`] loads every weight as f32 without any
//! activation quantization instead (a reference to compare the kernels with).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::artifact::{Artifact, ExitRecord, Storage, StoredWeight, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::base::family::is_embedding_tensor;
use crate::base::LinearKernelKind;
use crate::base::Pooling;
use crate::base::{ExitHead, Task};
use crate::diag::Diag;
use crate::runtime::kernels::{KernelError, PackedLinear, WeightOnlyLinear};
use crate::runtime::load::loaded_model::{LoadedModel, Network};
use crate::runtime::load::weights::flip_conv1d;
use crate::runtime::model::heads::Head;
use crate::runtime::model::layers::EmbeddingTable;
use crate::runtime::model::linear::Linear;
use crate::runtime::model::linear_kernel::{is_per_token_int8, LinearKernel};
use crate::runtime::model::packed_table::PackedRows;
use crate::runtime::run::exit_rule::ExitPolicy;
use crate::text::TextTokenizer;

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
    tensors_except(artifact, device, &HashSet::new())
}

/// As [`artifact_tensors`], but each weight named in `held_packed` is a
/// stand-in of its shape that holds no data (a broadcast zero): the model
/// runs those weights from their packed form.
fn tensors_except(
    artifact: &Artifact,
    device: &Device,
    held_packed: &HashSet<String>,
) -> Result<HashMap<String, Tensor>, Diag> {
    let mut tensors = HashMap::new();
    for (name, record) in &artifact.manifest.weights {
        let t = if held_packed.contains(name) {
            Tensor::zeros((), DType::F32, device)
                .and_then(|z| z.broadcast_as(record.shape.as_slice()))
        } else {
            let values = artifact.weight_f32(name)?;
            Tensor::from_vec(values, record.shape.as_slice(), device)
        };
        tensors.insert(name.clone(), t.map_err(|e| load_failed(&artifact.dir, e))?);
    }
    flip_conv1d(artifact.manifest.config.arch, &mut tensors)
        .map_err(|e| load_failed(&artifact.dir, e))?;
    Ok(tensors)
}

/// The weights an artifact's model runs from their packed form, read once:
/// linear weights the integer kernels take (by module name) and, for a
/// family whose token table is not also its head (BERT), a packed token
/// table.
#[derive(Default)]
struct PackedParts {
    linears: HashMap<String, LinearKernel>,
    /// The packed token table and its weight's name.
    word_table: Option<(String, PackedRows)>,
}

impl PackedParts {
    /// Reads the packed weights and places the linears' kernels on `device`.
    fn read(artifact: &Artifact, device: &Device) -> Result<Self, Diag> {
        let family = artifact.manifest.config.arch.family();
        let word_table = format!("{}.weight", family.embeddings.word);
        let path = artifact.dir.join(WEIGHTS_FILE);
        let mut parts = PackedParts::default();
        for (name, record) in &artifact.manifest.weights {
            if !matches!(record.storage, Storage::Packed { .. }) || family.is_transposed(name) {
                continue;
            }
            let StoredWeight::Packed(q) =
                crate::artifact::read_weight(&artifact.tensors, name, record, &path)?
            else {
                continue;
            };
            if *name == word_table && !family.embeddings.tied_head {
                parts.word_table = Some((word_table.clone(), PackedRows::new(&q)));
                continue;
            }
            // Embedding tables and their projections are not linear layers.
            let table = is_embedding_tensor(name);
            let Some(module) = name.strip_suffix(".weight").filter(|_| !table) else {
                continue;
            };
            let bias_name = format!("{module}.bias");
            let bias = match artifact.manifest.weights.contains_key(&bias_name) {
                true => Some(artifact.weight_f32(&bias_name)?),
                false => None,
            };
            let input = artifact.manifest.input_quant(module);
            let kernel = match artifact.manifest.linear_kernel(module) {
                // An input quantized otherwise than the kernel's int8 per
                // token runs the float product on the dequantized weight.
                LinearKernelKind::Integer if input.as_ref().is_some_and(is_per_token_int8) => {
                    PackedLinear::new(&q, bias)
                        .and_then(|p| p.to_device(device))
                        .map(|p| Some(LinearKernel::Int8(p)))
                }
                // The weight-only kernel runs on the CPU; elsewhere the
                // dequantized weight gives the same product.
                LinearKernelKind::Decoding if input.is_none() && device.is_cpu() => {
                    WeightOnlyLinear::new(&q, bias).map(|p| p.map(LinearKernel::WeightOnly))
                }
                _ => Ok(None),
            };
            // Forms a kernel does not take on this device run on their
            // dequantized f32 weight; a failed upload is an error.
            match kernel {
                Ok(Some(kernel)) => {
                    parts.linears.insert(module.to_string(), kernel);
                }
                Err(KernelError::Device(e)) => {
                    return Err(Diag::new(
                        "plcc::artifact::load-failed",
                        format!("cannot place the packed weight `{name}` on the device"),
                    )
                    .note(e))
                }
                Ok(None) | Err(_) => {}
            }
        }
        Ok(parts)
    }

    /// The weight names held packed.
    fn names(&self) -> HashSet<String> {
        let linears = self.linears.keys().map(|m| format!("{m}.weight"));
        let table = self.word_table.as_ref().map(|(name, _)| name.clone());
        linears.chain(table).collect()
    }
}

/// How an artifact's weights run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Packed weights on the integer kernels and activation quantizers
    /// applied; otherwise every weight dequantized to f32 and no activation
    /// quantization.
    pub kernels: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { kernels: true }
    }
}

impl LoadOptions {
    /// Every weight as f32, no activation quantization.
    pub fn dequantized() -> Self {
        LoadOptions { kernels: false }
    }
}

/// Sets up the linear module `name` for inference as the manifest says: the
/// integer kernel for a packed weight it takes (`packed`, read at load), its
/// activation quantizer, and the float kernel otherwise.
fn prepare_linear(
    artifact: &Artifact,
    name: &str,
    lin: &mut Linear,
    packed: &mut PackedParts,
    options: LoadOptions,
) -> Result<(), Diag> {
    if options.kernels {
        if let Some(kernel) = packed.linears.remove(name) {
            lin.set_kernel(kernel);
        }
        if let Some(q) = artifact.manifest.input_quant(name) {
            lin.quantize_inputs(q);
        }
    }
    lin.prepare_inference()
        .map_err(|e| load_failed(&artifact.dir, e))
}

fn linear(tensors: &HashMap<String, Tensor>, name: &str) -> Option<Linear> {
    let w = tensors.get(&format!("{name}.weight"))?;
    Some(Linear::from_weights(
        w.clone(),
        tensors.get(&format!("{name}.bias")).cloned(),
    ))
}

/// A sequence-classification head after layer `layers` from `tensors`
/// (`classifier.*` and, when present, the tanh pooler `pooler.dense.*`, as
/// Hugging Face's `BertForSequenceClassification`); `None` without `classifier.weight`.
pub fn classifier_head(tensors: &HashMap<String, Tensor>, layers: usize) -> Option<Head> {
    linear(tensors, "classifier").map(|c| Head {
        after_layer: layers,
        pooling: Pooling::Cls,
        pooler: linear(tensors, "pooler.dense"),
        classifier: Some(c),
    })
}

/// The task head and exit heads stored in `tensors` (runtime layout): the
/// classifier (`pooler.dense.*`, `classifier.*`) and one head per exit
/// record. An embedding exit (`head: pooler`) maps the pooled state through
/// its linear `exit.{after}.dense` (identity as built), so its output lives
/// in the final embedding's space; a classifier exit has a tanh pooler and a
/// classifier; GPT-2 exits of a causal LM use the tied token embedding, a
/// BART decoder's exits the shared embedding and `final_logits_bias`.
pub fn heads_from_tensors(
    tensors: &HashMap<String, Tensor>,
    network: &Network,
    task: Task,
    records: &[ExitRecord],
    layers: usize,
) -> candle_core::Result<(Option<Head>, Vec<Head>)> {
    let classifier = classifier_head(tensors, layers);
    let pooling = Pooling::of_task(task);
    let mut exits = Vec::new();
    for record in records {
        let name = format!("exit.{}", record.after);
        let (pooler, classifier) = match (network, record.head) {
            (Network::Gpt2(m), ExitHead::Classifier) => {
                (None, Some(Linear::from_weights(m.wte.full_matrix()?, None)))
            }
            (Network::Bart(m), ExitHead::Classifier) => (
                None,
                Some(Linear::from_weights(
                    m.shared.full_matrix()?,
                    Some(m.final_logits_bias.squeeze(0)?),
                )),
            ),
            (_, ExitHead::Pooler) => (None, linear(tensors, &format!("{name}.dense"))),
            (_, ExitHead::Classifier) => (
                linear(tensors, &format!("{name}.dense")),
                linear(tensors, &format!("{name}.classifier")),
            ),
        };
        exits.push(Head {
            after_layer: record.after,
            pooling,
            pooler,
            classifier,
        });
    }
    Ok((classifier, exits))
}

/// Loads the artifact in `dir` onto `device`, packed weights on the kernels.
pub fn load_artifact(dir: &Path, device: &Device) -> Result<LoadedModel, Diag> {
    load_artifact_with(dir, device, LoadOptions::default())
}

/// Loads the artifact in `dir` onto `device` as `options` say.
pub fn load_artifact_with(
    dir: &Path,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, Diag> {
    let artifact = Artifact::open(dir)?;
    let config = artifact.manifest.config.clone();
    let mut packed = match options.kernels {
        true => PackedParts::read(&artifact, device)?,
        false => PackedParts::default(),
    };
    let tensors = tensors_except(&artifact, device, &packed.names())?;
    let vb = VarBuilder::from_backend(Box::new(tensors.clone()), DType::F32, device.clone());
    let mut network = Network::load(vb, &config).map_err(|e| load_failed(dir, e))?;
    if let Some((_, table)) = packed.word_table.take() {
        network.word_embeddings_mut().1.table = EmbeddingTable::Packed(Arc::new(table));
    }
    for (name, lin) in network.linears_mut() {
        prepare_linear(&artifact, &name, lin, &mut packed, options)?;
    }
    network
        .fuse_projections()
        .map_err(|e| load_failed(dir, e))?;
    let (mut classifier, mut exits) = heads_from_tensors(
        &tensors,
        &network,
        artifact.manifest.task,
        &artifact.manifest.exits,
        config.num_layers(),
    )
    .map_err(|e| load_failed(dir, e))?;
    if let Some(head) = classifier.as_mut() {
        prepare_head(
            &artifact,
            head,
            "pooler.dense",
            "classifier",
            &mut packed,
            options,
        )?;
    }
    for (head, record) in exits.iter_mut().zip(&artifact.manifest.exits) {
        let name = format!("exit.{}", record.after);
        let (pooler, out) = match record.head {
            ExitHead::Pooler => (String::new(), format!("{name}.dense")),
            ExitHead::Classifier => (format!("{name}.dense"), format!("{name}.classifier")),
        };
        prepare_head(&artifact, head, &pooler, &out, &mut packed, options)?;
    }
    let exit_policies = artifact
        .manifest
        .exits
        .iter()
        .map(|r| exit_policy(dir, r))
        .collect::<Result<Vec<_>, Diag>>()?;
    let tokenizer = TextTokenizer::from_bytes(
        &artifact.tokenizer_json,
        &dir.join(TOKENIZER_FILE),
        config.pad_token_id,
    )?;
    let pipeline = artifact.manifest.sentence_pipeline();
    Ok(LoadedModel {
        classifier,
        exits,
        exit_policies,
        pipeline,
        ..LoadedModel::new(
            dir.display().to_string(),
            config,
            network,
            tokenizer,
            device,
        )
    })
}

/// Prepares a head's pooler (module `pooler`) and classifier (module `out`).
fn prepare_head(
    artifact: &Artifact,
    head: &mut Head,
    pooler: &str,
    out: &str,
    packed: &mut PackedParts,
    options: LoadOptions,
) -> Result<(), Diag> {
    if let Some(p) = head.pooler.as_mut() {
        prepare_linear(artifact, pooler, p, packed, options)?;
    }
    if let Some(c) = head.classifier.as_mut() {
        prepare_linear(artifact, out, c, packed, options)?;
    }
    Ok(())
}

/// The policy of one manifest exit; a criterion that reads class
/// probabilities on an embedding exit is a diagnostic.
fn exit_policy(dir: &Path, record: &ExitRecord) -> Result<ExitPolicy, Diag> {
    if record.head == ExitHead::Pooler && ExitPolicy::needs_logits(record.criterion) {
        return Err(Diag::new(
            "plcc::artifact::exit-criterion",
            format!(
                "the exit after layer {} of `{}` produces embeddings, but its criterion `{}` needs class probabilities",
                record.after,
                dir.display(),
                crate::base::word(&record.criterion)
            ),
        )
        .help("embedding exits use `criterion: similarity`"));
    }
    Ok(ExitPolicy {
        head: record.head,
        criterion: record.criterion,
        threshold: record.threshold,
        patience: record.patience,
    })
}
