//! The ONNX graph of a BERT-family artifact: embeddings (a factorized or
//! packed word table included), post-LN encoder layers of their own widths,
//! and the task's output: `last_hidden_state` always, `sentence_embedding`
//! (the model's pooling) for embedding models, `logits` for classifiers.
//! Exits are not exported: the graph runs every layer.

use super::builder::{Attr, Dim};
use super::proto::data_type;
use super::weights::WeightGraph;
use crate::base::{Activation, LayerShape, ModelConfig, Pooling, SentencePipeline, Task};
use crate::diag::Diag;

const BATCH: Dim<'static> = Dim::Named("batch");
const SEQ: Dim<'static> = Dim::Named("sequence");

/// Adds the model's inputs, layers and outputs to `w`.
pub fn encoder_graph(
    w: &mut WeightGraph<'_>,
    config: &ModelConfig,
    task: Task,
    pipeline: SentencePipeline,
) -> Result<(), Diag> {
    let ids = w.g.input("input_ids", data_type::INT64, &[BATCH, SEQ]);
    let mask = w.g.input("attention_mask", data_type::INT64, &[BATCH, SEQ]);
    let types = (config.type_vocab_size > 0)
        .then(|| w.g.input("token_type_ids", data_type::INT64, &[BATCH, SEQ]));
    let mut x = embeddings(w, config, &ids, types.as_deref())?;
    let mask_f = w.g.op(
        "Cast",
        &[&mask],
        &[Attr::Int("to", data_type::FLOAT as i64)],
        "mask",
    );
    let bias = attention_bias(w, &mask_f);
    for (i, shape) in config.layers.iter().enumerate() {
        x = layer(w, config, &format!("encoder.layer.{i}"), *shape, &x, &bias)?;
    }
    let hidden = Dim::Fixed(config.hidden_size);
    w.g.output(
        &x,
        "last_hidden_state",
        data_type::FLOAT,
        &[BATCH, SEQ, hidden],
    );
    match task {
        Task::Embedding { .. } => {
            let pooled = pool(w, &x, &mask_f, pipeline.pooling)?;
            let pooled = if pipeline.normalize {
                normalized(w, &pooled)
            } else {
                pooled
            };
            let hidden = Dim::Fixed(config.hidden_size);
            w.g.output(
                &pooled,
                "sentence_embedding",
                data_type::FLOAT,
                &[BATCH, hidden],
            );
        }
        Task::Classification { labels } => {
            let mut pooled = pool(w, &x, &mask_f, Pooling::Cls)?;
            if w.has("pooler.dense.weight") {
                let dense = w.linear("pooler.dense", &pooled)?;
                pooled = w.g.op("Tanh", &[&dense], &[], "pooler");
            }
            let logits = w.linear("classifier", &pooled)?;
            w.g.output(
                &logits,
                "logits",
                data_type::FLOAT,
                &[BATCH, Dim::Fixed(labels)],
            );
        }
        Task::CausalLm => {
            return Err(Diag::new(
                "plcc::export::unsupported",
                "a BERT-family model with a causal-LM task cannot be exported",
            ))
        }
    }
    Ok(())
}

fn embeddings(
    w: &mut WeightGraph<'_>,
    config: &ModelConfig,
    ids: &str,
    types: Option<&str>,
) -> Result<String, Diag> {
    let mut x = w.lookup("embeddings.word_embeddings.weight", ids)?;
    if config.embedding_rank.is_some() {
        x = w.linear("embeddings.word_embeddings_proj", &x)?;
    }
    // Positions 0..seq as `[1, seq]`.
    let shape = w.g.op("Shape", &[ids], &[], "seq_len");
    let one = w.g.i64_scalar("one", 1);
    let zero = w.g.i64_scalar("zero", 0);
    let seq = w.g.op(
        "Gather",
        &[&shape, &one],
        &[Attr::Int("axis", 0)],
        "seq_len",
    );
    let range = w.g.op("Range", &[&zero, &seq, &one], &[], "position_ids");
    let axes = w.g.i64s("axes", &[0]);
    let positions = w.g.op("Unsqueeze", &[&range, &axes], &[], "position_ids");
    let pos = w.lookup("embeddings.position_embeddings.weight", &positions)?;
    x = w.g.op("Add", &[&x, &pos], &[], "embeddings");
    if let Some(types) = types {
        let t = w.lookup("embeddings.token_type_embeddings.weight", types)?;
        x = w.g.op("Add", &[&x, &t], &[], "embeddings");
    }
    layer_norm(w, "embeddings.LayerNorm", &x, config.layer_norm_eps)
}

