//! GPTQ calibration of the student's weights, before packing.
//!
//! The float student is run on each `method: gptq` quantizer's calibration
//! text (the first `samples` examples of its data set), layer by layer in
//! forward order. Every module that is rounded to nearest is quantized from
//! the start, and each layer's GPTQ modules are quantized before the next
//! layer is calibrated, so a layer's inputs are those of the quantized model
//! before it, as GPTQ prescribes. A tap on each module of the layer sums the
//! Gram matrix of its inputs (padding left out, activation quantizers
//! applied), `quant::gptq` chooses the codes, and the dequantized weights
//! replace the float ones for the layers that follow.
//!
//! An encoder-decoder reads its calibration texts as the seq2seq task does
//! (a text corrupted by text infilling is the source, the text itself the
//! decoder's target; a pair is a source and its target). Its encoder layers
//! are calibrated first, then its decoder layers, which read the final
//! encoder states through cross-attention; each tap keeps the real tokens
//! of the side its module reads (the cross-attention's keys and values read
//! the source's).
//!
//! Besides the codes, the calibration reports how much GPTQ lowered each
//! module's output error on the calibration inputs against round-to-nearest
//! with the same scales' rule: `‖(W − Q) Xᵀ‖²`, summed over the modules.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::base::family::{Family, InputSide};
use crate::base::ModelConfig;
use crate::base::{GptqSpec, QuantMethod};
use crate::diag::Diag;
use crate::eval::fidelity::{batch_for, encode_with};
use crate::ir::{Program, WeightQuant};
use crate::lower::quantize::pack::{placed_quantizers, quantize_error, weight_spec};
use crate::lower::teacher::{network_from, Tensors};
use crate::lower::train::losses::real_token_index;
use crate::quant::{dequantize, gptq, quantize, GptqOptions, Quantized};
use crate::runtime::tensor_error;
use crate::runtime::{ForwardOptions, InputTap, Inputs, Network};
use crate::text::data::Example;
use crate::text::TextTokenizer;

/// Calibration batches are this many sentences.
const BATCH: usize = 16;
/// Calibration sentences are truncated to this many tokens.
const MAX_TOKENS: usize = 128;

/// What GPTQ calibration produced.
#[derive(Debug, Default)]
pub struct Calibrated {
    /// The codes GPTQ chose, by student module name.
    pub quantized: BTreeMap<String, Quantized>,
    /// One line per calibration set for the build's notes.
    pub notes: Vec<String>,
}

/// What the student is calibrated with.
pub struct CalibrationInputs<'a> {
    pub program: &'a Program,
    pub config: &'a ModelConfig,
    /// The student's float tensors (logical `[out, in]` layout).
    pub tensors: &'a Tensors,
    /// IR module name → student module name.
    pub module_names: &'a BTreeMap<String, String>,
    /// Trained clipping values by module.
    pub trained_scales: &'a BTreeMap<String, Vec<f32>>,
    pub datasets: &'a BTreeMap<String, Vec<Example>>,
    /// The student's tokenizer.
    pub tokenizer: &'a TextTokenizer,
}

/// A calibration set as the student's batches.
struct CalibrationSet {
    batches: Vec<Inputs>,
    /// The number of examples.
    sentences: usize,
}

/// A GPTQ module: its student name, quantizer and calibration.
struct Target<'a> {
    name: String,
    quant: &'a WeightQuant,
    gptq: &'a GptqSpec,
}

