//! The inputs of scoring on labelled data: what a model does (its task,
//! from an artifact's manifest or from the network and heads a checkpoint
//! has) and reading a labelled file for that task: TSV (a header row is
//! recognised and skipped), JSON Lines, or plain text for language models
//! and encoder-decoders.

use std::path::Path;

use crate::artifact::read_manifest;
use crate::base::{Column, DataFormat, LabelSet, Pooling, Task};
use crate::diag::Diag;
use crate::fsio;
use crate::runtime::{LoadedModel, ModelSource};
use crate::text::data::{parse_row, Columns, Example};

/// What a model loaded from `spec` does: an artifact's recorded task; for a
/// checkpoint or built-in model, a causal LM (GPT-2), a classifier (with a
/// classification head) or an embedding model. `pooling` overrides the
/// pooling of an embedding model (default: the artifact's, else the
/// checkpoint pipeline's, else mean).
pub fn model_task(spec: &str, model: &LoadedModel, pooling: Option<Pooling>) -> Result<Task, Diag> {
    let task = match ModelSource::parse(spec)? {
        ModelSource::Artifact(dir) => read_manifest(&dir)?.task,
        _ => match (
            model.config.arch.family().supports.language_model,
            &model.classifier,
        ) {
            (Some(task), _) => task,
            (None, Some(head)) => {
                let labels = head
                    .classifier
                    .as_ref()
                    .and_then(|c| c.dims().ok())
                    .map_or(0, |(out, _)| out);
                Task::Classification { labels }
            }
            (None, None) => Task::Embedding {
                pooling: model.pipeline.pooling,
            },
        },
    };
    Ok(match (task, pooling) {
        (Task::Embedding { .. }, Some(pooling)) => Task::Embedding { pooling },
        (task, _) => task,
    })
}

/// How to read a labelled file; `None` fields take the defaults of the task.
#[derive(Debug, Clone, Default)]
pub struct DataOptions {
    /// Default: from the extension (`.jsonl`/`.json`, `.tsv`), else from the
    /// first line (`{` starts JSON Lines, a tab means TSV), else plain text.
    pub format: Option<DataFormat>,
    pub text: Option<Column>,
    pub text_pair: Option<Column>,
    pub label: Option<Column>,
    /// Read the file as a retrieval set (queries and their documents)
    /// whatever its shape; naming `query` or `document` does too.
    pub retrieval: bool,
    pub query: Option<Column>,
    pub document: Option<Column>,
}

impl DataOptions {
    /// Whether the options ask for a retrieval set.
    fn forces_retrieval(&self) -> bool {
        self.retrieval || self.query.is_some() || self.document.is_some()
    }

    /// Whether they name a sentence-pair or label column.
    fn names_gold_columns(&self) -> bool {
        self.text.is_some() || self.text_pair.is_some() || self.label.is_some()
    }
}

/// A labelled file as read: its examples, and whether they are a retrieval
/// set (each example a query and a document relevant to it).
#[derive(Debug, Clone)]
pub struct Labelled {
    pub examples: Vec<Example>,
    pub retrieval: bool,
}

/// A column named on the command line: a number is a TSV column (from 0),
/// anything else a JSONL key.
pub fn parse_column(s: &str) -> Column {
    s.trim()
        .parse::<usize>()
        .map_or_else(|_| Column::Key(s.trim().to_string()), Column::Index)
}

