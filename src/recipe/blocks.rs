//! Schema of the top-level blocks other than stages: `data`, `prune` (with its
//! per-layer overrides), `exits`, `quantize` and custom `pass` calls.

use std::collections::BTreeMap;
use std::path::Path;

use super::fields::{arg_count, Body, Errors};
use super::schema::statement_kind_error;
use super::values::{
    amount, boolean, choice, count, fraction, ident, index_list, non_empty_string, number,
    out_of_range, positive, positive_number, strictly_increasing, unknown_value, wrong_type,
};
use crate::diag::Diag;
use crate::recipe::{
    ArgValue, Bits, CalibrationTarget, Column, CustomPassCall, DataFormat, DataSpec, ExitCriterion,
    ExitHead, ExitLayers, ExitScope, ExitSpec, GptqSpec, Granularity, Importance, LayerWidth,
    PruneSpec, QuantKind, QuantMethod, QuantSpec, ScaleMethod, Task, WidthSpec, DEFAULT_GPTQ_DAMP,
    DEFAULT_GPTQ_SAMPLES,
};
use crate::syntax::{Block, Item, Span, Spanned, Statement, Value, ValueKind};

/// `data NAME "PATH" { format, text, text_pair, label }`
pub fn data(block: &Block, base_dir: &Path, errs: &mut Errors) -> Option<DataSpec> {
    errs.ok(arg_count(block, 2, "a name and a path string"))?;
    let name = errs.ok(ident(&block.args[0]));
    let path = errs.ok(non_empty_string(&block.args[1]));
    let owner = format!("`data {}`", name.as_deref().unwrap_or("?"));
    let mut body = Body::new(&block.body, owner, block.name.span, errs);
    let by_extension = match path
        .as_deref()
        .map(Path::new)
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
    {
        Some("jsonl") => DataFormat::Jsonl,
        Some("tsv") => DataFormat::Tsv,
        _ => DataFormat::Text,
    };
    let format = body.take_or("format", errs, by_extension, |v| {
        choice(
            v,
            &[
                ("text", DataFormat::Text),
                ("jsonl", DataFormat::Jsonl),
                ("tsv", DataFormat::Tsv),
            ],
        )
    });
    let format = format.value;
    let text = body.take("text", errs, |v| column(v, format, "text"));
    let text_pair = body.take("text_pair", errs, |v| column(v, format, "text_pair"));
    let label = body.take("label", errs, |v| column(v, format, "label"));
    body.finish(&[], errs);
    let text = text.map(|c| c.value).unwrap_or(match format {
        DataFormat::Jsonl => Column::Key("text".into()),
        DataFormat::Text | DataFormat::Tsv => Column::Index(0),
    });
    Some(DataSpec {
        span: block.span,
        name: Spanned::new(name?, block.args[0].span),
        path: Spanned::new(base_dir.join(path?), block.args[1].span),
        format,
        text,
        text_pair: text_pair.map(|c| c.value),
        label: label.map(|c| c.value),
    })
}

fn column(value: &Value, format: DataFormat, key: &str) -> Result<Column, Diag> {
    match format {
        DataFormat::Tsv => match value.kind {
            ValueKind::Int(_) => Ok(Column::Index(count(value)?)),
            _ => Err(wrong_type(value, "a 0-based column index (an integer)")),
        },
        DataFormat::Jsonl => match &value.kind {
            ValueKind::Str(s) if !s.is_empty() => Ok(Column::Key(s.clone())),
            _ => Err(wrong_type(value, "a JSON key (a non-empty string)")),
        },
        DataFormat::Text => Err(Diag::new(
            "plcc::recipe::conflicting-keys",
            format!("a `text` data set has a single column; `{key}` needs `format: tsv` or `format: jsonl`"),
        )
        .label(value.span, "text files have no columns")),
    }
}

