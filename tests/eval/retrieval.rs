//! `plcc eval` on retrieval sets (`query<TAB>document`, no score): the
//! metrics' JSON keys and ranges, a query that is its own document found
//! first, a model against itself giving identical numbers, several
//! relevant documents for a repeated query, JSON Lines, the columns named
//! on the command line, and a scored pair file keeping the gold Spearman.

use std::path::Path;

use serde_json::Value;

use crate::support::plcc::{plcc, stderr, workdir};

const SENTENCES: &str = include_str!("../../examples/data/sentences.txt");
const METRICS: [&str; 5] = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"];

fn lines() -> Vec<&'static str> {
    SENTENCES.lines().filter(|l| !l.is_empty()).collect()
}

/// Each sentence as a query, the next one as its document.
fn next_sentence_tsv() -> String {
    let l = lines();
    (0..l.len() - 1)
        .map(|i| format!("{}\t{}\n", l[i], l[i + 1]))
        .collect()
}

fn eval_json(args: &[&str]) -> Value {
    let mut all = vec!["eval"];
    all.extend(args);
    all.push("--json");
    let o = plcc(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn metric(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_two_column_file_is_scored_by_retrieval_against_a_second_model() {
    let dir = workdir("eval-retrieval", &[("r.tsv", &next_sentence_tsv())]);
    let data = dir.join("r.tsv");
    let v = eval_json(&[
        "builtin:tiny-bert",
        "--data",
        s(&data),
        "--against",
        "builtin:tiny-bert",
    ]);
    assert_eq!(v["n"], lines().len() - 1, "{v}");
    assert_eq!(v["documents"], lines().len() - 1, "{v}");
    for k in METRICS {
        assert!((0.0..=1.0).contains(&metric(&v, k)), "{k}: {v}");
        // The same model against itself: the same numbers, no difference.
        assert_eq!(v[k], v["against"][k], "{k}");
        assert_eq!(metric(&v["difference"], k), 0.0);
    }
    assert!(metric(&v, "recall@1") <= metric(&v, "recall@5"));
    assert!(metric(&v, "recall@5") <= metric(&v, "recall@10"));
    assert!(metric(&v, "recall@1") <= metric(&v, "mrr@10"));
    assert!(
        metric(&v, "recall@10") < 1.0,
        "a random tiny model is no oracle: {v}"
    );
    assert_eq!(metric(&v, "mrr@10_share"), 1.0);
    assert!(v.get("spearman").is_none(), "{v}");

    let o = plcc(&["eval", "builtin:tiny-bert", "--data", s(&data)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("39 queries over 39 documents"), "{text}");
    assert!(text.contains("mrr@10"), "{text}");
}

#[test]
fn a_query_that_is_its_document_is_found_first() {
    let mirror: String = lines().iter().map(|l| format!("{l}\t{l}\n")).collect();
    let dir = workdir("eval-retrieval-mirror", &[("m.tsv", &mirror)]);
    let v = eval_json(&["builtin:tiny-bert", "--data", s(&dir.join("m.tsv"))]);
    for k in METRICS {
        assert!((metric(&v, k) - 1.0).abs() < 1e-12, "{k}: {v}");
    }
}

#[test]
fn a_repeated_query_has_several_relevant_documents() {
    // One query names three documents on three rows, among four documents:
    // the other query is its own document, so only three remain for it.
    let tsv = "the model reads a recipe\train falls on the valley\n\
               the model reads a recipe\twhy is the cache slow\n\
               the model reads a recipe\tnumbers like 3 and 42\n\
               a smaller model runs faster\ta smaller model runs faster\n";
    let dir = workdir("eval-retrieval-qrels", &[("q.tsv", tsv)]);
    let v = eval_json(&["builtin:tiny-bert", "--data", s(&dir.join("q.tsv"))]);
    assert_eq!(
        (v["n"].as_u64(), v["documents"].as_u64()),
        (Some(2), Some(4))
    );
    // With four documents, recall@5 finds all three relevant ones.
    assert!((metric(&v, "recall@5") - 1.0).abs() < 1e-12, "{v}");
    // recall@1 of the first query is at most 1/3; the second's is 1.
    let r1 = metric(&v, "recall@1");
    assert!((0.5..=(1.0 + 1.0 / 3.0) / 2.0 + 1e-12).contains(&r1), "{v}");
}

#[test]
fn jsonl_and_named_columns_read_as_retrieval_and_scored_pairs_keep_spearman() {
    let l = lines();
    let jsonl: String = (0..10)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"query": l[i], "document": l[i + 1]})
            )
        })
        .collect();
    // Three columns, documents first: only named columns make it a retrieval set.
    let swapped: String = (0..10)
        .map(|i| format!("{}\t{}\tx\n", l[i + 1], l[i]))
        .collect();
    let scored: String = (0..10)
        .map(|i| format!("{}\t{}\t{}\n", l[i], l[i + 1], i % 3))
        .collect();
    let dir = workdir(
        "eval-retrieval-shapes",
        &[("r.jsonl", &jsonl), ("s.tsv", &swapped), ("p.tsv", &scored)],
    );
    let from_jsonl = eval_json(&["builtin:tiny-bert", "--data", s(&dir.join("r.jsonl"))]);
    let named = eval_json(&[
        "builtin:tiny-bert",
        "--data",
        s(&dir.join("s.tsv")),
        "--query-column",
        "1",
        "--document-column",
        "0",
    ]);
    for k in METRICS {
        assert_eq!(from_jsonl[k], named[k], "{k}: {from_jsonl} {named}");
    }
    let pairs = eval_json(&["builtin:tiny-bert", "--data", s(&dir.join("p.tsv"))]);
    assert!(
        pairs["spearman"].is_f64() && pairs.get("mrr@10").is_none(),
        "{pairs}"
    );
    let forced = eval_json(&[
        "builtin:tiny-bert",
        "--data",
        s(&dir.join("p.tsv")),
        "--retrieval",
    ]);
    assert_eq!(forced["n"], 10, "{forced}");
    assert!(forced["mrr@10"].is_f64(), "{forced}");
}
