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
use crate::runtime::linear_kernel::PER_TOKEN_INT8;

/// The graph being built with the artifact it reads from.
pub struct WeightGraph<'a> {
    pub g: GraphBuilder,
    artifact: &'a Artifact,
    /// Per-token int8 quantizations already computed, by input value.
    int8_inputs: HashMap<String, (String, String)>,
    /// Fake-quantized inputs already computed, by input value and width.
    fake_inputs: HashMap<(String, u8, bool), String>,
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

/// The shape of `levels`' scales for a `rows × cols` weight, after the
/// `lead` dimensions: `[.., rows, 1]`, or `[.., rows, groups, 1]` with the
/// groups of a row (count, length) when the scales are per group.
fn scale_layout(
    name: &str,
    lead: &[usize],
    rows: usize,
    cols: usize,
    levels: &IntegerLevels,
) -> Result<(Vec<usize>, Option<(usize, usize)>), Diag> {
    let mut shape = lead.to_vec();
    shape.push(rows);
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

fn transpose<T: Copy>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for c in 0..cols {
        out.extend((0..rows).map(|r| values[r * cols + c]));
    }
    out
}

impl<'a> WeightGraph<'a> {
    pub fn new(artifact: &'a Artifact) -> Self {
        WeightGraph {
            g: GraphBuilder::default(),
            artifact,
            int8_inputs: HashMap::new(),
            fake_inputs: HashMap::new(),
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
        match self.weight(name)? {
            Weight::Float { shape, values } => {
                let table = self.g.f32s(name, &shape, &values);
                Ok(self
                    .g
                    .op("Gather", &[&table, ids], &[Attr::Int("axis", 0)], hint))
            }
            Weight::Levels { rows, cols, levels } => {
                let table = self.g.i8s(name, &[rows, cols], &levels.values);
                let rows_read = self
                    .g
                    .op("Gather", &[&table, ids], &[Attr::Int("axis", 0)], hint);
                let (scale_shape, group) = scale_layout(name, &[], rows, cols, &levels)?;
                let scales = self
                    .g
                    .f32s(&format!("{hint}.scales"), &scale_shape, &levels.scales);
                let row_scales =
                    self.g
                        .op("Gather", &[&scales, ids], &[Attr::Int("axis", 0)], hint);
                // For groups the rows read `[b, s, width]` are viewed as
                // `[b, s, groups, len]` (the reshape copies `b` and `s`).
                Ok(self.scale_levels(&rows_read, &row_scales, group, hint))
            }
        }
    }

    /// `x` quantized per token to int8 (symmetric, `max |x| / 127` a token):
    /// the int8 values and the scales `[.., 1]`.
    fn int8_per_token(&mut self, x: &str) -> (String, String) {
        if let Some(done) = self.int8_inputs.get(x) {
            return done.clone();
        }
        let (q, scale) = self.quantize(x, 8, true);
        let q8 = self.g.op(
            "Cast",
            &[&q],
            &[Attr::Int("to", data_type::INT8 as i64)],
            "act_q",
        );
        self.int8_inputs
            .insert(x.to_string(), (q8.clone(), scale.clone()));
        (q8, scale)
    }

    /// The rounded levels (as f32) of `x` and their scale, symmetric at
    /// `bits`, per token or over the whole tensor.
    fn quantize(&mut self, x: &str, bits: u8, per_token: bool) -> (String, String) {
        let qmax = ((1u32 << (bits - 1)) - 1) as f32;
        let abs = self.g.op("Abs", &[x], &[], "act_abs");
        let max = if per_token {
            self.g.op(
                "ReduceMax",
                &[&abs],
                &[Attr::Ints("axes", vec![-1]), Attr::Int("keepdims", 1)],
                "act_max",
            )
        } else {
            self.g
                .op("ReduceMax", &[&abs], &[Attr::Int("keepdims", 0)], "act_max")
        };
        let qmax_c = self.g.scalar("qmax", qmax);
        let tiny = self.g.scalar("tiny", f32::MIN_POSITIVE);
        let scale = self.g.op("Div", &[&max, &qmax_c], &[], "act_scale");
        let safe = self.g.op("Max", &[&scale, &tiny], &[], "act_scale");
        let ratio = self.g.op("Div", &[x, &safe], &[], "act_ratio");
        let rounded = self.g.op("Round", &[&ratio], &[], "act_round");
        let lo = self.g.scalar("qmin", -qmax);
        let q = self
            .g
            .op("Clip", &[&rounded, &lo, &qmax_c], &[], "act_levels");
        (q, safe)
    }

    /// `x` through the activation quantizer `aq` (its values in f32).
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
        let (q, scale) = self.quantize(x, aq.bits, per_token);
        let out = self.g.op("Mul", &[&q, &scale], &[], "act_fq");
        self.fake_inputs.insert(key, out.clone());
        Ok(out)
    }

