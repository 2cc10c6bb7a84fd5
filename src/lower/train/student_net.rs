//! The model being trained: a network whose every tensor is a trainable
//! variable, with fake-quantized linear layers and embeddings where the
//! program places weight quantizers, learned clipping scales as variables of
//! their own, inputs fake-quantized per token where the program places
//! activation quantizers, and the task head and exit heads. `export` turns the variables
//! back into the float tensors and learned scales the packer stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;

use super::fake_quant::{initial_scales, LearnedScaleQuantizer, SpecQuantizer};
use super::optim::{decays, Param};
use super::sparse_rows::{RowGrad, RowSparseTable};
use crate::artifact::{ActivationQuant, ExitRecord};
use crate::base::ModelConfig;
use crate::base::{Granularity, ScaleMethod, Task};
use crate::ir::WeightQuant;
use crate::lower::teacher::Tensors;
use crate::quant::QuantSpec;
use crate::runtime::load::from_artifact::heads_from_tensors;
use crate::runtime::model::grad_sink::GradSink;
use crate::runtime::{ForwardOptions, Head, Inputs, Linear, ModelOutput, Network, Quantizer};

/// A weight quantizer placed on a module, as the trainer applies it.
#[derive(Debug, Clone)]
enum Placed {
    Fixed(Arc<SpecQuantizer>),
    Learned(Arc<LearnedScaleQuantizer>),
}

impl Placed {
    fn quantizer(&self) -> Arc<dyn Quantizer> {
        match self {
            Placed::Fixed(q) => q.clone(),
            Placed::Learned(q) => q.clone(),
        }
    }

    /// Whether each row of the quantized matrix is quantized on its own.
    fn row_local(&self) -> bool {
        matches!(self, Placed::Fixed(q) if matches!(q.spec.granularity, Granularity::Row | Granularity::Group(_)))
    }
}

/// The trainable student.
pub struct TrainableNet {
    pub config: ModelConfig,
    pub task: Task,
    pub network: Network,
    pub classifier: Option<Head>,
    pub exits: Vec<Head>,
    /// Model variables by tensor name (logical `[out, in]` layout).
    vars: BTreeMap<String, Var>,
    /// Learned clipping scales by module name.
    learned: BTreeMap<String, Arc<LearnedScaleQuantizer>>,
    /// The token embedding's quantizer and its variable, when quantized.
    embedding_quant: Option<(Arc<dyn Quantizer>, Var)>,
    /// Each position table's quantizer and its variable, when quantized
    /// (parallel to `Network::position_embeddings_mut`).
    position_quant: Vec<Option<(Arc<dyn Quantizer>, Var)>>,
    /// The word table, when it is trained a few rows at a time.
    sparse_words: Option<RowSparseTable>,
    /// Where the linear layers put their parameters' gradients
    /// (`take_sunk_grad`).
    grad_sink: Arc<GradSink>,
    /// The weight quantizer and input quantizer of each quantized linear
    /// layer, by module name, to put back after a float phase.
    linear_quant: BTreeMap<String, LinearQuant>,
    /// Whether the forward passes go through the quantizers
    /// (`set_quantized`).
    quantized: bool,
}

/// What a linear layer is quantized with while the net trains quantized.
#[derive(Clone)]
struct LinearQuant {
    weight: Option<Arc<dyn Quantizer>>,
    inputs: Option<ActivationQuant>,
}