/// `prune { heads, ffn, embedding_rank, importance, over, data, batches, layer(s) ... { } }`
pub fn prune(block: &Block, errs: &mut Errors) -> Option<PruneSpec> {
    errs.ok(arg_count(block, 0, ""))?;
    let mut body = Body::new(&block.body, "`prune`", block.name.span, errs);
    let width = width(&mut body, errs);
    let embedding_rank = body.take("embedding_rank", errs, positive);
    let importance = body.take_or("importance", errs, Importance::Taylor, |v| {
        choice(
            v,
            &[
                ("magnitude", Importance::Magnitude),
                ("taylor", Importance::Taylor),
            ],
        )
    });
    let over = body.take_or("over", errs, ExitScope::AllExits, exit_scope);
    let data = body.take("data", errs, ident);
    let batches = body.take_or("batches", errs, 8, positive);
    let mut per_layer = Vec::new();
    let mut claimed: BTreeMap<usize, Span> = BTreeMap::new();
    for nested in body.blocks.clone() {
        if !matches!(nested.name.text.as_str(), "layer" | "layers") {
            continue;
        }
        let Some(layer_width) = layer_override(nested, errs) else {
            continue;
        };
        for layer in &layer_width.layers.value {
            if let Some(first) = claimed.insert(*layer, layer_width.layers.span) {
                errs.push(
                    Diag::new(
                        "plcc::recipe::duplicate-layer",
                        format!("layer {layer} is overridden twice"),
                    )
                    .label(layer_width.layers.span, "second override")
                    .label(first, "first override"),
                );
            }
        }
        per_layer.push(layer_width);
    }
    body.finish(&["layer", "layers"], errs);
    Some(PruneSpec {
        span: block.span,
        width,
        per_layer,
        embedding_rank,
        importance,
        over,
        data,
        batches,
    })
}

fn width(body: &mut Body<'_>, errs: &mut Errors) -> WidthSpec {
    WidthSpec {
        heads: body.take("heads", errs, amount),
        ffn: body.take("ffn", errs, amount),
    }
}

fn exit_scope(value: &Value) -> Result<ExitScope, Diag> {
    choice(
        value,
        &[
            ("all_exits", ExitScope::AllExits),
            ("last_exit", ExitScope::LastExit),
        ],
    )
}

/// `layer N { heads, ffn }` or `layers RANGE|LIST { heads, ffn }`
fn layer_override(block: &Block, errs: &mut Errors) -> Option<LayerWidth> {
    let single = block.name.text == "layer";
    let expected = if single {
        "a layer index"
    } else {
        "a list or range of layer indices"
    };
    errs.ok(arg_count(block, 1, expected))?;
    let arg = &block.args[0];
    let layers = errs.ok(if single {
        count(arg).map(|n| vec![n])
    } else {
        index_list(arg, 0).and_then(|l| {
            strictly_increasing(&l, "layer indices")?;
            Ok(l.into_iter().map(|s| s.value).collect())
        })
    })?;
    let owner = format!("`{} ...`", block.name.text);
    let mut body = Body::new(&block.body, owner, block.name.span, errs);
    let width = width(&mut body, errs);
    body.finish(&[], errs);
    if block.body.iter().all(|item| item.statement().is_none()) {
        errs.push(
            Diag::new("plcc::recipe::empty-block", "this override sets nothing")
                .label(block.name.span, "give `heads`, `ffn` or both"),
        );
        return None;
    }
    if width.heads.is_none() && width.ffn.is_none() {
        return None;
    }
    Some(LayerWidth {
        span: block.span,
        layers: Spanned::new(layers, arg.span),
        width,
    })
}

