//! Running a loaded model over text: length-sorted batches (`runner`),
//! per-sample early exit inside a batch (`early_exit`, with the exit
//! policies of `exit_rule`) and an encoder-decoder's greedy generation
//! (`generate`).

pub mod early_exit;
pub mod exit_rule;
pub mod generate;
pub mod runner;
