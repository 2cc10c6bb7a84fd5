//! `width-prune`: decides how many attention heads and FFN neurons every
//! student layer keeps, and the word-embedding factorization rank (COST-EFF
//! slenderization). Changes the `heads` of attention nodes, the `width` of FFN
//! nodes and the embeddings' `rank`; records the importance policy in the
//! plan. Which heads and neurons survive is decided at execution time.
//!
//! Amounts: a count is taken as is; a fraction `f` of the teacher's `n` keeps
//! `round(f·n)` (halves round up), at least 1. `layer`/`layers` blocks
//! override the global amount for the teacher layers they name.
//!
//! Relies on `layer-reduce` having run (overrides name teacher layers, and a
//! removed one is an error). Errors: more heads or neurons kept than the
//! teacher layer has, zero kept, an override for a layer that does not exist
//! or was removed, two overrides setting the same thing for one layer, an
//! embedding rank ≥ the hidden size (or ≥ an existing factorization's rank).

use std::collections::HashMap;

use crate::diag::Diag;
use crate::diag::{Span, Spanned};
use crate::ir::{Op, Program, PrunePlan};
use crate::pass::{Facts, Pass, PassCx};
use crate::recipe::Amount;

pub struct WidthPrune;

impl Pass for WidthPrune {
    fn name(&self) -> &'static str {
        "width-prune"
    }

    fn directive(&self, recipe: &crate::recipe::Recipe) -> Option<crate::diag::Span> {
        recipe.prune.as_ref().map(|p| p.span)
    }

    fn description(&self) -> &'static str {
        "plan heads / FFN neurons kept per layer and the embedding rank (COST-EFF slenderization)"
    }

    fn requires(&self) -> Facts {
        Facts::SHAPES | Facts::LAYERS_REDUCED
    }

    fn provides(&self) -> Facts {
        Facts::WIDTH_PLANNED
    }

    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag> {
        let Some(prune) = &cx.recipe.prune else {
            return Ok(());
        };
        super::refuse_seq2seq(program, prune.keyword, "width pruning", "the `prune` block")?;
        let teacher = program.plan.teacher.config.clone();
        let layers = program.model.layers();

        // Per-layer overrides, checked against the teacher and the student.
        let mut heads_override: HashMap<usize, &Spanned<Amount>> = HashMap::new();
        let mut ffn_override: HashMap<usize, &Spanned<Amount>> = HashMap::new();
        for block in &prune.per_layer {
            for &t in &block.layers.value {
                if t >= teacher.num_layers() {
                    return Err(Diag::new(
                        "plcc::prune::no-such-layer",
                        format!(
                            "this override names teacher layer {t}, but the teacher has {} layers (0..={})",
                            teacher.num_layers(),
                            teacher.num_layers().saturating_sub(1)
                        ),
                    )
                    .label(block.layers.span, "no such teacher layer")
                    .help("layer overrides use 0-based teacher layer indices"));
                }
                if !layers.iter().any(|l| l.teacher == t) {
                    let mut d = Diag::new(
                        "plcc::prune::removed-layer",
                        format!(
                            "this override names teacher layer {t}, which `keep_layers` removes"
                        ),
                    )
                    .label(block.layers.span, "this layer is not in the student");
                    if let Some(keep) = &cx.recipe.keep_layers {
                        d = d.label(keep.span, "the student keeps only these teacher layers");
                    }
                    return Err(d);
                }
                for (amount, table, what) in [
                    (&block.width.heads, &mut heads_override, "heads"),
                    (&block.width.ffn, &mut ffn_override, "ffn"),
                ] {
                    if let Some(a) = amount {
                        if let Some(prev) = table.insert(t, a) {
                            return Err(Diag::new(
                                "plcc::prune::conflict",
                                format!("two overrides set `{what}` for teacher layer {t}"),
                            )
                            .label(a.span, "set again here")
                            .label(prev.span, "first set here"));
                        }
                    }
                }
            }
        }

        // Decide every layer's width.
        let mut changes = Vec::new();
        for layer in &layers {
            let Some(shape) = teacher.layers.get(layer.teacher) else {
                continue;
            };
            let heads_amount = heads_override
                .get(&layer.teacher)
                .copied()
                .or(prune.width.heads.as_ref());
            let ffn_amount = ffn_override
                .get(&layer.teacher)
                .copied()
                .or(prune.width.ffn.as_ref());
            let heads = match heads_amount {
                Some(a) => kept(a, shape.heads, "heads", layer.teacher)?,
                None => shape.heads,
            };
            let ffn = match ffn_amount {
                Some(a) => kept(a, shape.ffn, "FFN neurons", layer.teacher)?,
                None => shape.ffn,
            };
            let heads_span = heads_amount.map(|a| a.span).unwrap_or(prune.span);
            let ffn_span = ffn_amount.map(|a| a.span).unwrap_or(prune.span);
            changes.push((layer.attention, layer.ffn, heads, ffn, heads_span, ffn_span));
        }

        let embeddings = program.model.find_op(|op| matches!(op, Op::Embeddings(_)));
        let mut rank_change = None;
        if let (Some(rank), Some(ix)) = (&prune.embedding_rank, embeddings) {
            if let Op::Embeddings(e) = &program.model.node(ix).op {
                let limit = e.rank.unwrap_or(e.hidden);
                if rank.value == 0 || rank.value >= limit {
                    let what = match e.rank {
                        Some(r) => format!("the teacher's factorization rank {r}"),
                        None => format!("the hidden size {}", e.hidden),
                    };
                    return Err(Diag::new(
                        "plcc::prune::bad-rank",
                        format!("embedding rank {} must be between 1 and {what} (exclusive)", rank.value),
                    )
                    .label(rank.span, format!("must be below {limit}"))
                    .help("a rank at or above the hidden size makes the embedding larger, not smaller"));
                }
                rank_change = Some((ix, rank.value, rank.span));
            }
        }

        // Apply.
        for (attention, ffn, heads, width, heads_span, ffn_span) in changes {
            let node = program.model.node_mut(attention);
            if let Op::Attention(a) = &mut node.op {
                if a.heads != heads {
                    a.heads = heads;
                    node.span = heads_span;
                }
            }
            let node = program.model.node_mut(ffn);
            if let Op::Ffn(f) = &mut node.op {
                if f.width != width {
                    f.width = width;
                    node.span = ffn_span;
                }
            }
        }
        if let Some((ix, rank, span)) = rank_change {
            let node = program.model.node_mut(ix);
            if let Op::Embeddings(e) = &mut node.op {
                e.rank = Some(rank);
                node.span = span;
            }
        }
        let recipe = cx.recipe;
        program.plan.prune = Some(PrunePlan {
            importance: prune.importance.value,
            over: prune.over.value,
            data: prune
                .data
                .as_ref()
                .map(|d| d.value.clone())
                .or_else(|| recipe.stages.first().map(|s| s.data.value.clone()))
                .or_else(|| recipe.datasets.first().map(|d| d.name.value.clone())),
            batches: prune.batches.value,
        });
        Ok(())
    }
}

