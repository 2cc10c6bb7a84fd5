//! `vocab-prune`: decides the student's vocabulary size for the recipe's
//! `vocab` block (TextPruner-style pruning of a WordPiece vocabulary) and
//! sets the embeddings node's `vocab`, so the cost model counts the word
//! embedding's real rows; records the rule in the plan. Which pieces survive
//! is decided at execution time from the same counts (`crate::text::vocab`).
//!
//! `keep: N` gives the size directly. `min_count: K` depends on the data: the
//! pass reads the vocabulary data set and counts its pieces with the
//! teacher's tokenizer here, at compile time, so `plcc plan` shows the real
//! size and the build's byte check holds (the build counts again and stops if
//! the data changed in between).
//!
//! Errors: a teacher tokenizer that is not WordPiece, a causal LM task,
//! `keep` above the teacher's vocabulary or below the always-kept pieces, and
//! (`min_count`) a data set that is missing, empty or yields no tokens.

use crate::base::Task;
use crate::base::VocabRule;
use crate::diag::Diag;
use crate::ir::{Op, Program, VocabPlan};
use crate::pass::{Facts, Pass, PassCx};
use crate::text::data::read_dataset;
use crate::text::tokenizer::of_teacher;
use crate::text::vocab::{count_pieces, no_tokens, select, texts_of, NotWordPiece, WordPieceVocab};

pub struct VocabPrune;

impl Pass for VocabPrune {
    fn name(&self) -> &'static str {
        "vocab-prune"
    }

    fn directive(&self, recipe: &crate::recipe::Recipe) -> Option<crate::diag::Span> {
        recipe.vocab.as_ref().map(|v| v.span)
    }

    fn description(&self) -> &'static str {
        "plan the WordPiece vocabulary the student keeps (`vocab`, TextPruner-style)"
    }

    fn requires(&self) -> Facts {
        Facts::SHAPES | Facts::WIDTH_PLANNED
    }

    fn provides(&self) -> Facts {
        Facts::VOCAB_PRUNED
    }

    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag> {
        let Some(spec) = &cx.recipe.vocab else {
            return Ok(());
        };
        let teacher_span = program.plan.teacher.span;
        let tokenizer = of_teacher(
            &cx.recipe.teacher.value,
            program.plan.teacher.config.pad_token_id,
        )
        .map_err(|d| d.label(teacher_span, "the teacher whose vocabulary is pruned"))?;
        let vocab = match WordPieceVocab::of(&tokenizer)? {
            Ok(v) => v,
            Err(NotWordPiece(kind)) => {
                return Err(Diag::new(
                    "plcc::vocab::not-wordpiece",
                    format!(
                        "vocabulary pruning needs a WordPiece tokenizer, but the teacher's is {kind}"
                    ),
                )
                .label(spec.keyword, "vocabulary pruning asked for here")
                .label(teacher_span, format!("this teacher's tokenizer is {kind}"))
                .help("vocabulary pruning applies to BERT-family (WordPiece) teachers; remove the `vocab` block"))
            }
        };
        if program.plan.task == Task::CausalLm {
            return Err(Diag::new(
                "plcc::vocab::unsupported-task",
                "vocabulary pruning applies to embedding and classification models",
            )
            .label(spec.keyword, "vocabulary pruning asked for here")
            .label(
                cx.recipe.task.span,
                "a causal LM predicts over the whole vocabulary",
            ));
        }
        let pieces = vocab.len();
        let always = vocab.always_kept();
        let after = match spec.rule.value {
            VocabRule::Keep(n) if n > pieces => {
                return Err(Diag::new(
                    "plcc::vocab::keep-too-large",
                    format!("`keep: {n}` is more than the teacher's vocabulary of {pieces} pieces"),
                )
                .label(spec.rule.span, format!("at most {pieces}"))
                .help("pruning can only remove pieces; keep fewer, or leave out the `vocab` block"))
            }
            VocabRule::Keep(n) if n < always => {
                return Err(Diag::new(
                    "plcc::vocab::keep-too-small",
                    format!(
                        "`keep: {n}` is fewer than the {always} pieces every pruned vocabulary keeps"
                    ),
                )
                .label(spec.rule.span, format!("at least {always}"))
                .note(format!(
                    "always kept: {} special tokens and {} one-character pieces (plain and `##`), so that any text still tokenizes",
                    vocab.special_tokens(),
                    always.saturating_sub(vocab.special_tokens())
                )))
            }
            VocabRule::Keep(n) => n,
            VocabRule::MinCount(_) => {
                let data = cx
                    .recipe
                    .datasets
                    .iter()
                    .find(|d| d.name.value == spec.data.value)
                    .ok_or_else(|| {
                        Diag::new(
                            "plcc::vocab::unknown-dataset",
                            format!("unknown data set `{}`", spec.data.value),
                        )
                        .label(spec.data.span, "no `data` block declares this name")
                    })?;
                let examples = read_dataset(data, program.plan.labels.as_ref())?;
                let counts = count_pieces(&tokenizer, &texts_of(&examples), vocab.id_space())?;
                if counts.iter().all(|&c| c == 0) {
                    return Err(no_tokens(&spec.data.value, spec.data.span));
                }
                select(&vocab, &counts, spec.rule.value).len()
            }
        };

        let ix = program
            .model
            .find_op(|op| matches!(op, Op::Embeddings(_)))
            .ok_or_else(|| {
                Diag::new("plcc::vocab::no-embeddings", "the model has no embeddings")
            })?;
        let node = program.model.node_mut(ix);
        let before = match &mut node.op {
            Op::Embeddings(e) => std::mem::replace(&mut e.vocab, after),
            _ => after,
        };
        if before != after {
            node.span = spec.span;
        }
        program.plan.vocab = Some(VocabPlan {
            data: spec.data.value.clone(),
            data_span: spec.data.span,
            keyword: spec.keyword,
            rule: spec.rule.value,
            before,
            after,
            pieces,
            always_kept: always,
        });
        Ok(())
    }
}
