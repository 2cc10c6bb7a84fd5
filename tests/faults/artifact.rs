//! Faults injected into a built artifact: seeded bit flips and truncations
//! of every file, a missing manifest, manifest fields out of range (written
//! with a valid seal, as a faulty plcc would), an old format version, and a
//! teacher changed after the build. Each is a diagnostic naming what is
//! wrong (exit 1, never a panic), except changes to the report files, which
//! loading does not read.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use plcc::artifact::{encode_manifest, read_manifest, ActivationQuant, Manifest, Storage};
use plcc::base::{Granularity, WeightInputs};

use crate::support::plcc::{build, plcc, stderr, workdir, write_recipe};

const LINES: &str = "the cat sat on the mat\na quiet street\ndogs bark at night\n";

/// Pruned, 4-bit FFN weights, 8-bit activations on the FFN output, exits.
const RECIPE: &str = r#"
teacher: "builtin:tiny-bert"
task: embedding
seed: 7
eval: held
data held "data/sentences.txt" {}
prune {
    heads: 2
    ffn: 64
}
quantize weights "encoder.layer.*.intermediate.dense" {
    bits: 4
}
quantize activations "encoder.layer.*.output.dense" {
    bits: 8
}
exits {
    after: [2]
    criterion: similarity
}
"#;

/// Files of the artifact that loading never reads.
const NOT_LOADED: [&str; 3] = ["report.json", "report.md", "report.svg"];

/// The folder of the built artifact, its input file and its builds (built once).
fn built() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = workdir("fault-artifact", &[("data/sentences.txt", LINES)]);
        let recipe = write_recipe(&dir, RECIPE);
        let out = dir.join("artifact");
        let o = build(&recipe, &out, "0");
        assert!(o.status.success(), "{}", stderr(&o));
        let input = dir.join("input.txt");
        std::fs::write(&input, LINES).unwrap();
        (out, input)
    })
}

/// A fresh copy of the built artifact in `tag`.
fn copy_artifact(tag: &str) -> PathBuf {
    let (out, _) = built();
    let copy = out.with_file_name(format!("copy-{tag}"));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(out).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    copy
}

/// xorshift64: a seeded, reproducible sequence of positions.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// One change to one file.
#[derive(Debug, Clone, Copy)]
enum Fault {
    FlipBit { byte: usize, bit: u8 },
    TruncateTo(usize),
}

impl Fault {
    fn apply(self, path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        match self {
            Fault::FlipBit { byte, bit } => bytes[byte] ^= 1 << bit,
            Fault::TruncateTo(len) => bytes.truncate(len),
        }
        std::fs::write(path, bytes).unwrap();
    }
}

/// Three seeded bit flips and two truncations (to nothing and to a seeded
/// length) of a file of `len` bytes.
fn faults(rng: &mut XorShift, len: usize) -> Vec<Fault> {
    let mut faults: Vec<Fault> = (0..3)
        .map(|_| Fault::FlipBit {
            byte: rng.below(len),
            bit: rng.below(8) as u8,
        })
        .collect();
    faults.push(Fault::TruncateTo(0));
    faults.push(Fault::TruncateTo(rng.below(len)));
    faults
}

fn run_model(dir: &Path) -> Output {
    let (_, input) = built();
    plcc(&[
        "run",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ])
}

fn bench_model(dir: &Path) -> Output {
    let (_, input) = built();
    plcc(&[
        "bench",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--json",
    ])
}

/// Asserts that `o` is a diagnostic (exit 1, no panic) whose text holds every one of `needles`.
fn assert_diagnostic(o: &Output, needles: &[&str], context: &str) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{context}: {err}");
    assert_eq!(o.status.code(), Some(1), "{context}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{context}: no `{needle}` in {err}");
    }
}

