//! The sentence-transformers pipeline of a checkpoint (`modules.json`:
//! pooling, then Normalize) is what `plcc run` returns for the checkpoint,
//! what an artifact built from it records and returns, and what its ONNX
//! export's `sentence_embedding` is; `--raw` gives the plain mean.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::support::plcc::{build, plcc, stderr, workdir, write_recipe};
use crate::support::run::run_lines;

const LINES: &str =
    "A man is playing a guitar.\nThe weather is cold today.\nCompilers make models smaller.\n";

fn minilm() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: run scripts/fetch-minilm.sh to fetch all-MiniLM-L6-v2 (CI does)");
        None
    }
}

/// all-MiniLM-L6-v2's weights and tokenizer with a pipeline of CLS pooling
/// and Normalize.
fn cls_checkpoint(minilm: &Path, dir: &Path) -> PathBuf {
    let ckpt = dir.join("checkpoint");
    std::fs::create_dir_all(ckpt.join("1_Pooling")).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        if std::fs::hard_link(minilm.join(f), ckpt.join(f)).is_err() {
            std::fs::copy(minilm.join(f), ckpt.join(f)).unwrap();
        }
    }
    std::fs::write(
        ckpt.join("modules.json"),
        r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
            {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
    )
    .unwrap();
    std::fs::write(
        ckpt.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
    )
    .unwrap();
    ckpt
}

fn embeddings(records: &[serde_json::Value]) -> Vec<Vec<f64>> {
    records
        .iter()
        .map(|r| {
            r["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (norm(a) * norm(b))
}

#[test]
fn the_checkpoint_pipeline_is_run_recorded_and_exported() {
    let Some(minilm) = minilm() else { return };
    let dir = workdir("pipeline", &[("data/eval.txt", LINES)]);
    let ckpt = cls_checkpoint(&minilm, &dir);

    // The checkpoint: CLS pooled, unit length; --raw: the mean, not normalized.
    let piped = embeddings(&run_lines(&ckpt, &dir, LINES));
    let input = dir.join("input.txt");
    let o = plcc(&[
        "run",
        ckpt.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--raw",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let raw: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let raw = embeddings(&raw);
    for (p, r) in piped.iter().zip(&raw) {
        assert!((norm(p) - 1.0).abs() < 1e-5, "length {}", norm(p));
        assert!((norm(r) - 1.0).abs() > 0.1, "raw length {}", norm(r));
        assert!(
            cosine(p, r) < 0.99,
            "CLS and mean pooling agree: {}",
            cosine(p, r)
        );
    }

    // An artifact built from it records the pipeline and returns the same.
    let recipe = write_recipe(
        &dir,
        "teacher: \"checkpoint\"\ntask: embedding\npooling: cls\neval: e\n\
         data e \"data/eval.txt\" {}\n\
         quantize weights \"encoder.layer.*\" { bits: 8 }\n",
    );
    let artifact = dir.join("artifact");
    let o = build(&recipe, &artifact, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(artifact.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["pipeline"],
        serde_json::json!({"pooling": "Cls", "normalize": true})
    );
    let from_artifact = embeddings(&run_lines(&artifact, &dir, LINES));
    for (a, p) in from_artifact.iter().zip(&piped) {
        assert!((norm(a) - 1.0).abs() < 1e-5, "artifact length {}", norm(a));
        assert!(
            cosine(a, p) > 0.99,
            "artifact against checkpoint: {}",
            cosine(a, p)
        );
    }

    // The ONNX export's sentence embedding is the artifact's.
    let out = dir.join("onnx");
    let o = plcc(&[
        "export",
        artifact.to_str().unwrap(),
        "--format",
        "onnx",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = plcc::export::onnx::proto::ModelProto::decode(
        std::fs::read(out.join("model.onnx")).unwrap().as_slice(),
    )
    .unwrap();
    let first = LINES.lines().next().unwrap();
    let feeds = crate::onnx_eval::feeds(&out.join("tokenizer.json"), &[first]);
    let outputs = crate::onnx_eval::evaluate(&model, feeds);
    let onnx: Vec<Vec<f64>> = outputs["sentence_embedding"].to_vec2().unwrap();
    assert!(
        (norm(&onnx[0]) - 1.0).abs() < 1e-6,
        "export length {}",
        norm(&onnx[0])
    );
    assert!(
        cosine(&onnx[0], &from_artifact[0]) > 0.999,
        "{}",
        cosine(&onnx[0], &from_artifact[0])
    );
}