impl TrainableNet {
    /// Builds the network of `config` from `tensors` (logical layout) with
    /// `quant` (student module name → weight quantizer) applied.
    pub fn new(
        config: &ModelConfig,
        task: Task,
        tensors: &Tensors,
        quant: &BTreeMap<String, WeightQuant>,
        activations: &BTreeMap<String, ActivationQuant>,
        exit_records: &[ExitRecord],
        device: &Device,
    ) -> std::result::Result<Self, String> {
        let run = || -> Result<Self> {
            let mut vars = BTreeMap::new();
            let mut runtime: HashMap<String, Tensor> = HashMap::new();
            for (name, t) in tensors {
                let var = Var::from_tensor(&t.to_device(device)?.to_dtype(DType::F32)?)?;
                // Weights a family stores `[in, out]` (GPT-2's `Conv1D`) are
                // read so by the loader: hand it a transposed view.
                let view = if config.arch.family().is_transposed(name) {
                    var.as_tensor().t()?
                } else {
                    var.as_tensor().clone()
                };
                runtime.insert(name.clone(), view);
                vars.insert(name.clone(), var);
            }
            let vb =
                VarBuilder::from_backend(Box::new(runtime.clone()), DType::F32, device.clone());
            let mut network = Network::load(vb, config)?;
            let (classifier, exits) =
                heads_from_tensors(&runtime, &network, task, exit_records, config.num_layers())?;
            let mut learned = BTreeMap::new();
            let mut placed: BTreeMap<String, Placed> = BTreeMap::new();
            for (module, wq) in quant {
                let Some(var) = vars.get(&format!("{module}.weight")) else {
                    continue;
                };
                let p = match wq.scale {
                    ScaleMethod::Learned => {
                        let init = initial_scales(var.as_tensor(), wq.granularity)?;
                        let q = Arc::new(LearnedScaleQuantizer {
                            bits: wq.bits,
                            scale: Var::from_tensor(&init)?,
                        });
                        learned.insert(module.clone(), q.clone());
                        Placed::Learned(q)
                    }
                    _ => Placed::Fixed(Arc::new(SpecQuantizer {
                        spec: QuantSpec {
                            bits: wq.bits,
                            symmetric: wq.symmetric,
                            granularity: wq.granularity,
                            scale: wq.scale,
                            learned: None,
                        },
                    })),
                };
                placed.insert(module.clone(), p);
            }
            let grad_sink = Arc::new(GradSink::default());
            let mut linear_quant = BTreeMap::new();
            for (name, lin) in network.linears_mut() {
                lin.set_grad_sink(Some(grad_sink.clone()));
                let q = LinearQuant {
                    weight: placed.get(&name).map(Placed::quantizer),
                    inputs: activations.get(&name).copied(),
                };
                if q.weight.is_some() || q.inputs.is_some() {
                    q.apply(lin)?;
                    linear_quant.insert(name, q);
                }
            }
            let table_quant =
                |name: &str| match (placed.get(name), vars.get(&format!("{name}.weight"))) {
                    (Some(p), Some(var)) => Some((p.quantizer(), var.clone())),
                    _ => None,
                };
            let words = network.word_embeddings_mut().0;
            let embedding_quant = table_quant(words);
            let position_quant = network
                .position_embeddings_mut()
                .into_iter()
                .map(|(name, _)| table_quant(name))
                .collect();
            let row_local = placed.get(words).is_none_or(Placed::row_local);
            let sparse_words = vars
                .get(&format!("{words}.weight"))
                .filter(|_| !config.arch.family().embeddings.tied_head && row_local)
                .map(|var| RowSparseTable::new(format!("{words}.weight"), var.clone()));
            Ok(TrainableNet {
                config: config.clone(),
                task,
                network,
                classifier,
                exits,
                vars,
                learned,
                embedding_quant,
                position_quant,
                sparse_words,
                grad_sink,
                linear_quant,
                quantized: true,
            })
        };
        run().map_err(|e| e.to_string())
    }

    /// Trains and evaluates through the quantizers (`true`, as built) or as
    /// the float network (`false`). Returns whether that changed anything.
    pub fn set_quantized(&mut self, quantized: bool) -> Result<bool> {
        if quantized == self.quantized {
            return Ok(false);
        }
        for (name, linear) in self.network.linears_mut() {
            match (self.linear_quant.get(&name), quantized) {
                (Some(q), true) => q.apply(linear)?,
                (Some(_), false) => linear.stop_quantizing()?,
                (None, _) => {}
            }
        }
        self.quantized = quantized;
        Ok(true)
    }

    /// The token embedding's quantizer, while the net trains quantized.
    fn word_quant(&self) -> Option<&(Arc<dyn Quantizer>, Var)> {
        self.embedding_quant.as_ref().filter(|_| self.quantized)
    }

    /// Refreshes derived tensors for a forward pass over any ids: the whole
    /// word table (fake-quantized, or the variable itself after a training
    /// step replaced it with a few rows), the fake-quantized position
    /// table and the linear layers' fake-quantized weights, whose weights
    /// change every step.
    pub fn refresh(&mut self) -> Result<()> {
        if let Some((q, var)) = self.word_quant() {
            let table = q.fake_quant(var.as_tensor())?;
            self.network.word_embeddings_mut().1.set_table(table);
        } else if let Some(t) = &self.sparse_words {
            self.network
                .word_embeddings_mut()
                .1
                .set_table(t.var.as_tensor().clone());
        }
        self.refresh_quantized()
    }

