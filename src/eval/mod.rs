//! Measuring models: the fidelity of a student to its teacher on held-out
//! data, the build report, the calibration of exit thresholds on an
//! artifact, scores on the user's labelled data (`gold`) and retrieval
//! metrics on query and document pairs (`retrieval`).

pub mod build_report;
pub mod confusion;
pub mod eval_sets;
pub mod exits;
pub mod fidelity;
pub mod gold;
pub mod gold_data;
pub mod measure;
pub mod ranking;
pub mod report;
pub mod report_accuracy;
pub mod report_exits;
pub mod report_files;
pub mod report_svg;
pub mod report_svg_accuracy;
pub mod report_svg_layout;
pub mod retrieval;
pub mod retrieval_run;
pub mod seq2seq;
pub mod source;
pub mod vocab_report;
