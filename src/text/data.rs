//! Reading data files into examples (text, optional second text, optional
//! label): a recipe's data sets, with diagnostics pointing at the `data`
//! block for a missing or empty file, a missing column, a header row the
//! block does not declare, or a label that is neither one of the task's
//! label names nor a class index within its range (`plcc check` reads every data set through here, as
//! `plcc build` does), and any other labelled file through [`parse_row`].

use crate::base::{sha256_hex, DataSpec, LabelSet};
use crate::base::{Column, DataFormat};
use crate::diag::Diag;
use crate::fsio;

/// One example of a data set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Example {
    pub text: String,
    pub pair: Option<String>,
    /// The label column as a class index, when it is one.
    pub label: Option<usize>,
    /// The label column as a number (a pair's gold similarity), when it is one.
    pub score: Option<f64>,
}

impl Example {
    /// An unlabelled single text.
    pub fn text(text: impl Into<String>) -> Self {
        Example {
            text: text.into(),
            ..Default::default()
        }
    }
}

/// Which columns (TSV indices or JSONL keys) of a file hold what.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub format: DataFormat,
    pub text: &'a Column,
    pub text_pair: Option<&'a Column>,
    pub label: Option<&'a Column>,
}

/// Reads `spec`'s file. `labels` (a classification task's label set) gives
/// each label name its class. With `header: true` the first non-empty row is
/// skipped; without it, a first row whose label alone is not a number while
/// the other rows' are is reported as an undeclared header.
pub fn read_dataset(spec: &DataSpec, labels: Option<&LabelSet>) -> Result<Vec<Example>, Diag> {
    Ok(read_data_file(spec, labels)?.examples)
}

/// A data set's examples and the SHA-256 of the bytes they were read from.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub examples: Vec<Example>,
    pub sha256: String,
}

/// [`read_dataset`], with the hash of the file as it was read (one read).
pub fn read_data_file(spec: &DataSpec, labels: Option<&LabelSet>) -> Result<DataFile, Diag> {
    let text = fsio::read_text(&spec.path.value, &fsio::DATA)
        .map_err(|d| d.or_span(spec.path.span, "this data file"))?;
    Ok(DataFile {
        sha256: sha256_hex(text.as_bytes()),
        examples: parse_dataset(spec, &text, labels)?,
    })
}

/// The examples of `text`, the contents of `spec`'s file.
pub fn parse_dataset(
    spec: &DataSpec,
    text: &str,
    labels: Option<&LabelSet>,
) -> Result<Vec<Example>, Diag> {
    let path = &spec.path.value;
    let columns = Columns {
        format: spec.format,
        text: &spec.text,
        text_pair: spec.text_pair.as_ref(),
        label: spec.label.as_ref(),
    };
    let unlabelled = Columns {
        label: None,
        ..columns
    };
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
    let label_help = |d: Diag| match labels {
        Some(set) => d.help(format!(
            "labels are the task's label names ({}) or 0-based class indices",
            set.shown()
        )),
        None => d.help("labels are numbers (gold scores)"),
    };
    let mut out = Vec::new();
    // The first row when only its label is not a number: a header row if
    // every other row parses.
    let mut unlabelled_first: Option<(usize, String)> = None;
    for (i, line) in rows {
        let what = match parse_row(line, &columns, labels) {
            Ok(example) => {
                out.push(example);
                continue;
            }
            Err(what) => what,
        };
        let label_only = columns.label.is_some() && parse_row(line, &unlabelled, labels).is_ok();
        let not_a_number = label_only && parse_row(line, &columns, None).is_err();
        if not_a_number && out.is_empty() && unlabelled_first.is_none() {
            unlabelled_first = Some((i, what));
            continue;
        }
        // A second bad label: the first row was no header; report it.
        let (i, what) = match unlabelled_first.take() {
            Some(first) if label_only => first,
            _ => (i, what),
        };
        let d = at(i, &what);
        return Err(if label_only { label_help(d) } else { d });
    }
    if let Some((i, what)) = unlabelled_first {
        if out.is_empty() {
            return Err(label_help(at(i, &what)));
        }
        return Err(Diag::new(
            "plcc::data::header-row",
            format!(
                "{}:{}: the first row looks like a header: its label is not {}, every other row's is",
                path.display(),
                i + 1,
                labels.map_or("a number", |_| "a label")
            ),
        )
        .label(spec.span, format!("data set `{}`", spec.name.value))
        .help("add `header: true` to this `data` block to skip the first row, or remove the row")
        .note(what));
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

/// Reads one non-empty line of a data file as `columns` say. With `labels`
/// (a classifier's label set) the label column must name one of its labels
/// or be a class index below its size; otherwise it must be a number. Errors say what is wrong with
/// the row (the caller adds where it is).
pub fn parse_row(
    line: &str,
    columns: &Columns<'_>,
    labels: Option<&LabelSet>,
) -> Result<Example, String> {
    let example = match columns.format {
        DataFormat::Text => Example::text(line),
        DataFormat::Tsv => {
            let fields: Vec<&str> = line.split('\t').collect();
            let get = |c: &Column| -> Result<String, String> {
                match c {
                    Column::Index(k) => fields.get(*k).map(|s| s.to_string()).ok_or_else(|| {
                        format!(
                            "the row has {} column{}, column {k} is missing (columns count from 0)",
                            fields.len(),
                            if fields.len() == 1 { "" } else { "s" }
                        )
                    }),
                    Column::Key(k) => Err(format!("TSV columns are numbers, not keys (`{k}`)")),
                }
            };
            let mut e = Example::text(get(columns.text)?);
            e.pair = columns.text_pair.map(get).transpose()?;
            let label = columns.label.map(get).transpose()?;
            read_label(&mut e, label.as_deref(), labels)?;
            e
        }
        DataFormat::Jsonl => {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
            let get = |c: &Column| -> Result<String, String> {
                let found = match c {
                    Column::Key(k) => v.get(k.as_str()),
                    Column::Index(k) => v.get(*k),
                };
                match found {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(other) => Ok(other.to_string()),
                    None => Err(format!("field {c} is missing")),
                }
            };
            let mut e = Example::text(get(columns.text)?);
            e.pair = columns.text_pair.map(get).transpose()?;
            let label = columns.label.map(get).transpose()?;
            read_label(&mut e, label.as_deref(), labels)?;
            e
        }
    };
    Ok(example)
}

/// Sets `e`'s label and score from the label column's text.
fn read_label(
    e: &mut Example,
    text: Option<&str>,
    labels: Option<&LabelSet>,
) -> Result<(), String> {
    let Some(s) = text.map(str::trim) else {
        return Ok(());
    };
    if let Some(set) = labels {
        e.label = Some(set.class_of(s).ok_or_else(|| match s.parse::<usize>() {
            Ok(i) => format!(
                "label {i} is out of range: the task has {} labels (0..={})",
                set.len(),
                set.len() - 1
            ),
            Err(_) => format!(
                "label `{s}` is not one of the task's {} labels ({})",
                set.len(),
                set.shown()
            ),
        })?);
        return Ok(());
    }
    e.score = s.parse::<f64>().ok().filter(|x| x.is_finite());
    match e.score {
        None => Err(format!("label `{s}` is not a number")),
        Some(_) => Ok(()),
    }
}
