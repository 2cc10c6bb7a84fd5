//! The pass manager and the registry of built-in and custom passes.
//!
//! A pass rewrites a `Program` in place: it decides shapes and plans only
//! (which concrete heads or neurons survive is decided when the program
//! executes). `run_passes` runs the registry's built-ins in the order they
//! were given ([`crate::builtin_passes`]), then the recipe's custom passes in
//! recipe order, verifying the IR after each.
//!
//! A custom pass implements [`Pass`], reads the recipe and the facts earlier
//! passes established through its [`PassCx`], and is registered on a
//! [`PassRegistry`] (`examples/custom_pass.rs`).

mod facts;
mod manager;
mod registry;

pub use facts::Facts;
pub use manager::{run_passes, DumpAfter, DumpSelect, PassCx};
pub use registry::PassRegistry;

use crate::diag::{Diag, Span};
use crate::ir::Program;
use crate::recipe::Recipe;

/// A compiler pass.
pub trait Pass {
    /// Kebab-case name: `width-prune`.
    fn name(&self) -> &'static str;

    /// One line for `plcc passes`.
    fn description(&self) -> &'static str {
        ""
    }

    /// Facts that must hold before this pass runs.
    fn requires(&self) -> Facts {
        Facts::SHAPES
    }

    /// Facts that hold after it ran.
    fn provides(&self) -> Facts {
        Facts::NONE
    }

    /// The recipe directive this pass acts on, where its diagnostics without
    /// a span of their own point (the teacher line when this gives `None`).
    fn directive(&self, _recipe: &Recipe) -> Option<Span> {
        None
    }

    /// Rewrites `program`. Errors without a span get the span of the recipe
    /// directive that asked for the pass.
    fn run(&self, program: &mut Program, cx: &mut PassCx) -> Result<(), Diag>;
}