/// `exits { after, head, criterion, threshold, patience, target_* }`
pub fn exits(block: &Block, task: Task, errs: &mut Errors) -> Option<ExitSpec> {
    errs.ok(arg_count(block, 0, ""))?;
    let mut body = Body::new(&block.body, "`exits`", block.name.span, errs);
    let after = body.require("after", errs, exit_layers);
    let embedding = matches!(task, Task::Embedding { .. });
    let head = body.take_or(
        "head",
        errs,
        if embedding {
            ExitHead::Pooler
        } else {
            ExitHead::Classifier
        },
        |v| {
            choice(
                v,
                &[
                    ("classifier", ExitHead::Classifier),
                    ("pooler", ExitHead::Pooler),
                ],
            )
        },
    );
    let default_criterion = if embedding {
        ExitCriterion::Similarity
    } else {
        ExitCriterion::Entropy
    };
    let criterion = body.take_or("criterion", errs, default_criterion, |v| {
        choice(
            v,
            &[
                ("entropy", ExitCriterion::Entropy),
                ("max_prob", ExitCriterion::MaxProb),
                ("patience", ExitCriterion::Patience),
                ("similarity", ExitCriterion::Similarity),
            ],
        )
    });
    let threshold = body.take("threshold", errs, number);
    let patience = body.take("patience", errs, positive);
    let targets = [
        body.take("target_avg_layer", errs, |v| {
            positive_number(v).map(CalibrationTarget::AvgExitLayer)
        }),
        body.take("target_speedup", errs, |v| {
            let x = number(v)?;
            if x > 1.0 {
                Ok(CalibrationTarget::Speedup(x))
            } else {
                Err(out_of_range(
                    v.span,
                    format!("a speed-up must be greater than 1, found {x}"),
                    "must be > 1",
                ))
            }
        }),
        body.take("max_fidelity_loss", errs, |v| {
            fraction(v).map(CalibrationTarget::MaxFidelityLoss)
        }),
    ];
    body.finish(&[], errs);
    let mut chosen: Vec<Span> = threshold.iter().map(|t| t.span).collect();
    chosen.extend(targets.iter().flatten().map(|t| t.span));
    if chosen.len() > 1 {
        errs.push(
            Diag::new(
                "plcc::recipe::conflicting-keys",
                "give at most one of `threshold`, `target_avg_layer`, `target_speedup` and `max_fidelity_loss`",
            )
            .label(chosen[1], "second exit rule")
            .label(chosen[0], "first exit rule")
            .help("a fixed threshold and a calibration target contradict each other"),
        );
    }
    let patience = match (criterion.value, patience) {
        (ExitCriterion::Patience, p) => Some(p.unwrap_or(Spanned::new(2, block.name.span))),
        (_, Some(p)) => {
            errs.push(
                Diag::new(
                    "plcc::recipe::conflicting-keys",
                    "`patience` applies only with `criterion: patience`",
                )
                .label(p.span, "ignored by this criterion"),
            );
            None
        }
        (_, None) => None,
    };
    Some(ExitSpec {
        span: block.span,
        after: after?,
        head,
        criterion,
        threshold,
        patience,
        target: targets.into_iter().flatten().next(),
    })
}

fn exit_layers(value: &Value) -> Result<ExitLayers, Diag> {
    match &value.kind {
        ValueKind::Ident(name) if name == "all" => Ok(ExitLayers::All),
        ValueKind::Ident(name) => Err(unknown_value(value.span, name, &["all"])),
        ValueKind::List(_) | ValueKind::Range { .. } => {
            let layers =
                index_list(value, 1).map_err(|d| d.help("exits count student layers from 1"))?;
            if layers.is_empty() {
                return Err(out_of_range(
                    value.span,
                    "no exit layers given",
                    "list at least one layer",
                ));
            }
            strictly_increasing(&layers, "exit layers")?;
            Ok(ExitLayers::List(layers))
        }
        _ => Err(wrong_type(value, "`all` or a list or range of layers")),
    }
}

#[derive(Clone, Copy)]
enum GranularityName {
    Tensor,
    Row,
    Group,
    Token,
}

/// `quantize weights|activations "SELECTOR" { bits, symmetric, granularity,
/// group, scale }`; weights also take `method` (`rtn` or `gptq`) and, with
/// `gptq`, `data`, `samples`, `damp` and `act_order`.
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
            ],
        )
    });
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
    })
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

