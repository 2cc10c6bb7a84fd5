//! Exit-threshold calibration. `calibrate` runs an artifact once at full
//! depth over calibration text, recording every exit's signal and how close
//! its output is to the full-depth output (`observe`), searches thresholds
//! offline for a target average exit layer, speed-up or fidelity loss
//! (`search`, with per-sample FLOPs from `cost`), and writes the chosen
//! threshold into the artifact's manifest (atomically; the weights are not
//! touched). `plcc calibrate` and builds whose recipe gives an exit target
//! call it. A classifier's accuracy against FLOPs on labelled data is the
//! same search scored against the gold labels (`accuracy`).

pub mod accuracy;
pub mod cost;
pub mod observe;
pub mod oracle;
pub mod search;
pub mod shipped;
pub mod target;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Serialize;

use crate::artifact::{encode_manifest, read_manifest, write_file_atomic, MANIFEST_FILE};
use crate::base::{CalibrationTarget, ExitCriterion};
use crate::diag::Diag;
use crate::eval::fidelity::{encode_for, Encoded, MEASURED_TOKENS};
use crate::ir::Plan;
use crate::runtime::load::from_artifact::load_artifact;
use crate::runtime::run::token_rows::tokenize;
use crate::runtime::LoadedModel;
use crate::text::data::Example;
pub use search::Outcome;
pub use target::{describe, parse_target};

/// How calibration runs the model.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    pub batch_size: usize,
    /// Token limit per line (default: the model's maximum positions).
    pub max_len: Option<usize>,
    pub device: Device,
    /// Write the chosen setting into the manifest.
    pub write: bool,
    /// Where the calibration lines come from, in words (for the report).
    pub data: String,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            batch_size: 32,
            max_len: None,
            device: Device::Cpu,
            write: true,
            data: "the given lines".into(),
        }
    }
}

/// The result of a calibration.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub artifact: PathBuf,
    pub criterion: ExitCriterion,
    pub target: CalibrationTarget,
    /// Where the calibration lines came from (`CalibrateOptions::data`).
    pub data: String,
    pub samples: usize,
    /// Layers of the model; exits sit after the layers in `exit_layers`.
    pub layers: usize,
    pub exit_layers: Vec<usize>,
    /// The chosen setting and what it does on the calibration data.
    pub chosen: Outcome,
    /// Every setting tried, strictest first.
    pub curve: Vec<Outcome>,
    /// What an oracle that knows every exit's score reaches at the same
    /// loss (the target's, for a fidelity-loss target; else the chosen
    /// setting's): the most any criterion could give on these exits.
    pub oracle: oracle::OracleBound,
    /// Whether the manifest was rewritten.
    pub written: bool,
}

/// What exits are calibrated on: lines of text (`plcc calibrate --data`),
/// or examples encoded as the fidelity measurement encodes them (a pair as
/// one sequence, the first 128 tokens), so the thresholds are chosen on the
/// inputs the report then measures them on.
#[derive(Debug, Clone, Copy)]
pub enum CalibrationInput<'a> {
    Lines(&'a [String]),
    Examples(&'a [Example]),
}

impl CalibrationInput<'_> {
    fn is_empty(&self) -> bool {
        match self {
            CalibrationInput::Lines(l) => l.is_empty(),
            CalibrationInput::Examples(e) => e.is_empty(),
        }
    }

    /// The token rows of the input for `model`.
    fn rows(&self, model: &LoadedModel, max_len: Option<usize>) -> Result<Vec<Encoded>, Diag> {
        match self {
            // An encoder-decoder reads each line as a text to reconstruct.
            CalibrationInput::Lines(lines) if model.config.seq2seq.is_some() => {
                let examples: Vec<Example> = lines.iter().map(Example::text).collect();
                let limit = max_len.unwrap_or(model.config.max_positions.min(MEASURED_TOKENS));
                Ok(encode_for(model, limit, &examples)?.0)
            }
            CalibrationInput::Lines(lines) => Ok(tokenize(model, lines, max_len)?
                .rows
                .into_iter()
                .map(|ids| {
                    let types = vec![0; ids.len()];
                    (ids, types)
                })
                .collect()),
            CalibrationInput::Examples(examples) => {
                let limit = max_len.unwrap_or(model.config.max_positions.min(MEASURED_TOKENS));
                Ok(encode_for(model, limit, examples)?.0)
            }
        }
    }
}

/// At most this many thresholds are tried.
const CANDIDATES: usize = 400;

/// Calibrates the artifact in `dir` on `lines` for `target` and writes the
/// threshold into its manifest.
pub fn calibrate(
    dir: &Path,
    lines: &[String],
    target: CalibrationTarget,
) -> Result<Calibration, Diag> {
    calibrate_with(
        dir,
        CalibrationInput::Lines(lines),
        target,
        &CalibrateOptions::default(),
    )
}

