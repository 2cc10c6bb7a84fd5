//! The calibration target as written on the command line:
//! `avg_layer=3.5`, `speedup=2` (or `2x`), `max_loss=2%` (or `0.02`).

use super::search::Outcome;
use crate::base::CalibrationTarget;
use crate::diag::Diag;

const FORMS: &str = "give `avg_layer=N` (average exit layer), `speedup=X` (X > 1, estimated from per-layer FLOPs) or `max_loss=P%` (largest fidelity loss to the full-depth output)";

fn bad(text: &str, why: impl Into<String>) -> Diag {
    Diag::new(
        "plcc::calibrate::bad-target",
        format!("bad calibration target `{text}`: {}", why.into()),
    )
    .help(FORMS)
}

/// Parses a `--target` value.
pub fn parse_target(text: &str) -> Result<CalibrationTarget, Diag> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| bad(text, "expected KEY=VALUE"))?;
    let value = value.trim();
    let number = |v: &str| -> Result<f64, Diag> {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad(text, format!("`{v}` is not a number")))
    };
    match key.trim() {
        "avg_layer" => {
            let x = number(value)?;
            if x < 1.0 {
                return Err(bad(text, "the average exit layer is at least 1"));
            }
            Ok(CalibrationTarget::AvgExitLayer(x))
        }
        "speedup" => {
            let x = number(value.strip_suffix('x').unwrap_or(value))?;
            if x <= 1.0 {
                return Err(bad(text, "a speed-up must be greater than 1"));
            }
            Ok(CalibrationTarget::Speedup(x))
        }
        "max_loss" => {
            let x = match value.strip_suffix('%') {
                Some(p) => number(p)? / 100.0,
                None => number(value)?,
            };
            if !(0.0..1.0).contains(&x) {
                return Err(bad(text, "a fidelity loss is between 0% and 100%"));
            }
            Ok(CalibrationTarget::MaxFidelityLoss(x))
        }
        other => Err(bad(text, format!("unknown target `{other}`"))),
    }
}

/// The command-line spelling of `target`.
pub fn describe(target: CalibrationTarget) -> String {
    match target {
        CalibrationTarget::AvgExitLayer(x) => format!("avg_layer={x}"),
        CalibrationTarget::Speedup(x) => format!("speedup={x}"),
        CalibrationTarget::MaxFidelityLoss(x) => format!("max_loss={}%", x * 100.0),
    }
}

/// `value` with two decimals, or with as many more (up to 6) as it takes
/// to read differently from `bound` at the same precision, so that a value
/// that misses a bound never prints as the bound itself.
pub fn beside(value: f64, bound: f64) -> String {
    for digits in 2..=6 {
        let (v, b) = (format!("{value:.digits$}"), format!("{bound:.digits$}"));
        if v != b {
            return v;
        }
    }
    format!("{value}")
}

/// What the loosest setting `best` gives when no setting reaches `target`
/// (a model of `depth` layers; no setting: nobody leaves), its numbers
/// printed so that they read differently from the target's.
pub fn unreachable_note(target: CalibrationTarget, best: Option<&Outcome>, depth: usize) -> String {
    let layer = best.map_or(depth as f64, |o| o.avg_exit_layer);
    let speedup = best.map_or(1.0, |o| o.est_speedup);
    let (layer, speedup) = match target {
        CalibrationTarget::AvgExitLayer(t) => (beside(layer, t), format!("{speedup:.2}")),
        CalibrationTarget::Speedup(t) => (format!("{layer:.2}"), beside(speedup, t)),
        CalibrationTarget::MaxFidelityLoss(_) => (format!("{layer:.2}"), format!("{speedup:.2}")),
    };
    format!(
        "the most any threshold gives here: average exit layer {layer}, estimated speed-up {speedup}x"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_target_never_prints_as_the_target() {
        assert_eq!(beside(1.4996, 1.5), "1.4996");
        assert_eq!(beside(1.42, 1.5), "1.42");
        let best = Outcome {
            setting: Some(0.9),
            avg_exit_layer: 2.5,
            avg_flops: 1000.0,
            est_speedup: 1.4996,
            fidelity: 0.99,
            min_fidelity: 0.9,
            exits_taken: Vec::new(),
        };
        let note = unreachable_note(CalibrationTarget::Speedup(1.5), Some(&best), 3);
        assert!(note.ends_with("estimated speed-up 1.4996x"), "{note}");
        let note = unreachable_note(CalibrationTarget::AvgExitLayer(2.4999), Some(&best), 3);
        assert!(note.contains("average exit layer 2.5000,"), "{note}");
    }

    #[test]
    fn parses_every_form_and_rejects_bad_ones() {
        assert_eq!(
            parse_target("avg_layer=3.5").unwrap(),
            CalibrationTarget::AvgExitLayer(3.5)
        );
        assert_eq!(
            parse_target("speedup=2x").unwrap(),
            CalibrationTarget::Speedup(2.0)
        );
        assert_eq!(
            parse_target("max_loss=2%").unwrap(),
            CalibrationTarget::MaxFidelityLoss(0.02)
        );
        assert_eq!(
            parse_target("max_loss=0.05").unwrap(),
            CalibrationTarget::MaxFidelityLoss(0.05)
        );
        for bad in [
            "avg_layer",
            "avg_layer=0.5",
            "speedup=1",
            "speedup=fast",
            "max_loss=150%",
            "depth=3",
            "max_loss=NaN",
        ] {
            let d = parse_target(bad).unwrap_err();
            assert_eq!(d.code, "plcc::calibrate::bad-target", "{bad}");
        }
    }
}
