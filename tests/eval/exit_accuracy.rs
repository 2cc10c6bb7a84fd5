//! A classifier with exits, measured on labelled evaluation sets, has in
//! its report the COST-EFF trade-off: accuracy against the gold labels
//! against average FLOPs per example over a sweep of exit thresholds, the
//! shipped one marked, each exit's own accuracy and the teacher's FLOPs;
//! report.md has the tables and report.svg the panel; `plcc calibrate`
//! measures the curve again where it measures and moves the mark; `plcc
//! eval` gives the curve on the data it scores.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::support::plcc::{plcc, stderr, workdir};
use crate::support::topics::{labelled, FINETUNE};

/// The student: narrower, with an exit after every layer calibrated on
/// `dev`, measured on `dev` and `test`.
const STUDENT: &str = r#"teacher: "ckpt"
task: classification
labels: [net, sound, games]
seed: 9
eval: [dev, test]
data dev "dev.tsv" { label: 1 }
data test "test.tsv" { label: 1 }
prune {
    heads: 2
    ffn: 64
}
exits {
    after: all
    criterion: entropy
    max_fidelity_loss: 10%
    data: dev
}
"#;

fn build(recipe: &Path, extra: &[&str]) {
    let mut args = vec!["build", recipe.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = plcc(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The folder with the recipes, their data, the fine-tuned teacher and the
/// student's artifact (`out`), built once.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let (train, dev, test) = (labelled(96, 0), labelled(30, 1), labelled(30, 2));
        let dir = workdir(
            "exit-accuracy",
            &[
                ("teacher.pc", FINETUNE),
                ("student.pc", STUDENT),
                ("train.tsv", &train),
                ("dev.tsv", &dev),
                ("test.tsv", &test),
            ],
        );
        build(&dir.join("teacher.pc"), &[]);
        let out = dir.join("out");
        build(&dir.join("student.pc"), &["-o", out.to_str().unwrap()]);
        dir
    })
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn curve<'a>(report: &'a Value, set: &str) -> &'a Value {
    report["exits"]["accuracy_vs_flops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["data"] == set)
        .unwrap_or_else(|| panic!("no curve on `{set}`: {report}"))
}

/// The curve's points, each checked: accuracy in [0, 1], FLOPs never
/// rising from the first threshold on, exits off first at full depth.
fn checked_points(c: &Value, layers: f64) -> &Vec<Value> {
    let points = c["points"].as_array().unwrap();
    assert!(points.len() > 2, "{c}");
    assert!(points[0]["setting"].is_null(), "{c}");
    assert_eq!(number(&points[0]["avg_exit_layer"]), layers);
    assert_eq!(number(&points[0]["speedup"]), 1.0);
    for p in points {
        assert!((0.0..=1.0).contains(&number(&p["accuracy"])), "{p}");
    }
    for pair in points[1..].windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            number(&b["flops_per_example"]) <= number(&a["flops_per_example"]),
            "FLOPs rise from {a} to {b}"
        );
    }
    points
}