/// `(mask − 1) · 1e9` as `[b, 1, 1, s]`: 0 for real keys, −1e9 for padding.
fn attention_bias(w: &mut WeightGraph<'_>, mask_f: &str) -> String {
    let axes = w.g.i64s("axes", &[1, 2]);
    let m = w.g.op("Unsqueeze", &[mask_f, &axes], &[], "attention_bias");
    let one = w.g.scalar("one_f", 1.0);
    let big = w.g.scalar("mask_value", 1e9);
    let shifted = w.g.op("Sub", &[&m, &one], &[], "attention_bias");
    w.g.op("Mul", &[&shifted, &big], &[], "attention_bias")
}

fn layer_norm(w: &mut WeightGraph<'_>, module: &str, x: &str, eps: f64) -> Result<String, Diag> {
    let gamma = w.float(&format!("{module}.weight"))?;
    let beta = w.float(&format!("{module}.bias"))?;
    Ok(w.g.op(
        "LayerNormalization",
        &[x, &gamma, &beta],
        &[Attr::Int("axis", -1), Attr::Float("epsilon", eps as f32)],
        module,
    ))
}

fn layer(
    w: &mut WeightGraph<'_>,
    config: &ModelConfig,
    p: &str,
    shape: LayerShape,
    x: &str,
    bias: &str,
) -> Result<String, Diag> {
    let (heads, d) = (shape.heads as i64, shape.head_dim as i64);
    let q = w.linear(&format!("{p}.attention.self.query"), x)?;
    let k = w.linear(&format!("{p}.attention.self.key"), x)?;
    let v = w.linear(&format!("{p}.attention.self.value"), x)?;
    let split = w.g.i64s("shape", &[0, 0, heads, d]);
    let heads_first = |w: &mut WeightGraph<'_>, t: &str, perm: Vec<i64>| {
        let r = w.g.op("Reshape", &[t, &split], &[], "heads");
        w.g.op("Transpose", &[&r], &[Attr::Ints("perm", perm)], "heads")
    };
    let q = heads_first(w, &q, vec![0, 2, 1, 3]);
    let k = heads_first(w, &k, vec![0, 2, 3, 1]);
    let v = heads_first(w, &v, vec![0, 2, 1, 3]);
    let scores = w.g.op("MatMul", &[&q, &k], &[], "scores");
    let scale = w.g.scalar("scale", 1.0 / (shape.head_dim as f32).sqrt());
    let scores = w.g.op("Mul", &[&scores, &scale], &[], "scores");
    let scores = w.g.op("Add", &[&scores, bias], &[], "scores");
    let probs =
        w.g.op("Softmax", &[&scores], &[Attr::Int("axis", -1)], "probs");
    let ctx = w.g.op("MatMul", &[&probs, &v], &[], "context");
    let ctx = w.g.op(
        "Transpose",
        &[&ctx],
        &[Attr::Ints("perm", vec![0, 2, 1, 3])],
        "context",
    );
    let join = w.g.i64s("shape", &[0, 0, heads * d]);
    let ctx = w.g.op("Reshape", &[&ctx, &join], &[], "context");
    let attn = w.linear(&format!("{p}.attention.output.dense"), &ctx)?;
    let res = w.g.op("Add", &[&attn, x], &[], "residual");
    let x = layer_norm(
        w,
        &format!("{p}.attention.output.LayerNorm"),
        &res,
        config.layer_norm_eps,
    )?;
    let f = w.linear(&format!("{p}.intermediate.dense"), &x)?;
    let f = activation(w, &f, config.activation);
    let f = w.linear(&format!("{p}.output.dense"), &f)?;
    let res = w.g.op("Add", &[&f, &x], &[], "residual");
    layer_norm(
        w,
        &format!("{p}.output.LayerNorm"),
        &res,
        config.layer_norm_eps,
    )
}

