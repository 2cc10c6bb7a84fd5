//! Retrieval metrics, the measures of sentence-transformers'
//! `InformationRetrievalEvaluator` with binary relevance: a retrieval set
//! (queries, the corpus of documents searched, and which documents are
//! relevant to each query), the rank of each relevant document in a query's
//! scores, and recall@1/5/10, MRR@10 and nDCG@10 averaged over the queries.
//!
//! A set is read from `query<TAB>document` rows: identical document texts
//! are one document of the corpus, relevant to every query that names it;
//! identical query texts are one query, and every document it names on any
//! row is relevant to it.
//!
//! Ties are broken against the relevant documents: a document scored the
//! same as a relevant one ranks before it, so a model that cannot tell them
//! apart earns nothing for the order of the file.

use std::collections::BTreeMap;
use std::collections::HashMap;

/// The cut-offs of the recall metrics.
pub const RECALL_AT: [usize; 3] = [1, 5, 10];

/// The cut-off of MRR and nDCG.
pub const RANKED: usize = 10;

/// The metric names, in the order they are shown.
pub const METRICS: [&str; 5] = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"];

/// The metric a student's share of its teacher's is reported for.
pub const SHARE_METRIC: &str = "mrr@10";

/// Queries, the corpus they search, and the documents relevant to each.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalSet {
    pub queries: Vec<String>,
    pub documents: Vec<String>,
    /// Per query, the indices into `documents` relevant to it (ascending).
    pub relevant: Vec<Vec<usize>>,
}

impl RetrievalSet {
    /// The set of `(query, document)` rows, queries and documents in the
    /// order they first appear.
    pub fn from_pairs<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> RetrievalSet {
        let mut set = RetrievalSet {
            queries: Vec::new(),
            documents: Vec::new(),
            relevant: Vec::new(),
        };
        let (mut query_index, mut document_index) = (HashMap::new(), HashMap::new());
        for (query, document) in rows {
            let q = *query_index.entry(query).or_insert_with(|| {
                set.queries.push(query.to_string());
                set.relevant.push(Vec::new());
                set.queries.len() - 1
            });
            let d = *document_index.entry(document).or_insert_with(|| {
                set.documents.push(document.to_string());
                set.documents.len() - 1
            });
            set.relevant[q].push(d);
        }
        for r in &mut set.relevant {
            r.sort_unstable();
            r.dedup();
        }
        set
    }
}

/// The 1-based rank of each relevant document among `scores` (one score
/// per document, higher first), ascending: documents scored higher rank
/// before it, as do the irrelevant documents scored the same and the
/// relevant ones scored the same that come earlier in the corpus. A NaN
/// score ranks last.
pub fn relevant_ranks(scores: &[f32], relevant: &[usize]) -> Vec<usize> {
    let score = |i: usize| {
        let s = scores[i];
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    };
    let is_relevant = |i: usize| relevant.binary_search(&i).is_ok();
    let mut ranks: Vec<usize> = relevant
        .iter()
        .map(|&r| {
            let sr = score(r);
            let before = (0..scores.len())
                .filter(|&j| {
                    let sj = score(j);
                    sj > sr || (sj == sr && j != r && (!is_relevant(j) || j < r))
                })
                .count();
            before + 1
        })
        .collect();
    ranks.sort_unstable();
    ranks
}

/// One query's metrics from the ranks of its relevant documents
/// (ascending, as [`relevant_ranks`] gives them), in [`METRICS`] order.
pub fn query_metrics(ranks: &[usize]) -> [f64; 5] {
    if ranks.is_empty() {
        return [0.0; 5];
    }
    let recall = |k: usize| ranks.iter().filter(|&&r| r <= k).count() as f64 / ranks.len() as f64;
    let mrr = ranks
        .first()
        .filter(|&&r| r <= RANKED)
        .map_or(0.0, |&r| 1.0 / r as f64);
    let gain = |rank: usize| 1.0 / ((rank + 1) as f64).log2();
    let dcg: f64 = ranks
        .iter()
        .filter(|&&r| r <= RANKED)
        .map(|&r| gain(r))
        .sum();
    let ideal: f64 = (1..=ranks.len().min(RANKED)).map(gain).sum();
    [
        recall(RECALL_AT[0]),
        recall(RECALL_AT[1]),
        recall(RECALL_AT[2]),
        mrr,
        dcg / ideal,
    ]
}

/// Sums of per-query metrics, averaged over the queries at the end.
#[derive(Debug, Clone, Default)]
pub struct MetricSums {
    sums: [f64; 5],
    queries: usize,
}

impl MetricSums {
    /// Adds the query whose document scores are `scores`.
    pub fn add(&mut self, scores: &[f32], relevant: &[usize]) {
        let m = query_metrics(&relevant_ranks(scores, relevant));
        for (s, v) in self.sums.iter_mut().zip(m) {
            *s += v;
        }
        self.queries += 1;
    }