/// How many of the teacher's `n` a layer keeps under `amount`.
fn kept(
    amount: &Spanned<Amount>,
    n: usize,
    what: &str,
    teacher_layer: usize,
) -> Result<usize, Diag> {
    let count = match amount.value {
        Amount::Count(c) => c,
        Amount::Fraction(f) => ((f * n as f64).round() as usize).max(1),
    };
    if count == 0 {
        return Err(
            Diag::new("plcc::prune::nothing-kept", format!("keeps no {what}"))
                .label(amount.span, "at least 1 must be kept"),
        );
    }
    if count > n {
        return Err(bad_amount(amount.span, count, n, what, teacher_layer));
    }
    Ok(count)
}

fn bad_amount(span: Span, count: usize, n: usize, what: &str, teacher_layer: usize) -> Diag {
    Diag::new(
        "plcc::prune::more-than-exist",
        format!("keeps {count} {what}, but teacher layer {teacher_layer} has only {n}"),
    )
    .label(span, format!("at most {n}"))
    .help("pruning can only remove structures; use a count up to the teacher's or a percentage")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(a: Amount) -> Spanned<Amount> {
        Spanned::new(a, Span::default())
    }

    #[test]
    fn fractions_round_half_up_and_keep_at_least_one() {
        assert_eq!(
            kept(&amount(Amount::Fraction(0.25)), 4, "heads", 0).unwrap(),
            1
        );
        assert_eq!(
            kept(&amount(Amount::Fraction(0.375)), 12, "heads", 0).unwrap(),
            5
        );
        assert_eq!(
            kept(&amount(Amount::Fraction(0.3)), 12, "heads", 0).unwrap(),
            4
        );
        assert_eq!(
            kept(&amount(Amount::Fraction(0.01)), 4, "heads", 0).unwrap(),
            1
        );
        assert_eq!(
            kept(&amount(Amount::Fraction(1.0)), 1536, "FFN neurons", 0).unwrap(),
            1536
        );
        assert_eq!(kept(&amount(Amount::Count(7)), 12, "heads", 0).unwrap(), 7);
    }

    #[test]
    fn counts_outside_the_teacher_are_rejected() {
        let d = kept(&amount(Amount::Count(13)), 12, "heads", 2).unwrap_err();
        assert_eq!(d.code, "plcc::prune::more-than-exist");
        assert!(
            d.message.contains("teacher layer 2 has only 12"),
            "{}",
            d.message
        );
        assert!(kept(&amount(Amount::Count(0)), 12, "heads", 2).is_err());
    }
}