/// Runs GPTQ on every module whose quantizer says `method: gptq`.
pub fn calibrate(inputs: &CalibrationInputs<'_>) -> Result<Calibrated, Diag> {
    let (weight_quant, activation_quant) = placed_quantizers(inputs.program, inputs.module_names);
    let targets: Vec<Target<'_>> = weight_quant
        .iter()
        .filter_map(|(name, quant)| match &quant.method {
            QuantMethod::Gptq(gptq) => Some(Target {
                name: name.clone(),
                quant,
                gptq,
            }),
            QuantMethod::Rtn => None,
        })
        .collect();
    if targets.is_empty() {
        return Ok(Calibrated::default());
    }
    let mut network = network_from(inputs.config, inputs.tensors, &Device::Cpu)?;
    for (name, linear) in network.linears_mut() {
        if let Some(a) = activation_quant.get(&name) {
            linear.quantize_inputs(*a);
        }
    }
    round_to_nearest_in_place(&mut network, &weight_quant, inputs)?;

    // Calibration sets, encoded once each.
    let mut sets: BTreeMap<(String, usize), CalibrationSet> = BTreeMap::new();
    for t in &targets {
        let key = (t.gptq.data.value.clone(), t.gptq.samples.value);
        if let std::collections::btree_map::Entry::Vacant(e) = sets.entry(key) {
            e.insert(calibration_set(t.gptq, inputs)?);
        }
    }

    // Layers in forward order; within a layer, one pass per calibration set.
    let family = inputs.config.arch.family();
    let mut by_layer: BTreeMap<((bool, usize), String, usize), Vec<&Target<'_>>> = BTreeMap::new();
    for t in &targets {
        by_layer
            .entry((
                forward_position(family, &t.name),
                t.gptq.data.value.clone(),
                t.gptq.samples.value,
            ))
            .or_default()
            .push(t);
    }
    let mut out = Calibrated::default();
    let mut errors: BTreeMap<(String, usize), (f64, f64, usize)> = BTreeMap::new();
    for ((_, data, samples), group) in by_layer {
        let set = &sets[&(data.clone(), samples)];
        let taps = attach_taps(&mut network, &group)?;
        let tokens = run_set(family, &network, set, &taps)?;
        for t in &group {
            let tap = &taps[&t.name];
            let (gram, _) = tap.gram();
            let (values, rows, cols) = matrix_of(inputs.tensors, &t.name)?;
            let ws = weight_spec(
                t.quant,
                &values,
                rows,
                cols,
                inputs.trained_scales.get(&t.name),
            );
            let opts = GptqOptions {
                damp: t.gptq.damp,
                act_order: t.gptq.act_order,
            };
            let q = gptq(&values, rows, cols, &gram, &ws.spec, opts)
                .map_err(|e| quantize_error(&t.name, t.quant, e))?;
            let rtn = quantize(&values, rows, cols, &ws.spec)
                .map_err(|e| quantize_error(&t.name, t.quant, e))?;
            let deq = dequantize(&q);
            let e = errors.entry((data.clone(), samples)).or_default();
            e.0 += output_error(&values, &deq, &gram, rows, cols)?;
            e.1 += output_error(&values, &dequantize(&rtn), &gram, rows, cols)?;
            e.2 = tokens;
            set_weight(&mut network, &t.name, deq, rows, cols)?;
            out.quantized.insert(t.name.clone(), q);
        }
        for (_, linear) in network.linears_mut() {
            linear.set_tap(None);
        }
    }
    for ((data, samples), (gptq_err, rtn_err, tokens)) in errors {
        let modules = targets
            .iter()
            .filter(|t| t.gptq.data.value == data && t.gptq.samples.value == samples)
            .count();
        out.notes.push(format!(
            "gptq: {modules} modules calibrated on `{data}` ({} sentences, {tokens} tokens); \
             their output error on it is {:.1}% of round-to-nearest's",
            sets[&(data.clone(), samples)].sentences,
            100.0 * gptq_err / rtn_err.max(f64::MIN_POSITIVE)
        ));
    }
    Ok(out)
}

/// Replaces the weights of every module rounded to nearest (the linears
/// and the word and position tables) by their quantized values.
fn round_to_nearest_in_place(
    network: &mut Network,
    weight_quant: &BTreeMap<String, WeightQuant>,
    inputs: &CalibrationInputs<'_>,
) -> Result<(), Diag> {
    let rtn = |name: &str| -> Result<Option<Tensor>, Diag> {
        let Some(w) = weight_quant.get(name).filter(|w| w.method.is_rtn()) else {
            return Ok(None);
        };
        let (values, rows, cols) = matrix_of(inputs.tensors, name)?;
        let ws = weight_spec(w, &values, rows, cols, inputs.trained_scales.get(name));
        let q = quantize(&values, rows, cols, &ws.spec).map_err(|e| quantize_error(name, w, e))?;
        Tensor::from_vec(dequantize(&q), (rows, cols), &Device::Cpu)
            .map(Some)
            .map_err(tensor_error)
    };
    for (name, linear) in network.linears_mut() {
        if let Some(w) = rtn(&name)? {
            linear.set_weight(w);
        }
    }
    let (name, embedding) = network.word_embeddings_mut();
    if let Some(table) = rtn(name)? {
        embedding.set_table(table);
    }
    for (name, positions) in network.position_embeddings_mut() {
        if let Some(table) = rtn(name)? {
            *positions = table;
        }
    }
    Ok(())
}

