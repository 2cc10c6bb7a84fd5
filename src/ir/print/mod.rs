//! The deterministic text form of a program: the model graph (`graph`:
//! nodes in topological order, renumbered `%0, %1, ...` at print time, one
//! line each with its inputs, shape and annotations, quantizers on indented
//! lines below their node), then the plan (`plan`). Snapshot tests and
//! `plcc plan --dump-after` show this text. `plcc plan` shows the plan as a
//! table (`table`) or as a JSON document (`document`); `words` holds the
//! spellings they all share.

mod document;
mod graph;
mod plan;
mod table;
mod words;

pub use document::{plan_document, LayerRow, ModuleRow, PlanDocument};
pub use graph::print_model;
pub use plan::{print_plan, print_timeline};
pub use table::{human, plan_table};
pub use words::{
    bits_text, granularity_text, print_act_quant, print_weight_quant, show_path, vocab_rule_text,
};

use crate::ir::Program;

/// The whole program as text.
pub fn print(program: &Program) -> String {
    let mut out = print_model(program);
    out.push_str(&print_plan(&program.plan));
    out
}

#[cfg(test)]
mod tests {
    use crate::base::word;
    use crate::base::ScaleMethod;
    use crate::base::{ExitScope, OptimizerKind};

    #[test]
    fn words_use_the_recipe_spelling() {
        assert_eq!(word(&ExitScope::AllExits), "all_exits");
        assert_eq!(word(&OptimizerKind::AdamW), "adamw");
        assert_eq!(word(&ScaleMethod::MeanAbs), "mean_abs");
        assert_eq!(word(&ScaleMethod::Mse), "mse");
    }
}