#[test]
fn every_changed_or_truncated_file_that_loading_reads_is_named() {
    let (out, _) = built();
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for expected in ["manifest.json", "model.safetensors", "tokenizer.json"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for name in &names {
        let len = std::fs::metadata(out.join(name)).unwrap().len() as usize;
        for (i, fault) in faults(&mut rng, len).into_iter().enumerate() {
            let copy = copy_artifact(&format!("{name}-{i}"));
            fault.apply(&copy.join(name));
            let context = format!("{fault:?} of {name}");
            for o in [run_model(&copy), bench_model(&copy)] {
                if NOT_LOADED.contains(&name.as_str()) {
                    assert!(o.status.success(), "{context}: {}", stderr(&o));
                } else {
                    assert_diagnostic(&o, &[&format!("`{name}`")], &context);
                }
            }
            std::fs::remove_dir_all(&copy).unwrap();
        }
    }
}

#[test]
fn a_file_that_is_missing_is_named() {
    for name in ["model.safetensors", "tokenizer.json"] {
        let copy = copy_artifact(&format!("missing-{name}"));
        std::fs::remove_file(copy.join(name)).unwrap();
        assert_diagnostic(
            &run_model(&copy),
            &["plcc::artifact::missing-file", &format!("`{name}`")],
            name,
        );
    }
}

#[test]
fn calibrate_checks_the_artifact_it_loads() {
    let copy = copy_artifact("calibrate");
    Fault::FlipBit { byte: 100, bit: 2 }.apply(&copy.join("model.safetensors"));
    let (_, input) = built();
    let o = plcc(&[
        "calibrate",
        copy.to_str().unwrap(),
        "--data",
        input.to_str().unwrap(),
        "--target",
        "avg_layer=3",
    ]);
    assert_diagnostic(
        &o,
        &["plcc::artifact::file-changed", "`model.safetensors`"],
        "calibrate",
    );
}

#[test]
fn a_missing_manifest_says_the_folder_is_not_an_artifact() {
    let copy = copy_artifact("no-manifest");
    std::fs::remove_file(copy.join("manifest.json")).unwrap();
    let o = run_model(&copy);
    assert_diagnostic(
        &o,
        &["plcc::artifact::missing-manifest", "not a plcc artifact"],
        "no manifest",
    );
    assert!(!stderr(&o).contains("missing-config"), "{}", stderr(&o));
    // The library says the same.
    let e = plcc::artifact::Artifact::open(&copy).unwrap_err();
    assert_eq!(e.code, "plcc::artifact::missing-manifest");
}

/// Writes `change`d manifest into a copy of the artifact, sealed as plcc
/// seals it, and returns the copy.
fn with_manifest(tag: &str, change: impl FnOnce(&mut Manifest)) -> PathBuf {
    let copy = copy_artifact(tag);
    let mut manifest = read_manifest(&copy).unwrap();
    change(&mut manifest);
    std::fs::write(
        copy.join("manifest.json"),
        encode_manifest(&manifest).unwrap(),
    )
    .unwrap();
    copy
}

#[test]
fn manifest_fields_out_of_range_are_located_diagnostics() {
    let exit_99 = with_manifest("exit-99", |m| m.exits[0].after = 99);
    let unknown_module = with_manifest("unknown-module", |m| {
        m.activation_quant.insert(
            "encoder.layer.0.no_such_module".into(),
            ActivationQuant {
                bits: 8,
                symmetric: true,
                granularity: Granularity::Token,
                kernel: false,
            },
        );
    });
    let layer_map_99 = with_manifest("layer-map-99", |m| m.layer_map[0] = 99);
    let bad_bits = with_manifest("bad-bits", |m| {
        if let Some(q) = m.activation_quant.values_mut().next() {
            q.bits = 3;
        }
    });
    let moved_exit = with_manifest("moved-exit", |m| m.exits[0].after = 3);
    // An activation quantizer on a module whose weight keeps float inputs.
    let weight_only_quantized = with_manifest("weight-only-quantized", |m| {
        let record = m
            .weights
            .get_mut("encoder.layer.0.intermediate.dense.weight")
            .unwrap();
        let Storage::Packed { inputs, .. } = &mut record.storage else {
            panic!("the FFN input is packed")
        };
        *inputs = WeightInputs::Float;
    });
    for (dir, needles) in [
        (&exit_99, vec!["`exits[0].after` is 99", "layers 1 to 4"]),
        (
            &unknown_module,
            vec!["`activation_quant.encoder.layer.0.no_such_module`"],
        ),
        (&layer_map_99, vec!["`layer_map[0]` is 99"]),
        (&bad_bits, vec!["bits` is 3"]),
        (&moved_exit, vec!["`weights.exit.2."]),
        (
            &weight_only_quantized,
            vec![
                "`activation_quant.encoder.layer.0.intermediate.dense`",
                "keeps them float",
            ],
        ),
    ] {
        let mut all = vec!["plcc::artifact::bad-field", "manifest.json"];
        all.extend(needles);
        assert_diagnostic(&run_model(dir), &all, &dir.display().to_string());
    }
}

#[test]
fn a_hand_edited_manifest_is_refused_and_an_old_one_asks_for_a_rebuild() {
    let edited = copy_artifact("edited");
    let path = edited.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["exits"][0]["threshold"] = 0.5.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    assert_diagnostic(
        &run_model(&edited),
        &[
            "plcc::artifact::file-changed",
            "`manifest.json`",
            "plcc calibrate",
        ],
        "edited threshold",
    );

    let old = copy_artifact("old");
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["format_version"] = 1.into();
    value.as_object_mut().unwrap().remove("manifest_sha256");
    std::fs::write(
        old.join("manifest.json"),
        serde_json::to_vec_pretty(&value).unwrap(),
    )
    .unwrap();
    assert_diagnostic(
        &run_model(&old),
        &["plcc::artifact::version", "version 1", "plcc build"],
        "version 1",
    );
}

/// A checkpoint folder made from the parity fixture `bert-odd` with a
/// WordPiece tokenizer over its vocabulary.
fn teacher_checkpoint(dir: &Path) -> PathBuf {
    let teacher = dir.join("teacher");
    std::fs::create_dir_all(&teacher).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/bert-odd");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), teacher.join(f)).unwrap();
    }
    let tokenizer = plcc::text::tokenizer::builtin_wordpiece(301).unwrap();
    std::fs::write(
        teacher.join("tokenizer.json"),
        tokenizer.inner.to_string(false).unwrap(),
    )
    .unwrap();
    teacher
}

