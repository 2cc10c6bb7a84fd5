//! The artifact's weights as ONNX values: linear layers (float, packed
//! weights dequantized in the graph, or an integer product on int8
//! activations), activation quantizers, and table lookups that keep a packed
//! table packed. Packed weights are stored as int8 initializers holding
//! their integer levels (one byte a weight) with f32 scales, per row or per
//! group, exactly as plcc's integer kernels read them
//! (`runtime::kernels::integer_levels`).

use std::collections::HashMap;

use super::builder::{Attr, GraphBuilder};
use super::proto::data_type;
use crate::artifact::{read_weight, ActivationQuant, Artifact, StoredWeight};
use crate::base::Granularity;
use crate::diag::Diag;
use crate::runtime::kernels::{integer_levels, IntegerLevels};
use crate::runtime::model::linear_kernel::PER_TOKEN_INT8;

/// The graph being built with the artifact it reads from.
pub struct WeightGraph<'a> {
    pub g: GraphBuilder,
    artifact: &'a Artifact,
    /// Per-token int8 quantizations already computed, by input value.
    int8_inputs: HashMap<String, (String, String)>,
    /// Fake-quantized inputs already computed, by input value and width.
    fake_inputs: HashMap<(String, u8, bool), String>,
    /// Initializers already written, by tensor name: each weight is stored
    /// once however many nodes read it (a tied word table, say).
    stored: HashMap<String, Stored>,
}

/// The initializers of one stored tensor.
#[derive(Clone)]
enum Stored {
    Float(String),
    /// INT4 levels `[rows, cols]` and their scales `[rows, groups]`, a
    /// block of `block` values along a row each (a whole row for row
    /// scales); every reader gets its own `DequantizeLinear` node.
    Int4 {
        values: String,
        scales: String,
        block: usize,
    },
    /// The int8 levels of a `rows × cols` matrix, their scales (`[rows, 1]`,
    /// or `[rows, groups, 1]`) and the groups of a row (count, length).
    Levels {
        values: String,
        scales: String,
        group: Option<(usize, usize)>,
        rows: usize,
        cols: usize,
    },
}

/// A stored weight in the form the graph uses.
enum Weight {
    Float {
        shape: Vec<usize>,
        values: Vec<f32>,
    },
    Levels {
        rows: usize,
        cols: usize,
        levels: IntegerLevels,
    },
}

fn cannot(name: &str, why: impl std::fmt::Display) -> Diag {
    Diag::new(
        "plcc::export::unsupported",
        format!("cannot export `{name}` to ONNX: {why}"),
    )
}

/// Whether every level fits INT4 (the widths of 4 bits and fewer).
fn fits_int4(levels: &IntegerLevels) -> bool {
    levels.values.iter().all(|v| (-8..=7).contains(v))
}

/// A weight's scales: their shape, `[rows, 1]` or `[rows, groups, 1]`, and
/// the groups of a row (count, length) when they are per group.
type ScaleLayout = (Vec<usize>, Option<(usize, usize)>);

/// The layout of `levels`' scales for a `rows × cols` weight.
fn scale_layout(
    name: &str,
    rows: usize,
    cols: usize,
    levels: &IntegerLevels,
) -> Result<ScaleLayout, Diag> {
    let mut shape = vec![rows];
    match levels.group_len {
        None => {
            shape.push(1);
            Ok((shape, None))
        }
        Some(len) if cols.is_multiple_of(len) => {
            shape.extend([cols / len, 1]);
            Ok((shape, Some((cols / len, len))))
        }
        Some(len) => Err(cannot(
            name,
            format!("rows of {cols} are not whole groups of {len}"),
        )),
    }
}

impl<'a> WeightGraph<'a> {
    pub fn new(artifact: &'a Artifact) -> Self {
        WeightGraph {
            g: GraphBuilder::default(),
            artifact,
            int8_inputs: HashMap::new(),
            fake_inputs: HashMap::new(),
            stored: HashMap::new(),
        }
    }

