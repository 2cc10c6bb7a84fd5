//! Taylor importance of attention heads and FFN neurons: |activation ×
//! gradient| of a loss summed over every exit (or the final output only),
//! accumulated over batches of the prune data. A structure's activation ×
//! gradient is the gradient of the loss with respect to a gate of value 1 on
//! its output, so every head's and neuron's output is multiplied by such a
//! gate (folded into the columns of the output projection) and the gates'
//! gradients are read back. The losses: cross-entropy against the labels (or
//! the teacher's own predictions) for classification, next-token
//! cross-entropy for causal LMs, and for embeddings an in-batch contrastive
//! loss against the teacher's final embeddings (temperature 0.05).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::ops::log_softmax;
use candle_nn::VarBuilder;

use crate::base::Pooling;
use crate::base::Task;
use crate::diag::Diag;
use crate::lower::teacher::{Teacher, Tensors};
use crate::runtime::load::loaded_model::Network;
use crate::runtime::load::weights::flip_conv1d;
use crate::runtime::model::heads::{pool, Head};
use crate::runtime::model::linear::Linear;
use crate::runtime::tensor_error;
use crate::runtime::{ForwardOptions, Inputs, Mode};
use crate::text::data::Example;

const BATCH: usize = 16;
const MAX_LEN: usize = 64;

/// Head and neuron scores per teacher layer.
pub type Scores = BTreeMap<usize, (Vec<f32>, Vec<f32>)>;

fn gate(w: &Linear, var: &Var) -> Result<Linear, Diag> {
    let gated = w
        .float_weight()
        .and_then(|f| f.broadcast_mul(var.as_tensor()))
        .map_err(tensor_error)?;
    Ok(Linear::from_weights(gated, w.bias.clone()))
}

/// Where the loss is read: teacher layer outputs (1-based indices into the
/// hidden states) of the exits, then the final output.
pub struct TaylorSetup<'a> {
    pub task: Task,
    /// Teacher hidden-state index read by each exit.
    pub exit_layers: Vec<usize>,
    /// The classification head (pooler + classifier tensors) when classifying.
    pub head: Option<&'a Tensors>,
    pub batches: usize,
}

fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let lp = log_softmax(logits, D::Minus1)?;
    lp.gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .neg()?
        .mean_all()
}

/// Scores every teacher layer's heads and neurons on `examples`.
pub fn taylor_scores(
    teacher: &Teacher,
    setup: &TaylorSetup<'_>,
    examples: &[Example],
    reporter: &dyn crate::lower::reporter::Reporter,
) -> Result<Scores, Diag> {
    let cfg = &teacher.config;
    let dev = Device::Cpu;
    let mut runtime = teacher.tensors.clone();
    flip_conv1d(cfg.arch, &mut runtime).map_err(tensor_error)?;
    let vb = VarBuilder::from_backend(Box::new(runtime), DType::F32, dev.clone());
    let mut network = Network::load(vb, cfg).map_err(tensor_error)?;
    let mut gates = Vec::new();
    for shape in &cfg.layers {
        let h = Var::ones(shape.heads * shape.head_dim, DType::F32, &dev).map_err(tensor_error)?;
        let n = Var::ones(shape.ffn, DType::F32, &dev).map_err(tensor_error)?;
        gates.push((h, n));
    }
    match &mut network {
        Network::Bert(m) => {
            for (l, (h, n)) in m.layers.iter_mut().zip(&gates) {
                l.attn_out = gate(&l.attn_out, h)?;
                l.ffn_out = gate(&l.ffn_out, n)?;
            }
        }
        Network::Gpt2(m) => {
            for (l, (h, n)) in m.blocks.iter_mut().zip(&gates) {
                l.attn_out = gate(&l.attn_out, h)?;
                l.ffn_out = gate(&l.ffn_out, n)?;
            }
        }
        Network::Bart(_) => {
            return Err(Diag::new(
                "plcc::prune::unsupported-model",
                "Taylor importance of heads and neurons is not implemented for BART",
            ))
        }
    }
    let lin = |name: &str| {
        setup.head.and_then(|t| {
            t.get(&format!("{name}.weight"))
                .map(|w| Linear::from_weights(w.clone(), t.get(&format!("{name}.bias")).cloned()))
        })
    };
    let head = Head {
        after_layer: cfg.num_layers(),
        pooling: Pooling::Cls,
        pooler: lin("pooler.dense"),
        classifier: lin("classifier"),
    };
    let mut sums: Vec<(Vec<f32>, Vec<f32>)> = cfg
        .layers
        .iter()
        .map(|s| (vec![0f32; s.heads], vec![0f32; s.ffn]))
        .collect();
    let mut tok = teacher.tokenizer.inner.clone();
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length: MAX_LEN.min(cfg.max_positions),
        ..Default::default()
    }))
    .map_err(|e| Diag::new("plcc::build::tokenize", "cannot set truncation").note(e.to_string()))?;
    let chunks: Vec<&[Example]> = examples.chunks(BATCH).take(setup.batches.max(1)).collect();
    reporter.begin("importance", chunks.len(), 0);
    for chunk in chunks {
        reporter.step("");
        let mut rows = Vec::new();
        for ex in chunk {
            let enc = tok.encode(ex.text.as_str(), true).map_err(|e| {
                Diag::new("plcc::build::tokenize", "cannot tokenize prune data").note(e.to_string())
            })?;
            rows.push(enc.get_ids().to_vec());
        }
        let inputs =
            Inputs::from_rows(&rows, teacher.tokenizer.pad_id, &dev).map_err(tensor_error)?;
        let opts = ForwardOptions {
            mode: Mode::Training,
            lm_logits: setup.task == Task::CausalLm,
            ..Default::default()
        };
        let out = network.forward(&inputs, &[], opts).map_err(tensor_error)?;
        let loss =
            batch_loss(setup, &network, &head, &out, &inputs, chunk).map_err(tensor_error)?;
        let grads = loss.backward().map_err(tensor_error)?;
        for ((h, n), (hs, ns)) in gates.iter().zip(sums.iter_mut()) {
            if let Some(g) = grads.get(h.as_tensor()) {
                let g: Vec<f32> = g.to_vec1().map_err(tensor_error)?;
                let d = g.len() / hs.len().max(1);
                for (i, s) in hs.iter_mut().enumerate() {
                    *s += g[i * d..(i + 1) * d].iter().sum::<f32>().abs();
                }
            }
            if let Some(g) = grads.get(n.as_tensor()) {
                let g: Vec<f32> = g.to_vec1().map_err(tensor_error)?;
                for (s, v) in ns.iter_mut().zip(g) {
                    *s += v.abs();
                }
            }
        }
    }
    reporter.end();
    Ok(sums.into_iter().enumerate().collect())
}

