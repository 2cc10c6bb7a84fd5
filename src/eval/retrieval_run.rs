//! Retrieval measured on a model: every query and every document embedded
//! on its own (the model's pooling), each query's documents scored by the
//! cosine of their embeddings, and the metrics of `eval::retrieval` over the
//! queries. `plcc eval` on a retrieval set and the build report's retrieval
//! sections (teacher and student, by the same code) both measure here.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use super::gold::{embed_texts, pooling_name, Score};
use super::retrieval::{MetricSums, RetrievalSet};
use crate::base::Pooling;
use crate::diag::Diag;
use crate::runtime::{tensor_error, LoadedModel};
use crate::text::data::Example;

/// Tokens of a query or document that are read (the rest is cut), as
/// sentence-transformers reads all-MiniLM-L6-v2 (`max_seq_length`).
pub const MAX_RETRIEVAL_TOKENS: usize = 256;

/// Queries scored against the corpus at once.
const QUERY_CHUNK: usize = 256;

/// The retrieval set of `examples`, each a query (`text`) and a document
/// relevant to it (`pair`); `data` names them in diagnostics.
pub fn retrieval_set(data: &str, examples: &[Example]) -> Result<RetrievalSet, Diag> {
    let rows = examples
        .iter()
        .map(|e| e.pair.as_deref().map(|d| (e.text.as_str(), d)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Diag::new(
                "plcc::eval::not-retrieval",
                format!("`{data}` has a row without a document"),
            )
            .help("a retrieval set has rows of `query<TAB>document`")
        })?;
    let set = RetrievalSet::from_pairs(rows);
    if set.documents.len() < 2 {
        return Err(Diag::new(
            "plcc::eval::too-few-documents",
            format!(
                "`{data}` names {} distinct document{}; retrieval needs at least two to choose from",
                set.documents.len(),
                if set.documents.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    Ok(set)
}

/// The retrieval metrics of `model` on `set` (keys `recall@1`, `recall@5`,
/// `recall@10`, `mrr@10`, `ndcg@10`).
pub fn measure(
    model: &LoadedModel,
    pooling: Pooling,
    set: &RetrievalSet,
) -> Result<BTreeMap<String, f64>, Diag> {
    let max_len = model.config.max_positions.min(MAX_RETRIEVAL_TOKENS);
    let unit = |texts: &[String]| -> Result<Tensor, Diag> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        unit_rows(&embed_texts(model, pooling, &refs, max_len)?)
    };
    let documents = unit(&set.documents)?;
    let mut sums = MetricSums::default();
    for (queries, relevant) in set
        .queries
        .chunks(QUERY_CHUNK)
        .zip(set.relevant.chunks(QUERY_CHUNK))
    {
        let scores = unit(queries)?
            .matmul(&documents.t().map_err(tensor_error)?)
            .and_then(|s| s.to_vec2::<f32>())
            .map_err(tensor_error)?;
        for (row, rel) in scores.iter().zip(relevant) {
            sums.add(row, rel);
        }
    }
    Ok(sums.means())
}

/// `model`'s score on `set`, as `plcc eval` reports it.
pub fn score(model: &LoadedModel, pooling: Pooling, set: &RetrievalSet) -> Result<Score, Diag> {
    Ok(Score {
        model: model.name.clone(),
        task: "embedding",
        pooling: Some(pooling_name(pooling)),
        n: set.queries.len(),
        documents: Some(set.documents.len()),
        metrics: measure(model, pooling, set)?,
        confusion: None,
    })
}

/// The rows of `vectors` scaled to unit length (a zero row stays zero), as
/// one matrix on the CPU.
fn unit_rows(vectors: &[Vec<f32>]) -> Result<Tensor, Diag> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut flat = Vec::with_capacity(vectors.len() * dim);
    for v in vectors {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        flat.extend(v.iter().map(|x| x * scale));
    }
    Tensor::from_vec(flat, (vectors.len(), dim), &Device::Cpu).map_err(tensor_error)
}
