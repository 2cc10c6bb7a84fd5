//! Reading a recipe's data set into examples (text, optional second text,
//! optional label), with diagnostics pointing at the `data` block for a
//! missing or empty file, a missing column, or a label outside the task's range.

use crate::base::DataSpec;
use crate::base::{Column, DataFormat};
use crate::diag::Diag;
use crate::fsio;

/// One example of a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub text: String,
    pub pair: Option<String>,
    pub label: Option<usize>,
}

/// Reads `spec`'s file. `labels` (the number of classes of a classification
/// task) bounds the labels.
pub fn read_dataset(spec: &DataSpec, labels: Option<usize>) -> Result<Vec<Example>, Diag> {
    let path = &spec.path.value;
    let text = fsio::read_text(path, &fsio::DATA)
        .map_err(|d| d.or_span(spec.path.span, "this data file"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: String| {
            Diag::new(
                "plcc::data::bad-row",
                format!("{}:{}: {what}", path.display(), i + 1),
            )
            .label(spec.span, format!("data set `{}`", spec.name.value))
        };
        let example = match spec.format {
            DataFormat::Text => Example {
                text: line.to_string(),
                pair: None,
                label: None,
            },
            DataFormat::Tsv => {
                let fields: Vec<&str> = line.split('\t').collect();
                let get = |c: &Column| -> Result<String, Diag> {
                    match c {
                        Column::Index(k) => {
                            fields.get(*k).map(|s| s.to_string()).ok_or_else(|| {
                                at(format!(
                                    "the row has {} columns, column {k} is missing",
                                    fields.len()
                                ))
                            })
                        }
                        Column::Key(k) => {
                            Err(at(format!("TSV columns are numbers, not keys (`{k}`)")))
                        }
                    }
                };
                Example {
                    text: get(&spec.text)?,
                    pair: spec.text_pair.as_ref().map(get).transpose()?,
                    label: spec
                        .label
                        .as_ref()
                        .map(|c| get(c).and_then(|s| parse_label(&s).map_err(at)))
                        .transpose()?,
                }
            }
            DataFormat::Jsonl => {
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| at(format!("not a JSON object: {e}")))?;
                let get = |c: &Column| -> Result<serde_json::Value, Diag> {
                    let found = match c {
                        Column::Key(k) => v.get(k.as_str()),
                        Column::Index(k) => v.get(*k),
                    };
                    found
                        .cloned()
                        .ok_or_else(|| at(format!("field {c} is missing")))
                };
                let as_text = |x: serde_json::Value| match x {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                Example {
                    text: as_text(get(&spec.text)?),
                    pair: spec.text_pair.as_ref().map(get).transpose()?.map(as_text),
                    label: spec
                        .label
                        .as_ref()
                        .map(|c| get(c).and_then(|x| parse_label(&as_text(x)).map_err(at)))
                        .transpose()?,
                }
            }
        };
        if let (Some(l), Some(n)) = (example.label, labels) {
            if l >= n {
                return Err(at(format!(
                    "label {l} is out of range: the task has {n} labels (0..={})",
                    n - 1
                ))
                .help("labels are 0-based class indices"));
            }
        }
        out.push(example);
    }
    if out.is_empty() {
        return Err(Diag::new(
            "plcc::data::empty",
            format!("data file `{}` has no examples", path.display()),
        )
        .label(spec.path.span, "this file is empty"));
    }
    Ok(out)
}

fn parse_label(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| format!("label `{}` is not a class index", s.trim()))
}
