//! Hostile and broken inputs: config.json fields outside their limits, FIFOs
//! where files are expected, checkpoints with relabelled dtypes or NaN
//! weights, missing teacher files, invalid UTF-8, over-long inputs, too many
//! threads, and seeded random bytes as config, safetensors header, tokenizer
//! and data. Every run is a child `plcc` process with a deadline: it must end
//! in time with exit 1 and a diagnostic code, never a panic, an abort or a hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support;
use crate::support::diagnostics::unwrapped;
use crate::support::fixtures::fixture;
use crate::support::plcc::{stderr, workdir, write_recipe};

/// Every child must finish within this; a blocked read would overrun it.
const DEADLINE: Duration = Duration::from_secs(60);

const PAIRS: &str = "the cat sleeps\ta cat naps\t1\nthe train leaves\tbananas are yellow\t0\n";

/// A recipe over the checkpoint folder `teacher` next to it.
const RECIPE: &str = r#"
teacher: "teacher"
task: classification
labels: 2
eval: pairs
keep_layers: [0, 2]

data pairs "data/pairs.tsv" {
    text: 0
    text_pair: 1
    label: 2
}
"#;

/// A working folder with the recipe, its data, and `teacher/` holding the
/// small BERT fixture's config.json and, when `weights`, its model.safetensors.
fn with_teacher(tag: &str, weights: bool) -> PathBuf {
    let dir = workdir(
        &format!("fault-{tag}"),
        &[("recipe.pc", RECIPE), ("data/pairs.tsv", PAIRS)],
    );
    let teacher = dir.join("teacher");
    std::fs::create_dir_all(&teacher).unwrap();
    let mut files = vec!["config.json"];
    if weights {
        files.push("model.safetensors");
    }
    for f in files {
        std::fs::copy(fixture(&format!("parity/bert-odd/{f}")), teacher.join(f)).unwrap();
    }
    dir
}

/// Runs the `plcc` binary with `args`; fails the test (after killing the
/// child) when it runs past `deadline`, so a blocked read cannot hang the suite.
fn plcc_within(args: &[&str], deadline: std::time::Duration) -> Output {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`plcc {}` ran past {deadline:?}", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn run(args: &[&Path]) -> Output {
    let args: Vec<&str> = args.iter().map(|p| p.to_str().unwrap()).collect();
    plcc_within(&args, DEADLINE)
}

/// `plcc check DIR/recipe.pc`.
fn check(dir: &Path) -> Output {
    run(&[Path::new("check"), &dir.join("recipe.pc")])
}

/// `plcc run MODEL --input INPUT`.
fn run_model(model: &Path, input: &Path) -> Output {
    run(&[Path::new("run"), model, Path::new("--input"), input])
}

/// Asserts exit 1 with `code` on stderr and no panic; returns stderr with
/// the renderer's line wrapping undone (one space between words).
fn fails_with(o: &Output, code: &str) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1 with {code}: {err}"
    );
    assert!(err.contains(code), "expected {code}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    unwrapped(&err)
}

/// Replaces `"key": old` in the teacher's config.json.
fn set_config(dir: &Path, key: &str, old: &str, new: &str) {
    let path = dir.join("teacher/config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let (from, to) = (format!("\"{key}\": {old}"), format!("\"{key}\": {new}"));
    assert!(text.contains(&from), "{from}");
    std::fs::write(&path, text.replace(&from, &to)).unwrap();
}

#[test]
fn config_sizes_outside_their_limits_name_field_value_and_limit() {
    let cases = [
        (
            "num_hidden_layers",
            "3",
            "1000000000000",
            "above the limit of 1024",
        ),
        (
            "num_hidden_layers",
            "3",
            "1000000",
            "above the limit of 1024",
        ),
        ("num_hidden_layers", "3", "0", "below the minimum of 1"),
        ("hidden_size", "80", "0", "below the minimum of 1"),
        ("intermediate_size", "136", "0", "below the minimum of 1"),
        (
            "vocab_size",
            "301",
            "100000000000",
            "above the limit of 10000000",
        ),
        (
            "max_position_embeddings",
            "64",
            "0",
            "below the minimum of 1",
        ),
        ("type_vocab_size", "2", "0", "below the minimum of 1"),
        (
            "layer_norm_eps",
            "1e-12",
            "-1",
            "outside the accepted range (0, 1]",
        ),
        ("num_attention_heads", "5", "7", "is not divisible by"),
    ];
    for (key, old, new, expected) in cases {
        let dir = with_teacher("limits", true);
        set_config(&dir, key, old, new);
        let start = std::time::Instant::now();
        let err = fails_with(&check(&dir), "plcc::config::out-of-range");
        assert!(err.contains(key) && err.contains(expected), "{key}: {err}");
        assert!(!err.contains("bug in plcc"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{key} = {new} took {:?}",
            start.elapsed()
        );
    }
    // The field is located in the file: line 21 of the fixture.
    let dir = with_teacher("located", true);
    set_config(&dir, "num_hidden_layers", "3", "0");
    let err = fails_with(&check(&dir), "plcc::config::out-of-range");
    assert!(err.contains("teacher/config.json:21:3"), "{err}");
}

#[test]
fn fifos_are_refused_without_blocking() {
    let mkfifo = |path: &Path| {
        let _ = std::fs::remove_file(path);
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {}", path.display());
    };
    // As config.json, model.safetensors and tokenizer.json, through check.
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        let dir = with_teacher("fifo", true);
        mkfifo(&dir.join("teacher").join(file));
        let err = fails_with(&check(&dir), "plcc::io::not-a-file");
        assert!(err.contains("FIFO"), "{file}: {err}");
    }
    // As the weights of `plcc run`.
    let dir = with_teacher("fifo-run", true);
    mkfifo(&dir.join("teacher/model.safetensors"));
    std::fs::write(dir.join("input.txt"), "hello\n").unwrap();
    fails_with(
        &run_model(&dir.join("teacher"), &dir.join("input.txt")),
        "plcc::io::not-a-file",
    );
    // As the recipe itself.
    let recipe = dir.join("fifo.pc");
    mkfifo(&recipe);
    fails_with(&run(&[Path::new("check"), &recipe]), "plcc::io::not-a-file");
    // As the input lines of `plcc run`.
    let input = dir.join("fifo.txt");
    mkfifo(&input);
    fails_with(
        &run_model(Path::new("builtin:tiny-bert"), &input),
        "plcc::io::not-a-file",
    );
    // As a data set of `plcc build`.
    let dir = builtin_teacher(with_teacher("fifo-data", false));
    mkfifo(&dir.join("data/pairs.tsv"));
    fails_with(&build(&dir), "plcc::io::not-a-file");
}

