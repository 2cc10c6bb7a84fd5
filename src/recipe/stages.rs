//! Schema of training stages: `distill NAME { ... }` with its `loss KIND { }`
//! blocks, `finetune NAME { ... }` (the same keys; the task loss on the
//! data's labels, no teacher) and `pretrain { ... }` (the same keys, the
//! teacher trained with the task loss only).

use std::collections::BTreeMap;

use super::fields::{arg_count, Body, Errors};
use super::values::{
    amount_or_zero, boolean, choice, count, duration, exit_scope, ident, integer,
    non_negative_number, positive, positive_number, unknown_value, unknown_value_besides,
    wrong_type,
};
use crate::base::{ExitScope, Keep, LrScheduleKind, Negatives, OptimizerKind, StageLength};
use crate::diag::Diag;
use crate::diag::{Span, Spanned};
use crate::recipe::{Amount, LossKind, LossSpec, StageSpec};
use crate::syntax::{Block, Value, ValueKind};

/// `checkpoint_minutes` when a stage does not set it.
pub const DEFAULT_CHECKPOINT_MINUTES: f64 = 5.0;

/// Loss kinds a `loss` block may name.
const LOSS_KINDS: &[&str] = &[
    "logit_kl",
    "task_ce",
    "hidden_mse",
    "attention_kl",
    "attention_mse",
    "contrastive",
    "cosine",
];

/// Which block a training stage is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageBlock {
    /// `distill NAME { }`: the student against the teacher, with the
    /// stage's `loss` blocks.
    Distill,
    /// `finetune NAME { }`: the student on the data's labels alone
    /// (`task_ce`, the only loss it takes and its default).
    Finetune,
    /// `pretrain { }`: the teacher itself, with the task loss.
    Pretrain,
}

/// A `distill NAME { }`, `finetune NAME { }` or `pretrain { }` block.
pub fn stage(
    block: &Block,
    kind: StageBlock,
    recipe_seed: u64,
    errs: &mut Errors,
) -> Option<StageSpec> {
    let pretrain = kind == StageBlock::Pretrain;
    let name = stage_name(block, pretrain, errs)?;
    let owner = if pretrain {
        "`pretrain`".to_string()
    } else {
        format!("stage `{}`", name.value)
    };
    let mut body = Body::new(&block.body, owner.clone(), block.name.span, errs);
    let length = stage_length(&mut body, &owner, block, errs);
    let data = body.require("data", errs, ident);
    let optimizer = body.take_or("optimizer", errs, OptimizerKind::AdamW, |v| {
        choice(
            v,
            &[("adamw", OptimizerKind::AdamW), ("sgd", OptimizerKind::Sgd)],
        )
    });
    let lr = body.take_or("lr", errs, 1e-4, positive_number);
    let weight_decay = body.take_or("weight_decay", errs, 0.01, non_negative_number);
    let schedule = body.take_or("schedule", errs, LrScheduleKind::Linear, |v| {
        choice(
            v,
            &[
                ("linear", LrScheduleKind::Linear),
                ("cosine", LrScheduleKind::Cosine),
                ("constant", LrScheduleKind::Constant),
            ],
        )
    });
    let warmup = body.take_or("warmup", errs, Amount::Fraction(0.1), amount_or_zero);
    let batch_size = body.take_or("batch_size", errs, 32, positive);
    let seq_len = body.take_or("seq_len", errs, 128, positive);
    let grad_clip = body.take("grad_clip", errs, positive_number);
    let accumulate = body.take_or("accumulate", errs, 1, positive);
    let checkpoint_every = body.take("checkpoint_every", errs, positive);
    let checkpoint_minutes = body.take_or(
        "checkpoint_minutes",
        errs,
        DEFAULT_CHECKPOINT_MINUTES,
        positive_number,
    );
    let seed = body.take_or("seed", errs, recipe_seed, |v| count(v).map(|n| n as u64));
    let eval_every = body.take("eval_every", errs, positive);
    let keep = body.take_or("keep", errs, Keep::Best, |v| {
        choice(v, &[("best", Keep::Best), ("last", Keep::Last)])
    });
    // The teacher (`pretrain`) has no quantizers to train through.
    let quantize = match pretrain {
        true => Spanned::new(true, block.name.span),
        false => body.take_or("quantize", errs, true, boolean),
    };
    let losses = stage_losses(body, &owner, block, kind, errs);
    Some(StageSpec {
        span: block.span,
        name,
        length: length?,
        data: data?,
        losses,
        optimizer,
        lr,
        weight_decay,
        schedule,
        warmup,
        batch_size,
        seq_len,
        grad_clip,
        accumulate,
        checkpoint_every,
        checkpoint_minutes,
        seed,
        eval_every,
        keep,
        quantize,
    })
}