    /// The mean of each metric over the queries added, keyed by name.
    pub fn means(&self) -> BTreeMap<String, f64> {
        let n = self.queries.max(1) as f64;
        METRICS
            .iter()
            .zip(self.sums)
            .map(|(k, s)| (k.to_string(), s / n))
            .collect()
    }
}

/// `student`'s share of `teacher`'s [`SHARE_METRIC`], when the teacher's is
/// above zero.
pub fn share_of(student: &BTreeMap<String, f64>, teacher: &BTreeMap<String, f64>) -> Option<f64> {
    let (s, t) = (student.get(SHARE_METRIC)?, teacher.get(SHARE_METRIC)?);
    (*t > 0.0).then(|| s / t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metrics of a full score matrix: `scores[q][d]` is query `q`'s
    /// score of document `d`.
    fn metrics(scores: &[Vec<f32>], set: &RetrievalSet) -> BTreeMap<String, f64> {
        let mut sums = MetricSums::default();
        for (row, relevant) in scores.iter().zip(&set.relevant) {
            sums.add(row, relevant);
        }
        sums.means()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn repeated_texts_are_one_query_or_one_document() {
        let set = RetrievalSet::from_pairs([
            ("q1", "d1"),
            ("q2", "d2"),
            ("q1", "d3"),
            ("q3", "d2"),
            ("q1", "d1"),
        ]);
        assert_eq!(set.queries, ["q1", "q2", "q3"]);
        assert_eq!(set.documents, ["d1", "d2", "d3"]);
        assert_eq!(set.relevant, vec![vec![0, 2], vec![1], vec![1]]);
    }

    #[test]
    fn ties_rank_irrelevant_documents_first() {
        // Document 2 (relevant) ties with 0 and 3 (irrelevant): both rank
        // before it; document 1 scores higher.
        assert_eq!(relevant_ranks(&[0.5, 0.9, 0.5, 0.5], &[2]), [4]);
        // Two tied relevant documents: corpus order between them.
        assert_eq!(relevant_ranks(&[0.5, 0.5, 0.1], &[0, 1]), [1, 2]);
        // A NaN ranks last.
        assert_eq!(relevant_ranks(&[f32::NAN, 0.1, 0.2], &[0]), [3]);
    }

    #[test]
    fn metrics_match_a_hand_computed_case() {
        // 3 queries over 12 documents.
        let set = RetrievalSet {
            queries: vec!["a".into(), "b".into(), "c".into()],
            documents: (0..12).map(|i| format!("d{i}")).collect(),
            relevant: vec![vec![0], vec![1, 3], vec![11]],
        };
        // Query a: document 0 first → rank 1.
        let a: Vec<f32> = (0..12).map(|i| if i == 0 { 1.0 } else { 0.1 }).collect();
        // Query b: 5 first, then 1 tied with 2 (2 ranks first), 4, then 3
        // → relevant ranks 3 and 5.
        let mut b = vec![0.0f32; 12];
        b[5] = 0.9;
        b[1] = 0.8;
        b[2] = 0.8;
        b[4] = 0.7;
        b[3] = 0.6;
        // Query c: document 11 scores lowest → rank 12, outside every cut-off.
        let c: Vec<f32> = (0..12).map(|i| if i == 11 { -1.0 } else { 0.5 }).collect();
        let m = metrics(&[a, b, c], &set);

        // recall@1: a 1, b 0, c 0. recall@5: a 1, b 2/2, c 0. recall@10 the same.
        assert!(close(m["recall@1"], 1.0 / 3.0), "{m:?}");
        assert!(close(m["recall@5"], 2.0 / 3.0), "{m:?}");
        assert!(close(m["recall@10"], 2.0 / 3.0), "{m:?}");
        // MRR@10: (1 + 1/3 + 0) / 3.
        assert!(close(m["mrr@10"], (1.0 + 1.0 / 3.0) / 3.0), "{m:?}");
        // nDCG@10: a 1; b (1/log2 4 + 1/log2 6) / (1 + 1/log2 3); c 0.
        let ndcg_b = (1.0 / 4f64.log2() + 1.0 / 6f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!(close(m["ndcg@10"], (1.0 + ndcg_b) / 3.0), "{m:?}");
    }

    #[test]
    fn perfect_scores_give_ones_and_the_share_divides_mrr() {
        let set = RetrievalSet::from_pairs([("a", "x"), ("b", "y")]);
        let m = metrics(&[vec![1.0, 0.0], vec![0.0, 1.0]], &set);
        assert!(m.values().all(|&v| close(v, 1.0)), "{m:?}");
        let mut half = m.clone();
        half.insert("mrr@10".into(), 0.5);
        assert_eq!(share_of(&half, &m), Some(0.5));
        let zero = BTreeMap::from([("mrr@10".to_string(), 0.0)]);
        assert_eq!(share_of(&m, &zero), None);
    }
}
