//! Resuming from any kill: `plcc build` runs as a child process that aborts
//! itself at a named moment (`PLCC_FAULT_KILL_AT`, see `src/fault.rs`) —
//! before the first checkpoint, mid-stage, while a checkpoint or the
//! artifact is written — and `--resume` then reaches an artifact identical
//! to an unbroken build's. Checkpoints are taken after every step here
//! (`PLCC_CHECKPOINT_SECONDS=0`, the time-based interval made deterministic)
//! unless a test says otherwise. Also: a damaged latest checkpoint is passed
//! over for the one before it, a rerun without `--resume` says what it
//! discards, a foreign `<output>.training` folder is refused untouched, and
//! a malformed `PLCC_CHECKPOINT_SECONDS` is a diagnostic.
//!
//! Artifacts are compared file by file. `loss.jsonl` is compared without
//! its `tokens_per_s` (a measured speed), `report.json` without the
//! measured seconds, `resumed`, the notes (which tell how the build
//! went) and the evaluation data's path (each build has its own folder),
//! and `report.md` not at all (it is the report's text, with its
//! timings); every other file must be byte-identical.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::support::plcc::{stderr, workdir, write_recipe};

const SENTENCES: &str = "the model reads a recipe\na smaller model runs faster\nrain falls on the valley\nwhy is the cache slow\nnumbers like 3 and 42\nthe river runs past the old mill\n";

/// Two stages (AdamW with warm-up, a contrastive memory bank and an
/// evaluation every 2 steps keeping the best weights, then SGD with a cosine
/// schedule on a time budget that [`build`] fixes at 1 s a step): 5 + 3
/// optimizer steps.
const RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
seed: 7
eval: sentences
keep_layers: [0, 2]

data sentences "data/sentences.txt" {}

quantize weights "encoder.layer.*.attention.*" {
    bits: 4
    scale: learned
}

distill first {
    steps: 5
    data: sentences
    lr: 1e-3
    batch_size: 2
    accumulate: 2
    warmup: 2
    eval_every: 2
    loss hidden_mse {}
    loss contrastive {
        negatives: 16
    }
}

distill second {
    budget: 3s
    data: sentences
    lr: 1e-4
    batch_size: 3
    optimizer: sgd
    schedule: cosine
    loss cosine {}
}
"#;

/// A GPT-2 teacher pretrained (4 steps), then distilled (3 steps): its
/// checkpoints from the end of pretraining on hold the teacher's tensors.
const GPT_RECIPE: &str = r#"
teacher: "builtin:tiny-gpt2"
task: causal_lm
seed: 4
eval: sentences

data sentences "data/sentences.txt" {}

pretrain {
    steps: 4
    data: sentences
    lr: 3e-3
    batch_size: 2
    seq_len: 12
}

quantize weights "h.*" {
    bits: 2
    scale: learned
}

distill two_bit {
    steps: 3
    data: sentences
    lr: 1e-3
    batch_size: 2
    seq_len: 12
    loss logit_kl {}
}
"#;

/// A fresh folder with the data and `RECIPE`; returns it and the recipe.
fn setup(tag: &str) -> (PathBuf, PathBuf) {
    setup_with(tag, RECIPE)
}

/// A fresh folder with the data and the recipe `text`.
fn setup_with(tag: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = workdir(
        &format!("fault-{tag}"),
        &[("data/sentences.txt", SENTENCES)],
    );
    let recipe = write_recipe(&dir, text);
    (dir, recipe)
}

