//! Measuring what a build produced: the fidelity of a student to its teacher
//! on held-out data, the build report, and the calibration of exit
//! thresholds on an artifact.

pub mod exits;
pub mod fidelity;
pub mod ranking;
pub mod report;
pub mod report_exits;
pub mod report_files;
pub mod report_svg;
pub mod source;
pub mod vocab_report;
