//! Schema of the top-level blocks other than stages and `quantize`
//! (`recipe::quantize`): `data`, `prune` (with its per-layer overrides),
//! `exits` and custom `pass` calls.

use std::collections::BTreeMap;
use std::path::Path;

use super::fields::{arg_count, duplicate_key, statement_kind_error, Body, Errors};
use super::values::{
    amount, boolean, choice, count, exit_scope, fraction, ident, index_list, non_empty_string,
    number, out_of_range, positive, positive_number, strictly_increasing, unknown_value_besides,
    wrong_type,
};
use crate::base::DataSpec;
use crate::base::{CalibrationTarget, Column, DataFormat, ExitCriterion, ExitHead, Task};
use crate::base::{ExitScope, Importance};
use crate::diag::Diag;
use crate::diag::{Span, Spanned};
use crate::recipe::{
    ArgValue, CustomPassCall, ExitLayers, ExitSpec, LayerWidth, PruneSpec, WidthSpec,
};
use crate::syntax::{Block, Item, Statement, Value, ValueKind};

/// `data NAME "PATH" { format, text, text_pair, label, query, document, header }`
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
    let query = body.take("query", errs, |v| column(v, format, "query"));
    let document = body.take("document", errs, |v| column(v, format, "document"));
    let header = body.take_or("header", errs, false, |v| {
        let header = boolean(v)?;
        if header && format == DataFormat::Jsonl {
            return Err(Diag::new(
                "plcc::recipe::conflicting-keys",
                "JSON Lines files have no header row; `header` needs `format: tsv` or `format: text`",
            )
            .label(v.span, "remove `header`"));
        }
        Ok(header)
    });
    body.finish(&[], errs);
    let retrieval = errs.ok(retrieval_columns(
        block.name.span,
        (query, document),
        [
            ("text", &text),
            ("text_pair", &text_pair),
            ("label", &label),
        ],
    ))?;
    let is_retrieval = retrieval.is_some();
    let (text, text_pair) = match retrieval {
        Some((query, document)) => (Some(query), Some(document)),
        None => (text.map(|c| c.value), text_pair.map(|c| c.value)),
    };
    let text = text.unwrap_or(match format {
        DataFormat::Jsonl => Column::Key("text".into()),
        DataFormat::Text | DataFormat::Tsv => Column::Index(0),
    });
    Some(DataSpec {
        span: block.span,
        name: Spanned::new(name?, block.args[0].span),
        path: Spanned::new(base_dir.join(path?), block.args[1].span),
        format,
        text,
        text_pair,
        label: label.map(|c| c.value),
        header: header.value,
        retrieval: is_retrieval,
    })
}

/// The query and document columns of a retrieval set, when the block names
/// them: both or neither, and then none of the sentence columns (`others`).
fn retrieval_columns(
    block: Span,
    (query, document): (Option<Spanned<Column>>, Option<Spanned<Column>>),
    others: [(&str, &Option<Spanned<Column>>); 3],
) -> Result<Option<(Column, Column)>, Diag> {
    let (query, document) = match (query, document) {
        (None, None) => return Ok(None),
        (Some(q), Some(d)) => (q, d),
        (query, document) => {
            let (has, lacks, span) = match (&query, &document) {
                (Some(q), _) => ("query", "document", q.span),
                (_, Some(d)) => ("document", "query", d.span),
                _ => ("query", "document", block),
            };
            return Err(Diag::new(
                "plcc::recipe::missing-key",
                format!("a retrieval set names both `query` and `document`; `{lacks}` is missing"),
            )
            .label(span, format!("`{has}` needs `{lacks}` beside it")));
        }
    };
    if let Some((key, Some(c))) = others.into_iter().find(|(_, c)| c.is_some()) {
        return Err(Diag::new(
            "plcc::recipe::conflicting-keys",
            format!("a retrieval set (`query`, `document`) has no `{key}` column"),
        )
        .label(c.span, format!("remove `{key}`"))
        .label(query.span, "the queries"));
    }
    Ok(Some((query.value, document.value)))
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
        keyword: block.name.span,
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
    let data = body.take("data", errs, ident);
    let samples = body.take("samples", errs, positive);
    body.finish(&[], errs);
    if targets.iter().all(Option::is_none) {
        for (key, span) in [
            ("data", data.as_ref().map(|d| d.span)),
            ("samples", samples.as_ref().map(|s| s.span)),
        ] {
            if let Some(span) = span {
                errs.push(
                    Diag::new(
                        "plcc::recipe::conflicting-keys",
                        format!("`{key}` applies only with a calibration target"),
                    )
                    .label(span, "nothing is calibrated")
                    .help("add `max_fidelity_loss`, `target_speedup` or `target_avg_layer`"),
                );
            }
        }
    }
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
        keyword: block.name.span,
        after: after?,
        head,
        criterion,
        threshold,
        patience,
        target: targets.into_iter().flatten().next(),
        data,
        samples,
    })
}

fn exit_layers(value: &Value) -> Result<ExitLayers, Diag> {
    match &value.kind {
        ValueKind::Ident(name) if name == "all" => Ok(ExitLayers::All),
        ValueKind::Ident(name) => Err(unknown_value_besides(
            value.span,
            name,
            &["all"],
            Some("a list or range of layers"),
        )),
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

/// `pass "NAME" { key: value ... }`
pub fn custom_pass(block: &Block, errs: &mut Errors) -> Option<CustomPassCall> {
    errs.ok(arg_count(block, 1, "a pass name string"))?;
    let name = errs.ok(non_empty_string(&block.args[0]));
    let mut args: Vec<(Spanned<String>, Spanned<ArgValue>)> = Vec::new();
    for item in &block.body {
        match item {
            Item::Statement(Statement::Property(p)) => {
                if let Some((first, _)) = args.iter().find(|(k, _)| k.value == p.key.text) {
                    errs.push(duplicate_key(p, first.span));
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
        ValueKind::Range { .. } | ValueKind::Pair(..) | ValueKind::Duration(..) => {
            return Err(wrong_type(value, "a number, percent, string, name or list"))
        }
    })
}