    /// The initializers of tensor `name` (written on first use).
    fn stored(&mut self, name: &str) -> Result<Stored, Diag> {
        if let Some(hit) = self.stored.get(name) {
            return Ok(hit.clone());
        }
        let stored = match self.weight(name)? {
            Weight::Float { shape, values } => Stored::Float(self.g.f32s(name, &shape, &values)),
            Weight::Levels { rows, cols, levels } if fits_int4(&levels) => {
                self.int4_stored(name, rows, cols, &levels)?
            }
            Weight::Levels { rows, cols, levels } => {
                let values = self.g.i8s(name, &[rows, cols], &levels.values);
                let (shape, group) = scale_layout(name, rows, cols, &levels)?;
                let hint = name.trim_end_matches(".weight");
                let scales = self
                    .g
                    .f32s(&format!("{hint}.scales"), &shape, &levels.scales);
                Stored::Levels {
                    values,
                    scales,
                    group,
                    rows,
                    cols,
                }
            }
        };
        self.stored.insert(name.to_string(), stored.clone());
        Ok(stored)
    }

    /// Levels within ±7 stored as INT4 with the scales `DequantizeLinear`
    /// takes, in blocks along a row (a group, or the whole row).
    fn int4_stored(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        levels: &IntegerLevels,
    ) -> Result<Stored, Diag> {
        let hint = name.trim_end_matches(".weight");
        let (_, group) = scale_layout(name, rows, cols, levels)?;
        let values = self.g.i4s(name, &[rows, cols], &levels.values);
        let scales_name = format!("{hint}.scales");
        // Row scales are one block a row: ONNX Runtime's transpose
        // optimizer mishandles INT4 dequantized along axis 0.
        let (groups, block) = group.unwrap_or((1, cols));
        let scales = self.g.f32s(&scales_name, &[rows, groups], &levels.scales);
        Ok(Stored::Int4 {
            values,
            scales,
            block,
        })
    }

    /// The f32 value of a stored tensor: the float initializer, a fresh
    /// `DequantizeLinear` of INT4 levels, or int8 levels scaled in the graph.
    fn float_of(&mut self, stored: &Stored, hint: &str) -> String {
        match stored {
            Stored::Float(name) => name.clone(),
            Stored::Int4 {
                values,
                scales,
                block,
            } => {
                let attrs = [Attr::Int("axis", 1), Attr::Int("block_size", *block as i64)];
                self.g
                    .op("DequantizeLinear", &[values, scales], &attrs, hint)
            }
            Stored::Levels {
                values,
                scales,
                group,
                rows,
                cols,
            } => {
                // [rows, cols] viewed as [1, rows, cols], scaled, and back.
                let axes = self.g.i64s("axes", &[0]);
                let q = self.g.op("Unsqueeze", &[values, &axes], &[], hint);
                let w = self.scale_levels(&q, scales, *group, hint);
                let flat = self.g.i64s("shape", &[*rows as i64, *cols as i64]);
                self.g.op("Reshape", &[&w, &flat], &[], hint)
            }
        }
    }

