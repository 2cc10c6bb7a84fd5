//! The loss log (JSON Lines, one record per optimizer step) and its plot
//! (an SVG line chart of the total loss over global steps, one colour per
//! stage, logarithmic when the loss spans more than a factor of 20).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diag::Diag;

/// One optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub stage: String,
    pub global_step: usize,
    pub step: usize,
    pub loss: f64,
    /// Each weighted term by loss name.
    pub terms: BTreeMap<String, f64>,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
}

/// An append-only JSON Lines file.
pub struct LossLog {
    path: PathBuf,
    records: Vec<StepRecord>,
}

fn io(path: &Path, e: std::io::Error) -> Diag {
    Diag::io("plcc::train::log", "write the loss log", path, &e)
}

impl LossLog {
    /// Opens `path`, keeping the records up to `global_step` (the resumed
    /// checkpoint's) and dropping what an interrupted run wrote after it.
    pub fn open(path: &Path, keep_through: Option<usize>) -> Result<Self, Diag> {
        let mut records = Vec::new();
        if let (Some(last), Ok(text)) = (keep_through, std::fs::read_to_string(path)) {
            records = text
                .lines()
                .filter_map(|l| serde_json::from_str::<StepRecord>(l).ok())
                .filter(|r| r.global_step <= last)
                .collect();
        }
        let log = LossLog {
            path: path.to_path_buf(),
            records,
        };
        log.rewrite()?;
        Ok(log)
    }

    fn rewrite(&self) -> Result<(), Diag> {
        let mut text = String::new();
        for r in &self.records {
            text.push_str(&serde_json::to_string(r).unwrap_or_default());
            text.push('\n');
        }
        crate::artifact::write_file_atomic(&self.path, text.as_bytes())
    }

    pub fn append(&mut self, record: StepRecord) -> Result<(), Diag> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| io(&self.path, e))?;
        let line = serde_json::to_string(&record).unwrap_or_default();
        writeln!(f, "{line}").map_err(|e| io(&self.path, e))?;
        self.records.push(record);
        Ok(())
    }

    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// The log's text (for the artifact).
    pub fn text(&self) -> String {
        self.records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
            .collect()
    }
}

const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// An SVG chart of the total loss per step, one polyline per stage.
pub fn loss_plot(records: &[StepRecord]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 400.0, 70.0, 20.0, 30.0, 50.0);
    let finite: Vec<&StepRecord> = records.iter().filter(|r| r.loss.is_finite()).collect();
    let max_step = finite
        .iter()
        .map(|r| r.global_step)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let lo = finite.iter().map(|r| r.loss).fold(f64::INFINITY, f64::min);
    let hi = finite
        .iter()
        .map(|r| r.loss)
        .fold(f64::NEG_INFINITY, f64::max);
    let log_scale = lo > 0.0 && hi / lo > 20.0;
    let tf = |v: f64| if log_scale { v.ln() } else { v };
    let (ylo, yhi) = if finite.is_empty() {
        (0.0, 1.0)
    } else if (tf(hi) - tf(lo)).abs() < 1e-12 {
        (tf(lo) - 0.5, tf(hi) + 0.5)
    } else {
        (tf(lo), tf(hi))
    };
    let x = |s: f64| left + (w - left - right) * s / max_step;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (tf(v) - ylo) / (yhi - ylo));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">training loss{}</text>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        w / 2.0,
        if log_scale { " (log scale)" } else { "" },
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    for i in 0..=4 {
        let frac = i as f64 / 4.0;
        let tv = ylo + (yhi - ylo) * frac;
        let v = if log_scale { tv.exp() } else { tv };
        let py = top + (h - top - bottom) * (1.0 - frac);
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            left - 6.0,
            py + 4.0,
            fmt_tick(v)
        ));
        let s = max_step * frac;
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            x(s),
            h - bottom + 16.0,
            s.round()
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n",
        (left + w - right) / 2.0,
        h - 8.0
    ));
    let mut stages: Vec<&str> = Vec::new();
    for r in &finite {
        if !stages.contains(&r.stage.as_str()) {
            stages.push(&r.stage);
        }
    }
    for (i, stage) in stages.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = finite
            .iter()
            .filter(|r| r.stage == *stage)
            .map(|r| format!("{:.1},{:.1}", x(r.global_step as f64), y(r.loss)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            points.join(" ")
        ));
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\" text-anchor=\"end\">{}</text>\n",
            w - right - 4.0,
            top + 14.0 * (i + 1) as f64,
            xml_escape(stage)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stage: &str, step: usize, loss: f64) -> StepRecord {
        StepRecord {
            stage: stage.into(),
            global_step: step,
            step,
            loss,
            terms: BTreeMap::new(),
            lr: 0.0,
            grad_norm: 0.0,
            tokens_per_s: 0.0,
        }
    }

    #[test]
    fn plot_has_one_line_per_stage() {
        let svg = loss_plot(&[
            rec("a", 1, 3.0),
            rec("a", 2, 2.0),
            rec("b", 3, 1.0),
            rec("b", 4, 0.5),
        ]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn reopening_keeps_records_up_to_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("plcc-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("loss.jsonl");
        let mut log = LossLog::open(&path, None).unwrap();
        for s in 1..=5 {
            log.append(rec("a", s, 1.0 / s as f64)).unwrap();
        }
        let log = LossLog::open(&path, Some(3)).unwrap();
        assert_eq!(log.records().len(), 3);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
