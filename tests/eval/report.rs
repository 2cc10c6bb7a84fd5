//! The build report describes the model as shipped: with calibrated exits,
//! report.md has an Early exits section and gives the fidelity with exits
//! on beside full depth, report.json the same, and report.svg draws the
//! student against the teacher and the calibration curve; `plcc calibrate`
//! rewrites all three with the new thresholds, measuring again on the
//! recorded evaluation data, on `--eval FILE`, or saying that it could not.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::plcc::{plcc, stderr, workdir};

const RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
pooling: mean
seed: 7
eval: pairs
keep_layers: [0, 1, 3]
data sentences "data/sentences.txt" {}
data pairs "data/pairs.tsv" {
    format: tsv
    text: 0
    text_pair: 1
}
prune {
    heads: 2
    ffn: 64
}
exits {
    after: all
    head: pooler
    criterion: similarity
    target_speedup: 1.2
}
distill general {
    steps: 2
    data: sentences
    batch_size: 8
    seq_len: 32
    loss cosine {}
}
"#;

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/data")
            .join(name),
    )
    .unwrap()
}

/// The folder with the recipe, its data and the artifact, built once.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let (sentences, pairs) = (example("sentences.txt"), example("pairs.tsv"));
        let dir = workdir(
            "report",
            &[
                ("recipe.pc", RECIPE),
                ("data/sentences.txt", &sentences),
                ("data/pairs.tsv", &pairs),
            ],
        );
        let o = plcc(&[
            "build",
            dir.join("recipe.pc").to_str().unwrap(),
            "-o",
            dir.join("out").to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    })
}