#[test]
fn check_fails_when_the_teachers_weights_or_tokenizer_are_missing() {
    let dir = with_teacher("no-weights", false);
    let err = fails_with(&check(&dir), "plcc::checkpoint::missing-weights");
    assert!(err.contains("model.safetensors"), "{err}");
    let dir = with_teacher("no-tokenizer", true);
    let err = fails_with(&check(&dir), "plcc::checkpoint::missing-tokenizer");
    assert!(err.contains("tokenizer.json"), "{err}");
    // With all three files check goes on to the weights' header: this
    // classification checkpoint has no classifier head.
    std::fs::write(dir.join("teacher/tokenizer.json"), "{}").unwrap();
    let err = fails_with(&check(&dir), "plcc::checkpoint::no-classifier");
    assert!(!err.contains("missing-tokenizer"), "{err}");
}

/// The safetensors file of the BERT fixture, its header and the byte where
/// the data starts.
fn safetensors_fixture() -> (Vec<u8>, serde_json::Value, usize) {
    let bytes = std::fs::read(fixture("parity/bert-odd/model.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    (bytes, header, 8 + len)
}

const TENSOR: &str = "encoder.layer.1.output.dense.weight";

#[test]
fn a_weight_relabelled_as_integers_is_named() {
    let (mut bytes, header, data_start) = safetensors_fixture();
    let text = String::from_utf8(bytes[8..data_start].to_vec()).unwrap();
    let entry = serde_json::to_string(&header[TENSOR]).unwrap();
    assert!(entry.contains("\"F32\""), "{entry}");
    let at = text.find(&format!("\"{TENSOR}\"")).unwrap();
    let dtype = at + text[at..].find("\"F32\"").unwrap();
    bytes[8 + dtype + 1] = b'I';
    let dir = with_teacher("relabelled", true);
    std::fs::write(dir.join("teacher/model.safetensors"), &bytes).unwrap();
    std::fs::write(dir.join("input.txt"), "hello\n").unwrap();
    let err = fails_with(
        &run_model(&dir.join("teacher"), &dir.join("input.txt")),
        "plcc::checkpoint::bad-dtype",
    );
    assert!(err.contains(TENSOR) && err.contains("I32"), "{err}");
}

#[test]
fn nan_weights_are_named_at_load() {
    let (mut bytes, header, data_start) = safetensors_fixture();
    let begin = header[TENSOR]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = data_start + begin + 4 * 5;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let dir = with_teacher("nan", true);
    std::fs::write(dir.join("teacher/model.safetensors"), &bytes).unwrap();
    std::fs::write(dir.join("input.txt"), "hello\n").unwrap();
    let err = fails_with(
        &run_model(&dir.join("teacher"), &dir.join("input.txt")),
        "plcc::checkpoint::non-finite",
    );
    assert!(err.contains(TENSOR) && err.contains("element 5"), "{err}");
    assert!(
        !err.contains("learning rate") && !err.contains("`lr`"),
        "{err}"
    );
}

#[test]
fn invalid_utf8_in_inputs_and_data_names_the_line() {
    let dir = with_teacher("utf8", false);
    let input = dir.join("input.txt");
    std::fs::write(&input, b"first line\nsecond \xff line\n").unwrap();
    let err = fails_with(
        &run_model(Path::new("builtin:tiny-bert"), &input),
        "plcc::run::invalid-utf8",
    );
    assert!(err.contains("line 2, column 8"), "{err}");

    // A data set of a build.
    let dir = builtin_teacher(with_teacher("utf8-data", false));
    std::fs::write(
        dir.join("data/pairs.tsv"),
        b"a\tb\t1\nc\td\t0\ne \xc3\x28\tf\t1\n",
    )
    .unwrap();
    let err = fails_with(&build(&dir), "plcc::data::invalid-utf8");
    assert!(err.contains("line 3, column 3"), "{err}");
}

#[test]
fn inputs_longer_than_the_model_are_cut_with_one_note() {
    let dir = with_teacher("long", false);
    let input = dir.join("input.txt");
    let long = "word ".repeat(400);
    std::fs::write(&input, format!("short\n{long}\n{long}\n")).unwrap();
    let o = run_model(Path::new("builtin:tiny-bert"), &input);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("note:").count(), 1, "{err}");
    assert!(
        err.contains("2 of 3 inputs are longer than 128 tokens"),
        "{err}"
    );
}

#[test]
fn build_examples_longer_than_read_are_counted_in_notes() {
    let long = "word ".repeat(200);
    let dir = workdir(
        "fault-inputs-long-build",
        &[(
            "data/sentences.txt",
            &format!("a short one\n{long}\nanother short one\n{long}end\n"),
        )],
    );
    let recipe = write_recipe(
        &dir,
        r#"
teacher: "builtin:tiny-bert"
task: embedding
pooling: mean
keep_layers: [0, 2]
data s "data/sentences.txt" {}
distill d {
    steps: 1
    data: s
    batch_size: 4
    seq_len: 16
    loss cosine {}
}
"#,
    );
    let o = support::plcc::build(&recipe, &dir.join("out"), "1");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("stage `d`: 2 of 4 examples are longer than 16 tokens"),
        "{err}"
    );
    assert!(
        err.contains(
            "2 of 4 examples of `s` are longer than 128 tokens; fidelity compares their first 128"
        ),
        "{err}"
    );
}

