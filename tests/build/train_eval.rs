//! Evaluation during training and time budgets, end to end on the built-in
//! BERT: `eval_every` puts the eval data's fidelity into the loss log, the
//! progress output, the plot and the report's learning curve; `keep: best`
//! hands on the best evaluated weights (here the stage's start, which
//! training on this tiny data set makes worse) and `keep: last` the last
//! step's; `budget:` fixes the step count from the step time
//! (`PLCC_BUDGET_STEP_SECONDS` makes it deterministic) and `--max-steps`
//! still caps it, with the learning-rate schedule on the steps actually run.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::plcc::{stderr, workdir, write_recipe};

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\nthe river runs past the old mill\nshe writes code in the morning\na quiet street after the storm\n";

/// A ternary two-layer student whose fidelity falls while it trains at this
/// learning rate, so the stage's start is its best evaluated point.
fn recipe(length: &str, extra: &str) -> String {
    format!(
        r#"
teacher: "builtin:tiny-bert"
task: embedding
seed: 3
eval: sentences
keep_layers: [0, 2]

data sentences "data/sentences.txt" {{}}

quantize weights "encoder.layer.*" {{
    bits: ternary
}}

distill general {{
    {length}
    data: sentences
    lr: 3e-2
    batch_size: 4
    {extra}
    loss hidden_mse {{}}
    loss cosine {{}}
}}
"#
    )
}

