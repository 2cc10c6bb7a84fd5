//! `plcc export --format onnx`: the graph written for a pruned, factorized,
//! quantized tiny BERT computes what `plcc run` computes (checked with the
//! reference evaluator in `onnx_eval`), its weights stay packed, and
//! the export directory is written only where an export may go.

use std::path::Path;
use std::process::Output;

use plcc::export::onnx::proto::{data_type, ModelProto};
use prost::Message;

use crate::onnx_eval::{evaluate, feeds};
use crate::support::plcc::{build, plcc, stderr, workdir, write_recipe};
use crate::support::run::run_lines;
use crate::support::tiny_bert::build_tiny_bert;

pub const SENTENCES: &str = "the cat sat on the mat\na quick brown fox jumps over the lazy dog\n\
    compilers turn recipes into smaller models\nshort\nthe river rose after three days of rain\n";

/// Every kind of weight the exporter writes: int8 rows with int8 tokens
/// (the integer product), 4-bit groups and ternary rows (`MatMulNBits`),
/// pruned heads and FFN, a factorized, packed word table.
const QUANTIZE: &str = "prune {\n heads: 50%\n ffn: 128\n embedding_rank: 32\n importance: magnitude\n}\n\
    quantize weights \"encoder.layer.*.attention.self.*\" { bits: 8 }\n\
    quantize activations \"encoder.layer.*.attention.self.*\" { bits: 8 }\n\
    quantize weights \"encoder.layer.*.intermediate.dense\" { bits: 4\n granularity: group\n group: 16 }\n\
    quantize weights \"encoder.layer.?.output.dense\" { bits: ternary }\n\
    quantize weights \"embeddings.word_embeddings\" { bits: 8 }\n";

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// `plcc export ARTIFACT --format FORMAT -o OUT [EXTRA..]`.
pub fn export_with(format: &str, artifact: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "export",
        artifact.to_str().unwrap(),
        "--format",
        format,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    plcc(&args)
}

fn export_as(format: &str, artifact: &Path, out: &Path) -> Output {
    export_with(format, artifact, out, &[])
}

/// The ONNX model in export directory `out`.
pub fn read_model(out: &Path) -> ModelProto {
    ModelProto::decode(std::fs::read(out.join("model.onnx")).unwrap().as_slice()).unwrap()
}

