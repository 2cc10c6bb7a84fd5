//! Schema of `quantize weights|activations "SELECTOR" { ... }` blocks: bit
//! width, symmetry, granularity, scale method, and for weights the rounding
//! method (`rtn` or `gptq` with its calibration keys).

use super::fields::{arg_count, Body, Errors};
use super::values::{
    boolean, choice, fraction, ident, non_empty_string, one_of, out_of_range, positive,
    positive_number, wrong_type,
};
use crate::base::{Bits, Granularity, ScaleMethod};
use crate::base::{GptqSpec, QuantMethod, WeightInputs};
use crate::diag::{did_you_mean, Diag};
use crate::diag::{Span, Spanned};
use crate::recipe::{QuantKind, QuantSpec, DEFAULT_GPTQ_DAMP, DEFAULT_GPTQ_SAMPLES};
use crate::syntax::{Block, Value, ValueKind};

#[derive(Clone, Copy)]
enum GranularityName {
    Tensor,
    Row,
    Group,
    Token,
}

/// `quantize weights|activations "SELECTOR" { bits, symmetric, granularity,
/// group, scale }`; weights also take `activations: float` (weight-only),
/// `method` (`rtn` or `gptq`) and, with `gptq`, `data`, `samples`, `damp`
/// and `act_order`.
pub fn quantize(block: &Block, errs: &mut Errors) -> Option<QuantSpec> {
    errs.ok(arg_count(
        block,
        2,
        "`weights` or `activations` and a selector string",
    ))?;
    let kind = errs.ok(choice(
        &block.args[0],
        &[
            ("weights", QuantKind::Weights),
            ("activations", QuantKind::Activations),
        ],
    ));
    let selector = errs.ok(selector(&block.args[1]));
    let kind = kind?;
    let owner = match kind {
        QuantKind::Weights => "`quantize weights`",
        QuantKind::Activations => "`quantize activations`",
    };
    let mut body = Body::new(&block.body, owner, block.name.span, errs);
    let bits = body.require("bits", errs, |v| bits(v, kind));
    let symmetric = body.take_or("symmetric", errs, true, boolean);
    let granularity_name = body.take("granularity", errs, |v| {
        let name = choice(
            v,
            &[
                ("tensor", GranularityName::Tensor),
                ("row", GranularityName::Row),
                ("group", GranularityName::Group),
                ("token", GranularityName::Token),
            ],
        )?;
        if kind == QuantKind::Weights && matches!(name, GranularityName::Token) {
            return Err(Diag::new(
                "plcc::recipe::bad-granularity",
                "`granularity: token` applies only to activations",
            )
            .label(v.span, "weights have no tokens")
            .help("weights take `tensor`, `row` or `group`"));
        }
        Ok(name)
    });
    let group = body.take("group", errs, positive);
    let scale_given = body.take("scale", errs, |v| {
        choice(
            v,
            &[
                ("max", ScaleMethod::Max),
                ("mean_abs", ScaleMethod::MeanAbs),
                ("learned", ScaleMethod::Learned),
                ("mse", ScaleMethod::Mse),
            ],
        )
    });
    let inputs = weight_inputs(&mut body, kind, block.name.span, errs);
    let method = quant_method(&mut body, kind, block.name.span, errs);
    body.finish(&[], errs);
    let default_granularity = match kind {
        QuantKind::Weights => GranularityName::Row,
        QuantKind::Activations => GranularityName::Token,
    };
    let (name, granularity_span) = granularity_name
        .map_or((default_granularity, block.name.span), |g| {
            (g.value, g.span)
        });
    if let (Some(g), false) = (&group, matches!(name, GranularityName::Group)) {
        errs.push(
            Diag::new(
                "plcc::recipe::conflicting-keys",
                "`group` applies only with `granularity: group`",
            )
            .label(g.span, "no groups with this granularity"),
        );
    }
    let granularity = match name {
        GranularityName::Tensor => Granularity::Tensor,
        GranularityName::Row => Granularity::Row,
        GranularityName::Group => Granularity::Group(group.map_or(64, |g| g.value)),
        GranularityName::Token => Granularity::Token,
    };
    let bits = bits?;
    let scale = scale_given.unwrap_or_else(|| {
        let default = match bits.value {
            Bits::Binary | Bits::Ternary => ScaleMethod::MeanAbs,
            Bits::Int(_) => ScaleMethod::Max,
        };
        Spanned::new(default, block.name.span)
    });
    Some(QuantSpec {
        span: block.span,
        kind,
        selector: Spanned::new(selector?, block.args[1].span),
        bits,
        symmetric,
        granularity: Spanned::new(granularity, granularity_span),
        scale,
        method: method?,
        inputs,
    })
}