/// The stage's name: its one argument, or `pretrain` for the `pretrain`
/// block (which takes none).
fn stage_name(block: &Block, pretrain: bool, errs: &mut Errors) -> Option<Spanned<String>> {
    if pretrain {
        errs.ok(arg_count(block, 0, ""))?;
        Some(Spanned::new("pretrain".to_string(), block.name.span))
    } else {
        errs.ok(arg_count(block, 1, "a stage name"))?;
        let arg = &block.args[0];
        Some(Spanned::new(errs.ok(ident(arg))?, arg.span))
    }
}

/// How long the stage trains: exactly one of `steps`, `epochs` and `budget`.
fn stage_length(
    body: &mut Body<'_>,
    owner: &str,
    block: &Block,
    errs: &mut Errors,
) -> Option<Spanned<StageLength>> {
    let steps = body.take("steps", errs, positive);
    let epochs = body.take("epochs", errs, positive);
    let budget = body.take("budget", errs, duration);
    let given: Vec<Spanned<StageLength>> = [
        steps.map(|s| Spanned::new(StageLength::Steps(s.value), s.span)),
        epochs.map(|e| Spanned::new(StageLength::Epochs(e.value), e.span)),
        budget.map(|b| Spanned::new(StageLength::Budget(b.value), b.span)),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        [one] => Some(one.clone()),
        [first, rest @ ..] => {
            let mut d = Diag::new(
                "plcc::recipe::stage-length",
                format!("{owner} gives more than one of `steps`, `epochs` and `budget`"),
            )
            .label(first.span, "one length");
            for other in rest {
                d = d.label(other.span, "another length");
            }
            errs.push(d.help(
                "keep one: a stage runs for a number of steps, a number of epochs or a time budget",
            ));
            None
        }
        [] => {
            let written = ["steps", "epochs", "budget"]
                .iter()
                .any(|k| body.get(k).is_some());
            if !written {
                errs.push(
                    Diag::new(
                        "plcc::recipe::stage-length",
                        format!("{owner} needs `steps`, `epochs` or `budget`"),
                    )
                    .label(block.name.span, "how long does this stage train?")
                    .help("add `steps: N`, `epochs: N` or `budget: 45min`"),
                );
            }
            None
        }
    }
}

/// The stage's `loss KIND { }` blocks, each kind at most once; `pretrain`
/// takes none and trains with the task loss, `finetune` takes `task_ce`
/// only and trains with it when it names none. Finishes the stage's body.
fn stage_losses(
    body: Body<'_>,
    owner: &str,
    block: &Block,
    stage: StageBlock,
    errs: &mut Errors,
) -> Vec<LossSpec> {
    let pretrain = stage == StageBlock::Pretrain;
    let mut losses = Vec::new();
    let mut kinds: BTreeMap<String, Span> = BTreeMap::new();
    for nested in body.blocks.clone() {
        if nested.name.text != "loss" {
            continue;
        }
        if pretrain {
            errs.push(
                Diag::new(
                    "plcc::recipe::unknown-block",
                    "`pretrain` trains with the task loss only",
                )
                .label(nested.name.span, "remove this `loss` block"),
            );
            continue;
        }
        let named = nested.args.first().and_then(|a| match &a.kind {
            ValueKind::Ident(k) => Some((k.clone(), a.span)),
            _ => None,
        });
        if let Some((kind, span)) = named.as_ref().filter(|(k, _)| k != "task_ce") {
            if stage == StageBlock::Finetune && LOSS_KINDS.contains(&kind.as_str()) {
                errs.push(
                    Diag::new(
                        "plcc::recipe::finetune-loss",
                        format!("{owner} is a `finetune` stage: it trains on the labels (`task_ce`) only"),
                    )
                    .label(*span, "a loss against the teacher")
                    .help("distil from the teacher in a `distill` stage"),
                );
                continue;
            }
        }
        if let Some((kind, span)) = named {
            if let Some(first) = kinds.insert(kind.clone(), span) {
                errs.push(
                    Diag::new(
                        "plcc::recipe::duplicate-block",
                        format!("{owner} has two `{kind}` losses"),
                    )
                    .label(span, "second loss")
                    .label(first, "first loss"),
                );
                continue;
            }
        }
        losses.extend(loss(nested, errs));
    }
    body.finish(&["loss"], errs);
    if pretrain || (stage == StageBlock::Finetune && kinds.is_empty()) {
        losses.push(LossSpec {
            span: block.name.span,
            kind: LossKind::TaskCe,
            weight: Spanned::new(1.0, block.name.span),
        });
    } else if kinds.is_empty() {
        errs.push(
            Diag::new(
                "plcc::recipe::stage-without-loss",
                format!("{owner} has no loss"),
            )
            .label(block.name.span, "nothing to train against")
            .help(
                "add a loss block, e.g. `loss logit_kl { }` or `loss hidden_mse { weight: 0.5 }`",
            ),
        );
    }
    losses
}

