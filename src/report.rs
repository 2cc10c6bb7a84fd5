//! What a build reports: the [`Report`] written as `report.json` and
//! `report.md` beside the artifact, with the sections it is made of, and the
//! exit [`Calibration`] a build runs when the recipe gives its exits a
//! target. [`crate::Built`] carries both.

pub use crate::eval::exits::search::Outcome;
pub use crate::eval::exits::Calibration;
pub use crate::eval::fidelity::Fidelity;
pub use crate::eval::report::{
    BudgetUse, CurvePoint, Report, Size, StageEval, StageTotals, TrainingReport,
};
pub use crate::eval::report_exits::{CurveSample, ExitCalibration, ExitsReport};
pub use crate::eval::source::EvalSource;
pub use crate::eval::vocab_report::VocabReport;