/// `activations: float` in a `quantize weights` block: the module keeps
/// float inputs (weight-only quantization) instead of the integer kernel's
/// int8 per token. In a `quantize activations` block it is an error.
fn weight_inputs(
    body: &mut Body<'_>,
    kind: QuantKind,
    owner: Span,
    errs: &mut Errors,
) -> Spanned<WeightInputs> {
    let given = body.take("activations", errs, |v| {
        if kind == QuantKind::Activations {
            return Err(Diag::new(
                "plcc::recipe::conflicting-keys",
                "`activations` applies only to weight quantizers",
            )
            .label(v.span, "this block already quantizes the activations")
            .help(
                "use `bits`, `granularity` and `symmetric` to describe the activation quantizer",
            ));
        }
        choice(v, &[("float", WeightInputs::Float)]).map_err(|d| {
            d.help(
                "`activations: float` keeps float inputs (weight-only quantization); without it \
                 a packed linear quantizes its input to int8 per token on the integer kernel, \
                 and a `quantize activations` block places another activation quantizer",
            )
        })
    });
    given.unwrap_or(Spanned::new(WeightInputs::Kernel, owner))
}

#[derive(Clone, Copy, PartialEq)]
enum MethodName {
    Rtn,
    Gptq,
}

/// `method` and the calibration keys of `method: gptq`. Calibration keys
/// without `method: gptq`, or `method` on activations, are errors.
fn quant_method(
    body: &mut Body<'_>,
    kind: QuantKind,
    owner: Span,
    errs: &mut Errors,
) -> Option<Spanned<QuantMethod>> {
    let name = body.take("method", errs, |v| {
        if kind == QuantKind::Activations {
            return Err(Diag::new(
                "plcc::recipe::conflicting-keys",
                "`method` applies only to weight quantizers",
            )
            .label(
                v.span,
                "activations are rounded to nearest as they are computed",
            )
            .help("remove `method`, or move it to a `quantize weights` block"));
        }
        choice(v, &[("rtn", MethodName::Rtn), ("gptq", MethodName::Gptq)])
    });
    if body.get("method").is_some() && name.is_none() {
        // The key was given but invalid; its error is recorded.
        for key in ["data", "samples", "damp", "act_order"] {
            let _ = body.get(key);
        }
        return None;
    }
    let data = body.take("data", errs, ident);
    let samples = body.take("samples", errs, positive);
    let damp = body.take("damp", errs, |v| match v.kind {
        ValueKind::Percent(_) => fraction(v),
        _ => {
            let x = positive_number(v)?;
            if x <= 1.0 {
                Ok(x)
            } else {
                Err(out_of_range(
                    v.span,
                    format!("damping is a fraction of the mean diagonal, found {x}"),
                    "give a percent (`1%`) or a number in (0, 1]",
                ))
            }
        }
    });
    let act_order = body.take("act_order", errs, boolean);
    let gptq = name.as_ref().is_some_and(|n| n.value == MethodName::Gptq);
    if !gptq {
        let given = [
            ("data", data.as_ref().map(|d| d.span)),
            ("samples", samples.as_ref().map(|d| d.span)),
            ("damp", damp.as_ref().map(|d| d.span)),
            ("act_order", act_order.as_ref().map(|d| d.span)),
        ];
        for (key, span) in given {
            if let Some(span) = span {
                errs.push(
                    Diag::new(
                        "plcc::recipe::conflicting-keys",
                        format!("`{key}` applies only with `method: gptq`"),
                    )
                    .label(span, "round-to-nearest needs no calibration")
                    .help("add `method: gptq`, or remove the calibration keys"),
                );
            }
        }
    }
    let span = name.as_ref().map_or(owner, |n| n.span);
    if !gptq {
        return Some(Spanned::new(QuantMethod::Rtn, span));
    }
    let Some(data) = data else {
        if body.get("data").is_none() {
            errs.push(
                Diag::new(
                    "plcc::recipe::missing-key",
                    "`method: gptq` needs calibration text",
                )
                .label(span, "add `data: NAME` (a data set of this recipe)"),
            );
        }
        return None;
    };
    Some(Spanned::new(
        QuantMethod::Gptq(GptqSpec {
            data,
            samples: samples.unwrap_or(Spanned::new(DEFAULT_GPTQ_SAMPLES, span)),
            damp: damp.map_or(DEFAULT_GPTQ_DAMP, |d| d.value),
            act_order: act_order.is_some_and(|a| a.value),
        }),
        span,
    ))
}

