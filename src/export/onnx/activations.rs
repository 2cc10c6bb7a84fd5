//! A linear layer's input quantization as ONNX nodes, computed the way
//! plcc's runtime computes it: the integer kernels' per-token int8
//! quantization (as int8 values with their scales, or those values
//! dequantized back to f32), and the fake quantization an artifact's
//! activation quantizer names. Each form of one input is built once,
//! however many layers read it.

use super::builder::Attr;
use super::proto::data_type;
use super::weights::{cannot, TokenInt8, WeightGraph};
use crate::artifact::ActivationQuant;
use crate::base::Granularity;
use crate::diag::Diag;

impl WeightGraph<'_> {
    /// `x` quantized per token as plcc's integer kernels do it
    /// (`q = round_half_even(x · 127 / max |x|)`), on first use.
    fn token_int8(&mut self, x: &str) -> TokenInt8 {
        if let Some(done) = self.int8_inputs.get(x) {
            return done.clone();
        }
        let max = self.abs_max(x, true);
        let qmax = self.g.scalar("qmax", 127.0);
        let scaled = self.g.op("Mul", &[x, &qmax], &[], "act_scaled");
        let ratio = self.g.op("Div", &[&scaled, &max], &[], "act_ratio");
        let rounded = self.g.op("Round", &[&ratio], &[], "act_round");
        let levels = self.clip_levels(&rounded, 127.0);
        let scale = self.g.op("Div", &[&max, &qmax], &[], "act_scale");
        let done = TokenInt8 {
            levels,
            scale,
            ..TokenInt8::default()
        };
        self.int8_inputs.insert(x.to_string(), done.clone());
        done
    }

    /// `x` quantized per token to int8 as plcc's integer kernels do it: the
    /// int8 values and the scales `max |x| / 127` `[.., 1]`.
    pub(super) fn int8_per_token(&mut self, x: &str) -> (String, String) {
        let mut q = self.token_int8(x);
        let int8 = match q.int8.clone() {
            Some(done) => done,
            None => {
                let to = [Attr::Int("to", data_type::INT8 as i64)];
                let int8 = self.g.op("Cast", &[&q.levels], &to, "act_q");
                q.int8 = Some(int8.clone());
                self.int8_inputs.insert(x.to_string(), q.clone());
                int8
            }
        };
        (int8, q.scale)
    }

    /// `x` quantized per token to int8 as plcc's integer kernels do it and
    /// dequantized (`q · max |x| / 127`): in f32, the values the kernel's
    /// integer product multiplies.
    pub(super) fn int8_dequantized_per_token(&mut self, x: &str) -> String {
        let mut q = self.token_int8(x);
        if let Some(done) = q.dequantized.clone() {
            return done;
        }
        let dequantized = self.g.op("Mul", &[&q.levels, &q.scale], &[], "act_dq");
        q.dequantized = Some(dequantized.clone());
        self.int8_inputs.insert(x.to_string(), q);
        dequantized
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
    pub(super) fn fake_quantize(
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
}
