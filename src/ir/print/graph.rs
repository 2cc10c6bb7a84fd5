//! The model graph as text: nodes in topological order, renumbered
//! `%0, %1, ...` at print time, one line each with its inputs, layer, shape
//! and annotations, quantizers on indented lines below their node.

use std::collections::HashMap;
use std::fmt::Write;

use crate::base::{word, WeightInputs};
use crate::ir::{HeadKind, Node, Norm, Op, Program};

use super::words::{print_act_quant, print_weight_quant};

/// The model graph as text.
pub fn print_model(program: &Program) -> String {
    let model = &program.model;
    let order = model.ordered_nodes();
    let numbers: HashMap<_, _> = order.iter().enumerate().map(|(i, &ix)| (ix, i)).collect();
    let layers: HashMap<_, _> = model
        .layers()
        .into_iter()
        .flat_map(|l| {
            [Some(l.attention), l.cross, Some(l.ffn)]
                .into_iter()
                .flatten()
                .map(move |ix| (ix, l.student))
        })
        .collect();
    let mut out = String::from("model\n");
    for &ix in &order {
        let node = model.node(ix);
        let inputs: Vec<String> = model
            .inputs(ix)
            .iter()
            .map(|i| format!("%{}", numbers.get(i).copied().unwrap_or(usize::MAX)))
            .collect();
        let _ = write!(
            out,
            "  %{} {} = {}({})",
            numbers[&ix],
            node.name,
            node.kind(),
            inputs.join(", ")
        );
        if let Some(student) = layers.get(&ix) {
            let _ = write!(out, " layer {student}");
        }
        if let Some(t) = node.teacher_layer {
            let _ = write!(out, " (teacher {t})");
        }
        if let Some(e) = node.encoder_layer {
            let _ = write!(out, " encoder layer {e}");
        }
        out.push_str(&op_details(node));
        let _ = writeln!(out, " -> {}", node.output_type());
        for (module, q) in &node.quant {
            let mut parts = Vec::new();
            if let Some(w) = &q.weights {
                parts.push(format!("weights {}", print_weight_quant(w)));
                if w.inputs == WeightInputs::Float {
                    parts.push("activations float".to_string());
                }
            }
            if let Some(a) = &q.activations {
                parts.push(format!("activations {}", print_act_quant(a)));
            }
            let _ = writeln!(out, "      quant {module}: {}", parts.join("; "));
        }
    }
    out
}

fn op_details(node: &Node) -> String {
    match &node.op {
        Op::Input => " tokens".into(),
        Op::Embeddings(e) => {
            let mut s = format!(
                " vocab {} hidden {} positions {} types {}",
                e.vocab, e.hidden, e.positions, e.token_types
            );
            if let Some(r) = e.rank {
                let _ = write!(s, " rank {r}");
            }
            if let Some(n) = &e.norm {
                let _ = write!(s, " norm {n}");
            }
            if let Some(d) = &e.decoder {
                let _ = write!(s, " decoder positions {} norm {}", d.position, d.norm);
            }
            s
        }
        Op::Attention(a) => format!(
            " heads {} x {} hidden {}{}{} {}",
            a.heads,
            a.head_dim,
            a.hidden,
            if a.causal { " causal" } else { "" },
            if a.cross { " cross" } else { "" },
            norm(&a.norm)
        ),
        Op::Ffn(f) => format!(
            " width {} hidden {} {} {}",
            f.width,
            f.hidden,
            word(&f.activation),
            norm(&f.norm)
        ),
        Op::Exit(e) => format!(
            " after layer {} {} outputs {}{}{}",
            e.after_layer,
            word(&e.head),
            e.outputs,
            if e.per_token { " per-token" } else { "" },
            if e.tied { " tied" } else { "" }
        ),
        Op::Head(h) => {
            let mut s = match &h.kind {
                HeadKind::Pool { pooling } => format!(" pool {}", word(pooling)),
                HeadKind::Classify { labels, pooler, .. } => {
                    format!(
                        " classify labels {labels}{}",
                        if *pooler { " pooler" } else { "" }
                    )
                }
                HeadKind::LanguageModel { vocab, tied } => {
                    format!(" lm vocab {vocab}{}", if *tied { " tied" } else { "" })
                }
            };
            if let Some(n) = &h.final_norm {
                let _ = write!(s, " norm {n}");
            }
            if let Some(b) = &h.logits_bias {
                let _ = write!(s, " bias {b}");
            }
            s
        }
    }
}

fn norm(n: &Norm) -> String {
    match n {
        Norm::Post { name } => format!("post-norm {name}"),
        Norm::Pre { name } => format!("pre-norm {name}"),
    }
}
