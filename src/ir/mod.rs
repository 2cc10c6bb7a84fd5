//! The compiler IR: a petgraph model graph plus a plan side table.
//!
//! `resolve` turns a typed recipe into the teacher `Program`; the passes
//! (`crate::pass`) rewrite it into the student program; `verify` checks its
//! invariants; `print` gives its deterministic text form; `cost` estimates
//! parameters, packed bytes and FLOPs of any model graph.
//!
//! Nodes are layer-level operations (input, embeddings, attention, FFN, exit
//! heads, the task head). Layer norms and residual additions are folded into
//! the attention / FFN node they belong to as annotations (`Norm`), and
//! quantizers are annotations on the node owning the linear module, so the
//! graph reads one node per block. Node names are checkpoint paths and stay
//! stable across passes: layer reduction keeps teacher names, and the student
//! layer index is the node's position on the main path.

mod build;
pub mod cost;
mod inputs;
mod linear;
mod model;
mod node;
mod plan;
mod print;
mod resolve;
mod verify;

pub use build::{exit_node, model_from_config};
pub use cost::{estimate, Cost, ExitCost};
pub use inputs::LinearInput;
pub use linear::{Linear, LinearUse};
pub use model::{Layer, Model};
pub use node::{
    ActQuant, AttentionOp, Dim, Edge, EmbeddingsOp, ExitOp, FfnOp, HeadKind, HeadOp, ModuleQuant,
    Node, Norm, Op, TensorType, WeightQuant,
};
pub use plan::{
    CostPlan, CustomPassPlan, ExitPlan, LayerPair, LossPlan, LossPlanKind, Plan, Program,
    PrunePlan, StagePlan, TeacherInfo, VocabPlan, Warmup,
};
pub use print::{
    bits_text, granularity_text, human, plan_document, plan_table, print, print_act_quant,
    print_model, print_plan, print_timeline, print_weight_quant, show_path, vocab_rule_text,
    LayerRow, ModuleRow, PlanDocument,
};
pub use resolve::{load_teacher, resolve, DEFAULT_SEQ_LEN};
pub use verify::{verified, verify, Verified};

pub use petgraph::stable_graph::NodeIndex;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
