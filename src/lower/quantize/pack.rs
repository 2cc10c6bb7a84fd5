//! Quantizing the student's weights as the program's annotations say and
//! storing them: packed at their real bit width (`artifact::store_weight`) or
//! float, every tensor recorded in the manifest. Linear weights are stored in
//! the logical `[out, in]` layout for every architecture.

use std::collections::BTreeMap;

use crate::artifact::{store_weight, ActivationQuant, Storage, TensorSet, WeightRecord};
use crate::base::{Bits, Granularity, ScaleMethod};
use crate::diag::Diag;
use crate::ir::{LinearInput, Program, WeightQuant};
use crate::lower::teacher::Tensors;
use crate::quant::{quantize, QuantSpec, Quantized};
use crate::runtime::tensor_error;

/// The packed student.
pub struct Packed {
    pub set: TensorSet,
    pub weights: BTreeMap<String, WeightRecord>,
    pub activation_quant: BTreeMap<String, ActivationQuant>,
    /// How many linears are quantized weight-only (float inputs).
    pub weight_only: usize,
    pub notes: Vec<String>,
}

/// Initial clipping values for a learned scale without training: per unit,
/// min(max |w|, 3 · mean |w|) (the `mean_abs` rule).
fn initial_learned_scales(w: &[f32], rows: usize, cols: usize, g: Granularity) -> Vec<f32> {
    let clip = |v: &[f32]| {
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let mean = v.iter().map(|x| x.abs()).sum::<f32>() / v.len().max(1) as f32;
        max.min(3.0 * mean)
    };
    match g {
        Granularity::Tensor => vec![clip(w)],
        Granularity::Row | Granularity::Token => w.chunks(cols.max(1)).map(clip).collect(),
        Granularity::Group(n) => (0..rows)
            .flat_map(|r| {
                let row = &w[r * cols..(r + 1) * cols];
                row.chunks(n.max(1)).map(clip).collect::<Vec<_>>()
            })
            .collect(),
    }
}

/// The weight quantizers the program places and the input quantization of
/// every linear at run time (`Program::linear_input`: the recipe's
/// activation quantizers and the integer kernel's int8 per token), by
/// student module name (`module_names` maps IR module names to student ones).
pub fn placed_quantizers(
    program: &Program,
    module_names: &BTreeMap<String, String>,
) -> (
    BTreeMap<String, WeightQuant>,
    BTreeMap<String, ActivationQuant>,
) {
    let mut weight_quant: BTreeMap<String, WeightQuant> = BTreeMap::new();
    let mut activation_quant = BTreeMap::new();
    for (ix, linear) in program.model.linears() {
        let name = module_names
            .get(&linear.name)
            .cloned()
            .unwrap_or_else(|| linear.name.clone());
        let quant = program.model.node(ix).quant.get(&linear.name);
        if let Some(w) = quant.and_then(|q| q.weights.as_ref()) {
            weight_quant.insert(name.clone(), w.clone());
        }
        let input = match program.linear_input(ix, &linear) {
            LinearInput::Quantizer(a) => ActivationQuant {
                bits: match a.bits {
                    Bits::Int(b) => b,
                    Bits::Ternary => 2,
                    Bits::Binary => 1,
                },
                symmetric: a.symmetric,
                granularity: a.granularity,
                kernel: false,
            },
            LinearInput::Kernel => ActivationQuant::KERNEL,
            LinearInput::Float | LinearInput::WeightOnly => continue,
        };
        activation_quant.insert(name, input);
    }
    (weight_quant, activation_quant)
}

/// The quantizer `w` as it applies to `values` (`rows × cols`): learned
/// clipping values are the trained ones of the module when training gave
/// some, else the initial rule (then `untrained` is set).
pub struct WeightSpec {
    pub spec: QuantSpec,
    pub untrained: bool,
}

pub fn weight_spec(
    w: &WeightQuant,
    values: &[f32],
    rows: usize,
    cols: usize,
    trained: Option<&Vec<f32>>,
) -> WeightSpec {
    let learned = (w.scale == ScaleMethod::Learned).then(|| {
        trained
            .cloned()
            .unwrap_or_else(|| initial_learned_scales(values, rows, cols, w.granularity))
    });
    WeightSpec {
        spec: QuantSpec {
            bits: w.bits,
            symmetric: w.symmetric,
            granularity: w.granularity,
            scale: w.scale,
            learned,
        },
        untrained: w.scale == ScaleMethod::Learned && trained.is_none(),
    }
}

/// The error of quantizing `name` as a diagnostic at the quantizer's span.
pub fn quantize_error(name: &str, w: &WeightQuant, e: impl std::fmt::Display) -> Diag {
    Diag::new(
        "plcc::build::quantize",
        format!("cannot quantize `{name}`: {e}"),
    )
    .label(w.span, "quantizer placed here")
}

/// Quantizes and stores every tensor of `student`. `module_names` maps IR
/// module names to student module names; `trained_scales` holds learned
/// clipping values by module (modules without use the initial rule);
/// `calibrated` holds the codes GPTQ chose, by module (the others are
/// rounded to nearest here).
pub fn pack(
    program: &Program,
    student: &Tensors,
    module_names: &BTreeMap<String, String>,
    trained_scales: &BTreeMap<String, Vec<f32>>,
    calibrated: &BTreeMap<String, Quantized>,
) -> Result<Packed, Diag> {
    let (weight_quant, activation_quant) = placed_quantizers(program, module_names);
    let mut notes = Vec::new();
    let mut set = TensorSet::default();
    let mut weights = BTreeMap::new();
    let sorted: BTreeMap<_, _> = student.iter().collect();
    let mut learned = 0usize;
    for (name, t) in sorted {
        let values = t
            .flatten_all()
            .and_then(|f| f.to_vec1::<f32>())
            .map_err(tensor_error)?;
        let shape = t.dims().to_vec();
        let module = name.strip_suffix(".weight");
        let quant = module.and_then(|m| weight_quant.get(m));
        let record = match (quant, shape.as_slice()) {
            (Some(w), &[rows, cols]) => {
                let q = match module.and_then(|m| calibrated.get(m)) {
                    Some(q) => q.clone(),
                    None => {
                        let ws = weight_spec(
                            w,
                            &values,
                            rows,
                            cols,
                            module.and_then(|m| trained_scales.get(m)),
                        );
                        learned += usize::from(ws.untrained);
                        quantize(&values, rows, cols, &ws.spec)
                            .map_err(|e| quantize_error(name, w, e))?
                    }
                };
                let mut record = store_weight(&mut set, name, shape, &values, Some(&q));
                if let Storage::Packed { inputs, .. } = &mut record.storage {
                    *inputs = w.inputs;
                }
                record
            }
            _ => store_weight(&mut set, name, shape, &values, None),
        };
        weights.insert(name.clone(), record);
    }
    if learned > 0 {
        notes.push(format!(
            "{learned} weight matrices have learned scales that were not trained; they use \
             min(max|w|, 3·mean|w|) per unit"
        ));
    }
    let weight_only = program
        .model
        .linears()
        .iter()
        .filter(|(ix, l)| program.linear_input(*ix, l) == LinearInput::WeightOnly)
        .count();
    Ok(Packed {
        set,
        weights,
        activation_quant,
        weight_only,
        notes,
    })
}
