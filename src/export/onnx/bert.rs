//! The ONNX graph of a BERT-family artifact: embeddings (a factorized or
//! packed word table included), post-LN encoder layers of their own widths,
//! and the task's output: `last_hidden_state` always, `sentence_embedding`
//! (the model's pooling) for embedding models, `logits` for classifiers.
//! Exits are not exported: the graph runs every layer.

use super::blocks::{activation, layer_norm, padding_bias, position_ids, BATCH, SEQ};
use super::builder::{Attr, Dim};
use super::proto::data_type;
use super::weights::WeightGraph;
use crate::base::family::bert;
use crate::base::{LayerShape, ModelConfig, Pooling, SentencePipeline, Task};
use crate::diag::Diag;

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
    let bias = padding_bias(w, &mask_f);
    for (i, shape) in config.layers.iter().enumerate() {
        x = layer(w, config, &bert::FAMILY.layers.layer(i), *shape, &x, &bias)?;
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
            if w.has(&format!("{}.weight", bert::POOLER)) {
                let dense = w.linear(bert::POOLER, &pooled)?;
                pooled = w.g.op("Tanh", &[&dense], &[], "pooler");
            }
            let logits = w.linear(bert::CLASSIFIER, &pooled)?;
            w.g.output(
                &logits,
                "logits",
                data_type::FLOAT,
                &[BATCH, Dim::Fixed(labels)],
            );
        }
        Task::CausalLm | Task::Seq2Seq => {
            return Err(Diag::new(
                "plcc::export::unsupported",
                "a BERT-family model with a causal-LM or seq2seq task cannot be exported",
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
    let mut x = w.lookup(&format!("{}.weight", bert::WORD_EMBEDDINGS), ids)?;
    if config.embedding_rank.is_some() {
        x = w.project(&format!("{}_proj.weight", bert::WORD_EMBEDDINGS), &x)?;
    }
    let positions = position_ids(w, ids);
    let pos = w.lookup(&format!("{}.weight", bert::POSITION_EMBEDDINGS), &positions)?;
    x = w.g.op("Add", &[&x, &pos], &[], "embeddings");
    if let Some(types) = types {
        let t = w.lookup(&format!("{}.weight", bert::TOKEN_TYPE_EMBEDDINGS), types)?;
        x = w.g.op("Add", &[&x, &t], &[], "embeddings");
    }
    layer_norm(w, bert::EMBEDDINGS_NORM, &x, config.layer_norm_eps)
}

fn layer(
    w: &mut WeightGraph<'_>,
    config: &ModelConfig,
    p: &str,
    shape: LayerShape,
    x: &str,
    bias: &str,
) -> Result<String, Diag> {
    let attention = |name: &str| format!("{p}.{}.{name}", bert::ATTENTION);
    let under = |name: &str| format!("{p}.{name}");
    let q = w.linear(&attention(bert::QUERY), x)?;
    let k = w.linear(&attention(bert::KEY), x)?;
    let v = w.linear(&attention(bert::VALUE), x)?;
    let ctx = super::blocks::attention(w, &q, &k, &v, shape, bias);
    let attn = w.linear(&attention(bert::ATTENTION_OUT), &ctx)?;
    let res = w.g.op("Add", &[&attn, x], &[], "residual");
    let eps = config.layer_norm_eps;
    let x = layer_norm(w, &under(bert::ATTENTION_NORM), &res, eps)?;
    let f = w.linear(&under(bert::FFN_IN), &x)?;
    let f = activation(w, &f, config.activation);
    let f = w.linear(&under(bert::FFN_OUT), &f)?;
    let res = w.g.op("Add", &[&f, &x], &[], "residual");
    layer_norm(w, &under(bert::FFN_NORM), &res, eps)
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
