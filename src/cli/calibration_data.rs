//! The examples `plcc calibrate --data` calibrates on, read as the build
//! reads its data: a data set of the recipe the artifact was built from, by
//! name; a file that recipe reads, with its data block's layout (pairs stay
//! pairs); or another file, as a data block naming no columns reads it,
//! except that a TSV's second text column (or a JSONL `text_pair`) is read
//! as the pair.

use std::path::{Path, PathBuf};

use super::teacher::recorded_recipe;
use crate::artifact::Manifest;
use crate::base::{Column, DataFormat, DataSpec};
use crate::diag::{Diag, Span, Spanned};
use crate::eval::gold_data::guess_format;
use crate::fsio;
use crate::recipe::Recipe;
use crate::text::data::{read_dataset, Example};

/// The calibration examples `data` names for the artifact of `manifest`,
/// and how the data is named in messages.
pub fn calibration_examples(
    manifest: &Manifest,
    data: &Path,
) -> Result<(String, Vec<Example>), Diag> {
    let recipe = recorded_recipe(manifest);
    let labels = manifest.config.labels.as_ref();
    let by_name = recipe.as_ref().and_then(|r| data_set_named(r, data));
    if let Some(spec) = by_name.filter(|_| !data.is_file()) {
        let name = format!("`{}` of the recipe", spec.name.value);
        return Ok((name, read_dataset(spec, labels)?));
    }
    if !data.is_file() {
        return Err(not_found(data, recipe.as_ref()));
    }
    let spec = match recipe.as_ref().and_then(|r| data_set_reading(r, data)) {
        Some(spec) => DataSpec {
            path: Spanned::new(data.to_path_buf(), Span::default()),
            ..spec.clone()
        },
        None => plain_spec(data)?,
    };
    Ok((
        format!("`{}`", data.display()),
        read_dataset(&spec, labels)?,
    ))
}

/// The recipe's data set whose name is `data`.
fn data_set_named<'r>(recipe: &'r Recipe, data: &Path) -> Option<&'r DataSpec> {
    let name = data.to_str()?;
    recipe.datasets.iter().find(|d| d.name.value == name)
}

/// The recipe's data set that reads the file at `data`.
fn data_set_reading<'r>(recipe: &'r Recipe, data: &Path) -> Option<&'r DataSpec> {
    let wanted = std::fs::canonicalize(data).ok()?;
    recipe
        .datasets
        .iter()
        .find(|d| std::fs::canonicalize(&d.path.value).is_ok_and(|p| p == wanted))
}

/// The layout of a file no data block describes: its format guessed, the
/// first column (or `text`) the text, a second text column (or
/// `text_pair`) the pair.
fn plain_spec(path: &Path) -> Result<DataSpec, Diag> {
    let text = fsio::read_text(path, &fsio::DATA)?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let format = guess_format(path, first);
    let (text_col, pair) = match format {
        DataFormat::Text => (Column::Index(0), None),
        DataFormat::Tsv => {
            let second = first.split('\t').nth(1).map(str::trim);
            let is_text = second.is_some_and(|s| !s.is_empty() && s.parse::<f64>().is_err());
            (Column::Index(0), is_text.then_some(Column::Index(1)))
        }
        DataFormat::Jsonl => {
            let value = serde_json::from_str::<serde_json::Value>(first).ok();
            let has_pair = value.is_some_and(|v| v.get("text_pair").is_some());
            (
                Column::Key("text".into()),
                has_pair.then(|| Column::Key("text_pair".into())),
            )
        }
    };
    Ok(DataSpec {
        span: Span::default(),
        name: Spanned::new(path.display().to_string(), Span::default()),
        path: Spanned::new(PathBuf::from(path), Span::default()),
        format,
        text: text_col,
        text_pair: pair,
        label: None,
        header: false,
        retrieval: false,
    })
}

fn not_found(data: &Path, recipe: Option<&Recipe>) -> Diag {
    let names: Vec<String> = recipe
        .map(|r| {
            r.datasets
                .iter()
                .map(|d| format!("`{}`", d.name.value))
                .collect()
        })
        .unwrap_or_default();
    let d = Diag::new(
        "plcc::calibrate::no-data",
        format!(
            "`{}` is neither a file nor a data set of the artifact's recipe",
            data.display()
        ),
    );
    if names.is_empty() {
        d.help("give a data file: one text a line, TSV or JSON Lines")
    } else {
        d.help(format!(
            "give a data file, or one of the recipe's data sets: {}",
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plcc-calib-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_tsv_of_two_texts_reads_as_pairs_and_a_score_column_is_not_a_pair() {
        let pairs = plain_spec(&write("pairs.tsv", "a cat\ta dog\t0.5\nrain\tsnow\t1\n")).unwrap();
        assert_eq!(pairs.text_pair, Some(Column::Index(1)));
        let scored = plain_spec(&write("scored.tsv", "a cat\t0.5\n")).unwrap();
        assert_eq!(scored.text_pair, None);
        let lines = plain_spec(&write("lines.txt", "one line\nanother\n")).unwrap();
        assert_eq!((lines.format, lines.text_pair), (DataFormat::Text, None));
        let examples = read_dataset(&pairs, None).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].pair.as_deref(), Some("a dog"));
    }
}
