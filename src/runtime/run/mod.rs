//! Running a loaded model over text: input lines as token rows
//! (`token_rows`), length-sorted batches (`runner`), one output `record` per
//! input, per-sample early exit inside a batch (`early_exit`, with the exit
//! policies of `exit_rule`) and an encoder-decoder's greedy generation
//! (`generate`).

pub mod early_exit;
pub mod exit_rule;
pub mod generate;
pub mod record;
pub mod runner;
pub mod token_rows;