    /// The position tables and the linear layers' weights, fake-quantized
    /// once for the forward passes until the next refresh.
    fn refresh_quantized(&mut self) -> Result<()> {
        for (_, linear) in self.network.linears_mut() {
            linear.freeze_quantized()?;
        }
        let tables = self.network.position_embeddings_mut();
        for ((_, table), quant) in tables.into_iter().zip(&self.position_quant) {
            if let Some((q, var)) = quant {
                *table = match self.quantized {
                    true => q.fake_quant(var.as_tensor())?,
                    false => var.as_tensor().clone(),
                };
            }
        }
        Ok(())
    }

    /// Readies the net for training forward passes over `inputs` (or any
    /// rows of it): derived tensors refreshed and, when the word table
    /// trains a few rows at a time, the rows `inputs` uses looked up
    /// (`row_grad` then reads their gradient). Returns the inputs `forward`
    /// reads: `inputs` with its ids renumbered into those rows.
    pub fn prepare_training(&mut self, inputs: &Inputs) -> Result<Inputs> {
        let quant = self.word_quant().map(|(q, _)| q.clone());
        let Some(table) = self.sparse_words.as_mut() else {
            self.refresh()?;
            return Ok(inputs.clone());
        };
        let (rows, local) = table.lookup(&inputs.ids, quant.as_deref())?;
        self.network.word_embeddings_mut().1.set_table(rows);
        self.refresh_quantized()?;
        Ok(Inputs {
            ids: local,
            mask: inputs.mask.clone(),
            token_types: inputs.token_types.clone(),
            decoder: inputs.decoder.clone(),
        })
    }

    /// The gradient of `param` the linear layers summed themselves since
    /// it was last taken, if any.
    pub fn take_sunk_grad(&self, param: &Param) -> Result<Option<Tensor>> {
        self.grad_sink.take(param.var.as_tensor())
    }

    /// Forgets gradients the linear layers summed (a step that failed
    /// part way).
    pub fn clear_sunk_grads(&self) {
        self.grad_sink.clear();
    }

    /// The gradient in `grads` of the word-table rows the last
    /// `prepare_training` looked up.
    pub fn row_grad(&self, grads: &candle_core::backprop::GradStore) -> Option<RowGrad> {
        self.sparse_words.as_ref()?.grad(grads)
    }

    /// Every head passed to the forward: exits, then the task head.
    pub fn heads(&self) -> Vec<Head> {
        let mut heads = self.exits.clone();
        heads.extend(self.classifier.clone());
        heads
    }

    pub fn forward(&self, inputs: &Inputs, opts: ForwardOptions) -> Result<ModelOutput> {
        self.network.forward(inputs, &self.heads(), opts)
    }

    /// Trainable parameters, sorted by name: model tensors, then learned
    /// scales (`{module}.weight_scale`).
    pub fn params(&self) -> Vec<Param> {
        let mut out: Vec<Param> = self
            .vars
            .iter()
            .map(|(n, v)| Param {
                name: n.clone(),
                var: v.clone(),
                decay: decays(n, v.as_tensor().rank()),
            })
            .collect();
        out.extend(self.learned.iter().map(|(m, q)| Param {
            name: format!("{m}.weight_scale"),
            var: q.scale.clone(),
            decay: false,
        }));
        out
    }

    /// The float tensors (logical layout, copied off the variables) and the
    /// learned clipping values by module.
    pub fn export(&self) -> Result<(Tensors, BTreeMap<String, Vec<f32>>)> {
        let mut tensors = Tensors::new();
        for (n, v) in &self.vars {
            tensors.insert(
                n.clone(),
                v.as_tensor().detach().copy()?.to_device(&Device::Cpu)?,
            );
        }
        let mut scales = BTreeMap::new();
        for (m, q) in &self.learned {
            scales.insert(m.clone(), q.values()?);
        }
        Ok((tensors, scales))
    }
}

impl LinearQuant {
    /// Puts the quantizers on `linear`.
    fn apply(&self, linear: &mut Linear) -> Result<()> {
        if let Some(w) = &self.weight {
            linear.fake_quantize(w.clone())?;
        }
        if let Some(a) = self.inputs {
            linear.quantize_inputs(a);
        }
        Ok(())
    }
}

/// Checks that learned scales can be trained for `wq`: symmetric, per row
/// or per tensor.
pub fn learned_scale_supported(wq: &WeightQuant) -> bool {
    wq.scale != ScaleMethod::Learned
        || (wq.symmetric && matches!(wq.granularity, Granularity::Row | Granularity::Tensor))
}
