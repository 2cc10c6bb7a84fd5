//! `run_passes`: runs the built-in passes in order, then the recipe's custom
//! passes in recipe order. Before each pass it checks the facts the pass
//! requires; after it, it verifies the IR, records the facts the pass
//! provides, refreshes the student's cost estimate and calls the dump hook.
//! An error without a span gets the span of the directive that asked for the
//! pass.

use crate::diag::{did_you_mean, Diag};
use crate::diag::{Span, Spanned};
use crate::ir::{estimate, verify, CustomPassPlan, Program};
use crate::recipe::{ArgValue, Recipe};

use super::{Facts, Pass, PassRegistry};

/// Which passes to dump the IR after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpSelect {
    Nothing,
    Pass(String),
    All,
}

impl DumpSelect {
    /// `all` or a pass name, as given to `--dump-after`.
    pub fn parse(text: &str) -> DumpSelect {
        if text == "all" {
            DumpSelect::All
        } else {
            DumpSelect::Pass(text.to_string())
        }
    }

    fn wants(&self, pass: &str) -> bool {
        match self {
            DumpSelect::Nothing => false,
            DumpSelect::All => true,
            DumpSelect::Pass(p) => p == pass,
        }
    }
}

/// The dump hook: which passes to dump after, and what to do with the
/// program (`sink(pass_name, program)`).
pub struct DumpAfter<'a> {
    pub select: DumpSelect,
    sink: Box<dyn FnMut(&str, &Program) + 'a>,
}

impl<'a> DumpAfter<'a> {
    pub fn new(select: DumpSelect, sink: impl FnMut(&str, &Program) + 'a) -> Self {
        DumpAfter {
            select,
            sink: Box::new(sink),
        }
    }

    /// No dumps.
    pub fn none() -> DumpAfter<'static> {
        DumpAfter::new(DumpSelect::Nothing, |_, _| {})
    }
}

/// What a pass sees besides the program: the recipe, the span of the
/// directive that asked for it, its arguments (custom passes) and the dump hook.
pub struct PassCx<'r> {
    pub recipe: &'r Recipe,
    /// The directive that asked for this pass (the teacher line when none did).
    pub span: Span,
    /// Arguments of a custom pass call, in recipe order.
    pub args: &'r [(Spanned<String>, Spanned<ArgValue>)],
    /// Facts established so far.
    pub facts: Facts,
    /// Whether the dump hook wants this pass's intermediate states.
    dumping: bool,
    /// Intermediate states a pass dumped, handed to the hook after it returns.
    dumps: Vec<(String, Program)>,
}

impl PassCx<'_> {
    /// The argument `name` of a custom pass call.
    pub fn arg(&self, name: &str) -> Option<&Spanned<ArgValue>> {
        self.args
            .iter()
            .find(|(k, _)| k.value == name)
            .map(|(_, v)| v)
    }

    /// Dumps an intermediate state, labelled `pass/label`, if this pass is dumped.
    pub fn dump(&mut self, label: &str, program: &Program) {
        if self.dumping {
            self.dumps.push((label.to_string(), program.clone()));
        }
    }
}

/// Runs every built-in pass, then the recipe's custom passes, on `program`.
pub fn run_passes(
    mut program: Program,
    registry: &PassRegistry,
    recipe: &Recipe,
    mut dump: DumpAfter<'_>,
) -> Result<Program, Diag> {
    if let DumpSelect::Pass(name) = &dump.select {
        if registry.get(name).is_none() {
            let names = registry.names();
            let mut d = Diag::new(
                "plcc::cli::unknown-pass",
                format!("`--dump-after {name}`: no pass has this name"),
            );
            if let Some(s) = did_you_mean(name, names.iter().copied()) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            return Err(d.note(format!("passes: {}, or `all`", names.join(", "))));
        }
    }

    let mut schedule: Vec<(&dyn Pass, Span, &[(Spanned<String>, Spanned<ArgValue>)])> = registry
        .builtins()
        .map(|p| {
            (
                p,
                p.directive(recipe).unwrap_or(recipe.teacher.span),
                &[][..],
            )
        })
        .collect();
    for call in &recipe.custom_passes {
        let pass = registry
            .lookup_custom(&call.name.value)
            .map_err(|d| d.label(call.name.span, "no registered pass has this name"))?;
        schedule.push((pass, call.span, &call.args));
        program.plan.custom_passes.push(CustomPassPlan {
            name: call.name.value.clone(),
            args: call
                .args
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect(),
        });
    }

    let mut facts = Facts::SHAPES;
    for (pass, span, args) in schedule {
        let name = pass.name();
        let missing = pass.requires().without(facts);
        if !missing.is_empty() {
            return Err(Diag::new(
                "plcc::pass::missing-facts",
                format!("pass `{name}` requires facts that no earlier pass provided: {missing}"),
            )
            .label(span, "this pass cannot run here"));
        }
        let mut cx = PassCx {
            recipe,
            span,
            args,
            facts,
            dumping: dump.select.wants(name),
            dumps: Vec::new(),
        };
        let result = pass.run(&mut program, &mut cx);
        for (label, state) in &cx.dumps {
            (dump.sink)(&format!("{name}/{label}"), state);
        }
        result.map_err(|d| d.or_span(span, format!("while running pass `{name}`")))?;
        verify(&program).map_err(|d| d.note(format!("the IR became invalid in pass `{name}`")))?;
        facts |= pass.provides();
        program.plan.cost.student = estimate(&program.model, program.plan.cost.seq_len);
        if dump.select.wants(name) {
            (dump.sink)(name, &program);
        }
    }
    Ok(program)
}