/// `plcc build recipe.pc -o out [--resume]` with `env` set, run in the
/// recipe's folder (so that every build records the same recipe path).
fn build(recipe: &Path, out: &Path, resume: bool, env: &[(&str, &str)]) -> Output {
    assert_eq!(out.parent(), recipe.parent());
    let name = |p: &Path| p.file_name().unwrap().to_os_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plcc"));
    cmd.current_dir(recipe.parent().unwrap());
    cmd.arg("build").arg(name(recipe)).arg("-o").arg(name(out));
    if resume {
        cmd.arg("--resume");
    }
    cmd.env_remove("PLCC_FAULT_KILL_AT")
        .env_remove("PLCC_CHECKPOINT_SECONDS")
        .env("PLCC_BUDGET_STEP_SECONDS", "1");
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// Checkpoints after every step.
const EVERY_STEP: (&str, &str) = ("PLCC_CHECKPOINT_SECONDS", "0");

/// The build killed at `point`, checked to have died by its own abort.
fn killed(recipe: &Path, out: &Path, resume: bool, point: &str) {
    let o = build(
        recipe,
        out,
        resume,
        &[EVERY_STEP, ("PLCC_FAULT_KILL_AT", point)],
    );
    assert_eq!(
        o.status.signal(),
        Some(6),
        "the build was to abort at {point}: {:?}\n{}",
        o.status,
        stderr(&o)
    );
}

/// `--resume`, checked to succeed; returns its stderr.
fn resumed(recipe: &Path, out: &Path) -> String {
    let o = build(recipe, out, true, &[EVERY_STEP]);
    assert!(o.status.success(), "{}", stderr(&o));
    stderr(&o)
}

/// The artifact of one unbroken build of the recipe `text`, shared by every
/// test of this file.
fn unbroken(text: &'static str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let count = built.len();
    built
        .entry(text)
        .or_insert_with(|| {
            let (dir, recipe) = setup_with(&format!("unbroken-{count}"), text);
            let out = dir.join("out");
            let o = build(&recipe, &out, false, &[]);
            assert!(o.status.success(), "{}", stderr(&o));
            assert!(!dir.join("out.training").exists());
            out
        })
        .clone()
}

/// Every file of the artifact `dir`, as compared (see the module header).
fn comparable(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        let bytes = match name.as_str() {
            "report.md" => Vec::new(),
            "loss.jsonl" => String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("tokens_per_s");
                    v.to_string() + "\n"
                })
                .collect::<String>()
                .into_bytes(),
            "report.json" => {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert!(v["fidelity"].is_object(), "{v}");
                let report = v.as_object_mut().unwrap();
                report.remove("stages");
                report.remove("notes");
                // The evaluation data's place: each build has its own folder.
                if let Some(source) = report["eval_source"].as_object_mut() {
                    source.remove("path");
                }
                let training = report["training"].as_object_mut().unwrap();
                training.remove("resumed");
                for stage in training["stages"].as_array_mut().unwrap() {
                    let stage = stage.as_object_mut().unwrap();
                    stage.remove("seconds");
                    stage.remove("eval_seconds");
                }
                serde_json::to_vec_pretty(&v).unwrap()
            }
            _ => bytes,
        };
        files.insert(name, bytes);
    }
    files
}

/// Asserts that `out` is the artifact of an unbroken build of `RECIPE`,
/// naming the files that differ.
fn assert_identical(out: &Path) {
    assert_identical_to(out, RECIPE)
}

/// Asserts that `out` is the artifact of an unbroken build of `text`.
fn assert_identical_to(out: &Path, text: &'static str) {
    let (want, got) = (comparable(&unbroken(text)), comparable(out));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the artifacts hold different files"
    );
    let differing: Vec<&String> = want
        .iter()
        .filter(|(name, bytes)| got[*name] != **bytes)
        .map(|(name, _)| name)
        .collect();
    assert!(
        differing.is_empty(),
        "{differing:?} differ from the unbroken build's"
    );
    assert!(
        !out.with_file_name("out.training").exists(),
        "the training folder is removed after success"
    );
}

fn checkpoints(out: &Path) -> PathBuf {
    out.with_file_name("out.training").join("checkpoints")
}

/// The checkpoint folders on disk, oldest first.
fn checkpoint_names(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(checkpoints(out))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    names
}

#[test]
fn killed_before_the_first_checkpoint_the_resume_starts_over() {
    let (dir, recipe) = setup("early");
    let out = dir.join("out");
    // The default interval (5 minutes) takes no checkpoint in two steps.
    let o = build(&recipe, &out, false, &[("PLCC_FAULT_KILL_AT", "step:2")]);
    assert_eq!(o.status.signal(), Some(6), "{}", stderr(&o));
    assert!(!checkpoints(&out).join("latest").exists());
    let err = resumed(&recipe, &out);
    assert!(
        err.contains("note: --resume found no usable checkpoint")
            && err.contains("from the beginning"),
        "{err}"
    );
    assert_identical(&out);
}

#[test]
fn killed_mid_stage_at_seeded_steps_the_resume_is_identical() {
    let (dir, recipe) = setup("mid");
    let out = dir.join("out");
    // Seeded kill moments (global steps): one in the first stage (3 or 4
    // of 5), then one in the second (6 or 7 of 8). A kill at a step comes
    // after the step and before its checkpoint.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut coin = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 2) as usize
    };
    let kill_at = [3 + coin(), 6 + coin()];
    killed(&recipe, &out, false, &format!("step:{}", kill_at[0]));
    // Taken after every step, the two newest checkpoints are kept.
    let names = checkpoint_names(&out);
    assert_eq!(names.len(), 2, "{names:?}");
    let latest = std::fs::read_to_string(checkpoints(&out).join("latest")).unwrap();
    assert_eq!(latest, names[1]);
    assert_eq!(latest, format!("step-{:08}-0", kill_at[0] - 1));

    // The resumed run, from global step kill_at[0] - 1, counts its own steps.
    let again = kill_at[1] - (kill_at[0] - 1);
    killed(&recipe, &out, true, &format!("step:{again}"));
    let err = resumed(&recipe, &out);
    assert!(err.contains("note: resumed from checkpoint"), "{err}");
    assert_identical(&out);
}

#[test]
fn killed_while_writing_a_checkpoint_the_resume_is_identical() {
    for point in ["checkpoint-write:3", "checkpoint-latest:4"] {
        let (dir, recipe) = setup(&point.replace(':', "-"));
        let out = dir.join("out");
        killed(&recipe, &out, false, point);
        let err = resumed(&recipe, &out);
        assert!(
            err.contains("note: resumed from checkpoint"),
            "{point}: {err}"
        );
        assert_identical(&out);
    }
}

