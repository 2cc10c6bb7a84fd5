//! Numeric parity of plcc's model code with PyTorch (transformers) on the
//! fixtures of `tests/fixtures/parity` (random odd-width checkpoints), and of
//! all-MiniLM-L6-v2's tokenizer and embeddings with `tests/fixtures/minilm`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use plcc::runtime::load::loader::{load_checkpoint, load_network};
use plcc::runtime::run::{runner, token_rows};
use plcc::runtime::{ForwardOptions, Inputs, ModelOutput};

use crate::support::fixtures::fixture;

fn read_inputs(dir: &Path) -> Inputs {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inputs.json")).unwrap()).unwrap();
    let batch = |ids_key: &str, mask_key: &str| -> Option<Inputs> {
        let rows = |key: &str| -> Option<Vec<Vec<u32>>> {
            v.get(key)
                .map(|r| serde_json::from_value(r.clone()).unwrap())
        };
        let (ids, mask) = (rows(ids_key)?, rows(mask_key).unwrap());
        let (b, s) = (ids.len(), ids[0].len());
        let dev = Device::Cpu;
        Some(Inputs {
            ids: Tensor::from_vec(ids.concat(), (b, s), &dev).unwrap(),
            mask: Tensor::from_vec(mask.concat(), (b, s), &dev).unwrap(),
            token_types: None,
            decoder: None,
        })
    };
    // An encoder-decoder's fixture also has the decoder's inputs.
    Inputs {
        decoder: batch("decoder_input_ids", "decoder_attention_mask").map(Box::new),
        ..batch("input_ids", "attention_mask").unwrap()
    }
}

/// Max |a - b| and max |b| over positions whose query token is real.
/// `query_mask` broadcasts against both tensors.
fn masked_error(a: &Tensor, b: &Tensor, query_mask: &Tensor) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let err = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .broadcast_mul(query_mask)
        .unwrap();
    let mag = b.abs().unwrap().broadcast_mul(query_mask).unwrap();
    let max = |t: Tensor| {
        t.flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    (max(err), max(mag))
}

fn check_parity(name: &str) {
    let dir = fixture(&format!("parity/{name}"));
    let (config, network, _) =
        load_network(&dir, &Device::Cpu).unwrap_or_else(|d| panic!("{}", d.render_plain()));
    let reference: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let inputs = read_inputs(&dir);
    let mut packed = network.clone();
    packed.prepare_inference().unwrap();
    // The training-path kernels, then the inference kernels (packed linears;
    // fused attention when no probabilities are requested).
    for (net, output_attentions) in [(&network, true), (&packed, true), (&packed, false)] {
        let opts = ForwardOptions {
            output_attentions,
            lm_logits: true,
            ..Default::default()
        };
        let out = net.forward(&inputs, &[], opts).unwrap();
        let compared = compare(name, &out, &inputs, &reference);
        assert_eq!(out.hidden_states.len(), config.num_layers() + 1);
        let expected = reference
            .keys()
            .filter(|k| output_attentions || !k.contains("attentions"))
            .count();
        assert_eq!(
            compared, expected,
            "{name}: every reference tensor is compared"
        );
    }
}

/// `mask` `[batch, seq]` as f32 masks of states `[batch, seq, 1]` and of
/// attention queries `[batch, 1, seq, 1]`.
fn position_masks(mask: &Tensor) -> (Tensor, Tensor) {
    let mask = mask.to_dtype(DType::F32).unwrap();
    let (b, s) = mask.dims2().unwrap();
    (
        mask.reshape((b, s, 1)).unwrap(),
        mask.reshape((b, 1, s, 1)).unwrap(),
    )
}

