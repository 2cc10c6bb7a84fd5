//! Schema of where a build writes: the `output: "DIR"` property (a plcc
//! artifact) or the `output "DIR" { format: artifact | hf }` block.

use std::path::{Path, PathBuf};

use super::fields::{arg_count, Body, Errors};
use super::values::{choice, non_empty_string};
use crate::base::OutputFormat;
use crate::diag::{Diag, Spanned};
use crate::syntax::Block;

/// The recipe's output folder and what is written there.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    pub path: Spanned<PathBuf>,
    pub format: Spanned<OutputFormat>,
}

/// `output "DIR" { format: hf }`; the path resolves against `base_dir`.
pub fn output_block(block: &Block, base_dir: &Path, errs: &mut Errors) -> Option<OutputSpec> {
    errs.ok(arg_count(block, 1, "a path string"))?;
    let arg = &block.args[0];
    let path = errs.ok(non_empty_string(arg));
    let mut body = Body::new(&block.body, "`output`", block.name.span, errs);
    let format = body.take_or("format", errs, OutputFormat::Artifact, |v| {
        choice(v, &OutputFormat::ALL)
    });
    body.finish(&[], errs);
    Some(OutputSpec {
        path: Spanned::new(base_dir.join(path?), arg.span),
        format,
    })
}

/// The one output of a recipe: the property or the block, not both.
pub fn one_output(
    property: Option<Spanned<PathBuf>>,
    block: Option<OutputSpec>,
    errs: &mut Errors,
) -> Option<OutputSpec> {
    match (property, block) {
        (Some(p), Some(b)) => {
            errs.push(
                Diag::new(
                    "plcc::recipe::conflicting-keys",
                    "the recipe gives its output twice",
                )
                .label(p.span, "`output:` here")
                .label(b.path.span, "and an `output` block here")
                .help("keep the block (`output \"DIR\" { format: hf }`) or the property, not both"),
            );
            Some(b)
        }
        (Some(p), None) => Some(OutputSpec {
            format: Spanned::new(OutputFormat::Artifact, p.span),
            path: p,
        }),
        (None, b) => b,
    }
}