/// The first `samples` examples of the quantizer's data set, in batches
/// (an encoder-decoder's as its seq2seq rows, drawn with the recipe's seed).
fn calibration_set(g: &GptqSpec, inputs: &CalibrationInputs<'_>) -> Result<CalibrationSet, Diag> {
    let examples = inputs.datasets.get(&g.data.value).ok_or_else(|| {
        Diag::new(
            "plcc::build::no-calibration-data",
            format!("the calibration data set `{}` was not read", g.data.value),
        )
        .label(g.data.span, "calibration data")
    })?;
    if examples.len() < g.samples.value {
        return Err(Diag::new(
            "plcc::build::calibration-too-small",
            format!(
                "GPTQ asks for {} calibration samples, but `{}` has only {}",
                g.samples.value,
                g.data.value,
                examples.len()
            ),
        )
        .label(g.samples.span, "more samples than the data set has")
        .label(g.data.span, format!("{} examples", examples.len()))
        .help(format!(
            "lower `samples` to at most {}, or calibrate on a larger data set",
            examples.len()
        )));
    }
    let examples = &examples[..g.samples.value];
    let max_len = inputs.config.max_positions.min(MAX_TOKENS);
    let seed = inputs.program.plan.seed;
    let (rows, _) = encode_with(inputs.config, inputs.tokenizer, max_len, examples, seed)?;
    let batches = rows
        .chunks(BATCH)
        .map(|chunk| batch_for(inputs.config, chunk, inputs.tokenizer.pad_id, &Device::Cpu))
        .collect::<Result<_, _>>()?;
    Ok(CalibrationSet {
        batches,
        sentences: examples.len(),
    })
}