/// Reads the labelled examples of `path` for a model doing `task`:
/// pairs with scores (embedding: columns 0, 1, 2 or keys `text`,
/// `text_pair`, `score` or `label`), a retrieval set (embedding: exactly two
/// columns, the second not a number on every row, or keys `query` and
/// `document`; or as `opts` ask), texts with labels (classification:
/// the label in the last of two or three columns, or keys `text`,
/// `text_pair` when present, `label`), texts (language model: every
/// line, or the key `text`), or texts and targets (encoder-decoder: a
/// line is a text to reconstruct, a TSV row `source<TAB>target`, or keys
/// `text` and, when present, `text_pair`).
pub fn read_labelled(
    path: &Path,
    task: Task,
    labels: Option<&LabelSet>,
    opts: &DataOptions,
) -> Result<Labelled, Diag> {
    let text = fsio::read_text(path, &fsio::DATA)?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let Some(&(_, first)) = lines.peek() else {
        return Err(Diag::new(
            "plcc::eval::empty-data",
            format!("data file `{}` has no examples", path.display()),
        ));
    };
    let format = opts.format.unwrap_or_else(|| guess_format(path, first));
    let retrieval = matches!(task, Task::Embedding { .. })
        && (opts.forces_retrieval()
            || (!opts.names_gold_columns() && retrieval_shaped(format, &text)));
    let defaults = match retrieval {
        true => retrieval_columns(format, opts),
        false => default_columns(task, format, first),
    };
    let text_col = opts.text.clone().unwrap_or(defaults.0);
    let pair_col = opts.text_pair.clone().or(defaults.1);
    let label_col = opts.label.clone().or(defaults.2);
    let columns = Columns {
        format,
        text: &text_col,
        text_pair: pair_col.as_ref(),
        label: label_col.as_ref(),
    };
    if format == DataFormat::Text && !matches!(task, Task::CausalLm | Task::Seq2Seq) {
        return Err(Diag::new(
            "plcc::eval::not-labelled",
            format!(
                "`{}` reads as plain text, but this {} model is scored on labelled rows",
                path.display(),
                task.name()
            ),
        )
        .help("give TSV rows (`text<TAB>text_pair<TAB>score`, `text<TAB>label`) or JSON Lines, or say `--format tsv`"));
    }
    // A TSV header: a first row whose label column is not a label (a
    // classifier's) or not a number.
    if let (DataFormat::Tsv, Some(Column::Index(k))) = (format, &label_col) {
        let is_label = |s: &str| match labels {
            Some(set) => set.class_of(s.trim()).is_some(),
            None => s.trim().parse::<f64>().is_ok(),
        };
        if !first.split('\t').nth(*k).is_some_and(is_label) {
            lines.next();
        }
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let e = parse_row(line, &columns, labels).map_err(|what| {
            let d = Diag::new(
                "plcc::eval::bad-row",
                format!("{}:{}: {what}", path.display(), i + 1),
            );
            if what.contains("label") {
                d.help("the label column holds a pair's gold score (a number) or a classifier's label (its name or class index from 0)")
            } else {
                d
            }
        })?;
        if matches!(task, Task::Embedding { .. }) && e.pair.is_none() {
            return Err(Diag::new(
                "plcc::eval::bad-row",
                format!("{}:{}: the row has no second text", path.display(), i + 1),
            ));
        }
        out.push(e);
    }
    if out.is_empty() {
        return Err(Diag::new(
            "plcc::eval::empty-data",
            format!(
                "data file `{}` has no examples after its header",
                path.display()
            ),
        ));
    }
    Ok(Labelled {
        examples: out,
        retrieval,
    })
}

/// Whether a file reads as a retrieval set: TSV rows of exactly two
/// columns whose second is not a number on every row (a score), or JSON
/// Lines whose first object has `query` and `document` and no score.
fn retrieval_shaped(format: DataFormat, text: &str) -> bool {
    let mut rows = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    match format {
        DataFormat::Tsv => {
            let mut numeric = true;
            let two = rows.all(|row| {
                let fields: Vec<&str> = row.split('\t').collect();
                numeric &= fields
                    .get(1)
                    .is_some_and(|f| f.trim().parse::<f64>().is_ok());
                fields.len() == 2
            });
            two && !numeric
        }
        DataFormat::Jsonl => rows.peek().is_some_and(|first| {
            serde_json::from_str::<serde_json::Value>(first).is_ok_and(|v| {
                let has = |k: &str| v.get(k).is_some();
                has("query") && has("document") && !has("score") && !has("label")
            })
        }),
        DataFormat::Text => false,
    }
}

