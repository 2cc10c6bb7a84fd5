//! Sentence embeddings of a loaded model for tests that compare two runs.

use plcc::runtime::run::{runner, token_rows};
use plcc::runtime::LoadedModel;

/// The embedding of each of `lines` by `model` (2 threads).
pub fn embedding_rows(model: &LoadedModel, lines: &[&str]) -> Vec<Vec<f32>> {
    let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let rows = token_rows::tokenize(model, &lines, None).unwrap().rows;
    runner::run_all(model, &rows, 2, runner::Schedule::SideBySide)
        .unwrap()
        .into_iter()
        .map(|r| r.embedding.unwrap())
        .collect()
}

/// The embeddings of `lines` by `model`, one after another.
pub fn embeddings(model: &LoadedModel, lines: &[&str]) -> Vec<f32> {
    embedding_rows(model, lines).concat()
}