/// Checks that the reference evaluator's `sentence_embedding` of `model`
/// (exported into `out`) on `SENTENCES` is what `plcc run` gives.
pub fn assert_embeddings_match_plcc(model: &ModelProto, out: &Path, artifact: &Path) {
    let dir = artifact.parent().unwrap();
    let lines: Vec<&str> = SENTENCES.lines().collect();
    let outputs = evaluate(model, feeds(&out.join("tokenizer.json"), &lines));
    let onnx: Vec<Vec<f64>> = outputs["sentence_embedding"].to_vec2().unwrap();
    let run = run_lines(artifact, dir, SENTENCES);
    for (i, record) in run.iter().enumerate() {
        let plcc_embedding: Vec<f64> = record["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // The difference to plcc's output, against the embedding's spread
        // around its mean (the tiny model's embeddings share a large common part).
        let mean = plcc_embedding.iter().sum::<f64>() / plcc_embedding.len() as f64;
        let spread = plcc_embedding
            .iter()
            .map(|v| (v - mean).abs())
            .fold(0.0, f64::max);
        let diff = onnx[i]
            .iter()
            .zip(&plcc_embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "line {i}: cosine {}, largest difference {diff:.2e} of spread {spread:.2e}",
            cosine(&onnx[i], &plcc_embedding)
        );
        assert!(
            diff <= 1e-5 * spread,
            "line {i}: difference {diff} against spread {spread}"
        );
    }
}

fn export(artifact: &Path, out: &Path) -> Output {
    export_as("onnx", artifact, out)
}

#[test]
fn the_onnx_graph_computes_what_plcc_run_computes() {
    let artifact = build_tiny_bert("export-onnx", SENTENCES, QUANTIZE);
    let dir = artifact.parent().unwrap().to_path_buf();
    let out = dir.join("onnx");
    let o = export(&artifact, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = read_model(&out);
    let graph = model.graph.as_ref().unwrap();
    let names = |v: &[plcc::export::onnx::proto::ValueInfoProto]| {
        v.iter().map(|i| i.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&graph.input),
        ["input_ids", "attention_mask", "token_type_ids"]
    );
    assert_eq!(
        names(&graph.output),
        ["last_hidden_state", "sentence_embedding"]
    );
    assert_eq!(model.opset_import[0].version, 21);
    assert_eq!(model.opset_import[1].domain, "com.microsoft");
    // Packed weights stay packed: 8-bit levels as int8 (query, key, value of
    // two layers, and the word table), the 4-bit and ternary linears as
    // MatMulNBits' uint8 codes.
    let count = |t: i32| {
        graph
            .initializer
            .iter()
            .filter(|i| i.data_type == t)
            .count()
    };
    assert_eq!(count(data_type::INT8), 2 * 3 + 1, "int8 initializers");
    assert_eq!(count(data_type::UINT8), 2 * 2, "MatMulNBits codes");
    assert_eq!(count(data_type::INT4), 0, "int4 initializers");
    let ops = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
    assert_eq!(ops("MatMulNBits"), 2 * 2);
    assert!(ops("MatMulInteger") > 0);
    assert!(std::fs::read(out.join("tokenizer.json")).is_ok());
    assert!(out.join("export.json").is_file());
    assert_embeddings_match_plcc(&model, &out, &artifact);
}

#[test]
fn an_export_replaces_only_an_earlier_export() {
    let artifact = build_tiny_bert("export-dirs", SENTENCES, "");
    let dir = artifact.parent().unwrap().to_path_buf();
    let out = dir.join("onnx");
    assert!(export(&artifact, &out).status.success());
    // Again over the earlier export: replaced.
    assert!(export(&artifact, &out).status.success());
    // A folder with someone's files, and the artifact itself: refused, untouched.
    let theirs = dir.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let o = export(&artifact, &theirs);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("output-not-ours"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(theirs.join("notes.txt")).unwrap(),
        "mine"
    );
    let o = export(&artifact, &artifact);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("output-is-input"), "{}", stderr(&o));
    assert!(artifact.join("manifest.json").is_file());
}

#[test]
fn a_classifier_exports_its_logits() {
    let dir = workdir(
        "export-classifier",
        &[(
            "data/l.tsv",
            "good movie\t1\nbad movie\t0\nfine film\t1\nawful plot\t0\n",
        )],
    );
    let recipe = write_recipe(
        &dir,
        "teacher: \"builtin:tiny-bert\"\ntask: classification\nlabels: 2\neval: l\n\
         data l \"data/l.tsv\" { text: 0\n label: 1 }\n\
         quantize weights \"encoder.layer.*\" { bits: 8 }\n\
         quantize activations \"encoder.layer.*\" { bits: 8 }\n",
    );
    let artifact = dir.join("artifact");
    let o = build(&recipe, &artifact, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.join("onnx");
    assert!(export(&artifact, &out).status.success());
    let model =
        ModelProto::decode(std::fs::read(out.join("model.onnx")).unwrap().as_slice()).unwrap();
    let lines = ["good movie", "awful plot"];
    let outputs = evaluate(&model, feeds(&out.join("tokenizer.json"), &lines));
    let logits: Vec<Vec<f64>> = outputs["logits"].to_vec2().unwrap();
    let run = run_lines(&artifact, &dir, &lines.join("\n"));
    for (i, record) in run.iter().enumerate() {
        for (j, v) in record["logits"].as_array().unwrap().iter().enumerate() {
            let d = (logits[i][j] - v.as_f64().unwrap()).abs();
            assert!(
                d < 1e-4,
                "line {i}, logit {j}: {} against {v}",
                logits[i][j]
            );
        }
    }
}

#[test]
fn a_gpt2_artifact_exports_its_next_token_logits() {
    let dir = workdir(
        "export-gpt2",
        &[(
            "data/t.txt",
            "one two three four\nfive six seven\neight nine\n",
        )],
    );
    // 2-bit blocks and a 4-bit tied token table. (Activation quantizers are
    // covered by the BERT test: on 2-bit GPT-2 blocks a level that rounds
    // the other way after last-bit float differences moves a logit by 1e-3.)
    let recipe = write_recipe(
        &dir,
        "teacher: \"builtin:tiny-gpt2\"\neval: t\ndata t \"data/t.txt\" {}\n\
         quantize weights \"h.*\" { bits: 2 }\n\
         quantize weights \"wte\" { bits: 4\n granularity: group\n group: 16 }\n",
    );
    let artifact = dir.join("artifact");
    let o = build(&recipe, &artifact, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.join("onnx");
    let o = export(&artifact, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let model =
        ModelProto::decode(std::fs::read(out.join("model.onnx")).unwrap().as_slice()).unwrap();
    let graph = model.graph.as_ref().unwrap();
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["last_hidden_state", "logits"]);
    // The 2-bit blocks are MatMulNBits (4 linears a block); the tied table
    // is stored once, as INT4 for the lookup, which the head reads too.
    let nbits = graph
        .node
        .iter()
        .filter(|n| n.op_type == "MatMulNBits")
        .count();
    assert_eq!(nbits % 4, 0);
    assert!(nbits > 0);
    let tables: Vec<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .filter(|name| name.starts_with("wte."))
        .collect();
    assert_eq!(tables, ["wte.weight", "wte.scales"]);
    assert!(stderr(&o).contains("stored once as INT4"), "{}", stderr(&o));
    let lines = ["one two three four", "eight nine"];
    let outputs = evaluate(&model, feeds(&out.join("tokenizer.json"), &lines));
    let logits = &outputs["logits"];
    let run = run_lines(&artifact, &dir, &lines.join("\n"));
    // The Hugging Face export (GPT2LMHeadModel, Conv1D weights [in, out])
    // read back by plcc gives the same logits.
    let hf = dir.join("hf");
    let o = export_hf(&artifact, &hf);
    assert!(o.status.success(), "{}", stderr(&o));
    let from_hf = run_lines(&hf, &dir, &lines.join("\n"));
    for (a, b) in from_hf.iter().zip(&run) {
        for (x, y) in a["logits"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["logits"].as_array().unwrap())
        {
            assert!(
                (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-4,
                "{x} against {y}"
            );
        }
    }
    let mask = feeds(&out.join("tokenizer.json"), &lines)["attention_mask"].clone();
    let lengths: Vec<f64> = mask.sum(1).unwrap().to_vec1().unwrap();
    for (i, record) in run.iter().enumerate() {
        let last = logits.get(i).unwrap().get(lengths[i] as usize - 1).unwrap();
        let ours: Vec<f64> = last.to_vec1().unwrap();
        for (j, v) in record["logits"].as_array().unwrap().iter().enumerate() {
            let d = (ours[j] - v.as_f64().unwrap()).abs();
            assert!(d < 1e-4, "line {i}, logit {j}: {} against {v}", ours[j]);
        }
    }
}

fn export_hf(artifact: &Path, out: &Path) -> Output {
    export_as("hf", artifact, out)
}

#[test]
fn the_hf_export_is_a_checkpoint_that_computes_the_artifact() {
    // Pruned heads (layer 0 keeps 3 of 4, the rest 2) and one FFN width.
    let prune =
        "prune {\n heads: 50%\n ffn: 96\n importance: magnitude\n layer 0 { heads: 3 }\n}\n";
    let artifact = build_tiny_bert("export-hf", SENTENCES, prune);
    let dir = artifact.parent().unwrap().to_path_buf();
    let out = dir.join("hf");
    let o = export_hf(&artifact, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["num_attention_heads"], 4);
    assert_eq!(config["intermediate_size"], 96);
    assert_eq!(config["pruned_heads"]["0"].as_array().unwrap().len(), 1);
    assert_eq!(config["pruned_heads"]["1"].as_array().unwrap().len(), 2);
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // plcc reads the export as a checkpoint (pruned_heads included) and
    // computes what the artifact computes.
    let from_export = run_lines(&out, &dir, SENTENCES);
    let from_artifact = run_lines(&artifact, &dir, SENTENCES);
    for (e, a) in from_export.iter().zip(&from_artifact) {
        for (x, y) in e["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .zip(a["embedding"].as_array().unwrap())
        {
            assert!(
                (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-5,
                "{x} against {y}"
            );
        }
    }
}

#[test]
fn what_transformers_cannot_express_is_named() {
    for (tag, prune, what) in [
        (
            "export-hf-rank",
            "prune {\n embedding_rank: 16\n}\n",
            "factorized",
        ),
        (
            "export-hf-ffn",
            "prune {\n ffn: 96\n importance: magnitude\n layer 0 { ffn: 128 }\n}\n",
            "FFN neurons",
        ),
    ] {
        let artifact = build_tiny_bert(tag, SENTENCES, prune);
        let out = artifact.parent().unwrap().join("hf");
        let o = export_hf(&artifact, &out);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        let err = stderr(&o);
        assert!(
            err.contains("plcc::export::unsupported") && err.contains(what),
            "{err}"
        );
        assert!(!out.exists());
    }
}
