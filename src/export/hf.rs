//! Hugging Face export: the artifact as a float checkpoint in transformers'
//! layout (`config.json`, `model.safetensors`, the tokenizer) and, for
//! embedding models, sentence-transformers' files (`modules.json`, the
//! pooling config, Normalize), for every artifact transformers can
//! express: BERT with pruned heads as `pruned_heads`, GPT-2 with all its
//! heads (`GPT2LMHeadModel`, the head tied), one FFN width for all layers,
//! no factorized embedding. Packed weights are dequantized; activation
//! quantizers and early exits are not part of the layout (notes say so).

use serde_json::json;

use crate::artifact::{read_weight, Artifact, RawTensor, TensorSet, WEIGHTS_FILE};
use crate::base::{Activation, Arch, Pooling, SentencePipeline, Task};
use crate::diag::Diag;

/// The files of an export, by name.
pub struct HfModel {
    pub files: Vec<(String, Vec<u8>)>,
    /// Bytes of the float weights written.
    pub weight_bytes: u64,
    pub notes: Vec<String>,
}

fn cannot(what: impl std::fmt::Display) -> Diag {
    Diag::new(
        "plcc::export::unsupported",
        format!("transformers cannot express this artifact: {what}"),
    )
    .help("`plcc export --format onnx` writes every artifact plcc builds")
}

fn encode(value: &serde_json::Value) -> Result<Vec<u8>, Diag> {
    serde_json::to_vec_pretty(value).map_err(|e| {
        Diag::new("plcc::export::write", "cannot encode a JSON file").note(e.to_string())
    })
}

/// The heads each layer removed, by layer index, as transformers records
/// them: every teacher head but the kept ones.
fn pruned_heads(artifact: &Artifact, teacher_heads: usize) -> Result<serde_json::Value, Diag> {
    let mut pruned = serde_json::Map::new();
    let config = &artifact.manifest.config;
    let stack = &config.arch.family().layers;
    for (i, shape) in config.layers.iter().enumerate() {
        if shape.heads == teacher_heads {
            continue;
        }
        let kept = artifact
            .manifest
            .kept
            .get(&format!("{}heads", stack.prefix(i)))
            .ok_or_else(|| {
                cannot(format!(
                    "layer {i} has {} heads but no record of which",
                    shape.heads
                ))
            })?;
        if !kept.windows(2).all(|w| w[0] < w[1]) || kept.len() != shape.heads {
            return Err(cannot(format!(
                "layer {i} keeps heads {kept:?}, not in increasing order"
            )));
        }
        let removed: Vec<usize> = (0..teacher_heads).filter(|h| !kept.contains(h)).collect();
        pruned.insert(i.to_string(), json!(removed));
    }
    Ok(serde_json::Value::Object(pruned))
}

/// The transformers checkpoint of `artifact`.
pub fn export(artifact: &Artifact) -> Result<HfModel, Diag> {
    let m = &artifact.manifest;
    let c = &m.config;
    if let Some(r) = c.embedding_rank {
        return Err(cannot(format!(
            "the word embedding is factorized (rank {r})"
        )));
    }
    let first = c
        .layers
        .first()
        .copied()
        .ok_or_else(|| cannot("it has no layers"))?;
    if let Some((i, l)) = c
        .layers
        .iter()
        .enumerate()
        .find(|(_, l)| l.ffn != first.ffn)
    {
        return Err(cannot(format!(
            "layer {i} has {} FFN neurons, layer 0 {}: transformers has one width",
            l.ffn, first.ffn
        )));
    }
    if let Some((i, _)) = c
        .layers
        .iter()
        .enumerate()
        .find(|(_, l)| l.head_dim != first.head_dim)
    {
        return Err(cannot(format!(
            "layer {i}'s heads are not {} wide",
            first.head_dim
        )));
    }
    if c.hidden_size % first.head_dim != 0 {
        return Err(cannot(format!(
            "heads {} wide do not divide the hidden size {}",
            first.head_dim, c.hidden_size
        )));
    }
    let teacher_heads = c.hidden_size / first.head_dim;
    if c.arch == Arch::Gpt2 {
        return gpt2(artifact, teacher_heads, first.ffn);
    }
    let hidden_act = match c.activation {
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_new",
        Activation::Relu => "relu",
    };
    let classifier = matches!(m.task, Task::Classification { .. });
    let mut config = json!({
        "architectures": [if classifier { "BertForSequenceClassification" } else { "BertModel" }],
        "model_type": "bert",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.layers.len(),
        "num_attention_heads": teacher_heads,
        "intermediate_size": first.ffn,
        "hidden_act": hidden_act,
        "max_position_embeddings": c.max_positions,
        "type_vocab_size": c.type_vocab_size,
        "layer_norm_eps": c.layer_norm_eps,
        "pad_token_id": c.pad_token_id.unwrap_or(0),
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pruned_heads": pruned_heads(artifact, teacher_heads)?,
    });
    if let Some(labels) = m.labels() {
        config["id2label"] = labels.id2label();
        config["label2id"] = labels.label2id();
        config["num_labels"] = json!(labels.len());
        config["problem_type"] = json!("single_label_classification");
    }

    let family = c.arch.family();
    let classifier_prefix = format!("{}.", family.head.classifier);
    let (weights, notes) = float_weights(artifact, |name| {
        if classifier && !name.starts_with(&classifier_prefix) {
            format!("{}{name}", family.base_prefix)
        } else {
            name.to_string()
        }
    })?;
    let weight_bytes = weights.len() as u64;
    let mut files = vec![
        ("config.json".to_string(), encode(&config)?),
        ("model.safetensors".to_string(), weights),
        (
            "tokenizer_config.json".to_string(),
            encode(
                &json!({"tokenizer_class": "BertTokenizer", "model_max_length": c.max_positions}),
            )?,
        ),
    ];
    if let Task::Embedding { .. } = m.task {
        files.extend(sentence_transformers(
            m.sentence_pipeline(),
            c.hidden_size,
            c.max_positions,
        )?);
    }
    Ok(HfModel {
        files,
        weight_bytes,
        notes,
    })
}