/// Attaches a fresh tap to each module of `group`.
fn attach_taps(
    network: &mut Network,
    group: &[&Target<'_>],
) -> Result<BTreeMap<String, Arc<InputTap>>, Diag> {
    let mut taps = BTreeMap::new();
    for (name, linear) in network.linears_mut() {
        if group.iter().any(|t| t.name == name) {
            let (_, inp) = linear.dims().map_err(tensor_error)?;
            let tap = Arc::new(InputTap::new(inp));
            linear.set_tap(Some(tap.clone()));
            taps.insert(name, tap);
        }
    }
    for t in group {
        if !taps.contains_key(&t.name) {
            return Err(Diag::new(
                "plcc::quantize::gptq-no-data-path",
                format!(
                    "`{}` is not a linear module of the student's layers",
                    t.name
                ),
            )
            .label(t.gptq.data.span, "GPTQ calibrates layer modules only"));
        }
    }
    Ok(taps)
}

/// Runs the calibration set through the network, each tap keeping the real
/// tokens of the side its module reads; returns the number of real tokens
/// (both sides of an encoder-decoder's batches).
fn run_set(
    family: &Family,
    network: &Network,
    set: &CalibrationSet,
    taps: &BTreeMap<String, Arc<InputTap>>,
) -> Result<usize, Diag> {
    let mut tokens = 0;
    for batch in &set.batches {
        let (source, n) = real_rows(&batch.mask)?;
        tokens += n;
        let decoder = match batch.decoder.as_deref() {
            Some(d) => {
                let (rows, n) = real_rows(&d.mask)?;
                tokens += n;
                Some(rows)
            }
            None => None,
        };
        for (name, tap) in taps {
            let keep = match (&decoder, family.input_side(name)) {
                (Some(rows), InputSide::Decoder) => rows,
                _ => &source,
            };
            tap.keep_rows(Some(keep.clone()));
        }
        network
            .forward(batch, &[], ForwardOptions::default())
            .map_err(tensor_error)?;
    }
    Ok(tokens)
}

/// The flattened indices of the real (unpadded) tokens of a `[batch, seq]`
/// mask, and their number.
fn real_rows(mask: &Tensor) -> Result<(Tensor, usize), Diag> {
    let keep = real_token_index(mask).map_err(tensor_error)?;
    let n = keep.dim(0).map_err(tensor_error)?;
    Ok((keep, n))
}

/// The weight of `module` as row-major values and its `(rows, cols)`.
fn matrix_of(tensors: &Tensors, module: &str) -> Result<(Vec<f32>, usize, usize), Diag> {
    let t = tensors.get(&format!("{module}.weight")).ok_or_else(|| {
        Diag::new(
            "plcc::build::missing-tensor",
            format!("the student has no weight `{module}.weight`"),
        )
    })?;
    let (rows, cols) = t.dims2().map_err(tensor_error)?;
    let values = t
        .flatten_all()
        .and_then(|f| f.to_vec1::<f32>())
        .map_err(tensor_error)?;
    Ok((values, rows, cols))
}

fn set_weight(
    network: &mut Network,
    module: &str,
    values: Vec<f32>,
    rows: usize,
    cols: usize,
) -> Result<(), Diag> {
    let w = Tensor::from_vec(values, (rows, cols), &Device::Cpu).map_err(tensor_error)?;
    for (name, linear) in network.linears_mut() {
        if name == module {
            linear.set_weight(w);
            return Ok(());
        }
    }
    Ok(())
}

/// Where a module of `family` runs in the forward pass: whether it is in an
/// encoder-decoder's decoder (which runs after the whole encoder), then the
/// layer index in its name (the first number in it; modules without one
/// last).
fn forward_position(family: &Family, module: &str) -> (bool, usize) {
    let layer = module.split('.').find_map(|part| part.parse().ok());
    (
        family.runs_after_encoder(module),
        layer.unwrap_or(usize::MAX),
    )
}

/// `‖(W − Q) Xᵀ‖² = Σ (D G) ⊙ D` with `D = W − Q` and `G = XᵀX`.
fn output_error(w: &[f32], q: &[f32], gram: &[f64], rows: usize, cols: usize) -> Result<f64, Diag> {
    let d: Vec<f32> = w.iter().zip(q).map(|(a, b)| a - b).collect();
    let g: Vec<f32> = gram.iter().map(|&x| x as f32).collect();
    let d = Tensor::from_vec(d, (rows, cols), &Device::Cpu).map_err(tensor_error)?;
    let g = Tensor::from_vec(g, (cols, cols), &Device::Cpu).map_err(tensor_error)?;
    d.matmul(&g)
        .and_then(|dg| (dg * &d)?.sum_all()?.to_scalar::<f32>())
        .map(f64::from)
        .map_err(tensor_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::Arch;
    use crate::runtime::load_model;

    #[test]
    fn an_encoder_decoder_calibrates_its_encoder_first() {
        let mut names = vec![
            "model.decoder.layers.0.fc1",
            "model.encoder.layers.1.fc1",
            "model.decoder.layers.1.self_attn.q_proj",
            "model.encoder.layers.0.self_attn.k_proj",
        ];
        let bart = Arch::Bart.family();
        names.sort_by_key(|n| forward_position(bart, n));
        assert_eq!(
            names,
            [
                "model.encoder.layers.0.self_attn.k_proj",
                "model.encoder.layers.1.fc1",
                "model.decoder.layers.0.fc1",
                "model.decoder.layers.1.self_attn.q_proj",
            ]
        );
        let gpt2 = Arch::Gpt2.family();
        assert!(
            forward_position(gpt2, "h.2.mlp.c_fc") < forward_position(gpt2, "h.10.attn.c_attn")
        );
    }

    #[test]
    fn taps_keep_the_real_tokens_of_the_side_their_module_reads() {
        let mut model = load_model("builtin:tiny-bart", &Device::Cpu).unwrap();
        let examples = [
            Example::text("a short one"),
            Example::text("a somewhat longer sentence than the first one is"),
        ];
        let (rows, _) = encode_with(&model.config, &model.tokenizer, 64, &examples, 7).unwrap();
        let batch = batch_for(&model.config, &rows, model.tokenizer.pad_id, &Device::Cpu).unwrap();
        let set = CalibrationSet {
            batches: vec![batch],
            sentences: examples.len(),
        };
        let modules = [
            ("model.encoder.layers.1.fc1", InputSide::Source),
            (
                "model.decoder.layers.0.encoder_attn.k_proj",
                InputSide::Source,
            ),
            (
                "model.decoder.layers.0.encoder_attn.v_proj",
                InputSide::Source,
            ),
            (
                "model.decoder.layers.0.encoder_attn.q_proj",
                InputSide::Decoder,
            ),
            (
                "model.decoder.layers.1.self_attn.k_proj",
                InputSide::Decoder,
            ),
            ("model.decoder.layers.1.fc2", InputSide::Decoder),
        ];
        let mut taps = BTreeMap::new();
        for (name, linear) in model.network.linears_mut() {
            if modules.iter().any(|(m, _)| *m == name) {
                let tap = Arc::new(InputTap::new(linear.dims().unwrap().1));
                linear.set_tap(Some(tap.clone()));
                taps.insert(name, tap);
            }
        }
        assert_eq!(taps.len(), modules.len());
        let family = model.config.arch.family();
        let tokens = run_set(family, &model.network, &set, &taps).unwrap();
        // `encode_with` rows are (decoder, source).
        let source: usize = rows.iter().map(|r| r.1.len()).sum();
        let decoder: usize = rows.iter().map(|r| r.0.len()).sum();
        // Both sides are padded: keeping every row would count more.
        assert_ne!(rows[0].1.len(), rows[1].1.len());
        assert_eq!(tokens, source + decoder);
        for (name, side) in modules {
            assert_eq!(family.input_side(name), side, "{name}");
            let expected = match side {
                InputSide::Source => source,
                InputSide::Decoder => decoder,
            };
            assert_eq!(taps[name].gram().1, expected, "{name}");
        }
    }
}