/// A fresh copy of the built artifact, and of its folder's data.
fn copy(name: &str) -> PathBuf {
    let to = built().join(name);
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(built().join("out")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn manifest_thresholds(dir: &Path) -> Vec<Value> {
    let m = json(&dir.join("manifest.json"));
    m["exits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["threshold"].clone())
        .collect()
}

fn report_thresholds(dir: &Path) -> Vec<Value> {
    json(&dir.join("report.json"))["exits"]["thresholds"]
        .as_array()
        .unwrap()
        .clone()
}

/// `text` with every number that has a decimal point (metrics, thresholds,
/// seconds) as `<n>`, the training speed and the tried-settings count too.
fn redact(text: &str, dir: &Path) -> String {
    let text = text.replace(&dir.display().to_string(), "<dir>");
    let mut out = String::new();
    let mut in_stages = false;
    for line in text.lines() {
        if line.contains("training tokens/s") {
            in_stages = true;
        } else if !line.starts_with('|') {
            in_stages = false;
        }
        let mut line = decimals(line);
        if in_stages && line.starts_with("| general") {
            let cells: Vec<&str> = line.split('|').collect();
            line = format!("|{}|{}|{}| <n> | <n> | <n> |", cells[1], cells[2], cells[3]);
        }
        if let Some(i) = line.find(" settings tried") {
            let start = line[..i].rfind(' ').map_or(0, |s| s + 1);
            line.replace_range(start..i, "<n>");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn decimals(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_alphanumeric()) {
            let mut j = i;
            let number = |c: char| c.is_ascii_digit() || matches!(c, '.' | 'e' | '-');
            while j < chars.len() && number(chars[j]) {
                j += 1;
            }
            let token: String = chars[i..j].iter().collect();
            let token = token.trim_end_matches(['.', '-']);
            if token.contains('.') {
                out.push_str("<n>");
                i += token.chars().count();
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[test]
fn the_report_describes_the_model_with_its_exits() {
    let out = built().join("out");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    insta::assert_snapshot!(redact(&md, built()));
    let report = json(&out.join("report.json"));
    assert_eq!(report_thresholds(&out), manifest_thresholds(&out));
    assert!(manifest_thresholds(&out).iter().all(Value::is_f64));
    let with = &report["fidelity_with_exits"]["metrics"]["mean_cosine"];
    let full = &report["fidelity"]["metrics"]["mean_cosine"];
    assert!(with.is_f64() && full.is_f64(), "{report}");
    let exits = &report["exits"];
    assert_eq!(exits["calibration"]["target"], "speedup=1.2");
    assert!(exits["avg_exit_layer"].as_f64().unwrap() <= 3.0);
    assert!(report["eval_source"]["sha256"].as_str().unwrap().len() == 64);
    // Calibrated on the evaluation pairs as the measurement encodes them,
    // the thresholds do on that data what the calibration promised.
    let promised = exits["calibration"]["chosen"]["avg_exit_layer"]
        .as_f64()
        .unwrap();
    let measured = exits["avg_exit_layer"].as_f64().unwrap();
    assert!(
        (promised - measured).abs() < 1e-9,
        "promised {promised}, measured {measured}"
    );
}

#[test]
fn report_svg_draws_the_student_the_teacher_and_the_calibration_curve() {
    let out = built().join("out");
    let svg = std::fs::read_to_string(out.join("report.svg")).unwrap();
    let report = json(&out.join("report.json"));
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for label in [
        "teacher: ",
        "student before training (fake-quantized): ",
        "student after general (fake-quantized): ",
        "student, full depth: ",
        "student with exits (as shipped): ",
        "chosen threshold ",
    ] {
        assert!(svg.contains(label), "no `{label}` in report.svg");
    }
    let tried = report["exits"]["calibration"]["curve"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["setting"].is_null())
        .count();
    assert!(tried > 1);
    assert_eq!(svg.matches("<title>threshold ").count(), tried);
}

fn calibrate(dir: &Path, extra: &[&str]) -> std::process::Output {
    let data = built().join("data/sentences.txt");
    let mut args = vec![
        "calibrate",
        dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--target",
        "avg_layer=2.5",
    ];
    args.extend_from_slice(extra);
    plcc(&args)
}

#[test]
fn calibrate_rewrites_the_report_with_the_new_thresholds() {
    let dir = copy("calibrated");
    let before = std::fs::read(dir.join("report.json")).unwrap();
    let o = calibrate(&dir, &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.join("report.json")).unwrap(), before);

    let o = calibrate(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(dir.join("report.json")).unwrap(), before);
    assert_eq!(report_thresholds(&dir), manifest_thresholds(&dir));
    let report = json(&dir.join("report.json"));
    assert_eq!(report["exits"]["calibration"]["target"], "avg_layer=2.5");
    assert!(report["fidelity_with_exits"]["metrics"]["mean_cosine"].is_f64());
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("Calibrated for `avg_layer=2.5`"), "{md}");
    let svg = std::fs::read_to_string(dir.join("report.svg")).unwrap();
    assert!(svg.contains("avg_layer=2.5"));
}

#[test]
fn calibrate_says_when_the_fidelity_with_exits_could_not_be_measured() {
    let dir = copy("stale");
    // The evaluation data changes after the build: nothing held out to measure on.
    let pairs = built().join("data/pairs-moved.tsv");
    let report = json(&dir.join("report.json"));
    let recorded = PathBuf::from(report["eval_source"]["path"].as_str().unwrap());
    let mut changed = report.clone();
    changed["eval_source"]["sha256"] = Value::from("0".repeat(64));
    std::fs::write(dir.join("report.json"), changed.to_string()).unwrap();
    let o = calibrate(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("not measured"), "{}", stderr(&o));
    let report = json(&dir.join("report.json"));
    assert!(report.get("fidelity_with_exits").is_none(), "{report}");
    let why = report["exits"]["not_measured"].as_str().unwrap();
    assert!(why.contains("changed since the build"), "{why}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("Fidelity with exits on was not measured"),
        "{md}"
    );
    assert_eq!(report_thresholds(&dir), manifest_thresholds(&dir));

    // Held-out data given explicitly: measured again.
    std::fs::copy(&recorded, &pairs).unwrap();
    let o = calibrate(&dir, &["--eval", pairs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json(&dir.join("report.json"));
    assert!(report["fidelity_with_exits"]["metrics"]["mean_cosine"].is_f64());
    assert!(report["exits"]["not_measured"].is_null());
}
