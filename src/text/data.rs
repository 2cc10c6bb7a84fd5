//! Reading a recipe's data set into examples (text, optional second text,
//! optional label), with diagnostics pointing at the `data` block for a
//! missing or empty file, a missing column, a header row the block does not
//! declare, or a label that is not a class index within the task's range.
//! `plcc check` reads every data set through here, as `plcc build` does.

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

/// Why a row is not an example: the message, and whether it was the label.
struct RowError {
    message: String,
    label: bool,
}

impl RowError {
    fn other(message: String) -> Self {
        RowError {
            message,
            label: false,
        }
    }
}

/// Reads `spec`'s file. `labels` (the number of classes of a classification
/// task) bounds the labels.
pub fn read_dataset(spec: &DataSpec, labels: Option<usize>) -> Result<Vec<Example>, Diag> {
    let path = &spec.path.value;
    let text = fsio::read_text(path, &fsio::DATA)
        .map_err(|d| d.or_span(spec.path.span, "this data file"))?;
    let mut rows = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    if spec.header {
        rows.next();
    }
    let at = |line: usize, what: &str| {
        Diag::new(
            "plcc::data::bad-row",
            format!("{}:{}: {what}", path.display(), line + 1),
        )
        .label(spec.span, format!("data set `{}`", spec.name.value))
    };
    let mut out = Vec::new();
    // The first row when only its label failed: a header row if the rest parse.
    let mut unlabelled_first: Option<(usize, RowError)> = None;
    for (i, line) in rows {
        let example = match row(spec, line) {
            Ok(example) => example,
            Err(e) if e.label && out.is_empty() && unlabelled_first.is_none() => {
                unlabelled_first = Some((i, e));
                continue;
            }
            Err(e) => {
                // A second bad label: the first row was no header, report it.
                let (i, e) = match unlabelled_first.take() {
                    Some(first) if e.label => first,
                    _ => (i, e),
                };
                return Err(row_error(at(i, &e.message), &e));
            }
        };
        if let (Some(l), Some(n)) = (example.label, labels) {
            if l >= n {
                return Err(at(
                    i,
                    &format!(
                        "label {l} is out of range: the task has {n} labels (0..={})",
                        n - 1
                    ),
                )
                .help("labels are 0-based class indices"));
            }
        }
        out.push(example);
    }
    if let Some((i, e)) = unlabelled_first {
        if out.is_empty() {
            return Err(row_error(at(i, &e.message), &e));
        }
        return Err(Diag::new(
            "plcc::data::header-row",
            format!(
                "{}:{}: the first row looks like a header: its label is not a class index, every other row's is",
                path.display(),
                i + 1
            ),
        )
        .label(spec.span, format!("data set `{}`", spec.name.value))
        .help("add `header: true` to this `data` block to skip the first row, or remove the row")
        .note(e.message));
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

/// Adds the help a label error needs.
fn row_error(diag: Diag, e: &RowError) -> Diag {
    if e.label {
        diag.help("labels are 0-based class indices (0, 1, ...); write each class as its number")
    } else {
        diag
    }
}

/// One non-empty line of the file as an example.
fn row(spec: &DataSpec, line: &str) -> Result<Example, RowError> {
    let label_of = |s: &str| {
        parse_label(s).map_err(|message| RowError {
            message,
            label: true,
        })
    };
    match spec.format {
        DataFormat::Text => Ok(Example {
            text: line.to_string(),
            pair: None,
            label: None,
        }),
        DataFormat::Tsv => {
            let fields: Vec<&str> = line.split('\t').collect();
            let get = |c: &Column| -> Result<String, RowError> {
                match c {
                    Column::Index(k) => fields.get(*k).map(|s| s.to_string()).ok_or_else(|| {
                        RowError::other(format!(
                            "the row has {} columns, column {k} is missing",
                            fields.len()
                        ))
                    }),
                    Column::Key(k) => Err(RowError::other(format!(
                        "TSV columns are numbers, not keys (`{k}`)"
                    ))),
                }
            };
            Ok(Example {
                text: get(&spec.text)?,
                pair: spec.text_pair.as_ref().map(get).transpose()?,
                label: spec
                    .label
                    .as_ref()
                    .map(|c| get(c).and_then(|s| label_of(&s)))
                    .transpose()?,
            })
        }
        DataFormat::Jsonl => {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| RowError::other(format!("not a JSON object: {e}")))?;
            let get = |c: &Column| -> Result<serde_json::Value, RowError> {
                let found = match c {
                    Column::Key(k) => v.get(k.as_str()),
                    Column::Index(k) => v.get(*k),
                };
                found
                    .cloned()
                    .ok_or_else(|| RowError::other(format!("field {c} is missing")))
            };
            let as_text = |x: serde_json::Value| match x {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            Ok(Example {
                text: as_text(get(&spec.text)?),
                pair: spec.text_pair.as_ref().map(get).transpose()?.map(as_text),
                label: spec
                    .label
                    .as_ref()
                    .map(|c| get(c).and_then(|x| label_of(&as_text(x))))
                    .transpose()?,
            })
        }
    }
}

fn parse_label(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| format!("label `{}` is not a class index", s.trim()))
}