/// A module-name glob; its syntax is checked here, what it matches later.
fn selector(value: &Value) -> Result<String, Diag> {
    let text = non_empty_string(value)?;
    glob::Pattern::new(&text).map_err(|e| {
        Diag::new(
            "plcc::recipe::bad-selector",
            format!("`{text}` is not a valid selector"),
        )
        .label(value.span, e.msg.to_string())
        .help("selectors use `*` (any run of characters), `?` (one character) and `[abc]` (a set)")
    })?;
    Ok(text)
}

/// Every `bits` value weights accept, as written, and what it means: the
/// one list the check and its messages read.
const WEIGHT_BITS: &[(&str, Bits)] = &[
    ("binary", Bits::Binary),
    ("ternary", Bits::Ternary),
    ("1", Bits::Binary),
    ("2", Bits::Int(2)),
    ("4", Bits::Int(4)),
    ("8", Bits::Int(8)),
];

/// Every `bits` value activations accept.
const ACTIVATION_BITS: &[(&str, Bits)] = &[("4", Bits::Int(4)), ("8", Bits::Int(8))];

fn accepted_bits(kind: QuantKind) -> &'static [(&'static str, Bits)] {
    match kind {
        QuantKind::Weights => WEIGHT_BITS,
        QuantKind::Activations => ACTIVATION_BITS,
    }
}

fn bits(value: &Value, kind: QuantKind) -> Result<Bits, Diag> {
    let accepted = accepted_bits(kind);
    let names: Vec<&str> = accepted.iter().map(|(n, _)| *n).collect();
    let written = match &value.kind {
        ValueKind::Ident(name) => name.clone(),
        ValueKind::Int(n) => n.to_string(),
        _ => return Err(wrong_type(value, &one_of(&names))),
    };
    if let Some((_, bits)) = accepted.iter().find(|(n, _)| *n == written) {
        return Ok(*bits);
    }
    let known = WEIGHT_BITS.iter().any(|(n, _)| *n == written);
    match &value.kind {
        ValueKind::Ident(name) if !known => {
            let diag = Diag::new(
                "plcc::recipe::unknown-value",
                format!("unknown value `{name}` for `bits`"),
            )
            .label(value.span, format!("expected one of {}", one_of(&names)));
            // `int8`, `uint4`: the width alone is the spelling.
            let width = name.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            Err(if names.contains(&width) && !width.is_empty() {
                diag.help(format!("did you mean `{width}`?"))
            } else {
                match did_you_mean(name, names.iter().copied()) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag,
                }
            })
        }
        _ => Err(unsupported_bits(value.span, &written, kind)),
    }
}

fn unsupported_bits(span: Span, written: &str, kind: QuantKind) -> Diag {
    let what = match kind {
        QuantKind::Weights => "weights",
        QuantKind::Activations => "activations",
    };
    let shown = match written.parse::<u32>() {
        Ok(_) => format!("{written} bits"),
        Err(_) => written.to_string(),
    };
    let names: Vec<&str> = accepted_bits(kind).iter().map(|(n, _)| *n).collect();
    Diag::new(
        "plcc::recipe::unsupported-bits",
        format!("{what} cannot be quantized to {shown}"),
    )
    .label(span, "unsupported bit width")
    .help(format!("{what} support {}", one_of(&names)))
}
