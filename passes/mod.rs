//! The built-in compiler passes, one file each, in their run order:
//! `layer-reduce`, `width-prune`, `vocab-prune`, `exit-insert`,
//! `quant-place`, `distill-schedule`. Each decides shapes and plans only; a pass first
//! collects its changes, then applies them. They are also the examples to
//! follow when writing a custom pass (`examples/custom_pass.rs`).

mod distill_schedule;
mod exit_insert;
mod layer_reduce;
mod quant_place;
mod vocab_prune;
mod width_prune;

use crate::diag::{Diag, Span};
use crate::ir::Program;

/// A structural change (`what`, asked for at `span` by `directive`) that
/// the passes do not make to an encoder-decoder yet is refused there, with
/// the teacher pointed at.
fn refuse_seq2seq(program: &Program, span: Span, what: &str, directive: &str) -> Result<(), Diag> {
    let teacher = &program.plan.teacher;
    if teacher.config.seq2seq.is_none() {
        return Ok(());
    }
    Err(Diag::new(
        "plcc::recipe::seq2seq-unsupported",
        format!("{what} is not implemented for encoder-decoder models"),
    )
    .label(span, format!("{what} asked for here"))
    .label(
        teacher.span,
        format!("`{}` is an encoder-decoder", teacher.config.model_type),
    )
    .help(format!(
        "an encoder-decoder is compressed by quantization and distillation; remove {directive}"
    )))
}

pub use distill_schedule::DistillSchedule;
pub use exit_insert::ExitInsert;
pub use layer_reduce::LayerReduce;
pub use quant_place::QuantPlace;
pub use vocab_prune::VocabPrune;
pub use width_prune::WidthPrune;
