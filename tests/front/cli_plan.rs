//! `plcc check`, `plcc plan` and `plcc passes` through the binary: output,
//! JSON document shape and exit codes.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::fixtures::fixture;

fn plcc(args: &[&str], recipe: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plcc"));
    cmd.args(args);
    if let Some(r) = recipe {
        cmd.arg(r);
    }
    cmd.output().unwrap()
}

#[test]
fn check_prints_one_ok_line() {
    let out = plcc(&["check"], Some(&fixture("reduce_exits.pc")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("OK "), "{stdout}");
    assert!(stdout.contains("4 → 3 layers, 2 exits"), "{stdout}");
}

#[test]
fn check_fails_with_the_diagnostic() {
    let out = plcc(
        &["check"],
        Some(&fixture("errors/more_heads_than_exist.pc")),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plcc::prune::more-than-exist"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn plan_json_is_a_document_with_estimates() {
    let out = plcc(&["plan", "--json"], Some(&fixture("full.pc")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["student_layers"], 3);
    let est = &doc["estimates"];
    let teacher = est["teacher"]["bytes"].as_u64().unwrap();
    let student = est["student"]["bytes"].as_u64().unwrap();
    assert!(student < teacher);
    assert_eq!(est["student"]["exits"].as_array().unwrap().len(), 2);
    assert!(doc["modules"].as_array().unwrap().len() > 20);
}

#[test]
fn plan_table_and_dump_after() {
    let out = plcc(
        &["plan", "--dump-after", "exit-insert"],
        Some(&fixture("full.pc")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.matches("// IR after").count(), 1, "{stdout}");
    assert!(stdout.contains("// IR after exit-insert"), "{stdout}");
    assert!(stdout.contains("x smaller)"), "{stdout}");
    assert!(stdout.contains("timeline"), "{stdout}");
}

#[test]
fn passes_lists_the_builtins_in_order() {
    let out = plcc(&["passes"], None);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let order: Vec<usize> = [
        "layer-reduce",
        "width-prune",
        "exit-insert",
        "quant-place",
        "distill-schedule",
    ]
    .iter()
    .map(|p| stdout.find(p).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{stdout}");
}

#[test]
fn an_encoder_decoder_recipe_checks_and_plans() {
    let out = plcc(&["check"], Some(&fixture("bart_quant.pc")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("OK "), "{stdout}");
    assert!(stdout.contains("35 quantized modules"), "{stdout}");

    // The example's plan reads no data set, so it needs no corpus.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quant_bart.pc");
    let out = plcc(&["plan", "--json"], Some(&example));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["task"], "Seq2Seq");
    assert_eq!(doc["teacher"]["model_type"], "bart");
    let modules = doc["modules"].as_array().unwrap();
    let named = |n: &str| modules.iter().any(|m| m["name"] == n);
    assert!(named("model.encoder.layers.1.fc2"), "{doc}");
    assert!(named("model.decoder.layers.1.encoder_attn.k_proj"), "{doc}");
    let est = &doc["estimates"];
    assert!(est["student"]["bytes"].as_u64() < est["teacher"]["bytes"].as_u64());
}

#[test]
fn the_plan_shows_what_each_linears_input_runs_with() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan-inputs");
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("recipe.pc");
    std::fs::write(
        &recipe,
        "teacher: \"builtin:tiny-bert\"\n\
         quantize weights \"encoder.layer.*.attention.*\" {\n    bits: 4\n    activations: float\n}\n\
         quantize weights \"encoder.layer.*.intermediate.dense\" {\n    bits: 4\n}\n\
         quantize weights \"encoder.layer.?.output.dense\" {\n    bits: 8\n    symmetric: false\n}\n\
         quantize weights \"embeddings.word_embeddings\" {\n    bits: 4\n}\n",
    )
    .unwrap();
    let out = plcc(&["plan", "--json"], Some(&recipe));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let input = |name: &str| {
        doc["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no module {name}"))["activations"]
            .clone()
    };
    // Weight-only: float inputs on the packed weight.
    assert_eq!(
        input("encoder.layer.0.attention.self.query"),
        "float (weight-only)"
    );
    // Packed on the integer kernel, which quantizes its input per token.
    assert_eq!(
        input("encoder.layer.1.intermediate.dense"),
        "int8 sym token (kernel)"
    );
    // Asymmetric weights run the float product: nothing quantizes the input.
    assert!(input("encoder.layer.0.output.dense").is_null());
    // A looked-up table has no input to quantize.
    assert!(input("embeddings.word_embeddings").is_null());
    let table = plcc(&["plan"], Some(&recipe));
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("float (weight-only)"), "{text}");
    let dump = plcc(&["plan", "--dump-after", "quant-place"], Some(&recipe));
    let text = String::from_utf8(dump.stdout).unwrap();
    assert!(text.contains("activations float"), "{text}");
}
