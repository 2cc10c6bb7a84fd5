//! `verify`: the structural invariants every program satisfies between
//! passes. A violation is a compiler bug (or a custom pass's), reported as an
//! internal-error diagnostic naming the node.
//!
//! Checked: acyclic; one input, one embeddings, one task head; every edge's
//! type is what its source produces and its target consumes; node and module
//! names unique; heads, head size and widths ≥ 1, `heads·head_dim` consistent
//! with the attention's linears; every layer is attention then FFN of the same
//! teacher layer, and teacher layers strictly increase; embedding rank below
//! the hidden size; exits follow an existing layer's FFN, one per layer, and
//! name that layer; quantizers sit on existing, untied modules of their node.
//!
//! `verified` returns the proof the back end requires: a [`Verified`]
//! program can only be made here, and lowering takes nothing else.

use std::collections::{HashMap, HashSet};

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;

use crate::diag::Diag;

use super::linear::Linear;
use super::model::{Layer, Model};
use super::node::{Node, Op};
use super::plan::Program;

/// A program that passed [`verify`]: what lowering and execution take.
/// Read-only; passes work on the [`Program`] before it is verified.
#[derive(Debug, Clone)]
pub struct Verified(Program);

impl std::ops::Deref for Verified {
    type Target = Program;
    fn deref(&self) -> &Program {
        &self.0
    }
}

/// Verifies `program` and wraps it as the proof that it was.
pub fn verified(program: Program) -> Result<Verified, Diag> {
    verify(&program)?;
    Ok(Verified(program))
}

const CODE: &str = "plcc::internal::invalid-ir";

fn invalid(node: &str, what: impl std::fmt::Display) -> Diag {
    Diag::new(
        CODE,
        format!("internal error: invalid IR at `{node}`: {what}"),
    )
    .note("this is a bug in plcc or in a custom pass; please report it with the recipe")
}

/// Checks the invariants of `program`.
pub fn verify(program: &Program) -> Result<(), Diag> {
    let model = &program.model;
    let Some(order) = model.order() else {
        return Err(invalid("<graph>", "the graph has a cycle"));
    };
    let count = |pred: fn(&Op) -> bool| {
        order
            .iter()
            .filter(|&&ix| pred(&model.graph[ix].op))
            .count()
    };
    check_one_of_each(count)?;
    check_nodes(model, &order)?;
    let layers = model.layers();
    check_layer_counts(model, &layers, count)?;
    check_layers(model, &layers)?;
    check_exits(model, &layers)
}

/// One input, one embeddings and one task head.
fn check_one_of_each(count: impl Fn(fn(&Op) -> bool) -> usize) -> Result<(), Diag> {
    for (what, n) in [
        ("input", count(|op| matches!(op, Op::Input))),
        ("embeddings", count(|op| matches!(op, Op::Embeddings(_)))),
        ("task head", count(|op| matches!(op, Op::Head(_)))),
    ] {
        if n != 1 {
            return Err(invalid(
                "<graph>",
                format!("expected one {what} node, found {n}"),
            ));
        }
    }
    Ok(())
}

/// Each node on its own, in `order`: a unique name, its modules, its
/// quantizers, its shape and its outgoing edges.
fn check_nodes(model: &Model, order: &[NodeIndex]) -> Result<(), Diag> {
    let mut names = HashSet::new();
    let mut modules: HashMap<String, String> = HashMap::new();
    for &ix in order {
        let node = &model.graph[ix];
        if !names.insert(node.name.as_str()) {
            return Err(invalid(&node.name, "two nodes have this name"));
        }
        let linears = node.linears();
        check_modules(node, &linears, &mut modules)?;
        check_quantizers(node, &linears)?;
        check_shape(node, &linears)?;
        check_edges(model, ix)?;
    }
    Ok(())
}

/// Every module has a non-empty shape and belongs to one node only
/// (`owners` maps the modules seen so far to their node).
fn check_modules(
    node: &Node,
    linears: &[Linear],
    owners: &mut HashMap<String, String>,
) -> Result<(), Diag> {
    for l in linears {
        if l.out == 0 || l.inp == 0 {
            return Err(invalid(
                &node.name,
                format!("module `{}` has an empty shape", l.name),
            ));
        }
        if let Some(other) = owners.insert(l.name.clone(), node.name.clone()) {
            return Err(invalid(
                &node.name,
                format!("module `{}` also belongs to `{other}`", l.name),
            ));
        }
    }
    Ok(())
}