fn bits(value: &Value, kind: QuantKind) -> Result<Bits, Diag> {
    let bits = match &value.kind {
        ValueKind::Ident(name) => match name.as_str() {
            "binary" => Bits::Binary,
            "ternary" => Bits::Ternary,
            other => return Err(unknown_value(value.span, other, &["binary", "ternary"])),
        },
        ValueKind::Int(1) => Bits::Binary,
        ValueKind::Int(b @ (2 | 4 | 8)) => Bits::Int(*b as u8),
        ValueKind::Int(other) => {
            return Err(unsupported_bits(value.span, &format!("{other} bits"), kind))
        }
        _ => return Err(wrong_type(value, "`binary`, `ternary` or a bit width")),
    };
    if kind == QuantKind::Activations && !matches!(bits, Bits::Int(4 | 8)) {
        let shown = match bits {
            Bits::Binary => "binary".to_string(),
            Bits::Ternary => "ternary".to_string(),
            Bits::Int(b) => format!("{b} bits"),
        };
        return Err(unsupported_bits(value.span, &shown, kind));
    }
    Ok(bits)
}

fn unsupported_bits(span: Span, shown: &str, kind: QuantKind) -> Diag {
    let (what, supported) = match kind {
        QuantKind::Weights => ("weights", "`binary` (or `1`), `ternary`, `2`, `4` or `8`"),
        QuantKind::Activations => ("activations", "`4` or `8`"),
    };
    Diag::new(
        "plcc::recipe::unsupported-bits",
        format!("{what} cannot be quantized to {shown}"),
    )
    .label(span, "unsupported bit width")
    .help(format!("{what} support {supported}"))
}

/// `pass "NAME" { key: value ... }`
pub fn custom_pass(block: &Block, errs: &mut Errors) -> Option<CustomPassCall> {
    errs.ok(arg_count(block, 1, "a pass name string"))?;
    let name = errs.ok(non_empty_string(&block.args[0]));
    let mut args: Vec<(Spanned<String>, Spanned<ArgValue>)> = Vec::new();
    for item in &block.body {
        match item {
            Item::Statement(Statement::Property(p)) => {
                if let Some((first, _)) = args.iter().find(|(k, _)| k.value == p.key.text) {
                    errs.push(
                        Diag::new(
                            "plcc::recipe::duplicate-key",
                            format!("`{}` is given twice", p.key.text),
                        )
                        .label(p.key.span, "given again here")
                        .label(first.span, "first given here"),
                    );
                    continue;
                }
                if let Some(value) = errs.ok(arg_value(&p.value)) {
                    args.push((
                        Spanned::new(p.key.text.clone(), p.key.span),
                        Spanned::new(value, p.value.span),
                    ));
                }
            }
            Item::Statement(s @ Statement::Block(_)) => {
                errs.push(statement_kind_error(s, "`key: value` arguments"))
            }
            Item::Comment(_) => {}
        }
    }
    Some(CustomPassCall {
        span: block.span,
        name: Spanned::new(name?, block.args[0].span),
        args,
    })
}

fn arg_value(value: &Value) -> Result<ArgValue, Diag> {
    Ok(match &value.kind {
        ValueKind::Int(i) => ArgValue::Number(*i as f64),
        ValueKind::Float(x) => ArgValue::Number(*x),
        ValueKind::Percent(p) => ArgValue::Percent(p / 100.0),
        ValueKind::Str(s) => ArgValue::Str(s.clone()),
        ValueKind::Ident(b) if b == "true" => ArgValue::Bool(true),
        ValueKind::Ident(b) if b == "false" => ArgValue::Bool(false),
        ValueKind::Ident(id) => ArgValue::Ident(id.clone()),
        ValueKind::List(items) => {
            ArgValue::List(items.iter().map(arg_value).collect::<Result<_, _>>()?)
        }
        ValueKind::Range { .. } | ValueKind::Pair(..) => {
            return Err(wrong_type(value, "a number, percent, string, name or list"))
        }
    })
}