#[test]
fn threads_beyond_the_cores_are_capped_with_a_note() {
    let dir = with_teacher("threads", false);
    let input = dir.join("input.txt");
    std::fs::write(&input, "hello\n").unwrap();
    let input = input.to_str().unwrap();
    let o = plcc_within(
        &[
            "run",
            "builtin:tiny-bert",
            "--input",
            input,
            "--threads",
            "100000",
        ],
        DEADLINE,
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("--threads 100000 is more than the") && err.contains("cores"),
        "{err}"
    );
}

/// Points the recipe in `dir` at `builtin:tiny-bert` (4 layers) instead.
fn builtin_teacher(dir: PathBuf) -> PathBuf {
    let recipe = RECIPE
        .replace("\"teacher\"", "\"builtin:tiny-bert\"")
        .replace("[0, 2]", "[0, 3]");
    std::fs::write(dir.join("recipe.pc"), recipe).unwrap();
    dir
}

/// `plcc build DIR/recipe.pc --max-steps 0 -o DIR/out`.
fn build(dir: &Path) -> Output {
    run(&[
        Path::new("build"),
        &dir.join("recipe.pc"),
        Path::new("--max-steps"),
        Path::new("0"),
        Path::new("-o"),
        &dir.join("out"),
    ])
}

/// xorshift64: deterministic random bytes without a dependency.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Asserts a clean diagnostic: exit 1, a `plcc::` code, no panic.
fn diagnosed(o: &Output, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    assert!(err.contains("plcc::"), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

#[test]
fn random_bytes_as_inputs_are_diagnostics() {
    for seed in 1..=4u64 {
        let len = 64 + 97 * seed as usize;
        // As config.json, through check.
        let dir = with_teacher("random-config", true);
        std::fs::write(dir.join("teacher/config.json"), random_bytes(seed, len)).unwrap();
        diagnosed(&check(&dir), "random config.json");

        // As the header of model.safetensors (with a length that fits).
        let dir = with_teacher("random-header", true);
        let header = random_bytes(seed, len);
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(&header);
        file.extend(random_bytes(seed + 100, 256));
        std::fs::write(dir.join("teacher/model.safetensors"), file).unwrap();
        std::fs::write(dir.join("input.txt"), "hello\n").unwrap();
        diagnosed(
            &run_model(&dir.join("teacher"), &dir.join("input.txt")),
            "random safetensors header",
        );
        // Check reads the header too.
        std::fs::write(dir.join("teacher/tokenizer.json"), "{}").unwrap();
        let err = fails_with(&check(&dir), "plcc::checkpoint::");
        assert!(err.contains("model.safetensors"), "{err}");

        // As tokenizer.json of an otherwise good checkpoint.
        let dir = with_teacher("random-tokenizer", true);
        std::fs::write(dir.join("teacher/tokenizer.json"), random_bytes(seed, len)).unwrap();
        std::fs::write(dir.join("input.txt"), "hello\n").unwrap();
        diagnosed(
            &run_model(&dir.join("teacher"), &dir.join("input.txt")),
            "random tokenizer.json",
        );

        // As the data set of a build.
        let dir = builtin_teacher(with_teacher("random-data", false));
        std::fs::write(dir.join("data/pairs.tsv"), random_bytes(seed, len)).unwrap();
        diagnosed(&build(&dir), "random data file");
    }
}
