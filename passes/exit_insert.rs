//! `exit-insert`: adds an exit head after each student layer named in
//! `exits { after: ... }` (1-based student layers, counted after layer
//! reduction), reading that layer's output, and records the exit policy in
//! the plan. `after: all` places one after every layer but the last (the
//! final task head is the last exit). Classification and causal LM exits are
//! classifiers (LM exits reuse the tied word embedding); embedding exits are
//! poolers with a dense projection.
//!
//! Relies on `layer-reduce` and `width-prune` (student depth is final).
//! Errors: a layer that does not exist in the student (saying when
//! `keep_layers` removed it), the last layer, a layer listed twice, a head
//! that does not fit the task.

use crate::base::{ExitHead, Task};
use crate::diag::Diag;
use crate::ir::{exit_node, ExitPlan, Program};
use crate::pass::{Facts, Pass, PassCx};
use crate::recipe::ExitLayers;

pub struct ExitInsert;

impl Pass for ExitInsert {
    fn name(&self) -> &'static str {
        "exit-insert"
    }

    fn directive(&self, recipe: &crate::recipe::Recipe) -> Option<crate::diag::Span> {
        recipe.exits.as_ref().map(|e| e.span)
    }

    fn description(&self) -> &'static str {
        "add early-exit heads after student layers"
    }

    fn requires(&self) -> Facts {
        Facts::SHAPES | Facts::LAYERS_REDUCED | Facts::WIDTH_PLANNED
    }

    fn provides(&self) -> Facts {
        Facts::EXITS_PLACED
    }

    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag> {
        let Some(spec) = &cx.recipe.exits else {
            return Ok(());
        };
        super::refuse_seq2seq(program, spec.keyword, "early exit", "the `exits` block")?;
        let task = program.plan.task;
        match (spec.head.value, task) {
            (ExitHead::Classifier, Task::Embedding { .. }) => {
                return Err(Diag::new(
                    "plcc::exits::head-task",
                    "a classifier exit needs a classification or causal_lm task",
                )
                .label(spec.head.span, "the task is `embedding`")
                .help("use `head: pooler` for embedding models"));
            }
            (ExitHead::Pooler, Task::Classification { .. } | Task::CausalLm) => {
                return Err(Diag::new(
                    "plcc::exits::head-task",
                    "a pooler exit produces embeddings, but the task needs predictions",
                )
                .label(spec.head.span, "use `head: classifier` here"));
            }
            _ => {}
        }

        let layers = program.model.layers();
        let depth = layers.len();
        let after: Vec<(usize, crate::diag::Span)> = match &spec.after.value {
            ExitLayers::All => (1..depth).map(|l| (l, spec.after.span)).collect(),
            ExitLayers::List(list) => list.iter().map(|l| (l.value, l.span)).collect(),
        };
        for (i, &(layer, span)) in after.iter().enumerate() {
            if layer == 0 || layer > depth {
                let mut d = Diag::new(
                    "plcc::exits::no-such-layer",
                    format!("exit after layer {layer}, but the student has {depth} layers (1..={depth})"),
                )
                .label(span, "no such student layer");
                d = match &cx.recipe.keep_layers {
                    Some(keep) if layer > depth && layer <= program.plan.teacher.config.num_layers() => d
                        .label(keep.span, format!("layer reduction keeps {depth} layers"))
                        .help("exit layers count student layers (after `keep_layers`), from 1"),
                    _ => d.help("exit layers are 1-based: an exit after layer 1 reads the first layer's output"),
                };
                return Err(d);
            }
            if layer == depth {
                return Err(Diag::new(
                    "plcc::exits::last-layer",
                    format!("exit after layer {layer}, the student's last layer"),
                )
                .label(span, "the final task head already reads this layer")
                .help("drop it: the final head is the last exit"));
            }
            if let Some(&(_, first)) = after[..i].iter().find(|(l, _)| *l == layer) {
                return Err(Diag::new(
                    "plcc::exits::duplicate",
                    format!("two exits after layer {layer}"),
                )
                .label(span, "listed again here")
                .label(first, "first listed here"));
            }
        }

        // Apply.
        let config = program.plan.teacher.config.clone();
        let mut placed = Vec::new();
        for &(layer, span) in &after {
            let Some(student) = layers.iter().find(|l| l.student == layer) else {
                continue;
            };
            let node = exit_node(layer, spec.head.value, task, &config, span);
            let ix = program.model.add(node);
            program.model.connect(student.ffn, ix);
            placed.push(layer);
        }
        placed.sort_unstable();
        program.plan.exits = Some(ExitPlan {
            after: placed,
            head: spec.head.value,
            criterion: spec.criterion.value,
            threshold: spec.threshold.as_ref().map(|t| t.value),
            patience: spec.patience.as_ref().map(|p| p.value),
            target: spec.target.as_ref().map(|t| t.value),
            calibration_data: spec.data.as_ref().map(|d| d.value.clone()),
            calibration_samples: spec.samples.as_ref().map(|s| s.value),
        });
        Ok(())
    }
}