/// The query and document columns of a retrieval set (as the text and pair
/// columns), as `opts` name them or by default (0 and 1, or keys `query`
/// and `document`); no label.
fn retrieval_columns(
    format: DataFormat,
    opts: &DataOptions,
) -> (Column, Option<Column>, Option<Column>) {
    let (query, document) = match format {
        DataFormat::Jsonl => (Column::Key("query".into()), Column::Key("document".into())),
        _ => (Column::Index(0), Column::Index(1)),
    };
    (
        opts.query.clone().unwrap_or(query),
        Some(opts.document.clone().unwrap_or(document)),
        None,
    )
}

/// A file's format: from its extension (`.jsonl`/`.json`, `.tsv`), else
/// from its first line (`{` starts JSON Lines, a tab means TSV), else plain
/// text.
pub fn guess_format(path: &Path, first: &str) -> DataFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json") => DataFormat::Jsonl,
        Some("tsv") => DataFormat::Tsv,
        _ if first.trim_start().starts_with('{') => DataFormat::Jsonl,
        _ if first.contains('\t') => DataFormat::Tsv,
        _ => DataFormat::Text,
    }
}

/// The text, pair and label columns a task reads by default.
fn default_columns(
    task: Task,
    format: DataFormat,
    first: &str,
) -> (Column, Option<Column>, Option<Column>) {
    let key = |k: &str| Column::Key(k.into());
    let has_key = |k: &str| {
        serde_json::from_str::<serde_json::Value>(first).is_ok_and(|v| v.get(k).is_some())
    };
    match (task, format) {
        (Task::CausalLm, DataFormat::Jsonl) => (key("text"), None, None),
        (Task::CausalLm, _) => (Column::Index(0), None, None),
        (Task::Seq2Seq, DataFormat::Jsonl) => (
            key("text"),
            has_key("text_pair").then(|| key("text_pair")),
            None,
        ),
        (Task::Seq2Seq, _) => (
            Column::Index(0),
            first.contains('\t').then_some(Column::Index(1)),
            None,
        ),
        (Task::Embedding { .. }, DataFormat::Jsonl) => {
            let label = if has_key("score") { "score" } else { "label" };
            (key("text"), Some(key("text_pair")), Some(key(label)))
        }
        (Task::Classification { .. }, DataFormat::Jsonl) => (
            key("text"),
            has_key("text_pair").then(|| key("text_pair")),
            Some(key("label")),
        ),
        (Task::Classification { .. }, _) if first.split('\t').count() < 3 => {
            (Column::Index(0), None, Some(Column::Index(1)))
        }
        _ => (
            Column::Index(0),
            Some(Column::Index(1)),
            Some(Column::Index(2)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_text_columns_are_retrieval_shaped_and_a_score_column_is_not() {
        let tsv = DataFormat::Tsv;
        assert!(retrieval_shaped(tsv, "a query\ta document\nq2\td2\n"));
        // Numbers in the second column on every row: a score, not documents.
        assert!(!retrieval_shaped(tsv, "a\t0.5\nb\t1\n"));
        assert!(retrieval_shaped(tsv, "a\t0.5\nb\tthe document\n"));
        // Three columns, or a row of one: not the shape.
        assert!(!retrieval_shaped(tsv, "a\tb\t0.5\n"));
        assert!(!retrieval_shaped(tsv, "a\tb\nc\n"));
        let jsonl = DataFormat::Jsonl;
        assert!(retrieval_shaped(
            jsonl,
            r#"{"query": "q", "document": "d"}"#
        ));
        assert!(!retrieval_shaped(
            jsonl,
            r#"{"query": "q", "document": "d", "score": 1}"#
        ));
        assert!(!retrieval_shaped(DataFormat::Text, "a\tb\n"));
    }
}
