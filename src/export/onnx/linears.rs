//! Linear layers as ONNX nodes, each computing what plcc's runtime
//! computes for it: a packed weight on the integer kernel's per-token int8
//! input (`MatMulNBits` for 4-bit levels, `MatMulInteger` for int8 rows) or,
//! weight-only, on the float input,
//! a float or dequantized weight behind the artifact's activation
//! quantizer, a GPT-2 `Conv1D`, and an embedding's projection.

use super::builder::Attr;
use super::nbits::{matmul_nbits, nbits_blocks, store_nbits, NBitsCompute, NBitsWeight};
use super::proto::data_type;
use super::weights::{Stored, WeightGraph};
use super::Int4Linears;
use crate::artifact::Storage;
use crate::diag::Diag;
use crate::runtime::model::linear_kernel::is_per_token_int8;

impl WeightGraph<'_> {
    /// Weight `name` as `MatMulNBits` initializers (written on first use),
    /// when the export writes 4-bit linears that way and its levels fit:
    /// `None` for a float or 8-bit weight, and (noted; the weight is then
    /// dequantized in the graph) for a layout the operator cannot hold
    /// exactly or a table already stored for a lookup.
    fn nbits_weight(&mut self, name: &str) -> Result<Option<NBitsWeight>, Diag> {
        if !self.options.int4.is_nbits() {
            return Ok(None);
        }
        if let Some(done) = self.nbits.get(name) {
            return Ok(done.clone());
        }
        let narrow = self.artifact.manifest.weights.get(name).is_some_and(
            |r| matches!(r.storage, Storage::Packed { bits, .. } if bits.storage_bits() <= 4),
        );
        if narrow && self.is_stored(name) {
            // A tied table, stored once: its lookup's INT4 copy serves the
            // linear too.
            let why = "the table is also looked up, and stored once as INT4".to_string();
            self.note_unblocked(name, why);
            self.nbits.insert(name.to_string(), None);
            return Ok(None);
        }
        let weight = if narrow {
            self.packed_levels(name)?
        } else {
            None
        };
        let stored = match weight {
            None => None,
            Some((rows, cols, levels)) => match nbits_blocks(rows, cols, &levels) {
                Ok(blocks) => Some(store_nbits(&mut self.g, name, rows, cols, blocks)),
                Err(why) => {
                    self.note_unblocked(name, why);
                    None
                }
            },
        };
        self.nbits.insert(name.to_string(), stored.clone());
        Ok(stored)
    }

    /// The linear module `module` (`module.weight` `[out, in]`, optional
    /// `module.bias`) applied to `x` `[.., in]`, with the input quantization
    /// it runs with in plcc (`Manifest::input_quant`): the activation
    /// quantizer the artifact names; else, for a linear on the packed integer
    /// kernel, int8 per token; else (a float weight, or a weight-only linear)
    /// none. On an int8-per-token input, 4-bit levels are one `MatMulNBits`
    /// of the input quantized and dequantized per token, and an int8 weight
    /// with row scales is the integer product the kernel computes (exact i32
    /// sums, then the token's and the row's scales).
    pub fn linear(&mut self, module: &str, x: &str) -> Result<String, Diag> {
        let weight_name = format!("{module}.weight");
        let aq = self.artifact.manifest.input_quant(module);
        if let Some(w) = self.nbits_weight(&weight_name)? {
            let (x, compute) = match &aq {
                Some(aq) if is_per_token_int8(aq) => {
                    let compute = match self.options.int4 {
                        Int4Linears::NBitsInt8 => NBitsCompute::Int8,
                        _ => NBitsCompute::Fp32,
                    };
                    (self.int8_dequantized_per_token(x), compute)
                }
                Some(aq) => (self.fake_quantize(x, aq, module)?, NBitsCompute::Fp32),
                None => (x.to_string(), NBitsCompute::Fp32),
            };
            let bias = self.bias(module)?;
            return Ok(matmul_nbits(
                &mut self.g,
                &w,
                &x,
                bias.as_deref(),
                compute,
                module,
            ));
        }
        let stored = self.stored(&weight_name)?;
        let y = match &stored {
            Stored::Levels {
                values,
                scales,
                group: None,
                rows,
                ..
            } if aq.as_ref().is_some_and(is_per_token_int8) => {
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

    /// `x · W^T` (plus `bias`) for the matrix `name` (`[out, in]`) in f32
    /// arithmetic: one `MatMulNBits` where its levels fit 4 bits, else a
    /// MatMul by the weight (dequantized in the graph where it is packed).
    pub fn times_transposed(
        &mut self,
        name: &str,
        x: &str,
        bias: Option<&str>,
        hint: &str,
    ) -> Result<String, Diag> {
        if let Some(w) = self.nbits_weight(name)? {
            return Ok(matmul_nbits(
                &mut self.g,
                &w,
                x,
                bias,
                NBitsCompute::Fp32,
                hint,
            ));
        }
        let w = self.matrix(name, true)?;
        let y = self.g.op("MatMul", &[x, &w], &[], hint);
        Ok(match bias {
            Some(b) => self.g.op("Add", &[&y, b], &[], hint),
            None => y,
        })
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
        let x = match self.artifact.manifest.activation_quant.get(module).copied() {
            Some(aq) => self.fake_quantize(x, &aq, module)?,
            None => x.to_string(),
        };
        let bias = self.bias(module)?;
        self.times_transposed(&format!("{module}.weight"), &x, bias.as_deref(), module)
    }

    /// The bias `module.bias` as an initializer, if the module has one.
    fn bias(&mut self, module: &str) -> Result<Option<String>, Diag> {
        let bias_name = format!("{module}.bias");
        if self.has(&bias_name) {
            Ok(Some(self.float(&bias_name)?))
        } else {
            Ok(None)
        }
    }

    fn add_bias(&mut self, module: &str, y: String) -> Result<String, Diag> {
        Ok(match self.bias(module)? {
            Some(b) => self.g.op("Add", &[&y, &b], &[], module),
            None => y,
        })
    }
}