fn activation(w: &mut WeightGraph<'_>, x: &str, act: Activation) -> String {
    let half = w.g.scalar("half", 0.5);
    let one = w.g.scalar("one_f", 1.0);
    match act {
        Activation::Relu => w.g.op("Relu", &[x], &[], "relu"),
        Activation::Gelu => {
            // 0.5 · x · (1 + erf(x / √2))
            let inv_sqrt2 = w.g.scalar("inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
            let t = w.g.op("Mul", &[x, &inv_sqrt2], &[], "gelu");
            let e = w.g.op("Erf", &[&t], &[], "gelu");
            let e = w.g.op("Add", &[&e, &one], &[], "gelu");
            let h = w.g.op("Mul", &[x, &half], &[], "gelu");
            w.g.op("Mul", &[&h, &e], &[], "gelu")
        }
        Activation::GeluTanh => {
            // 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³)))
            let c = w.g.scalar("gelu_c", 0.044715);
            let k = w.g.scalar("gelu_k", (2.0 / std::f32::consts::PI).sqrt());
            let x2 = w.g.op("Mul", &[x, x], &[], "gelu");
            let x3 = w.g.op("Mul", &[&x2, x], &[], "gelu");
            let cx3 = w.g.op("Mul", &[&x3, &c], &[], "gelu");
            let inner = w.g.op("Add", &[x, &cx3], &[], "gelu");
            let inner = w.g.op("Mul", &[&inner, &k], &[], "gelu");
            let t = w.g.op("Tanh", &[&inner], &[], "gelu");
            let t = w.g.op("Add", &[&t, &one], &[], "gelu");
            let h = w.g.op("Mul", &[x, &half], &[], "gelu");
            w.g.op("Mul", &[&h, &t], &[], "gelu")
        }
    }
}

/// `[b, s, h]` → `[b, h]`: the first token, or the mean over real tokens.
fn pool(w: &mut WeightGraph<'_>, x: &str, mask_f: &str, pooling: Pooling) -> Result<String, Diag> {
    Ok(match pooling {
        Pooling::Last => {
            return Err(Diag::new(
                "plcc::export::unsupported",
                "last-token pooling of an encoder cannot be exported",
            ))
        }
        Pooling::Mean => {
            let axes_last = w.g.i64s("axes", &[-1]);
            let m = w.g.op("Unsqueeze", &[mask_f, &axes_last], &[], "pool_mask");
            let masked = w.g.op("Mul", &[x, &m], &[], "pool");
            let axes_seq = w.g.i64s("axes", &[1]);
            let sum = w.g.op(
                "ReduceSum",
                &[&masked, &axes_seq],
                &[Attr::Int("keepdims", 0)],
                "pool_sum",
            );
            let count = w.g.op(
                "ReduceSum",
                &[&m, &axes_seq],
                &[Attr::Int("keepdims", 0)],
                "pool_count",
            );
            let one = w.g.scalar("one_f", 1.0);
            let count = w.g.op("Max", &[&count, &one], &[], "pool_count");
            w.g.op("Div", &[&sum, &count], &[], "pool")
        }
        Pooling::Cls => {
            let zero = w.g.i64s("zero", &[0]);
            let first =
                w.g.op("Gather", &[x, &zero], &[Attr::Int("axis", 1)], "cls");
            let axes = w.g.i64s("axes", &[1]);
            w.g.op("Squeeze", &[&first, &axes], &[], "cls")
        }
    })
}

/// `[b, h]` divided by each row's length (a zero row stays zero).
fn normalized(w: &mut WeightGraph<'_>, x: &str) -> String {
    let sq = w.g.op("Mul", &[x, x], &[], "normalize");
    let axes = w.g.i64s("axes", &[-1]);
    let sum = w.g.op(
        "ReduceSum",
        &[&sq, &axes],
        &[Attr::Int("keepdims", 1)],
        "normalize",
    );
    let norm = w.g.op("Sqrt", &[&sum], &[], "normalize");
    let tiny = w.g.scalar("tiny", f32::MIN_POSITIVE);
    let safe = w.g.op("Max", &[&norm, &tiny], &[], "normalize");
    w.g.op("Div", &[x, &safe], &[], "sentence_embedding")
}