/// sentence-transformers' files for `pipeline`.
fn sentence_transformers(
    pipeline: SentencePipeline,
    hidden: usize,
    max_len: usize,
) -> Result<Vec<(String, Vec<u8>)>, Diag> {
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if pipeline.normalize {
        modules.push(json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}));
    }
    let pooling = json!({
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": pipeline.pooling == Pooling::Cls,
        "pooling_mode_mean_tokens": pipeline.pooling == Pooling::Mean,
        "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false,
    });
    Ok(vec![
        ("modules.json".to_string(), encode(&json!(modules))?),
        ("1_Pooling/config.json".to_string(), encode(&pooling)?),
        (
            "sentence_bert_config.json".to_string(),
            encode(&json!({"max_seq_length": max_len, "do_lower_case": false}))?,
        ),
    ])
}

/// The artifact's float weights (packed ones dequantized, exit heads left
/// out) under the names `rename` gives, weights the family stores `[in,
/// out]` (GPT-2's `Conv1D`) back in that layout; with notes on what the
/// layout drops.
fn float_weights(
    artifact: &Artifact,
    rename: impl Fn(&str) -> String,
) -> Result<(Vec<u8>, Vec<String>), Diag> {
    let m = &artifact.manifest;
    let family = m.config.arch.family();
    let path = artifact.dir.join(WEIGHTS_FILE);
    let mut set = TensorSet::default();
    let mut notes = Vec::new();
    let mut exits = 0;
    for (name, record) in &m.weights {
        if name.starts_with("exit.") {
            exits += 1;
            continue;
        }
        let values = read_weight(&artifact.tensors, name, record, &path)?.to_f32();
        let tensor = if family.is_transposed(name) && record.shape.len() == 2 {
            let (rows, cols) = (record.shape[0], record.shape[1]);
            RawTensor::f32(vec![cols, rows], &transpose(&values, rows, cols))
        } else {
            RawTensor::f32(record.shape.clone(), &values)
        };
        set.insert(rename(name), tensor);
    }
    if exits > 0 {
        notes
            .push("the early-exit heads are not part of this layout and were left out".to_string());
    }
    if !m.activation_quant.is_empty()
        || m.weights
            .values()
            .any(|w| !matches!(w.storage, crate::artifact::Storage::Float))
    {
        notes.push("packed weights were dequantized to f32 and inputs are not quantized: the checkpoint computes the float model the artifact approximates with integers".to_string());
    }
    Ok((set.to_bytes()?, notes))
}

/// A GPT-2 artifact as `GPT2LMHeadModel` (the head tied to `wte`): every
/// layer must keep all `heads` heads.
fn gpt2(artifact: &Artifact, heads: usize, ffn: usize) -> Result<HfModel, Diag> {
    let c = &artifact.manifest.config;
    if let Some((i, l)) = c.layers.iter().enumerate().find(|(_, l)| l.heads != heads) {
        return Err(cannot(format!(
            "GPT-2 layer {i} keeps {} of {heads} heads",
            l.heads
        )));
    }
    let config = json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": c.vocab_size,
        "n_positions": c.max_positions,
        "n_embd": c.hidden_size,
        "n_layer": c.layers.len(),
        "n_head": heads,
        "n_inner": ffn,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": c.layer_norm_eps,
        "tie_word_embeddings": true,
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
        "initializer_range": 0.02,
    });
    let prefix = c.arch.family().base_prefix;
    let (weights, notes) = float_weights(artifact, |name| format!("{prefix}{name}"))?;
    let weight_bytes = weights.len() as u64;
    Ok(HfModel {
        files: vec![
            ("config.json".to_string(), encode(&config)?),
            ("model.safetensors".to_string(), weights),
            (
                "tokenizer_config.json".to_string(),
                encode(
                    &json!({"tokenizer_class": "GPT2Tokenizer", "model_max_length": c.max_positions}),
                )?,
            ),
        ],
        weight_bytes,
        notes,
    })
}

/// A row-major `rows × cols` matrix, transposed.
fn transpose<T: Copy>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for c in 0..cols {
        out.extend((0..rows).map(|r| values[r * cols + c]));
    }
    out
}