    /// Whether the artifact stores tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.artifact.manifest.weights.contains_key(name)
            || self.artifact.tensors.tensors.contains_key(name)
    }

    fn weight(&self, name: &str) -> Result<Weight, Diag> {
        let path = self.artifact.dir.join(crate::artifact::WEIGHTS_FILE);
        let stored = match self.artifact.manifest.weights.get(name) {
            Some(record) => read_weight(&self.artifact.tensors, name, record, &path)?,
            None => {
                let t = self
                    .artifact
                    .tensors
                    .tensors
                    .get(name)
                    .ok_or_else(|| cannot(name, "the artifact has no such tensor"))?;
                StoredWeight::Float {
                    shape: t.shape.clone(),
                    values: t
                        .to_f32()
                        .ok_or_else(|| cannot(name, "it is not a float tensor"))?,
                }
            }
        };
        Ok(match stored {
            StoredWeight::Float { shape, values } => Weight::Float { shape, values },
            StoredWeight::Packed(q) => Weight::Levels {
                rows: q.rows,
                cols: q.cols,
                levels: integer_levels(&q).map_err(|e| cannot(name, e))?,
            },
        })
    }

    /// A float tensor as an initializer.
    pub fn float(&mut self, name: &str) -> Result<String, Diag> {
        match self.weight(name)? {
            Weight::Float { shape, values } => Ok(self.g.f32s(name, &shape, &values)),
            Weight::Levels { .. } => Err(cannot(name, "a packed vector or norm is not expected")),
        }
    }

    /// Multiplies int8 levels (as f32) `[.., groups·len]` by their scales
    /// `scales` (`[.., groups, 1]` for groups, `[.., 1]` for rows), keeping the shape.
    fn scale_levels(
        &mut self,
        values: &str,
        scales: &str,
        group: Option<(usize, usize)>,
        hint: &str,
    ) -> String {
        let f = self.g.op(
            "Cast",
            &[values],
            &[Attr::Int("to", data_type::FLOAT as i64)],
            hint,
        );
        match group {
            None => self.g.op("Mul", &[&f, scales], &[], hint),
            Some((groups, len)) => {
                let split = self.g.i64s("shape", &[0, 0, groups as i64, len as i64]);
                let back = self.g.i64s("shape", &[0, 0, -1]);
                let grouped = self.g.op("Reshape", &[&f, &split], &[], hint);
                let scaled = self.g.op("Mul", &[&grouped, scales], &[], hint);
                self.g.op("Reshape", &[&scaled, &back], &[], hint)
            }
        }
    }

    /// Looks rows of table `name` (`[vocab, width]`) up by `ids` (`[b, s]`):
    /// `[b, s, width]`. A packed table stays packed in the file; only the
    /// rows read are dequantized.
    pub fn lookup(&mut self, name: &str, ids: &str) -> Result<String, Diag> {
        let hint = name.trim_end_matches(".weight");
        match self.stored(name)? {
            stored @ (Stored::Float(_) | Stored::Int4 { .. }) => {
                let table = self.float_of(&stored, hint);
                Ok(self
                    .g
                    .op("Gather", &[&table, ids], &[Attr::Int("axis", 0)], hint))
            }
            Stored::Levels {
                values,
                scales,
                group,
                ..
            } => {
                let rows_read = self
                    .g
                    .op("Gather", &[&values, ids], &[Attr::Int("axis", 0)], hint);
                let row_scales =
                    self.g
                        .op("Gather", &[&scales, ids], &[Attr::Int("axis", 0)], hint);
                // For groups the rows read `[b, s, width]` are viewed as
                // `[b, s, groups, len]` (the reshape copies `b` and `s`).
                Ok(self.scale_levels(&rows_read, &row_scales, group, hint))
            }
        }
    }

    /// `x` quantized per token to int8 as plcc's integer kernels do it
    /// (`q = round_half_even(x · 127 / max |x|)`): the int8 values and the
    /// scales `max |x| / 127` `[.., 1]`.
    fn int8_per_token(&mut self, x: &str) -> (String, String) {
        if let Some(done) = self.int8_inputs.get(x) {
            return done.clone();
        }
        let max = self.abs_max(x, true);
        let qmax = self.g.scalar("qmax", 127.0);
        let scaled = self.g.op("Mul", &[x, &qmax], &[], "act_scaled");
        let ratio = self.g.op("Div", &[&scaled, &max], &[], "act_ratio");
        let rounded = self.g.op("Round", &[&ratio], &[], "act_round");
        let q = self.clip_levels(&rounded, 127.0);
        let q8 = self.g.op(
            "Cast",
            &[&q],
            &[Attr::Int("to", data_type::INT8 as i64)],
            "act_q",
        );
        let scale = self.g.op("Div", &[&max, &qmax], &[], "act_scale");
        self.int8_inputs
            .insert(x.to_string(), (q8.clone(), scale.clone()));
        (q8, scale)
    }

    /// The largest magnitude of `x` per token (`[.., 1]`) or over the whole
    /// tensor (a scalar), kept above zero so an all-zero row stays zero.
    fn abs_max(&mut self, x: &str, per_token: bool) -> String {
        let abs = self.g.op("Abs", &[x], &[], "act_abs");
        let max = if per_token {
            let axes = self.g.i64s("axes", &[-1]);
            self.g.op(
                "ReduceMax",
                &[&abs, &axes],
                &[Attr::Int("keepdims", 1)],
                "act_max",
            )
        } else {
            self.g
                .op("ReduceMax", &[&abs], &[Attr::Int("keepdims", 0)], "act_max")
        };
        let tiny = self.g.scalar("tiny", f32::MIN_POSITIVE);
        self.g.op("Max", &[&max, &tiny], &[], "act_max")
    }

    fn clip_levels(&mut self, rounded: &str, qmax: f32) -> String {
        let lo = self.g.scalar("qmin", -qmax);
        let hi = self.g.scalar("qmax", qmax);
        self.g.op("Clip", &[rounded, &lo, &hi], &[], "act_levels")
    }

    /// `x` through the activation quantizer `aq` (its values in f32), as
    /// plcc's quantizer computes it: `q = round_half_away(x / max · qmax)`,
    /// then `q · max / qmax`.
    fn fake_quantize(
        &mut self,
        x: &str,
        aq: &ActivationQuant,
        module: &str,
    ) -> Result<String, Diag> {
        if !aq.symmetric {
            return Err(cannot(
                module,
                "asymmetric activation quantizers are not exported",
            ));
        }
        let per_token = match aq.granularity {
            Granularity::Token => true,
            Granularity::Tensor => false,
            other => return Err(cannot(module, format!("activation granularity {other:?}"))),
        };
        let key = (x.to_string(), aq.bits, per_token);
        if let Some(done) = self.fake_inputs.get(&key) {
            return Ok(done.clone());
        }
        let qmax = ((1u32 << (aq.bits - 1)) - 1) as f32;
        let max = self.abs_max(x, per_token);
        let qmax_c = self.g.scalar("qmax", qmax);
        let unit = self.g.op("Div", &[x, &max], &[], "act_unit");
        let ratio = self.g.op("Mul", &[&unit, &qmax_c], &[], "act_ratio");
        // Half away from zero: sign(r) · floor(|r| + 0.5).
        let half = self.g.scalar("half", 0.5);
        let abs = self.g.op("Abs", &[&ratio], &[], "act_round");
        let shifted = self.g.op("Add", &[&abs, &half], &[], "act_round");
        let floor = self.g.op("Floor", &[&shifted], &[], "act_round");
        let sign = self.g.op("Sign", &[&ratio], &[], "act_round");
        let rounded = self.g.op("Mul", &[&sign, &floor], &[], "act_round");
        let q = self.clip_levels(&rounded, qmax);
        let scaled = self.g.op("Mul", &[&q, &max], &[], "act_fq");
        let out = self.g.op("Div", &[&scaled, &qmax_c], &[], "act_fq");
        self.fake_inputs.insert(key, out.clone());
        Ok(out)
    }

    /// The matrix `name` as f32 `[rows, cols]` (or `[cols, rows]` when
    /// `transposed`): a float initializer, or a packed one's int8 levels
    /// scaled inside the graph.
    pub fn matrix(&mut self, name: &str, transposed: bool) -> Result<String, Diag> {
        let hint = name.trim_end_matches(".weight");
        let stored = self.stored(name)?;
        let w = self.float_of(&stored, hint);
        Ok(if transposed {
            self.g
                .op("Transpose", &[&w], &[Attr::Ints("perm", vec![1, 0])], hint)
        } else {
            w
        })
    }

    /// The linear module `module` (`module.weight` `[out, in]`, optional
    /// `module.bias`) applied to `x` `[.., in]`, with the module's activation
    /// quantizer when the artifact has one. plcc runs a packed linear on its
    /// integer kernel, which quantizes the input per token to int8 when the
    /// artifact names no other quantizer for it; an int8 weight with row
    /// scales on such an input is the integer product the kernel computes
    /// (exact i32 sums, then the token's and the row's scales).
    pub fn linear(&mut self, module: &str, x: &str) -> Result<String, Diag> {
        let weight_name = format!("{module}.weight");
        let named = self.artifact.manifest.activation_quant.get(module).copied();
        let stored = self.stored(&weight_name)?;
        let packed = !matches!(stored, Stored::Float(_));
        let aq = if packed {
            Some(named.unwrap_or(PER_TOKEN_INT8))
        } else {
            named
        };
        let per_token_int8 =
            aq.is_some_and(|a| a.bits == 8 && a.symmetric && a.granularity == Granularity::Token);
        let y = match &stored {
            Stored::Levels {
                values,
                scales,
                group: None,
                rows,
                ..
            } if per_token_int8 => {
                let perm = [Attr::Ints("perm", vec![1, 0])];
                let wt = self.g.op("Transpose", &[values], &perm, module);
                let flat = self.g.i64s("shape", &[*rows as i64]);
                let sw = self.g.op("Reshape", &[scales, &flat], &[], module);
                let (xq, sx) = self.int8_per_token(x);
                let acc = self.g.op("MatMulInteger", &[&xq, &wt], &[], module);
                let accf = self.g.op(
                    "Cast",
                    &[&acc],
                    &[Attr::Int("to", data_type::FLOAT as i64)],
                    module,
                );
                let by_token = self.g.op("Mul", &[&accf, &sx], &[], module);
                self.g.op("Mul", &[&by_token, &sw], &[], module)
            }
            _ => {
                let w = self.matrix(&weight_name, true)?;
                let x = match &aq {
                    Some(aq) => self.fake_quantize(x, aq, module)?,
                    None => x.to_string(),
                };
                self.g.op("MatMul", &[&x, &w], &[], module)
            }
        };
        self.add_bias(module, y)
    }

    /// `x · name^T` for an embedding's projection `name` (`[hidden, r]`):
    /// a float product, as the runtime computes it.
    pub fn project(&mut self, name: &str, x: &str) -> Result<String, Diag> {
        let w = self.matrix(name, true)?;
        Ok(self
            .g
            .op("MatMul", &[x, &w], &[], name.trim_end_matches(".weight")))
    }

    /// A GPT-2 `Conv1D` module (an artifact stores its weight `[out, in]`,
    /// as every linear's) applied to `x`: plcc runs these on float (or
    /// dequantized) weights, with the activation quantizer the artifact
    /// names, if any.
    pub fn conv1d(&mut self, module: &str, x: &str) -> Result<String, Diag> {
        let w = self.matrix(&format!("{module}.weight"), true)?;
        let x = match self.artifact.manifest.activation_quant.get(module).copied() {
            Some(aq) => self.fake_quantize(x, &aq, module)?,
            None => x.to_string(),
        };
        let y = self.g.op("MatMul", &[&x, &w], &[], module);
        self.add_bias(module, y)
    }

    fn add_bias(&mut self, module: &str, y: String) -> Result<String, Diag> {
        let bias_name = format!("{module}.bias");
        if self.has(&bias_name) {
            let b = self.float(&bias_name)?;
            Ok(self.g.op("Add", &[&y, &b], &[], module))
        } else {
            Ok(y)
        }
    }
}
