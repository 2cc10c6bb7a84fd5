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

pub use distill_schedule::DistillSchedule;
pub use exit_insert::ExitInsert;
pub use layer_reduce::LayerReduce;
pub use quant_place::QuantPlace;
pub use vocab_prune::VocabPrune;
pub use width_prune::WidthPrune;
