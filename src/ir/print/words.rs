//! The words the text forms share: quantizers, bit widths, granularities,
//! vocabulary rules and paths as the recipe writes them.

use std::path::Path;

use crate::base::QuantMethod;
use crate::base::{Bits, Granularity, ScaleMethod};

use crate::ir::{ActQuant, WeightQuant};

/// `ternary sym row mean_abs`, then `gptq on DATA (N samples)` for GPTQ.
pub fn print_weight_quant(w: &WeightQuant) -> String {
    let text = quant_text(w.bits, w.symmetric, w.granularity, w.scale);
    match &w.method {
        QuantMethod::Rtn => text,
        QuantMethod::Gptq(g) => format!(
            "{text} gptq on {} ({} samples, damp {}%{})",
            g.data.value,
            g.samples.value,
            g.damp * 100.0,
            if g.act_order { ", act_order" } else { "" }
        ),
    }
}

pub fn print_act_quant(a: &ActQuant) -> String {
    quant_text(a.bits, a.symmetric, a.granularity, a.scale)
}

fn quant_text(bits: Bits, symmetric: bool, granularity: Granularity, scale: ScaleMethod) -> String {
    format!(
        "{} {} {} {}",
        bits_text(bits),
        if symmetric { "sym" } else { "asym" },
        granularity_text(granularity),
        match scale {
            ScaleMethod::Max => "max",
            ScaleMethod::MeanAbs => "mean_abs",
            ScaleMethod::Mse => "mse",
            ScaleMethod::Learned => "learned",
        }
    )
}

pub fn bits_text(bits: Bits) -> String {
    match bits {
        Bits::Binary => "binary".into(),
        Bits::Ternary => "ternary".into(),
        Bits::Int(b) => format!("int{b}"),
    }
}

pub fn granularity_text(g: Granularity) -> String {
    match g {
        Granularity::Tensor => "tensor".into(),
        Granularity::Row => "row".into(),
        Granularity::Group(n) => format!("group {n}"),
        Granularity::Token => "token".into(),
    }
}

/// A path shown relative to `base` when it lies inside it.
pub fn show_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `keep 8000` / `min_count 3`.
pub fn vocab_rule_text(rule: crate::base::VocabRule) -> String {
    match rule {
        crate::base::VocabRule::Keep(n) => format!("keep {n}"),
        crate::base::VocabRule::MinCount(k) => format!("min_count {k}"),
    }
}