/// Builds `text` in a fresh folder with `args` and `env`; returns the
/// output and the artifact's folder.
fn build(tag: &str, text: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, PathBuf) {
    let dir = workdir(
        &format!("train-eval-{tag}"),
        &[("data/sentences.txt", SENTENCES)],
    );
    let recipe = write_recipe(&dir, text);
    let out = dir.join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args([
            "build",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(args)
        .env_remove("PLCC_BUDGET_STEP_SECONDS")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (o, out)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn log(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("loss.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cosine(metrics: &serde_json::Value) -> f64 {
    metrics["mean_cosine"].as_f64().unwrap()
}

#[test]
fn evaluations_land_in_the_log_the_progress_the_plot_and_the_report() {
    let (o, out) = build("every", &recipe("steps: 10", "eval_every: 4"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records = log(&out);
    assert_eq!(records.len(), 10);
    let evaluated: Vec<u64> = records
        .iter()
        .filter(|r| r.get("eval").is_some())
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(
        evaluated,
        [4, 8, 10],
        "every 4 steps and at the stage's end"
    );
    let tokens: Vec<u64> = records
        .iter()
        .map(|r| r["tokens"].as_u64().unwrap())
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    for r in records.iter().filter(|r| r.get("eval").is_some()) {
        let c = cosine(&r["eval"]);
        assert!(c > 0.0 && c <= 1.0, "{c}");
        assert!(r["eval"]["similarity_spearman"].is_number());
    }
    let err = stderr(&o);
    assert!(err.contains("general step 4/10: mean_cosine"), "{err}");
    let svg = std::fs::read_to_string(out.join("loss.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 3, "one dot per evaluation");
    assert!(
        svg.contains("hidden_mse") && svg.contains("cosine"),
        "each term drawn"
    );

    let report = json(&out.join("report.json"));
    let curve = report["training"]["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 4, "before training and three evaluations");
    assert_eq!(curve[0]["tokens"], 0);
    assert_eq!(curve[3]["tokens"], records[9]["tokens"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Learning curve"), "{md}");
}

#[test]
fn keep_best_hands_on_the_best_evaluated_weights_and_keep_last_the_last() {
    let (o, best) = build("best", &recipe("steps: 12", "eval_every: 4"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, last) = build(
        "last",
        &recipe("steps: 12", "eval_every: 4\n    keep: last"),
        &[],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // The same training either way; only the weights handed on differ.
    let start = json(&best.join("report.json"))["training"]["evaluations"][0]["fidelity"]
        ["metrics"]
        .clone();
    let during: Vec<f64> = log(&best)
        .iter()
        .filter_map(|r| r.get("eval").map(cosine))
        .collect();
    assert_eq!(
        during,
        log(&last)
            .iter()
            .filter_map(|r| r.get("eval").map(cosine))
            .collect::<Vec<_>>()
    );
    assert!(
        during.iter().all(|&c| c < cosine(&start) - 0.01),
        "this stage was to make the student worse: start {} then {during:?}",
        cosine(&start)
    );

    let best_report = json(&best.join("report.json"));
    assert_eq!(best_report["training"]["stages"][0]["kept_step"], 0);
    let after = &best_report["training"]["evaluations"][1]["fidelity"]["metrics"];
    assert_eq!(cosine(after), cosine(&start), "the start's weights went on");
    assert!((cosine(&best_report["fidelity"]["metrics"]) - cosine(&start)).abs() < 1e-3);
    let md = std::fs::read_to_string(best.join("report.md")).unwrap();
    assert!(md.contains("handed on the weights of its start"), "{md}");

    let last_report = json(&last.join("report.json"));
    assert!(last_report["training"]["stages"][0]
        .get("kept_step")
        .is_none());
    let after = &last_report["training"]["evaluations"][1]["fidelity"]["metrics"];
    assert_eq!(cosine(after), *during.last().unwrap());
    assert_ne!(
        std::fs::read(best.join("model.safetensors")).unwrap(),
        std::fs::read(last.join("model.safetensors")).unwrap()
    );
}

#[test]
fn a_time_budget_becomes_a_step_count_that_max_steps_caps() {
    let fixed = [("PLCC_BUDGET_STEP_SECONDS", "0.25")];
    let (o, out) = build("budget", &recipe("budget: 3s", ""), &[], &fixed);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(log(&out).len(), 12, "3 s at 0.25 s a step");
    let report = json(&out.join("report.json"));
    let stage = &report["training"]["stages"][0];
    assert_eq!(stage["steps"], 12);
    assert_eq!(stage["budget"]["seconds"], 3.0);
    assert_eq!(stage["budget"]["steps"], 12);
    let notes = report["notes"].to_string();
    assert!(notes.contains("a budget of 3s"), "{notes}");

    // --max-steps caps the count, and the schedule runs on the steps run:
    // warm-up (10%) and linear decay to zero within 4 steps.
    let (o, out) = build(
        "budget-capped",
        &recipe("budget: 3s", ""),
        &["--max-steps", "4"],
        &fixed,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lrs: Vec<f64> = log(&out)
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs.len(), 4);
    assert_eq!(
        lrs[0], 3e-2,
        "warm-up finished within the steps run: {lrs:?}"
    );
    assert!(
        lrs.windows(2).all(|w| w[1] < w[0]) && lrs[3] < 1e-2,
        "{lrs:?}"
    );

    // Measured: the probe's steps are timed and their updates undone.
    let (o, out) = build(
        "budget-measured",
        &recipe("budget: 2s", "eval_every: 5"),
        &[],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stage = &json(&out.join("report.json"))["training"]["stages"][0];
    let steps = stage["steps"].as_u64().unwrap();
    assert!(steps >= 1 && steps == log(&out).len() as u64, "{stage}");
    assert!(stage["budget"]["seconds_per_step"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_bad_budget_is_a_located_diagnostic() {
    for (length, message) in [
        ("budget: 0min", "expected a positive duration"),
        ("budget: 45", "expected a duration"),
        (
            "steps: 3\n    budget: 1h",
            "more than one of `steps`, `epochs` and `budget`",
        ),
    ] {
        let (o, _) = build("bad-budget", &recipe(length, ""), &[], &[]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(message), "{length}: {err}");
        assert!(err.contains("recipe.pc:"), "located: {err}");
    }
}

/// A float stage, then the same student trained through its quantizers.
fn two_phase_recipe() -> String {
    let quantized = recipe("steps: 4", "eval_every: 2");
    let (head, stage) = quantized.split_at(quantized.find("distill general").unwrap());
    let float = stage
        .replace("distill general", "distill float")
        .replace("eval_every: 2", "eval_every: 2\n    quantize: false");
    format!("{head}{float}{stage}")
}

#[test]
fn a_float_stage_trains_without_the_quantizers_and_the_next_one_through_them() {
    let (o, quantized) = build("one-phase", &recipe("steps: 4", "eval_every: 2"), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, two) = build("two-phase", &two_phase_recipe(), &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Before training, the float stage measures the float student: the
    // same as a recipe without quantizers, not the ternary one.
    let unquantized = recipe("steps: 4", "eval_every: 2").replace(
        "quantize weights \"encoder.layer.*\" {\n    bits: ternary\n}",
        "",
    );
    assert!(!unquantized.contains("ternary"));
    let (o, float) = build("no-quantizers", &unquantized, &[], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let start = |out: &Path| {
        cosine(&json(&out.join("report.json"))["training"]["evaluations"][0]["fidelity"]["metrics"])
    };
    assert_eq!(start(&two), start(&float));
    assert_ne!(start(&two), start(&quantized));

    // The quantized stage's weights are measured quantized, its start
    // included: the evaluation it hands on is what the packed artifact keeps.
    let report = json(&two.join("report.json"));
    let stages = report["training"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    let handed_on = cosine(&report["training"]["evaluations"][2]["fidelity"]["metrics"]);
    let artifact = cosine(&report["fidelity"]["metrics"]);
    assert!(
        (handed_on - artifact).abs() < 1e-3,
        "{handed_on} vs {artifact}"
    );
    // Training at this rate makes both stages worse, so each hands on its
    // start: the quantized stage's start measured as quantized weights.
    assert_eq!(stages[1]["kept_step"], 0);
    assert_eq!(handed_on, start(&quantized));
}

#[test]
fn a_bad_quantize_value_is_a_located_diagnostic() {
    let (o, _) = build(
        "bad-quantize",
        &recipe("steps: 2", "quantize: later"),
        &[],
        &[],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("recipe.pc:"), "located: {err}");
    assert!(err.contains("true") && err.contains("false"), "{err}");
}