    /// The linear module `module` (`module.weight` `[out, in]`, optional
    /// `module.bias`) applied to `x` `[.., in]`, with the module's activation
    /// quantizer when the artifact has one.
    pub fn linear(&mut self, module: &str, x: &str) -> Result<String, Diag> {
        let weight_name = format!("{module}.weight");
        let aq = self.artifact.manifest.activation_quant.get(module).copied();
        let y = match self.weight(&weight_name)? {
            Weight::Float { shape, values } => {
                let (out, inp) = (shape[0], shape[1]);
                let wt = self
                    .g
                    .f32s(&weight_name, &[inp, out], &transpose(&values, out, inp));
                let x = match &aq {
                    Some(aq) => self.fake_quantize(x, aq, module)?,
                    None => x.to_string(),
                };
                self.g.op("MatMul", &[&x, &wt], &[], module)
            }
            Weight::Levels { rows, cols, levels } => {
                // plcc runs a packed linear on its integer kernel, which
                // quantizes the input per token to int8 when the artifact
                // names no other quantizer for it.
                let aq = Some(aq.unwrap_or(PER_TOKEN_INT8));
                let per_token_int8 = aq.is_some_and(|a| {
                    a.bits == 8 && a.symmetric && a.granularity == Granularity::Token
                });
                if per_token_int8 && levels.group_len.is_none() {
                    // The integer product plcc's kernels compute: exact i32
                    // sums, then the token's and the row's scales.
                    let wt = self.g.i8s(
                        &weight_name,
                        &[cols, rows],
                        &transpose(&levels.values, rows, cols),
                    );
                    let sw = self
                        .g
                        .f32s(&format!("{module}.scales"), &[rows], &levels.scales);
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
                } else {
                    let w = self.dequantized(&weight_name, rows, cols, &levels)?;
                    let x = match &aq {
                        Some(aq) => self.fake_quantize(x, aq, module)?,
                        None => x.to_string(),
                    };
                    self.g.op("MatMul", &[&x, &w], &[], module)
                }
            }
        };
        let bias_name = format!("{module}.bias");
        if self.has(&bias_name) {
            let b = self.float(&bias_name)?;
            Ok(self.g.op("Add", &[&y, &b], &[], module))
        } else {
            Ok(y)
        }
    }

    /// Packed weight `[rows, cols]` as int8 levels with their scales, turned
    /// into the transposed f32 matrix `[cols, rows]` inside the graph.
    fn dequantized(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        levels: &IntegerLevels,
    ) -> Result<String, Diag> {
        let hint = name.trim_end_matches(".weight");
        let q = self.g.i8s(name, &[1, rows, cols], &levels.values);
        let (scale_shape, group) = scale_layout(name, &[1], rows, cols, levels)?;
        let scales = self
            .g
            .f32s(&format!("{hint}.scales"), &scale_shape, &levels.scales);
        let w = self.scale_levels(&q, &scales, group, hint);
        let flat = self.g.i64s("shape", &[rows as i64, cols as i64]);
        let w = self.g.op("Reshape", &[&w, &flat], &[], hint);
        Ok(self
            .g
            .op("Transpose", &[&w], &[Attr::Ints("perm", vec![1, 0])], hint))
    }
}
