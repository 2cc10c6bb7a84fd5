//! The front half: recipe syntax, formatting and the schema, diagnostics
//! with their spans, the built-in and custom passes and the IR they leave,
//! and the commands that stop before weights (`fmt`, `check`, `plan`,
//! `passes`) through the `plcc` binary.

/// The helpers of `tests/support/` these tests use: each test binary names
/// only the ones it uses, so every helper it compiles is used.
#[path = "support"]
mod support {
    pub mod fixtures;
    pub mod plcc;
}

#[path = "front/check_findings.rs"]
mod check_findings;
#[path = "front/cli_args.rs"]
mod cli_args;
#[path = "front/cli_fmt.rs"]
mod cli_fmt;
#[path = "front/cli_plan.rs"]
mod cli_plan;
#[path = "front/custom_pass.rs"]
mod custom_pass;
#[path = "front/passes.rs"]
mod passes;
#[path = "front/recipe_errors.rs"]
mod recipe_errors;
#[path = "front/recipe_schema.rs"]
mod recipe_schema;
#[path = "front/syntax.rs"]
mod syntax;
#[path = "front/syntax_fuzz.rs"]
mod syntax_fuzz;
