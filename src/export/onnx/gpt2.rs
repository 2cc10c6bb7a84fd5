//! The ONNX graph of a GPT-2 artifact: token and position embeddings (a
//! factorized or packed token table included), pre-LN blocks of their own
//! widths with causal attention, the final layer norm, and the LM head tied
//! to the token embedding (a linear: `MatMulNBits` where the table's levels
//! fit 4 bits). Outputs `last_hidden_state` (after the final
//! norm) and `logits` `[batch, sequence, vocab]` at every position. Exits
//! are not exported.

use super::blocks::{activation, attention, causal_bias, layer_norm, position_ids, BATCH, SEQ};
use super::builder::{Attr, Dim};
use super::proto::data_type;
use super::weights::WeightGraph;
use crate::base::family::gpt2;
use crate::base::ModelConfig;
use crate::diag::Diag;

/// Adds the model's inputs, blocks and outputs to `w`.
pub fn decoder_graph(w: &mut WeightGraph<'_>, config: &ModelConfig) -> Result<(), Diag> {
    let ids = w.g.input("input_ids", data_type::INT64, &[BATCH, SEQ]);
    let mask = w.g.input("attention_mask", data_type::INT64, &[BATCH, SEQ]);
    let table = format!("{}.weight", gpt2::TOKEN_EMBEDDINGS);
    let projection = format!("{}_proj.weight", gpt2::TOKEN_EMBEDDINGS);
    let mut x = w.lookup(&table, &ids)?;
    if config.embedding_rank.is_some() {
        x = w.project(&projection, &x)?;
    }
    let positions = position_ids(w, &ids);
    let pos = w.lookup(&format!("{}.weight", gpt2::POSITION_EMBEDDINGS), &positions)?;
    x = w.g.op("Add", &[&x, &pos], &[], "embeddings");
    let mask_f = w.g.op(
        "Cast",
        &[&mask],
        &[Attr::Int("to", data_type::FLOAT as i64)],
        "mask",
    );
    let bias = causal_bias(w, &mask_f, &ids);
    let eps = config.layer_norm_eps;
    for (i, shape) in config.layers.iter().enumerate() {
        let p = gpt2::FAMILY.layers.layer(i);
        let under = |block: &str, name: &str| format!("{p}.{block}.{name}");
        let inner = (shape.heads * shape.head_dim) as i64;
        let h = layer_norm(w, &format!("{p}.{}", gpt2::ATTENTION_NORM), &x, eps)?;
        let qkv = w.conv1d(&under(gpt2::ATTENTION, gpt2::QKV), &h)?;
        let part = |w: &mut WeightGraph<'_>, k: i64| {
            let starts = w.g.i64s("starts", &[k * inner]);
            let ends = w.g.i64s("ends", &[(k + 1) * inner]);
            let axes = w.g.i64s("axes", &[-1]);
            w.g.op("Slice", &[&qkv, &starts, &ends, &axes], &[], "qkv")
        };
        let (q, k, v) = (part(w, 0), part(w, 1), part(w, 2));
        let ctx = attention(w, &q, &k, &v, *shape, &bias);
        let attn = w.conv1d(&under(gpt2::ATTENTION, gpt2::ATTENTION_OUT), &ctx)?;
        x = w.g.op("Add", &[&x, &attn], &[], "residual");
        let h = layer_norm(w, &format!("{p}.{}", gpt2::FFN_NORM), &x, eps)?;
        let f = w.conv1d(&under(gpt2::FFN, gpt2::FFN_IN), &h)?;
        let f = activation(w, &f, config.activation);
        let f = w.conv1d(&under(gpt2::FFN, gpt2::FFN_OUT), &f)?;
        x = w.g.op("Add", &[&x, &f], &[], "residual");
    }
    let x = layer_norm(w, gpt2::FINAL_NORM, &x, eps)?;
    let hidden = Dim::Fixed(config.hidden_size);
    w.g.output(
        &x,
        "last_hidden_state",
        data_type::FLOAT,
        &[BATCH, SEQ, hidden],
    );
    // The tied head: x · table^T, or x · (table · proj^T)^T = x · proj ·
    // table^T for a factorized table.
    let logits = if config.embedding_rank.is_some() {
        let table_t = w.matrix(&table, true)?;
        let proj = w.matrix(&projection, false)?;
        let head = w.g.op("MatMul", &[&proj, &table_t], &[], "lm_head");
        w.g.op("MatMul", &[&x, &head], &[], "lm_head")
    } else {
        w.times_transposed(&table, &x, None, "lm_head")?
    };
    let vocab = Dim::Fixed(config.vocab_size);
    w.g.output(&logits, "logits", data_type::FLOAT, &[BATCH, SEQ, vocab]);
    Ok(())
}
