//! The artifact's weights as ONNX values: the initializers of each stored
//! tensor, matrices (dequantized in the graph where packed) and table
//! lookups that keep a packed table packed. Packed weights are stored with
//! their integer levels and f32 scales, per row or per group, exactly as
//! plcc's integer kernels read them (`runtime::kernels::integer_levels`):
//! levels within ±7 as INT4 (a linear's as `MatMulNBits` codes where
//! `nbits` can), wider ones as int8.

use std::collections::{BTreeMap, HashMap};

use super::builder::{Attr, GraphBuilder};
use super::nbits::NBitsWeight;
use super::proto::data_type;
use super::OnnxOptions;
use crate::artifact::{read_weight, Artifact, StoredWeight};
use crate::diag::Diag;
use crate::runtime::kernels::{integer_levels, IntegerLevels};

/// The graph being built with the artifact it reads from.
pub struct WeightGraph<'a> {
    pub g: GraphBuilder,
    pub(super) artifact: &'a Artifact,
    pub(super) options: OnnxOptions,
    /// Per-token int8 quantizations already computed, by input value.
    pub(super) int8_inputs: HashMap<String, TokenInt8>,
    /// Fake-quantized inputs already computed, by input value and width.
    pub(super) fake_inputs: HashMap<(String, u8, bool), String>,
    /// Initializers already written, by tensor name: each weight is stored
    /// once however many nodes read it (a tied word table, say).
    stored: HashMap<String, Stored>,
    /// `MatMulNBits` forms already written (or found impossible), by
    /// tensor name.
    pub(super) nbits: HashMap<String, Option<NBitsWeight>>,
    /// Weights that fit 4 bits but not `MatMulNBits`' blocks: the modules,
    /// by reason.
    unblocked: BTreeMap<String, Vec<String>>,
}

/// One input's per-token int8 quantization: the levels (f32 values of
/// −127..=127), the scales `max |x| / 127` `[.., 1]`, and the forms built
/// from them so far.
#[derive(Clone, Default)]
pub struct TokenInt8 {
    pub levels: String,
    pub scale: String,
    pub int8: Option<String>,
    pub dequantized: Option<String>,
}

/// The initializers of one stored tensor.
#[derive(Clone)]
pub(super) enum Stored {
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

pub(super) fn cannot(name: &str, why: impl std::fmt::Display) -> Diag {
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
    pub fn new(artifact: &'a Artifact, options: OnnxOptions) -> Self {
        WeightGraph {
            g: GraphBuilder::default(),
            artifact,
            options,
            int8_inputs: HashMap::new(),
            fake_inputs: HashMap::new(),
            stored: HashMap::new(),
            nbits: HashMap::new(),
            unblocked: BTreeMap::new(),
        }
    }

    /// Records that `name`'s 4-bit levels are dequantized in the graph
    /// because of `why`.
    pub(super) fn note_unblocked(&mut self, name: &str, why: String) {
        let module = name.trim_end_matches(".weight").to_string();
        self.unblocked.entry(why).or_default().push(module);
    }

    /// What the graph does differently from the options asked, for the user.
    pub fn notes(&self) -> Vec<String> {
        self.unblocked
            .iter()
            .map(|(why, modules)| {
                let more = match modules.len() {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                };
                format!(
                    "`{}`{more}: 4-bit weights dequantized in the graph (INT4 with \
                     DequantizeLinear), not MatMulNBits: {why}",
                    modules[0]
                )
            })
            .collect()
    }

    /// The initializers of tensor `name` (written on first use).
    pub(super) fn stored(&mut self, name: &str) -> Result<Stored, Diag> {
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

    /// Whether tensor `name`'s initializers for lookups and matrices are
    /// written.
    pub(super) fn is_stored(&self, name: &str) -> bool {
        self.stored.contains_key(name)
    }

    /// Whether the artifact stores tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.artifact.manifest.weights.contains_key(name)
            || self.artifact.tensors.tensors.contains_key(name)
    }

    /// The integer levels of packed weight `name` (`rows`, `cols`,
    /// levels), or `None` for a float tensor.
    pub(super) fn packed_levels(
        &self,
        name: &str,
    ) -> Result<Option<(usize, usize, IntegerLevels)>, Diag> {
        Ok(match self.weight(name)? {
            Weight::Levels { rows, cols, levels } => Some((rows, cols, levels)),
            Weight::Float { .. } => None,
        })
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
}