#[test]
fn the_report_gives_accuracy_against_flops_on_each_labelled_set() {
    let out = built().join("out");
    let report = json(&out.join("report.json"));
    let manifest = json(&out.join("manifest.json"));
    let shipped = &manifest["exits"][0]["threshold"];
    let layers = number(&report["exits"]["layers"]);
    for set in ["dev", "test"] {
        let c = curve(&report, set);
        let points = checked_points(c, layers);
        let marked: Vec<&Value> = points.iter().filter(|p| p["shipped"] == true).collect();
        assert_eq!(marked.len(), 1, "{c}");
        assert_eq!(&marked[0]["setting"], shipped);
        // Exits off is the student at full depth: its accuracy is the one the
        // evaluation set's section measured on the gold labels.
        let full = &report["eval_sets"][set]["fidelity"]["metrics"];
        assert_eq!(points[0]["accuracy"], full["student_accuracy"], "{c}");
        assert_eq!(c["teacher_accuracy"], full["teacher_accuracy"]);
        let teacher_flops = number(&c["teacher_flops_per_example"]);
        assert!(
            teacher_flops > number(&points[0]["flops_per_example"]),
            "{c}"
        );
        // Each exit's own accuracy, then the final head's; the loosest
        // setting sends every example out at the first exit.
        let per_layer = c["layers"].as_array().unwrap();
        assert_eq!(
            per_layer.len(),
            manifest["exits"].as_array().unwrap().len() + 1
        );
        for l in per_layer {
            assert!((0.0..=1.0).contains(&number(&l["accuracy"])), "{l}");
        }
        let last = per_layer.last().unwrap();
        assert!(last["exit"].is_null() && number(&last["after_layer"]) == layers);
        assert_eq!(last["accuracy"], points[0]["accuracy"]);
        let loosest = points.last().unwrap();
        assert_eq!(number(&loosest["avg_exit_layer"]), 1.0);
        assert_eq!(loosest["accuracy"], per_layer[0]["accuracy"]);
    }
    // On the primary set the shipped point is what the runtime's early-exit
    // path measured for the report's fidelity with exits on.
    let shipped_dev = curve(&report, "dev")["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["shipped"] == true)
        .unwrap()
        .clone();
    let measured = number(&report["exits"]["avg_exit_layer"]);
    assert!((number(&shipped_dev["avg_exit_layer"]) - measured).abs() < 1e-9);
    let with_exits = &report["fidelity_with_exits"]["metrics"]["student_accuracy"];
    assert_eq!(&shipped_dev["accuracy"], with_exits, "{report}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for set in ["dev", "test"] {
        let heading = format!("### Accuracy against FLOPs on `{set}`");
        assert!(md.contains(&heading), "{md}");
    }
    assert_eq!(md.matches("(shipped)**").count(), 2, "{md}");
    assert!(md.contains("of the teacher's FLOPs"), "{md}");
}

#[test]
fn report_svg_draws_accuracy_against_flops() {
    let out = built().join("out");
    let report = json(&out.join("report.json"));
    let svg = std::fs::read_to_string(out.join("report.svg")).unwrap();
    assert!(svg.contains("accuracy against FLOPs per example"), "{svg}");
    for set in ["dev", "test"] {
        let points = curve(&report, set)["points"].as_array().unwrap().len();
        let tips = format!("<title>`{set}`, threshold ");
        assert_eq!(svg.matches(&tips).count(), points, "{set}");
        assert!(svg.contains(&format!("teacher on `{set}`")));
    }
    assert_eq!(svg.matches(">shipped threshold ").count(), 2, "{svg}");
}

#[test]
fn calibrate_measures_the_curve_again_and_moves_the_mark() {
    let dir = built().join("recalibrated");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(built().join("out")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let data = built().join("dev.tsv");
    let o = plcc(&[
        "calibrate",
        dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--target",
        "avg_layer=2.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json(&dir.join("report.json"));
    let shipped = &json(&dir.join("manifest.json"))["exits"][0]["threshold"];
    let layers = number(&report["exits"]["layers"]);
    // Measured again on the recorded evaluation data (`dev`), marked at the
    // new threshold; `test` keeps its curve, no longer marked.
    let dev = checked_points(curve(&report, "dev"), layers);
    let marked: Vec<&Value> = dev.iter().filter(|p| p["shipped"] == true).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(&marked[0]["setting"], shipped);
    let test = checked_points(curve(&report, "test"), layers);
    assert!(test.iter().all(|p| p["shipped"] == false));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert_eq!(
        md.matches("was set after this was measured").count(),
        1,
        "{md}"
    );
}

#[test]
fn plcc_eval_gives_the_curve_of_a_classifier_with_exits() {
    let dir = built();
    let o = plcc(&[
        "eval",
        dir.join("out").to_str().unwrap(),
        "--data",
        dir.join("test.tsv").to_str().unwrap(),
        "--against",
        dir.join("ckpt").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &v["accuracy_vs_flops"];
    let layers = c["layers"].as_array().unwrap().last().unwrap()["after_layer"].clone();
    let points = checked_points(c, number(&layers));
    // Exits off is the model `plcc eval` scored; the teacher is the
    // `--against` model, priced at full depth.
    assert_eq!(points[0]["accuracy"], v["accuracy"], "{v}");
    assert_eq!(c["teacher_accuracy"], v["against"]["accuracy"], "{v}");
    assert!(number(&c["teacher_flops_per_example"]) > number(&points[0]["flops_per_example"]));
    assert_eq!(points.iter().filter(|p| p["shipped"] == true).count(), 1);
}
