//! What `plcc check` finds without weights, each problem rendered with its
//! span: every data set read as the build reads it (a missing file, a header
//! row, text labels), the recipe's device, a classification checkpoint
//! without a classifier head (a warning when a stage trains the head, an
//! error in check and build when none does); and the device in the plan.

use std::path::{Path, PathBuf};

use plcc::Diag;

use crate::support::plcc::{build, plcc, stderr, workdir, write_recipe};

/// Everything `plcc check` finds in `recipe`: its warnings, or its problems.
fn findings(recipe: &Path) -> Result<Option<Diag>, Diag> {
    plcc::api::findings(recipe, &plcc::pass_registry()).map(|(_, warnings)| warnings)
}

/// `diag` rendered, the working folder shown as `<dir>`.
fn rendered(diag: &Diag, dir: &Path) -> String {
    diag.render_plain()
        .replace(&dir.display().to_string(), "<dir>")
}

const PAIRS: &str = "the cat sleeps\t1\nthe train leaves\t0\n";

/// A folder with `recipe.pc` and its data files.
fn folder(tag: &str, recipe: &str) -> PathBuf {
    let dir = workdir(
        &format!("check-{tag}"),
        &[
            ("data/pairs.tsv", PAIRS),
            (
                "data/header.tsv",
                "sentence\tlabel\nthe cat\t1\nthe dog\t0\n",
            ),
            ("data/words.tsv", "the cat\tpositive\nthe dog\tnegative\n"),
        ],
    );
    write_recipe(&dir, recipe);
    dir
}

#[test]
fn every_data_problem_fails_check_at_its_data_block() {
    let dir = folder(
        "data",
        r#"teacher: "builtin:tiny-bert"
task: classification
labels: 2

data header "data/header.tsv" {
    text: 0
    label: 1
}
data words "data/words.tsv" {
    text: 0
    label: 1
}
data gone "data/missing.tsv" {
    text: 0
    label: 1
}
"#,
    );
    let diag = findings(&dir.join("recipe.pc")).expect_err("three bad data sets");
    assert_eq!(diag.problems().count(), 3);
    insta::assert_snapshot!(rendered(&diag, &dir));
}

#[test]
fn a_pass_error_does_not_hide_the_data_and_device_problems() {
    let dir = folder(
        "phases",
        r#"teacher: "builtin:tiny-bert"
device: cuda

data gone "data/missing.txt" {}

quantize weights "encoder.layer.*.attention.self.querry" {
    bits: 8
}
"#,
    );
    let diag = findings(&dir.join("recipe.pc")).expect_err("three problems");
    let codes: Vec<&str> = diag.problems().map(|d| d.code).collect();
    let expected = vec![
        "plcc::device::cuda-unavailable",
        "plcc::data::unreadable",
        "plcc::quantize::no-match",
    ];
    if cfg!(feature = "cuda") {
        assert_eq!(codes.len(), 2, "{codes:?}");
    } else {
        assert_eq!(codes, expected, "{}", diag.render_plain());
        insta::assert_snapshot!(rendered(&diag, &dir));
    }
}

#[test]
fn a_declared_header_row_is_skipped() {
    let dir = folder(
        "header",
        r#"teacher: "builtin:tiny-bert"
task: classification
labels: 2

data header "data/header.tsv" {
    text: 0
    label: 1
    header: true
}
"#,
    );
    let found = findings(&dir.join("recipe.pc"));
    assert!(matches!(found, Ok(None)), "{:?}", found.err());
    // The build reads the data set the same way.
    let o = build(&dir.join("recipe.pc"), &dir.join("out"), "0");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_cuda_device_is_refused_at_its_span_without_cuda_support() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = folder(
        "cuda",
        "teacher: \"builtin:tiny-bert\"\ndevice: cuda\n\ndata pairs \"data/pairs.tsv\" {}\n",
    );
    let diag = findings(&dir.join("recipe.pc")).expect_err("no CUDA in this build");
    insta::assert_snapshot!(rendered(&diag, &dir));
    // `--device cpu` overrides the recipe's device.
    let out = dir.join("out");
    let o = plcc(&[
        "build",
        dir.join("recipe.pc").to_str().unwrap(),
        "--max-steps",
        "0",
        "--device",
        "cpu",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn plan_shows_the_device() {
    let dir = folder("plan", "teacher: \"builtin:tiny-bert\"\n");
    let recipe = dir.join("recipe.pc");
    let o = plcc(&["plan", recipe.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.lines().next().unwrap().ends_with("; device cpu"),
        "{text}"
    );
    let o = plcc(&["plan", "--json", recipe.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["device"], "cpu");
}

/// A checkpoint folder `teacher/` without a classifier head (the BERT
/// fixture's config and weights and a tokenizer file) beside the recipe.
fn headless_teacher(tag: &str, recipe: &str) -> PathBuf {
    let dir = folder(tag, recipe);
    let teacher = dir.join("teacher");
    std::fs::create_dir_all(&teacher).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/bert-odd");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), teacher.join(f)).unwrap();
    }
    std::fs::write(teacher.join("tokenizer.json"), "{}").unwrap();
    dir
}

const HEADLESS: &str = r#"teacher: "teacher"
task: classification
labels: 2

data pairs "data/pairs.tsv" {
    text: 0
    label: 1
}
"#;

#[test]
fn a_headless_classification_teacher_fails_check_and_build() {
    let dir = headless_teacher("headless", HEADLESS);
    let recipe = dir.join("recipe.pc");
    let diag = findings(&recipe).expect_err("nothing trains the head");
    insta::assert_snapshot!(rendered(&diag, &dir));
    let o = build(&recipe, &dir.join("out"), "0");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("plcc::checkpoint::no-classifier"));
}

#[test]
fn a_headless_teacher_whose_head_a_stage_trains_is_a_warning() {
    let recipe = format!(
        "{HEADLESS}\ndistill fit {{\n    steps: 2\n    data: pairs\n    loss task_ce {{}}\n}}\n"
    );
    let dir = headless_teacher("headless-trained", &recipe);
    let warnings = findings(&dir.join("recipe.pc"))
        .map_err(|d| d.render_plain())
        .unwrap()
        .expect("a warning");
    assert!(warnings.warning);
    insta::assert_snapshot!(rendered(&warnings, &dir));
    // Without training the head stays random: the build refuses.
    let o = build(&dir.join("recipe.pc"), &dir.join("out"), "0");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--max-steps 0"));
}
