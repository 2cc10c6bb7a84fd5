//! A recipe that lists several evaluation sets (`eval: [a, b, c]`): the
//! build measures each on the written artifact and report.json keeps one
//! section per set: fidelity on sentence sets, teacher and student
//! retrieval metrics on a retrieval set; the primary set stays the
//! report's headline `fidelity`.

use serde_json::Value;

use crate::support::plcc::{build, stderr, workdir, write_recipe};

const SENTENCES: &str = include_str!("../../examples/data/sentences.txt");

/// Each sentence as a query, and the sentence after it as its document.
fn retrieval_tsv() -> String {
    let lines: Vec<&str> = SENTENCES.lines().filter(|l| !l.is_empty()).collect();
    lines
        .windows(2)
        .step_by(2)
        .map(|w| format!("{}\t{}\n", w[0], w[1]))
        .collect()
}

const RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
pooling: mean
eval: [held_out, other, search]
keep_layers: [0, 2]

data held_out "data/held_out.txt" {}
data other "data/other.txt" {}
data search "data/search.tsv" {
    query: 0
    document: 1
}

quantize weights "encoder.layer.*" { bits: 8 }
"#;

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn every_eval_set_has_its_section_in_the_report() {
    let lines: Vec<&str> = SENTENCES.lines().filter(|l| !l.is_empty()).collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let dir = workdir(
        "build-eval-sets",
        &[
            ("data/held_out.txt", &first.join("\n")),
            ("data/other.txt", &second.join("\n")),
            ("data/search.tsv", &retrieval_tsv()),
        ],
    );
    let out = dir.join("artifact");
    let o = build(&write_recipe(&dir, RECIPE), &out, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("retrieval on `search`"), "{summary}");
    assert!(summary.contains("fidelity on `other`"), "{summary}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    // The primary set is the headline, as with one set.
    assert_eq!(report["fidelity"]["data"], "held_out");
    assert_eq!(report["eval_source"]["name"], "held_out");
    let sets = &report["eval_sets"];
    assert_eq!(sets.as_object().unwrap().len(), 3, "{sets}");
    assert_eq!(sets["held_out"]["primary"], true);
    assert_eq!(sets["held_out"]["fidelity"], report["fidelity"]);
    assert_eq!(sets["other"]["kind"], "sentences");
    assert_eq!(sets["other"]["primary"], false);
    assert_eq!(sets["other"]["fidelity"]["examples"], second.len());
    let cosine = number(&sets["other"]["fidelity"]["metrics"]["mean_cosine"]);
    assert!(cosine > 0.5 && cosine <= 1.0 + 1e-6, "{sets}");

    let search = &sets["search"];
    assert_eq!(search["kind"], "retrieval");
    assert!(search.get("fidelity").is_none(), "{search}");
    let r = &search["retrieval"];
    assert_eq!(r["queries"], lines.len() / 2);
    assert_eq!(r["documents"], lines.len() / 2);
    for side in ["teacher", "student"] {
        let m = |k: &str| number(&r[side][k]);
        for k in ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"] {
            assert!((0.0..=1.0).contains(&m(k)), "{side} {k}: {r}");
        }
        assert!(m("recall@1") <= m("recall@5") && m("recall@5") <= m("recall@10"));
        assert!(m("mrr@10") >= m("recall@1") - 1e-12, "{r}");
    }
    let share = number(&r["student_share_of_teacher_mrr@10"]);
    let mrr = |side: &str| number(&r[side]["mrr@10"]);
    assert!((share - mrr("student") / mrr("teacher")).abs() < 1e-12);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Evaluation sets"), "{md}");
    assert!(md.contains("Retrieval on `search`"), "{md}");
    assert!(md.contains("| `other` |"), "{md}");
}