/// `calibrate` with explicit options.
pub fn calibrate_with(
    dir: &Path,
    input: CalibrationInput<'_>,
    target: CalibrationTarget,
    options: &CalibrateOptions,
) -> Result<Calibration, Diag> {
    if input.is_empty() {
        return Err(Diag::new(
            "plcc::calibrate::empty-data",
            "calibration needs at least one line of text",
        )
        .help("give a file with one input text per line"));
    }
    let model = load_artifact(dir, &options.device)?;
    let manifest = &read_manifest(dir)?;
    let Some(first) = model.exit_policies.first() else {
        return Err(Diag::new(
            "plcc::calibrate::no-exits",
            format!("artifact `{}` has no exits to calibrate", dir.display()),
        )
        .help("add an `exits { after: ... }` block to the recipe and build again"));
    };
    let criterion = first.criterion;
    if model.exit_policies.iter().any(|p| p.criterion != criterion) {
        return Err(Diag::new(
            "plcc::calibrate::mixed-criteria",
            "the artifact's exits use different criteria; one threshold cannot serve them all",
        ));
    }
    if let CalibrationTarget::AvgExitLayer(t) = target {
        let layers = model.config.num_layers();
        if t > layers as f64 {
            return Err(Diag::new(
                "plcc::calibrate::bad-target",
                format!("target average exit layer {t} is beyond the model's {layers} layers"),
            ));
        }
    }
    let rows = input.rows(&model, options.max_len)?;
    let observations = observe::observe(
        &model,
        &rows,
        options.batch_size.max(1),
        observe::Scoring::Fidelity,
    )?;
    let after: Vec<usize> = model.exits.iter().map(|h| h.after_layer).collect();
    let depth = model.config.num_layers();
    let mut costs = cost::ExitCosts::new(&manifest.config, manifest.task, &manifest.exits);
    let curve: Vec<Outcome> = search::candidates(&observations, criterion, after.len(), CANDIDATES)
        .into_iter()
        .map(|setting| {
            search::evaluate(
                &observations,
                &model.exit_policies,
                &after,
                depth,
                &mut costs,
                setting,
            )
        })
        .collect();
    let chosen = search::choose(&curve, target).cloned().ok_or_else(|| {
        let best = curve.last();
        Diag::new(
            "plcc::calibrate::unreachable",
            format!("no threshold reaches {} on this data", describe(target)),
        )
        .note(target::unreachable_note(target, best, depth))
        .help("ask for less, or add exits after earlier layers")
    })?;
    let chosen = Outcome {
        setting: search::with_margin(&observations, criterion, chosen.setting),
        ..chosen
    };
    let loss = match target {
        CalibrationTarget::MaxFidelityLoss(x) => x,
        _ => (1.0 - chosen.fidelity).max(0.0),
    };
    let oracle = oracle::bound(&observations, &after, depth, &mut costs, loss);
    if options.write {
        write_setting(dir, criterion, chosen.setting)?;
    }
    Ok(Calibration {
        artifact: dir.to_path_buf(),
        criterion,
        target,
        data: options.data.clone(),
        samples: observations.len(),
        layers: depth,
        exit_layers: after,
        chosen,
        curve,
        oracle,
        written: options.write,
    })
}

/// Writes `setting` (a threshold, or a patience for the patience criterion;
/// `None` turns the exits off) into every exit of the artifact's manifest,
/// atomically (sealed again), and checks that the manifest reads back.
pub fn write_setting(
    dir: &Path,
    criterion: ExitCriterion,
    setting: Option<f64>,
) -> Result<(), Diag> {
    let mut manifest = read_manifest(dir)?;
    for exit in &mut manifest.exits {
        match criterion {
            ExitCriterion::Patience => exit.patience = setting.map(|k| k.round() as usize),
            _ => exit.threshold = setting,
        }
    }
    write_file_atomic(&dir.join(MANIFEST_FILE), &encode_manifest(&manifest)?)?;
    read_manifest(dir).map(|_| ())
}

/// Calibrates the artifact `dir` built from the program whose plan is
/// `plan`, when the plan's exits give a target, on the exits' calibration
/// data: the first `samples` examples of the data set they name among
/// `datasets`, by default all of `eval` (the evaluation data), each example
/// encoded as the fidelity measurement encodes it (a pair as one sequence),
/// so the report's fidelity with exits is measured on inputs like the ones
/// the thresholds were chosen on. `None` when there is no target.
pub fn calibrate_for_plan(
    dir: &Path,
    plan: &Plan,
    datasets: &BTreeMap<String, Vec<Example>>,
    eval: &[Example],
) -> Result<Option<Calibration>, Diag> {
    let Some((exits, target)) = plan.exits.as_ref().and_then(|e| Some((e, e.target?))) else {
        return Ok(None);
    };
    let (set, data) = match &exits.calibration_data {
        Some(name) => (
            datasets.get(name).map(Vec::as_slice).unwrap_or_default(),
            format!("`{name}`"),
        ),
        None => (eval, "the evaluation data".to_string()),
    };
    let samples = exits
        .calibration_samples
        .map_or(set.len(), |n| n.min(set.len()));
    let examples: Vec<Example> = set[..samples]
        .iter()
        .filter(|e| !e.text.trim().is_empty())
        .cloned()
        .collect();
    let options = CalibrateOptions {
        data,
        ..CalibrateOptions::default()
    };
    calibrate_with(dir, CalibrationInput::Examples(&examples), target, &options).map(Some)
}
