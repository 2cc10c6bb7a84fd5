//! `plcc build` with GPTQ quantizers on the built-in tiny BERT and tiny
//! BART, without training: the calibrated codes are packed and run, they
//! differ from round-to-nearest's and lower the calibration output error,
//! and bad calibration data is a located diagnostic that writes nothing.

use std::path::{Path, PathBuf};

use plcc::artifact::Artifact;

use crate::support;
use crate::support::plcc::stderr;
use crate::support::run::run_lines;

fn build(recipe: &Path, out: &Path) -> std::process::Output {
    support::plcc::build(recipe, out, "0")
}

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\nthe river bends around the old mill\nshe packed the books into two boxes\n";

fn workdir(name: &str) -> PathBuf {
    support::plcc::workdir(
        &format!("gptq-{name}"),
        &[("data/sentences.txt", SENTENCES), ("data/empty.txt", "\n")],
    )
}

/// A recipe quantizing every encoder linear to 4 bits per group of 16 with
/// `method`'s extra lines (a data set `empty` or `missing` is declared when
/// they use it).
fn recipe(dir: &Path, name: &str, method: &str) -> PathBuf {
    let empty = if method.contains("data: empty") {
        "data empty \"data/empty.txt\" {}"
    } else if method.contains("data: missing") {
        "data missing \"data/nope.txt\" {}"
    } else {
        ""
    };
    let text = format!(
        r#"
teacher: "builtin:tiny-bert"
task: embedding
eval: text

data text "data/sentences.txt" {{}}
{empty}

quantize weights "encoder.layer.*" {{
    bits: 4
    granularity: group
    group: 16
{method}
}}
"#
    );
    let path = dir.join(format!("{name}.pc"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The build report of the artifact at `out`, its GPTQ note, and the
/// note's output error in percent of round-to-nearest's.
fn gptq_note(out: &Path) -> (serde_json::Value, String, f64) {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let note = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("gptq:"))
        .expect("a gptq note")
        .to_string();
    // "... their output error on it is X% of round-to-nearest's"
    let percent: f64 = note
        .split("is ")
        .last()
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .expect("a percentage");
    (report, note, percent)
}

/// Builds `make`'s recipe with GPTQ (6 calibration sentences, act order)
/// and with round-to-nearest; their artifacts.
fn build_gptq_and_rtn(dir: &Path, make: fn(&Path, &str, &str) -> PathBuf) -> (PathBuf, PathBuf) {
    let gptq = make(
        dir,
        "gptq",
        "    method: gptq\n    data: text\n    samples: 6\n    act_order: true",
    );
    let rtn = make(dir, "rtn", "");
    let (out_g, out_r) = (dir.join("gptq-out"), dir.join("rtn-out"));
    let o = build(&gptq, &out_g);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = build(&rtn, &out_r);
    assert!(o.status.success(), "{}", stderr(&o));
    (out_g, out_r)
}

#[test]
fn gptq_codes_are_packed_run_and_beat_rounding_on_the_calibration_text() {
    let dir = workdir("build");
    let (out_g, out_r) = build_gptq_and_rtn(&dir, recipe);

    let (report, note, percent) = gptq_note(&out_g);
    assert!(
        note.contains("24 modules calibrated on `text` (6 sentences"),
        "{note}"
    );
    assert!(percent < 100.0, "{note}");
    let metrics = &report["fidelity"]["metrics"];
    assert!(
        metrics["similarity_spearman"].as_f64().is_some(),
        "{metrics}"
    );

    // Same quantizer layout, different codes.
    let (a, b) = (
        Artifact::open(&out_g).unwrap(),
        Artifact::open(&out_r).unwrap(),
    );
    let name = "encoder.layer.1.intermediate.dense.weight";
    assert!(matches!(
        a.manifest.weights[name].storage,
        plcc::artifact::Storage::Packed { .. }
    ));
    assert_eq!(a.weights_file_bytes, b.weights_file_bytes);
    assert_ne!(a.weight_f32(name).unwrap(), b.weight_f32(name).unwrap());

    let records = run_lines(&out_g, &dir, "one line\nanother line of text\n");
    assert_eq!(records.len(), 2);
    assert!(records[0]["embedding"].is_array());
}

#[test]
fn calibration_sets_too_small_empty_or_missing_are_located_and_write_nothing() {
    let dir = workdir("bad");
    let cases = [
        (
            "small",
            "    method: gptq\n    data: text\n    samples: 50",
            "plcc::build::calibration-too-small",
            "samples: 50",
        ),
        (
            "empty",
            "    method: gptq\n    data: empty",
            "plcc::data::empty",
            "data/empty.txt",
        ),
        (
            "missing",
            "    method: gptq\n    data: missing",
            "plcc::data::unreadable",
            "data/nope.txt",
        ),
    ];
    for (name, method, code, shown) in cases {
        let path = recipe(&dir, name, method);
        let out = dir.join(format!("{name}-out"));
        let o = build(&path, &out);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(code), "{name}: {err}");
        assert!(err.contains(shown), "{name}: the span is shown: {err}");
        assert!(!out.exists(), "{name}: nothing is written");
    }
}

/// A tiny BART recipe quantizing both stacks' linears to 4 bits per group
/// of 16, with `method`'s extra lines.
fn bart_recipe(dir: &Path, name: &str, method: &str) -> PathBuf {
    let text = format!(
        r#"
teacher: "builtin:tiny-bart"
eval: text

data text "data/sentences.txt" {{}}

quantize weights "model.*.layers.*" {{
    bits: 4
    granularity: group
    group: 16
{method}
}}
"#
    );
    let path = dir.join(format!("{name}.pc"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn gptq_calibrates_an_encoder_decoder_and_beats_rounding() {
    let dir = workdir("bart");
    let (out_g, out_r) = build_gptq_and_rtn(&dir, bart_recipe);

    // Encoder (2 × 6) and decoder (2 × 10) linears.
    let (report, note, percent) = gptq_note(&out_g);
    assert!(
        note.contains("32 modules calibrated on `text` (6 sentences"),
        "{note}"
    );
    assert!(percent < 100.0, "{note}");
    let ratio = report["fidelity"]["metrics"]["perplexity_ratio"].as_f64();
    assert!(ratio.is_some_and(f64::is_finite), "{report}");

    let (a, b) = (
        Artifact::open(&out_g).unwrap(),
        Artifact::open(&out_r).unwrap(),
    );
    for name in [
        "model.encoder.layers.0.fc1.weight",
        "model.decoder.layers.1.encoder_attn.k_proj.weight",
        "model.decoder.layers.1.fc2.weight",
    ] {
        assert_ne!(
            a.weight_f32(name).unwrap(),
            b.weight_f32(name).unwrap(),
            "{name}"
        );
    }
    let records = run_lines(&out_g, &dir, "one line\nanother line of text\n");
    assert_eq!(records.len(), 2);
}
