//! The report's files in an artifact — `report.json`, `report.md` and
//! `report.svg` — written together by the build, and rewritten by
//! `plcc calibrate` with the new thresholds, each file atomically.

use std::path::Path;

use candle_core::Device;

use super::exits::accuracy::{accuracy_curves, AccuracyCurve, LabelledSet};
use super::exits::shipped::exits_part;
use super::exits::Calibration;
use super::measure::measure;
use super::report::Report;
use super::report_exits::ExitsReport;
use super::report_svg::report_svg;
use super::source::eval_examples;
use crate::artifact::{read_manifest, write_file_atomic};
use crate::diag::Diag;
use crate::runtime::load::from_artifact::load_artifact;
use crate::runtime::LoadedModel;

pub const REPORT_JSON: &str = "report.json";
pub const REPORT_MD: &str = "report.md";
pub const REPORT_SVG: &str = "report.svg";

/// The report's files and their contents.
pub fn report_files(report: &Report) -> Result<[(&'static str, Vec<u8>); 3], Diag> {
    let json = serde_json::to_vec_pretty(report).map_err(|e| {
        Diag::new("plcc::build::report", "cannot encode the report").note(e.to_string())
    })?;
    Ok([
        (REPORT_JSON, json),
        (REPORT_MD, report.markdown().into_bytes()),
        (REPORT_SVG, report_svg(report).into_bytes()),
    ])
}

/// Rewrites the report of the artifact in `dir`, whose manifest
/// `calibration` just wrote: its exits and thresholds, and the fidelity
/// with exits on and at full depth, measured again against `teacher` (the
/// artifact's teacher, or why it cannot be had) on `eval` when given, else
/// on the evaluation data the report records when it is unchanged. When
/// either is missing, the fidelity with exits is removed and the report
/// says it was not measured. A classifier's accuracy against FLOPs is
/// measured again on that data too; the curves of other sets stay, their
/// shipped mark cleared. Returns notes for the user.
pub fn rewrite_report(
    dir: &Path,
    calibration: &Calibration,
    eval: Option<&Path>,
    teacher: Result<&LoadedModel, String>,
) -> Result<Vec<String>, Diag> {
    let path = dir.join(REPORT_JSON);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(vec![format!(
            "`{}` has no {REPORT_JSON}; there was no report to rewrite",
            dir.display()
        )]);
    };
    let mut report: Report = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return Ok(vec![format!(
                "cannot read `{}` ({e}); the report was left as it was and does not show the new thresholds",
                path.display()
            )])
        }
    };
    let manifest = read_manifest(dir)?;
    let mut notes = Vec::new();
    let against = teacher.and_then(|t| {
        eval_examples(
            manifest.labels().as_ref(),
            report.eval_source.as_ref(),
            eval,
        )
        .map(|d| (t, d))
    });
    let mut curves = earlier_curves(&mut report);
    let (exits, with_exits) = match against {
        Ok((teacher, (data, examples))) => {
            let student = load_artifact(dir, &Device::Cpu)?;
            report.fidelity = measure(manifest.task, teacher, &student, &data, &examples)?;
            let set = LabelledSet {
                name: &data,
                examples: &examples,
                teacher_accuracy: report.fidelity.teacher_accuracy(),
                whole: false,
            };
            replace_curves(&mut curves, accuracy_curves(dir, Some(teacher), &[set])?);
            exits_part(dir, Some(calibration), Ok((teacher, &data, &examples)))?
        }
        Err(why) => {
            let part = exits_part(dir, Some(calibration), Err(why.clone()))?;
            if part.0.as_ref().is_some_and(|e| e.active()) {
                notes.push(format!(
                    "the fidelity with exits on was not measured: {why}; the report says so \
                     (give held-out data with --eval FILE to measure it)"
                ));
            }
            part
        }
    };
    report.exits = exits.map(|e| ExitsReport {
        accuracy_vs_flops: curves,
        ..e
    });
    report.fidelity_with_exits = with_exits;
    for (name, contents) in report_files(&report)? {
        write_file_atomic(&dir.join(name), &contents)?;
    }
    Ok(notes)
}

/// The accuracy curves `report` holds, taken out of it, their shipped
/// marks cleared (the shipped threshold is about to change).
fn earlier_curves(report: &mut Report) -> Vec<AccuracyCurve> {
    let mut curves = report
        .exits
        .as_mut()
        .map(|e| std::mem::take(&mut e.accuracy_vs_flops))
        .unwrap_or_default();
    curves.iter_mut().for_each(AccuracyCurve::unmark);
    curves
}

/// `curves` with each of `fresh` in the place of the one on the same data,
/// or added.
fn replace_curves(curves: &mut Vec<AccuracyCurve>, fresh: Vec<AccuracyCurve>) {
    for c in fresh {
        match curves.iter_mut().find(|old| old.data == c.data) {
            Some(old) => *old = c,
            None => curves.push(c),
        }
    }
}
