//! `plcc run` on an encoder-decoder: the next-token logits after each line's
//! target and the greedy continuation under `--generate`, checked against
//! transformers on the `bart-odd` parity fixture (its reference logits and
//! the tokens `generate(do_sample=False, num_beams=1)` produced).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::support::plcc::{plcc, stderr, workdir};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/bart-odd")
}

fn inputs() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("inputs.json")).unwrap()).unwrap()
}

/// The fixture's texts as `plcc run` input lines: `source<TAB>target`, or
/// the bare source where the target is empty.
fn input_lines(inputs: &serde_json::Value) -> String {
    let texts = |key: &str| -> Vec<String> { serde_json::from_value(inputs[key].clone()).unwrap() };
    texts("source_text")
        .iter()
        .zip(texts("target_text"))
        .map(|(s, t)| {
            if t.is_empty() {
                format!("{s}\n")
            } else {
                format!("{s}\t{t}\n")
            }
        })
        .collect()
}

/// Runs `plcc run` on the fixture with `extra` arguments; its records.
fn run(dir: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let (model, input) = (fixture(), dir.join("input.txt"));
    let mut args = vec![
        "run",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = plcc(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// transformers' logits at each row's last real decoder position.
fn reference_logits(inputs: &serde_json::Value) -> Vec<Vec<f32>> {
    let reference: HashMap<String, Tensor> =
        candle_core::safetensors::load(fixture().join("reference.safetensors"), &Device::Cpu)
            .unwrap();
    let logits = reference["logits"].to_vec3::<f32>().unwrap();
    let masks: Vec<Vec<u32>> =
        serde_json::from_value(inputs["decoder_attention_mask"].clone()).unwrap();
    logits
        .into_iter()
        .zip(masks)
        .map(|(mut rows, mask)| {
            let last = mask.iter().sum::<u32>() as usize - 1;
            rows.swap_remove(last)
        })
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn run_gives_transformers_next_token_logits_and_greedy_tokens() {
    let inputs = inputs();
    let dir = workdir("seq2seq-run", &[("input.txt", &input_lines(&inputs))]);
    let expected = reference_logits(&inputs);
    let generate = &inputs["generate"];
    let max_new = generate["max_new_tokens"].to_string();
    let tokens: Vec<Vec<u32>> = serde_json::from_value(generate["tokens"].clone()).unwrap();
    let texts: Vec<String> = serde_json::from_value(generate["text"].clone()).unwrap();

    // Rows of different lengths share a batch, and a row runs alone.
    for batch in ["32", "2", "1"] {
        for generating in [false, true] {
            let mut args = vec!["--batch-size", batch];
            if generating {
                args.extend(["--generate", &max_new]);
            }
            let records = run(&dir, &args);
            assert_eq!(records.len(), expected.len());
            for (i, (r, theirs)) in records.iter().zip(&expected).enumerate() {
                let ours = floats(&r["logits"]);
                assert_eq!(ours.len(), theirs.len());
                let mag = theirs.iter().fold(0f32, |m, x| m.max(x.abs()));
                let err = ours
                    .iter()
                    .zip(theirs)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err <= 1e-4 * mag, "row {i}: max abs error {err} vs {mag}");
                if generating {
                    let ours: Vec<u32> = serde_json::from_value(r["tokens"].clone()).unwrap();
                    assert_eq!(ours, tokens[i], "row {i}: generated tokens");
                    assert_eq!(r["text"], texts[i].as_str(), "row {i}: generated text");
                } else {
                    assert!(r.get("tokens").is_none() && r.get("text").is_none());
                }
            }
        }
    }
}

#[test]
fn generate_runs_on_the_builtin_and_is_a_diagnostic_elsewhere() {
    let dir = workdir("seq2seq-generate", &[("in.txt", "the cat\tthe\nsat on\n")]);
    let input = dir.join("in.txt");
    let input = input.to_str().unwrap();
    let o = plcc(&[
        "run",
        "builtin:tiny-bart",
        "--input",
        input,
        "--generate",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for r in &records {
        let n = r["tokens"].as_array().map(Vec::len).unwrap();
        assert!((1..=3).contains(&n));
        assert!(r["text"].is_string());
    }
    for (model, args, code) in [
        ("builtin:tiny-gpt2", "3", "plcc::run::not-seq2seq"),
        ("builtin:tiny-bert", "3", "plcc::run::not-seq2seq"),
        ("builtin:tiny-bart", "0", "plcc::cli::bad-generate"),
    ] {
        let o = plcc(&["run", model, "--input", input, "--generate", args]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(code), "{model}: {err}");
        assert!(!err.contains("panicked"), "{model}: {err}");
    }
}