/// Compares every output with its reference; returns how many were compared.
/// An encoder-decoder's decoder outputs are named as a decoder-only model's;
/// its encoder's carry the `encoder_` prefix, and cross-attentions are
/// `cross_attentions.{i}`.
fn compare(
    name: &str,
    out: &ModelOutput,
    inputs: &Inputs,
    reference: &HashMap<String, Tensor>,
) -> usize {
    let (seq_mask, query_mask) = position_masks(&inputs.output_side().mask);
    let mut compared = 0;
    let mut check = |what: String, ours: &Tensor, qm: &Tensor| {
        let theirs = reference
            .get(&what)
            .unwrap_or_else(|| panic!("reference has no {what}"));
        let (err, mag) = masked_error(ours, theirs, qm);
        eprintln!("{name} {what}: max abs error {err:.3e}, max |reference| {mag:.3e}");
        assert!(
            err <= 1e-4 * mag,
            "{name} {what}: max abs error {err} vs max |reference| {mag}"
        );
        compared += 1;
    };
    let mut check_stack =
        |prefix: &str, states: &[Tensor], attentions: &[Tensor], mask: &Tensor| {
            let (seq_mask, query_mask) = position_masks(mask);
            for (i, h) in states.iter().enumerate() {
                check(format!("{prefix}hidden_states.{i}"), h, &seq_mask);
            }
            for (i, a) in attentions.iter().enumerate() {
                check(format!("{prefix}attentions.{}", i + 1), a, &query_mask);
            }
        };
    check_stack(
        "",
        &out.hidden_states,
        &out.attentions,
        &inputs.output_side().mask,
    );
    if let Some(encoder) = &out.encoder {
        check_stack(
            "encoder_",
            &encoder.hidden_states,
            &encoder.attentions,
            &inputs.mask,
        );
        for (i, a) in encoder.cross_attentions.iter().enumerate() {
            check(format!("cross_attentions.{}", i + 1), a, &query_mask);
        }
    }
    if reference.contains_key("logits") {
        check(
            "logits".into(),
            out.logits.as_ref().expect("logits"),
            &seq_mask,
        );
    }
    compared
}

#[test]
fn bert_odd_widths_match_pytorch() {
    check_parity("bert-odd");
}

#[test]
fn bert_with_model_prefix_and_classifier_matches_pytorch() {
    check_parity("bert-prefixed");
}

#[test]
fn gpt2_odd_widths_match_pytorch() {
    check_parity("gpt2-odd");
}

#[test]
fn bart_odd_widths_match_pytorch() {
    check_parity("bart-odd");
}

fn minilm_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run scripts/fetch-minilm.sh to fetch all-MiniLM-L6-v2 (CI does)",
            dir.display()
        );
        None
    }
}

#[test]
fn minilm_tokens_and_embeddings_match_pytorch() {
    let Some(dir) = minilm_dir() else { return };
    let model =
        load_checkpoint(&dir, &Device::Cpu).unwrap_or_else(|d| panic!("{}", d.render_plain()));
    let lines: Vec<String> = std::fs::read_to_string(fixture("minilm/sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("minilm/reference.json")).unwrap())
            .unwrap();
    let ref_ids: Vec<Vec<u32>> = serde_json::from_value(reference["input_ids"].clone()).unwrap();
    let ref_emb: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    let rows = token_rows::tokenize(&model, &lines, None).unwrap().rows;
    assert_eq!(rows.len(), 48);
    for (i, (ours, theirs)) in rows.iter().zip(&ref_ids).enumerate() {
        assert_eq!(ours, theirs, "token ids of sentence {}", i + 1);
    }
    // Batched (padded) run: padding must not change any embedding.
    let records = runner::run_all(&model, &rows, 16, runner::Schedule::SideBySide).unwrap();
    for (i, (rec, theirs)) in records.iter().zip(&ref_emb).enumerate() {
        let ours = rec.embedding.as_ref().unwrap();
        let dot: f64 = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum();
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (norm(ours) * norm(theirs));
        assert!(cos >= 0.99999, "sentence {}: cosine {cos}", i + 1);
    }
}
