//! `layer-reduce`: keeps the teacher layers listed in `keep_layers`, in order,
//! and removes the others' attention and FFN nodes, reconnecting the main
//! path. Kept nodes keep their teacher names; a layer's student index is its
//! position. Relies on the teacher graph from `resolve` (no exits yet).
//! Errors: an index past the teacher's last layer (at that list element), an
//! empty list.

use crate::diag::Diag;
use crate::ir::Program;
use crate::pass::{Facts, Pass, PassCx};

pub struct LayerReduce;

impl Pass for LayerReduce {
    fn name(&self) -> &'static str {
        "layer-reduce"
    }

    fn directive(&self, recipe: &crate::recipe::Recipe) -> Option<crate::diag::Span> {
        recipe.keep_layers.as_ref().map(|k| k.span)
    }

    fn description(&self) -> &'static str {
        "keep the teacher layers listed in `keep_layers` (XTC layer reduction)"
    }

    fn requires(&self) -> Facts {
        Facts::SHAPES
    }

    fn provides(&self) -> Facts {
        Facts::LAYERS_REDUCED
    }

    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag> {
        let Some(keep) = &cx.recipe.keep_layers else {
            return Ok(());
        };
        super::refuse_seq2seq(program, keep.span, "dropping layers", "`keep_layers`")?;
        let layers = program.model.layers();
        if keep.value.is_empty() {
            return Err(
                Diag::new("plcc::layers::none-kept", "`keep_layers` keeps no layer")
                    .label(keep.span, "the student needs at least one layer"),
            );
        }
        for index in &keep.value {
            if !layers.iter().any(|l| l.teacher == index.value) {
                return Err(Diag::new(
                    "plcc::layers::out-of-range",
                    format!(
                        "`keep_layers` keeps teacher layer {}, but the teacher has {} layers (0..={})",
                        index.value,
                        layers.len(),
                        layers.len().saturating_sub(1)
                    ),
                )
                .label(index.span, "no such teacher layer")
                .help("teacher layer indices are 0-based"));
            }
        }

        // Collect, then apply.
        let removed: Vec<_> = layers
            .iter()
            .filter(|l| !keep.value.iter().any(|k| k.value == l.teacher))
            .flat_map(|l| [l.attention, l.ffn])
            .collect();
        for ix in removed {
            program.model.remove_and_bridge(ix);
        }
        for layer in program.model.layers() {
            program.model.node_mut(layer.attention).span = keep.span;
            program.model.node_mut(layer.ffn).span = keep.span;
        }
        Ok(())
    }
}
