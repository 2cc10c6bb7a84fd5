//! The loss log: JSON Lines, one record per optimizer step, with the
//! evaluation taken after it when one was due (its plot: [`super::plot`]).

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
    /// Tokens trained on so far, over all stages.
    #[serde(default)]
    pub tokens: usize,
    /// The evaluation after this step, when one was due (`eval_every`):
    /// the fidelity metrics on the recipe's eval data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<BTreeMap<String, f64>>,
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
            tokens: 0,
            eval: None,
        }
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