fn batch_loss(
    setup: &TaylorSetup<'_>,
    network: &Network,
    head: &Head,
    out: &crate::runtime::ModelOutput,
    inputs: &Inputs,
    chunk: &[Example],
) -> candle_core::Result<Tensor> {
    let reads: Vec<&Tensor> = setup
        .exit_layers
        .iter()
        .filter_map(|&l| out.hidden_states.get(l))
        .chain(std::iter::once(&out.last_hidden))
        .collect();
    let mut total: Option<Tensor> = None;
    let mut add = |t: Tensor| -> candle_core::Result<()> {
        total = Some(match total.take() {
            Some(a) => (a + t)?,
            None => t,
        });
        Ok(())
    };
    match setup.task {
        Task::Embedding { pooling } => {
            let target = pool(&out.last_hidden, &inputs.mask, pooling)?.detach();
            let norm = |x: &Tensor| -> candle_core::Result<Tensor> {
                x.broadcast_div(
                    &x.sqr()?
                        .sum_keepdim(D::Minus1)?
                        .sqrt()?
                        .clamp(1e-6, f64::MAX)?,
                )
            };
            let target = norm(&target)?;
            let b = chunk.len();
            let labels = Tensor::arange(0u32, b as u32, target.device())?;
            for h in &reads {
                let e = norm(&pool(h, &inputs.mask, pooling)?)?;
                let sim = (e.matmul(&target.t()?)? / 0.05)?;
                add(cross_entropy(&sim, &labels)?)?;
            }
        }
        Task::Classification { .. } => {
            let final_logits = head.forward(&out.last_hidden, &inputs.mask)?;
            let predicted: Vec<u32> = final_logits.argmax(D::Minus1)?.to_vec1()?;
            let labels: Vec<u32> = chunk
                .iter()
                .zip(predicted)
                .map(|(e, p)| e.label.map_or(p, |l| l as u32))
                .collect();
            let labels = Tensor::new(labels, final_logits.device())?;
            for h in &reads {
                add(cross_entropy(&head.forward(h, &inputs.mask)?, &labels)?)?;
            }
        }
        Task::Seq2Seq => {
            candle_core::bail!(
                "Taylor importance is not implemented for sequence-to-sequence models"
            )
        }
        Task::CausalLm => {
            let Network::Gpt2(m) = network else {
                candle_core::bail!("causal LM importance needs a GPT-2 network")
            };
            let (b, s) = inputs.ids.dims2()?;
            if s < 2 {
                candle_core::bail!("prune data sequences need at least two tokens")
            }
            let targets = inputs.ids.narrow(1, 1, s - 1)?.flatten_all()?;
            for h in &reads {
                let logits = m.lm_logits(&h.narrow(1, 0, s - 1)?)?;
                let v = logits.dim(D::Minus1)?;
                add(cross_entropy(&logits.reshape((b * (s - 1), v))?, &targets)?)?;
            }
        }
    }
    match total {
        Some(t) => Ok(t),
        None => candle_core::bail!("no exit to score importance on"),
    }
}