#[test]
fn bench_refuses_a_teacher_that_changed_after_the_build() {
    let dir = workdir("fault-teacher", &[("data/sentences.txt", LINES)]);
    let teacher = teacher_checkpoint(&dir);
    let recipe = write_recipe(
        &dir,
        "teacher: \"teacher\"\ntask: embedding\neval: held\n\
         data held \"data/sentences.txt\" {}\nprune {\n    ffn: 64\n}\n",
    );
    let out = dir.join("artifact");
    let o = build(&recipe, &out, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bench_model(&out);
    assert!(o.status.success(), "{}", stderr(&o));

    // Other weights at the teacher's path.
    let weights = teacher.join("model.safetensors");
    let original = std::fs::read(&weights).unwrap();
    let mut changed = original.clone();
    let n = changed.len();
    changed[n - 5] ^= 0x10;
    std::fs::write(&weights, &changed).unwrap();
    let recorded = read_manifest(&out).unwrap().source.checkpoint_sha256;
    let found = plcc::base::sha256_hex(&changed);
    assert_diagnostic(
        &bench_model(&out),
        &[
            "plcc::bench::teacher-changed",
            &weights.display().to_string(),
            &recorded,
            &found,
        ],
        "changed teacher",
    );

    // The artifact itself where the teacher was.
    std::fs::remove_dir_all(&teacher).unwrap();
    std::fs::create_dir_all(&teacher).unwrap();
    for entry in std::fs::read_dir(&out).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), teacher.join(entry.file_name())).unwrap();
    }
    assert_diagnostic(
        &bench_model(&out),
        &["plcc::bench::teacher-changed"],
        "artifact as its own teacher",
    );
    // Named explicitly, any model is compared.
    let (_, input) = built();
    let o = plcc(&[
        "bench",
        out.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--against",
        teacher.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}