#[test]
fn killed_while_writing_the_artifact_the_resume_is_identical() {
    for point in ["artifact-write", "artifact-commit"] {
        let (dir, recipe) = setup(point);
        let out = dir.join("out");
        killed(&recipe, &out, false, point);
        assert_eq!(out.exists(), point == "artifact-commit", "{point}");
        let err = resumed(&recipe, &out);
        assert!(
            err.contains("note: resumed from checkpoint")
                && err.contains("the end of stage `second`"),
            "{point}: {err}"
        );
        assert_identical(&out);
    }
}

#[test]
fn a_damaged_latest_checkpoint_is_passed_over_for_the_one_before() {
    for damage in ["truncate", "flip"] {
        let (dir, recipe) = setup(&format!("damaged-{damage}"));
        let out = dir.join("out");
        killed(&recipe, &out, false, "step:4");
        let latest = std::fs::read_to_string(checkpoints(&out).join("latest")).unwrap();
        let state = checkpoints(&out).join(&latest).join("state.safetensors");
        let mut bytes = std::fs::read(&state).unwrap();
        match damage {
            "truncate" => bytes.truncate(bytes.len() / 2),
            _ => {
                let last = bytes.len() - 1;
                bytes[last] ^= 0x10;
            }
        }
        std::fs::write(&state, bytes).unwrap();
        let err = resumed(&recipe, &out);
        assert!(
            err.contains(&format!(
                "note: skipped checkpoint `out.training/checkpoints/{latest}`: `state.safetensors`"
            )) && err.contains("does not match its recorded SHA-256"),
            "{damage}: {err}"
        );
        assert!(
            err.contains("resumed from checkpoint") && err.contains("step-00000002-0"),
            "{damage}: {err}"
        );
        assert_identical(&out);
    }
}

#[test]
fn a_rerun_without_resume_says_what_it_discards() {
    let (dir, recipe) = setup("discard");
    let out = dir.join("out");
    killed(&recipe, &out, false, "step:3");
    let o = build(&recipe, &out, false, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "note: discarded the training folder `out.training` of an earlier build \
             (its latest checkpoint was taken at stage `first` step 2 (global step 2))"
        ),
        "{err}"
    );
    assert_identical(&out);
}

/// Every file under `dir` with its bytes, paths relative to `dir`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path.clone());
            }
            let bytes = if path.is_dir() {
                Vec::new()
            } else {
                std::fs::read(&path).unwrap()
            };
            files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
        }
    }
    files
}

#[test]
fn a_foreign_training_folder_is_refused_and_left_alone() {
    let (dir, recipe) = setup("foreign");
    let out = dir.join("out");
    let foreign = dir.join("out.training");
    std::fs::create_dir_all(foreign.join("checkpoints")).unwrap();
    std::fs::write(foreign.join("loss.jsonl"), "mine\n").unwrap();
    std::fs::write(foreign.join("checkpoints/notes.txt"), "my notes\n").unwrap();
    let before = tree(&foreign);
    for resume in [false, true] {
        let o = build(&recipe, &out, resume, &[]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("plcc::build::training-dir-not-ours")
                && err.contains("checkpoints/notes.txt"),
            "{err}"
        );
        assert_eq!(tree(&foreign), before, "the foreign folder was changed");
        assert!(!out.exists());
    }
}

#[test]
fn a_pretrained_teacher_resumes_from_any_checkpoint() {
    let (dir, recipe) = setup_with("gpt", GPT_RECIPE);
    let out = dir.join("out");
    // Mid-pretraining: the checkpoints hold no teacher yet.
    killed(&recipe, &out, false, "step:2");
    // Resumed from global step 1, killed after the first distillation step
    // (global 5): the latest checkpoint is the end of pretraining, with the
    // teacher's tensors.
    killed(&recipe, &out, true, "step:4");
    let latest = std::fs::read_to_string(checkpoints(&out).join("latest")).unwrap();
    assert_eq!(latest, "step-00000004-0");
    let teacher = checkpoints(&out).join(&latest).join("teacher.safetensors");
    let mut bytes = std::fs::read(&teacher).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&teacher, bytes).unwrap();
    let err = resumed(&recipe, &out);
    assert!(
        err.contains("`teacher.safetensors` does not match its recorded SHA-256")
            && err.contains("resumed from checkpoint `out.training/checkpoints/step-00000003-0`"),
        "{err}"
    );
    assert_identical_to(&out, GPT_RECIPE);
}

#[test]
fn a_bad_checkpoint_interval_is_a_diagnostic() {
    let (dir, recipe) = setup("interval");
    let out = dir.join("out");
    let o = build(&recipe, &out, false, &[("PLCC_CHECKPOINT_SECONDS", "soon")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("plcc::train::checkpoint-seconds")
            && err.contains("PLCC_CHECKPOINT_SECONDS is `soon`"),
        "{err}"
    );
    assert!(!out.exists());
}
