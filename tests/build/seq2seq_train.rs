//! Training an encoder-decoder: `pretrain` on single texts reconstructs
//! them from their text-infilled versions, a `distill` stage on
//! `source<TAB>target` pairs trains on the pairs as given, and the build's
//! report measures the decoder's perplexity.

use candle_core::Device;
use plcc::runtime::load_model;

use crate::support::plcc::{stderr, workdir, write_recipe};

const TEXTS: &str = "the model reads a recipe\nrain falls on the valley\nwhy is the cache slow\nthe cat sleeps on the warm stone near the door\ncompilers turn text into programs\nshe walked home\n";

const PAIRS: &str = "the model reads a recipe\tblue\nrain falls on the valley\tgood morning\nwhy is the cache slow\tblue\ncompilers turn text into programs\tgood morning\n";

const RECIPE: &str = r#"
teacher: "builtin:tiny-bart"
seed: 3
eval: texts
data texts "texts.txt" {}
data pairs "pairs.tsv" {
    text: 0
    text_pair: 1
}
pretrain {
    steps: 2
    data: texts
    batch_size: 3
    seq_len: 32
}
quantize weights "model.*.layers.*" {
    bits: 2
    scale: learned
}
distill pairs {
    steps: 2
    data: pairs
    batch_size: 2
    seq_len: 32
    loss logit_kl {}
    loss contrastive {}
}
"#;

#[test]
fn pretraining_reconstructs_texts_and_distillation_reads_pairs() {
    let dir = workdir(
        "seq2seq-train",
        &[("texts.txt", TEXTS), ("pairs.tsv", PAIRS)],
    );
    let recipe = write_recipe(&dir, RECIPE);
    let dump = dir.join("batches.jsonl");
    let out = dir.join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_plcc"))
        .args([
            "build",
            recipe.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .env("PLCC_DUMP_BATCHES", &dump)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let teacher = load_model("builtin:tiny-bart", &Device::Cpu).unwrap();
    let start = teacher
        .config
        .seq2seq
        .as_ref()
        .unwrap()
        .decoder_start_token_id;
    let encode = |text: &str| -> Vec<u32> {
        let mut row = vec![start];
        row.extend(
            teacher
                .tokenizer
                .inner
                .encode(text, true)
                .unwrap()
                .get_ids(),
        );
        row
    };
    let texts: Vec<Vec<u32>> = TEXTS.lines().map(encode).collect();
    let targets: Vec<Vec<u32>> = PAIRS
        .lines()
        .map(|l| encode(l.split_once('\t').unwrap().1))
        .collect();
    let (mut pretrain, mut distill) = (0, 0);
    for line in std::fs::read_to_string(&dump).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let rows: Vec<Vec<u32>> = serde_json::from_value(v["ids"].clone()).unwrap();
        for row in rows {
            // The decoder reads its start token, then a whole text: the one
            // to reconstruct, or a pair's target.
            match v["stage"].as_str().unwrap() {
                "pretrain" => {
                    assert!(texts.contains(&row), "{row:?}");
                    pretrain += 1;
                }
                _ => {
                    assert!(targets.contains(&row), "{row:?}");
                    distill += 1;
                }
            }
        }
    }
    assert_eq!((pretrain, distill), (6, 4));

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let metrics = &report["fidelity"]["metrics"];
    for key in ["teacher_perplexity", "student_perplexity", "top1_agreement"] {
        let v = metrics[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key}: {metrics}");
    }
}
