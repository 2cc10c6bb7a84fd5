//! A classifier's labels: the class names in index order, as transformers
//! keeps them (`id2label` / `label2id` in config.json). A recipe names them
//! (`labels: [admin, devel]`) or counts them (`labels: 3`, named `LABEL_0`,
//! `LABEL_1`, ... as transformers names unnamed classes); a checkpoint's
//! config.json gives them for a sequence classifier (`config_labels`); data
//! files give each example's class by name or by index.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The most classes a classifier may have.
pub const MAX_LABELS: usize = 100_000;

/// Class names in index order: distinct, non-empty, at least two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct LabelSet(Vec<String>);

impl LabelSet {
    /// The set of `names`, in this order; an error says what is wrong.
    pub fn new(names: Vec<String>) -> Result<Self, String> {
        if names.len() < 2 {
            return Err(format!(
                "a classifier needs two labels or more, found {}",
                names.len()
            ));
        }
        if names.len() > MAX_LABELS {
            return Err(format!(
                "{} labels is above the limit of {MAX_LABELS}",
                names.len()
            ));
        }
        for (i, n) in names.iter().enumerate() {
            if n.trim().is_empty() || n.trim() != n || n.contains(['\t', '\n', '\r']) {
                return Err(format!(
                    "label {i} `{n}` must be a non-empty name without surrounding spaces, tabs or line breaks"
                ));
            }
            if let Some(j) = names[..i].iter().position(|m| m == n) {
                return Err(format!("label `{n}` is given twice (classes {j} and {i})"));
            }
        }
        Ok(LabelSet(names))
    }

    /// `n` classes named as transformers names unnamed ones: `LABEL_0`, ...
    pub fn numbered(n: usize) -> Self {
        LabelSet((0..n).map(|i| format!("LABEL_{i}")).collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names in class order.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Class `i`'s name.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.0.get(i).map(String::as_str)
    }

    /// The class a data file's label `text` stands for: a name of the set,
    /// else a 0-based class index below the set's size.
    pub fn class_of(&self, text: &str) -> Option<usize> {
        self.0
            .iter()
            .position(|n| n == text)
            .or_else(|| text.parse::<usize>().ok().filter(|&i| i < self.len()))
    }

    /// The names as a short list for messages (`admin, devel, ...`).
    pub fn shown(&self) -> String {
        const SHOWN: usize = 12;
        let mut s = self.0[..self.len().min(SHOWN)].join(", ");
        if self.len() > SHOWN {
            s.push_str(&format!(", ... ({} in all)", self.len()));
        }
        s
    }

    /// transformers' `id2label` (`{"0": "admin", ...}`).
    pub fn id2label(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), json!(n)))
                .collect::<Map<_, _>>(),
        )
    }

    /// transformers' `label2id` (`{"admin": 0, ...}`).
    pub fn label2id(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), json!(i)))
                .collect::<Map<_, _>>(),
        )
    }
}

impl TryFrom<Vec<String>> for LabelSet {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, String> {
        LabelSet::new(names)
    }
}

impl From<LabelSet> for Vec<String> {
    fn from(set: LabelSet) -> Self {
        set.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_set_survives_json_and_refuses_duplicates() {
        let set = LabelSet::new(vec!["x".into(), "y".into()]).unwrap();
        let text = serde_json::to_string(&set).unwrap();
        assert_eq!(text, r#"["x","y"]"#);
        assert_eq!(serde_json::from_str::<LabelSet>(&text).unwrap(), set);
        assert!(serde_json::from_str::<LabelSet>(r#"["x","x"]"#).is_err());
        assert!(LabelSet::new(vec!["x".into()]).is_err());
    }
}
