//! `plcc eval` on built-in models and generated data: the gold Spearman of
//! an embedding model whose gold scores are its own similarities is 1 (and
//! a compressed student's is below), the build report carries the same
//! numbers, a classifier's accuracy and macro F1, a language model's and an
//! encoder-decoder's perplexity, and diagnostics for bad data files.

use std::path::{Path, PathBuf};

use plcc::api::{accuracy_and_macro_f1, Model};
use plcc::text::data::Example;

use crate::support;
use crate::support::diagnostics::unwrapped;
use crate::support::plcc::{plcc, stderr, workdir, write_recipe};

const SENTENCES: &str = include_str!("../../examples/data/sentences.txt");

/// Pairs of neighbouring sentences (each with the one three lines on).
fn pairs() -> Vec<Example> {
    let lines: Vec<&str> = SENTENCES.lines().filter(|l| !l.is_empty()).collect();
    (0..lines.len())
        .map(|i| Example {
            pair: Some(lines[(i + 3) % lines.len()].to_string()),
            ..Example::text(lines[i])
        })
        .collect()
}

/// A TSV of `pairs` whose gold scores are builtin:tiny-bert's own cosine
/// similarities (its mean pooling), with a header row when `header`.
fn self_scored_tsv(header: bool) -> String {
    let teacher = Model::open("builtin:tiny-bert").unwrap();
    let examples = pairs();
    let texts: Vec<(&str, &str)> = examples
        .iter()
        .map(|e| (e.text.as_str(), e.pair.as_deref().unwrap()))
        .collect();
    let sims = teacher.similarities(&texts).unwrap();
    let mut tsv = String::new();
    if header {
        tsv.push_str("sentence1\tsentence2\tscore\n");
    }
    for (e, s) in examples.iter().zip(sims) {
        tsv.push_str(&format!(
            "{}\t{}\t{s}\n",
            e.text,
            e.pair.as_deref().unwrap()
        ));
    }
    tsv
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let o = plcc(args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Builds `recipe` (without training) in `dir`; returns the artifact directory.
fn build(dir: &Path, recipe: &str) -> PathBuf {
    let out = dir.join("artifact");
    let o = support::plcc::build(&write_recipe(dir, recipe), &out, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

const EMBEDDING: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
pooling: mean
eval: pairs
keep_layers: [0, 2]
data pairs "data/pairs.tsv" {
    format: tsv
    text: 0
    text_pair: 1
    label: 2
}
"#;

#[test]
fn gold_spearman_is_one_for_the_teacher_and_the_build_report_agrees() {
    let dir = workdir(
        "eval-gold",
        &[
            ("data/pairs.tsv", &self_scored_tsv(false)),
            ("headed.tsv", &self_scored_tsv(true)),
        ],
    );
    let data = dir.join("headed.tsv");
    let teacher = json_of(&["eval", "builtin:tiny-bert", "--data", s(&data), "--json"]);
    assert_eq!(teacher["n"], 40, "{teacher}");
    assert_eq!(teacher["task"], "embedding");
    let rho = teacher["spearman"].as_f64().unwrap();
    assert!((rho - 1.0).abs() < 1e-12, "{teacher}");
    assert!((teacher["pearson"].as_f64().unwrap() - 1.0).abs() < 1e-9);

    let artifact = build(&dir, EMBEDDING);
    let both = json_of(&[
        "eval",
        s(&artifact),
        "--data",
        s(&data),
        "--against",
        "builtin:tiny-bert",
        "--json",
    ]);
    let student = both["spearman"].as_f64().unwrap();
    assert!(student < 1.0 && student > 0.0, "{both}");
    assert_eq!(both["pooling"], "mean");
    assert!((both["against"]["spearman"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    let diff = both["difference"]["spearman"].as_f64().unwrap();
    assert!((diff - (student - 1.0)).abs() < 1e-12, "{both}");

    // The build measured the same numbers on its eval data.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(artifact.join("report.json")).unwrap())
            .unwrap();
    let metrics = &report["fidelity"]["metrics"];
    let gold = |k: &str| metrics[k].as_f64().unwrap_or_else(|| panic!("{metrics}"));
    assert!((gold("teacher_spearman_gold") - 1.0).abs() < 1e-12);
    assert!((gold("student_spearman_gold") - student).abs() < 1e-9);
    let md = std::fs::read_to_string(artifact.join("report.md")).unwrap();
    assert!(md.contains("student_spearman_gold"), "{md}");

    // Text output names the measure.
    let o = plcc(&["eval", "builtin:tiny-bert", "--data", s(&data)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("spearman") && text.contains("40 pairs"),
        "{text}"
    );
}

#[test]
fn jsonl_pairs_with_a_label_key_read_as_scores() {
    let lines: String = pairs()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            serde_json::json!({"text": e.text, "text_pair": e.pair, "label": (i % 5) as f64 / 4.0})
                .to_string()
                + "\n"
        })
        .collect();
    let dir = workdir("eval-jsonl", &[("pairs.jsonl", &lines)]);
    let v = json_of(&[
        "eval",
        "builtin:tiny-bert",
        "--data",
        s(&dir.join("pairs.jsonl")),
        "--json",
    ]);
    assert_eq!(v["n"], 40);
    let rho = v["spearman"].as_f64().unwrap();
    assert!(rho.is_finite() && rho.abs() <= 1.0, "{v}");
}

const CLASSIFIER: &str = r#"
teacher: "builtin:tiny-bert"
task: classification
labels: 2
seed: 4
eval: labelled
data labelled "data/labelled.tsv" {
    text: 0
    label: 1
}
"#;

#[test]
fn classifier_accuracy_and_macro_f1_count_its_predictions() {
    let lines: Vec<&str> = SENTENCES.lines().filter(|l| !l.is_empty()).collect();
    let labelled: String = lines.iter().map(|l| format!("{l}\t0\n")).collect();
    let input = lines.join("\n") + "\n";
    let dir = workdir(
        "eval-cls",
        &[("data/labelled.tsv", &labelled), ("input.txt", &input)],
    );
    let artifact = build(&dir, CLASSIFIER);
    // The classifier's own predictions, half of them then flipped.
    let o = plcc(&["run", s(&artifact), "--input", s(&dir.join("input.txt"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let predicted: Vec<usize> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let logits: Vec<f64> = serde_json::from_value(v["logits"].clone()).unwrap();
            usize::from(logits[1] > logits[0])
        })
        .collect();
    let gold: Vec<usize> = predicted
        .iter()
        .enumerate()
        .map(|(i, &p)| if i % 2 == 0 { p } else { 1 - p })
        .collect();
    let tsv: String = std::iter::once("text\tlabel\n".to_string())
        .chain(lines.iter().zip(&gold).map(|(l, g)| format!("{l}\t{g}\n")))
        .collect();
    std::fs::write(dir.join("gold.tsv"), tsv).unwrap();
    let v = json_of(&[
        "eval",
        s(&artifact),
        "--data",
        s(&dir.join("gold.tsv")),
        "--json",
    ]);
    assert_eq!(v["task"], "classification");
    assert_eq!(v["n"], lines.len());
    assert!((v["accuracy"].as_f64().unwrap() - 0.5).abs() < 1e-12, "{v}");
    let (_, f1) = accuracy_and_macro_f1(&predicted, &gold, 2);
    assert!((v["macro_f1"].as_f64().unwrap() - f1).abs() < 1e-12, "{v}");
}

#[test]
fn perplexity_of_a_language_model_is_a_mean_over_tokens() {
    let twice = format!("{SENTENCES}{SENTENCES}");
    let dir = workdir("eval-lm", &[("once.txt", SENTENCES), ("twice.txt", &twice)]);
    let once = json_of(&[
        "eval",
        "builtin:tiny-gpt2",
        "--data",
        s(&dir.join("once.txt")),
        "--json",
    ]);
    let ppl = once["perplexity"].as_f64().unwrap();
    assert_eq!(once["task"], "causal_lm");
    assert!(ppl > 1.0 && ppl < 5000.0, "{once}");
    let both = json_of(&[
        "eval",
        "builtin:tiny-gpt2",
        "--data",
        s(&dir.join("twice.txt")),
        "--against",
        "builtin:tiny-gpt2",
        "--json",
    ]);
    assert_eq!(
        both["tokens"].as_f64().unwrap(),
        2.0 * once["tokens"].as_f64().unwrap()
    );
    assert!(
        (both["perplexity"].as_f64().unwrap() / ppl - 1.0).abs() < 1e-4,
        "{both}"
    );
    assert_eq!(both["difference"]["perplexity"].as_f64().unwrap(), 0.0);
}

#[test]
fn perplexity_of_an_encoder_decoder_is_over_its_targets() {
    let pairs: String = SENTENCES
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\t{l}\n"))
        .collect();
    let dir = workdir(
        "eval-seq2seq",
        &[("texts.txt", SENTENCES), ("pairs.tsv", &pairs)],
    );
    let texts = json_of(&[
        "eval",
        "builtin:tiny-bart",
        "--data",
        s(&dir.join("texts.txt")),
        "--json",
    ]);
    assert_eq!(texts["task"], "seq2seq");
    let ppl = texts["perplexity"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "{texts}");
    // A text's target is the text itself, whatever its source: the same
    // tokens are predicted from a pair with the text on both sides.
    let both = json_of(&[
        "eval",
        "builtin:tiny-bart",
        "--data",
        s(&dir.join("pairs.tsv")),
        "--against",
        "builtin:tiny-bart",
        "--json",
    ]);
    assert_eq!(both["tokens"], texts["tokens"], "{both}");
    assert!(both["perplexity"].as_f64().unwrap().is_finite(), "{both}");
    assert_eq!(both["against"]["perplexity"], both["perplexity"]);
    assert_eq!(both["difference"]["perplexity"].as_f64().unwrap(), 0.0);
}

/// Runs `plcc eval builtin:tiny-bert` on `contents`; expects exit 1 with
/// every one of `needles` in stderr and no panic.
fn refused(name: &str, contents: Option<&str>, needles: &[&str]) {
    let dir = workdir(&format!("eval-bad-{}", name.replace('.', "-")), &[]);
    let path = dir.join(name);
    if let Some(c) = contents {
        std::fs::write(&path, c).unwrap();
    }
    let o = plcc(&["eval", "builtin:tiny-bert", "--data", s(&path)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let text = unwrapped(&err);
    for n in needles {
        assert!(text.contains(n), "`{n}` not in: {err}");
    }
}

#[test]
fn bad_data_files_are_diagnostics_with_their_line() {
    refused("missing.tsv", None, &["missing.tsv"]);
    refused(
        "short.tsv",
        Some("a b\tc d\t0.5\nx y\tz\t0.1\ne f\n"),
        &["short.tsv:3", "has 1 column,", "column 1 is missing"],
    );
    refused(
        "words.tsv",
        Some("a\tb\t0.5\nc\td\t0.2\ne\tf\thigh\n"),
        &["words.tsv:3", "`high`", "number"],
    );
    refused(
        "two.tsv",
        Some("a\tb\t0.5\nc\td\t0.2\n"),
        &["at least 3 pairs", "2"],
    );
    refused(
        "bad.jsonl",
        Some("{\"text\": \"a\"\n"),
        &["bad.jsonl:1", "JSON"],
    );
    refused("lines.txt", Some("just text\nmore text\n"), &["plain text"]);
    refused("empty.tsv", Some("\n\n"), &["no examples"]);
}