/// `loss KIND { weight, ... }`
fn loss(block: &Block, errs: &mut Errors) -> Option<LossSpec> {
    errs.ok(arg_count(block, 1, "a loss kind"))?;
    let kind_value = &block.args[0];
    let kind = errs.ok(ident(kind_value))?;
    if !LOSS_KINDS.contains(&kind.as_str()) {
        errs.push(unknown_value(kind_value.span, &kind, LOSS_KINDS));
        return None;
    }
    let mut body = Body::new(&block.body, format!("loss `{kind}`"), block.name.span, errs);
    let weight = body.take_or("weight", errs, 1.0, positive_number);
    let kind = match kind.as_str() {
        "logit_kl" => LossKind::LogitKl {
            temperature: body
                .take_or("temperature", errs, 1.0, positive_number)
                .value,
            over: body
                .take_or("over", errs, ExitScope::AllExits, exit_scope)
                .value,
        },
        "task_ce" => LossKind::TaskCe,
        "cosine" => LossKind::Cosine,
        "hidden_mse" => LossKind::HiddenMse {
            map: body.take("map", errs, |v| layer_map(v, 0)).map(|m| m.value),
        },
        "attention_kl" => LossKind::AttentionKl {
            map: body.take("map", errs, |v| layer_map(v, 1)).map(|m| m.value),
        },
        "attention_mse" => LossKind::AttentionMse {
            map: body.take("map", errs, |v| layer_map(v, 1)).map(|m| m.value),
        },
        _ => LossKind::Contrastive {
            temperature: body
                .take_or("temperature", errs, 0.1, positive_number)
                .value,
            negatives: body
                .take_or("negatives", errs, Negatives::Batch, negatives)
                .value,
            layer: body.take("layer", errs, positive).map(|l| l.value),
        },
    };
    body.finish(&[], errs);
    Some(LossSpec {
        span: block.span,
        kind,
        weight,
    })
}

fn negatives(value: &Value) -> Result<Negatives, Diag> {
    match &value.kind {
        ValueKind::Ident(name) if name == "batch" => Ok(Negatives::Batch),
        ValueKind::Ident(name) => Err(unknown_value_besides(
            value.span,
            name,
            &["batch"],
            Some("a memory-bank size"),
        )),
        ValueKind::Int(_) => Ok(Negatives::Memory(positive(value)?)),
        _ => Err(wrong_type(value, "`batch` or a memory-bank size")),
    }
}

/// `[student -> teacher, ...]` with both layers ≥ `min` (0 = embeddings).
fn layer_map(value: &Value, min: i64) -> Result<Vec<(usize, usize)>, Diag> {
    let ValueKind::List(items) = &value.kind else {
        return Err(wrong_type(
            value,
            "a list of `student -> teacher` layer pairs",
        ));
    };
    if items.is_empty() {
        return Err(
            Diag::new("plcc::recipe::out-of-range", "the layer map is empty")
                .label(value.span, "list at least one `student -> teacher` pair")
                .help("leave `map` out to map layers uniformly"),
        );
    }
    items
        .iter()
        .map(|item| {
            let ValueKind::Pair(student, teacher) = &item.kind else {
                return Err(wrong_type(item, "a `student -> teacher` pair"));
            };
            Ok((map_layer(student, min)?, map_layer(teacher, min)?))
        })
        .collect()
}

fn map_layer(value: &Value, min: i64) -> Result<usize, Diag> {
    let layer = integer(value)?;
    if layer < min {
        let why = if min == 0 {
            "layers count from 0 (the embeddings)"
        } else {
            "attention maps count layers from 1"
        };
        return Err(Diag::new(
            "plcc::recipe::out-of-range",
            format!("layer {layer} is below {min}"),
        )
        .label(value.span, why));
    }
    Ok(layer as usize)
}