/// Quantizers sit on existing, untied modules of their node.
fn check_quantizers(node: &Node, linears: &[Linear]) -> Result<(), Diag> {
    for module in node.quant.keys() {
        match linears.iter().find(|l| &l.name == module) {
            None => {
                return Err(invalid(
                    &node.name,
                    format!("quantizer on unknown module `{module}`"),
                ))
            }
            Some(l) if l.tied => {
                return Err(invalid(
                    &node.name,
                    format!("quantizer on tied module `{module}`"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Sizes of at least 1, `heads·head_dim` matching the attention's output
/// projection, an embedding rank below the hidden size.
fn check_shape(node: &Node, linears: &[Linear]) -> Result<(), Diag> {
    match &node.op {
        Op::Attention(a) => {
            if a.heads == 0 || a.head_dim == 0 || a.hidden == 0 {
                return Err(invalid(
                    &node.name,
                    "attention needs heads, head_dim and hidden ≥ 1",
                ));
            }
            let inner = a.heads * a.head_dim;
            let proj = linears.last().map(|l| l.inp).unwrap_or(0);
            if proj != inner {
                return Err(invalid(
                    &node.name,
                    format!("heads·head_dim = {inner} but the output projection reads {proj}"),
                ));
            }
        }
        Op::Ffn(f) if f.width == 0 || f.hidden == 0 => {
            return Err(invalid(&node.name, "FFN width and hidden must be ≥ 1"));
        }
        Op::Embeddings(e) => {
            if let Some(r) = e.rank {
                if r == 0 || r >= e.hidden {
                    return Err(invalid(
                        &node.name,
                        format!("embedding rank {r} not in 1..{}", e.hidden),
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every edge out of `ix` carries what the node produces and its target
/// consumes.
fn check_edges(model: &Model, ix: NodeIndex) -> Result<(), Diag> {
    let g = &model.graph;
    let node = &g[ix];
    for e in g.edges_directed(ix, petgraph::Direction::Outgoing) {
        let target = &g[e.target()];
        let produced = node.output_type();
        if e.weight().ty != produced {
            return Err(invalid(
                &node.name,
                format!(
                    "edge to `{}` carries {} but the node produces {produced}",
                    target.name,
                    e.weight().ty
                ),
            ));
        }
        let consumed = target.input_type();
        if consumed != produced {
            return Err(invalid(
                &target.name,
                format!(
                    "consumes {consumed} but `{}` produces {produced}",
                    node.name
                ),
            ));
        }
    }
    Ok(())
}

/// The attention and FFN nodes pair into the encoder's and decoder's layers,
/// and cross-attention is in every decoder layer or none, only with an
/// encoder.
fn check_layer_counts(
    model: &Model,
    layers: &[Layer],
    count: impl Fn(fn(&Op) -> bool) -> usize,
) -> Result<(), Diag> {
    let encoder_layers = model.encoder_layers();
    let stacked = layers.len() + encoder_layers.len();
    let cross_nodes = count(|op| matches!(op, Op::Attention(a) if a.cross));
    let attention_nodes = count(|op| matches!(op, Op::Attention(_))) - cross_nodes;
    let ffn_nodes = count(|op| matches!(op, Op::Ffn(_)));
    if attention_nodes != stacked || ffn_nodes != stacked {
        return Err(invalid(
            "<graph>",
            format!(
                "{attention_nodes} attention and {ffn_nodes} FFN nodes do not pair into {stacked} layers"
            ),
        ));
    }
    let crossed = layers.iter().filter(|l| l.cross.is_some()).count();
    if cross_nodes != crossed || (crossed != 0 && crossed != layers.len()) {
        return Err(invalid(
            "<graph>",
            format!(
                "{cross_nodes} cross-attention nodes, but {crossed} of {} decoder layers have one",
                layers.len()
            ),
        ));
    }
    if crossed != 0 && encoder_layers.is_empty() {
        return Err(invalid("<graph>", "cross-attention without an encoder"));
    }
    Ok(())
}

/// Every layer is attention (then cross-attention) then FFN of one teacher
/// layer, each reading only the one before, and teacher layers strictly
/// increase.
fn check_layers(model: &Model, layers: &[Layer]) -> Result<(), Diag> {
    let g = &model.graph;
    let mut last_teacher: Option<usize> = None;
    for layer in layers {
        let a = &g[layer.attention];
        let f = &g[layer.ffn];
        if a.teacher_layer != f.teacher_layer || a.teacher_layer.is_none() {
            return Err(invalid(
                &f.name,
                format!("FFN does not belong to the layer of `{}`", a.name),
            ));
        }
        if last_teacher.is_some_and(|t| t >= layer.teacher) {
            return Err(invalid(
                &a.name,
                "teacher layers are not in increasing order",
            ));
        }
        last_teacher = Some(layer.teacher);
        if let Some(cross) = layer.cross {
            if model.inputs(cross) != vec![layer.attention]
                || g[cross].teacher_layer != a.teacher_layer
            {
                return Err(invalid(
                    &g[cross].name,
                    format!("cross-attention must read only `{}`", a.name),
                ));
            }
        }
        let before_ffn = layer.cross.unwrap_or(layer.attention);
        if model.inputs(layer.ffn) != vec![before_ffn] {
            return Err(invalid(
                &f.name,
                format!("FFN must read only `{}`", g[before_ffn].name),
            ));
        }
    }
    Ok(())
}

/// Each exit reads an existing layer's FFN, feeds nothing, and is that
/// layer's only exit.
fn check_exits(model: &Model, layers: &[Layer]) -> Result<(), Diag> {
    let mut exit_layers = HashSet::new();
    for ix in model.exits() {
        let node = &model.graph[ix];
        let Op::Exit(e) = &node.op else { continue };
        let Some(layer) = layers.iter().find(|l| l.student == e.after_layer) else {
            return Err(invalid(
                &node.name,
                format!("exit after layer {} which does not exist", e.after_layer),
            ));
        };
        if model.inputs(ix) != vec![layer.ffn] {
            return Err(invalid(
                &node.name,
                format!("exit must read the output of layer {}", e.after_layer),
            ));
        }
        if !model.outputs(ix).is_empty() {
            return Err(invalid(&node.name, "an exit head feeds no other node"));
        }
        if !exit_layers.insert(e.after_layer) {
            return Err(invalid(
                &node.name,
                format!("two exits after layer {}", e.after_layer),
            ));
        }
    }
    Ok(())
}
