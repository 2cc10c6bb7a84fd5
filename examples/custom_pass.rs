//! A custom compiler pass in a user program: `head-floor` makes every
//! student layer keep at least `min` attention heads (never more than the
//! teacher's), after the built-in width pruning decided its head counts.
//!
//! The program registers the pass next to the built-ins and runs the normal
//! `plcc` command line, so a recipe can ask for it:
//!
//! ```text
//! pass "head-floor" { min: 2 }
//! ```
//!
//! Try: `cargo run --example custom_pass -- plan tests/fixtures/custom/head_floor.pc`

use std::process::ExitCode;

use plcc::diag::Diag;
use plcc::ir::{Op, Program};
use plcc::pass::{Facts, Pass, PassCx};
use plcc::recipe::ArgValue;

/// Raises every layer's head count to at least `min`.
pub struct HeadFloor;

impl Pass for HeadFloor {
    fn name(&self) -> &'static str {
        "head-floor"
    }

    fn description(&self) -> &'static str {
        "keep at least `min` attention heads in every layer (example custom pass)"
    }

    fn requires(&self) -> Facts {
        Facts::SHAPES | Facts::WIDTH_PLANNED
    }

    fn provides(&self) -> Facts {
        Facts::custom(0)
    }

    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag> {
        let min = match cx.arg("min") {
            None => {
                return Err(
                    Diag::new("head-floor::missing-min", "`head-floor` needs `min: N`")
                        .label(cx.span, "add `min` here"),
                )
            }
            Some(arg) => match arg.value {
                ArgValue::Number(n) if n >= 1.0 && n.fract() == 0.0 => n as usize,
                _ => {
                    return Err(Diag::new(
                        "head-floor::bad-min",
                        "`min` must be a whole number ≥ 1",
                    )
                    .label(arg.span, "expected a count of heads"))
                }
            },
        };
        // Collect, then apply.
        let teacher = &program.plan.teacher.config;
        let raised: Vec<_> = program
            .model
            .layers()
            .into_iter()
            .filter_map(|layer| {
                let Op::Attention(a) = &program.model.node(layer.attention).op else {
                    return None;
                };
                let ceiling = teacher.layers.get(layer.teacher)?.heads;
                let floor = min.min(ceiling);
                (a.heads < floor).then_some((layer.attention, floor))
            })
            .collect();
        for (ix, heads) in raised {
            let node = program.model.node_mut(ix);
            if let Op::Attention(a) = &mut node.op {
                a.heads = heads;
            }
            node.span = cx.span;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut registry = plcc::pass_registry();
    if let Err(diag) = registry.register(Box::new(HeadFloor)) {
        eprintln!("{diag}");
        return ExitCode::from(1);
    }
    plcc::cli::main_with(registry)
}
