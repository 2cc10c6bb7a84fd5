//! The statements of one body (the top level or a block's braces) checked
//! against a schema: properties are looked up by key, every key looked up is
//! known, and whatever is left over is reported as unknown with the nearest
//! known name. Errors are collected in `Errors` so one run reports several.

use std::collections::BTreeMap;

use crate::diag::{did_you_mean, Diag};
use crate::diag::{Span, Spanned};
use crate::syntax::{Block, Item, Property, Statement, Value};

/// Diagnostics collected while checking a recipe.
#[derive(Default)]
pub struct Errors {
    pub list: Vec<Diag>,
}

impl Errors {
    pub fn push(&mut self, diag: Diag) {
        self.list.push(diag);
    }

    /// The value, or `None` after recording its error.
    pub fn ok<T>(&mut self, result: Result<T, Diag>) -> Option<T> {
        match result {
            Ok(t) => Some(t),
            Err(d) => {
                self.push(d);
                None
            }
        }
    }
}

/// The properties and blocks of one body.
pub struct Body<'d> {
    /// What owns the body, for messages: "the top level", "`prune`".
    owner: String,
    /// Where a missing key is reported.
    owner_span: Span,
    props: BTreeMap<&'d str, &'d Property>,
    pub blocks: Vec<&'d Block>,
    known_keys: Vec<&'static str>,
}

impl<'d> Body<'d> {
    /// Collects `items`, reporting keys given twice.
    pub fn new(
        items: &'d [Item],
        owner: impl Into<String>,
        owner_span: Span,
        errs: &mut Errors,
    ) -> Self {
        let mut props: BTreeMap<&'d str, &'d Property> = BTreeMap::new();
        let mut blocks = Vec::new();
        for item in items {
            match item {
                Item::Statement(Statement::Property(p)) => {
                    if let Some(first) = props.get(p.key.text.as_str()) {
                        errs.push(duplicate_key(p, first.key.span));
                    } else {
                        props.insert(p.key.text.as_str(), p);
                    }
                }
                Item::Statement(Statement::Block(b)) => blocks.push(b),
                Item::Comment(_) => {}
            }
        }
        Body {
            owner: owner.into(),
            owner_span,
            props,
            blocks,
            known_keys: Vec::new(),
        }
    }

    /// The property `key`, if given.
    pub fn get(&mut self, key: &'static str) -> Option<&'d Property> {
        if !self.known_keys.contains(&key) {
            self.known_keys.push(key);
        }
        self.props.get(key).copied()
    }

    /// The property `key` converted by `convert`; `None` when absent or invalid.
    pub fn take<T>(
        &mut self,
        key: &'static str,
        errs: &mut Errors,
        convert: impl FnOnce(&Value) -> Result<T, Diag>,
    ) -> Option<Spanned<T>> {
        let prop = self.get(key)?;
        errs.ok(convert(&prop.value))
            .map(|t| Spanned::new(t, prop.value.span))
    }

    /// As `take`, but falls back to `default` (spanned at the owner) when absent.
    pub fn take_or<T>(
        &mut self,
        key: &'static str,
        errs: &mut Errors,
        default: T,
        convert: impl FnOnce(&Value) -> Result<T, Diag>,
    ) -> Spanned<T> {
        let span = self.owner_span;
        self.take(key, errs, convert)
            .unwrap_or(Spanned::new(default, span))
    }

    /// A key that must be given: reports it missing (at the owner) when absent.
    pub fn require<T>(
        &mut self,
        key: &'static str,
        errs: &mut Errors,
        convert: impl FnOnce(&Value) -> Result<T, Diag>,
    ) -> Option<Spanned<T>> {
        if self.get(key).is_none() {
            errs.push(
                Diag::new(
                    "plcc::recipe::missing-key",
                    format!("{} needs `{key}`", self.owner),
                )
                .label(self.owner_span, format!("`{key}` is missing here")),
            );
            return None;
        }
        self.take(key, errs, convert)
    }

    /// Reports every property whose key was never looked up and every block
    /// not named in `known_blocks` (the caller checks the known ones).
    /// Properties named like a known block, and blocks named like a known
    /// key, get a hint about the other form.
    pub fn finish(self, known_blocks: &[&str], errs: &mut Errors) {
        for (key, prop) in &self.props {
            if self.known_keys.contains(key) {
                continue;
            }
            let diag = Diag::new(
                "plcc::recipe::unknown-key",
                format!("unknown key `{key}` in {}", self.owner),
            )
            .label(prop.key.span, "not a key here");
            let diag = if known_blocks.contains(key) {
                diag.help(format!("`{key}` is a block: write `{key} ... {{ ... }}`"))
            } else {
                with_suggestion(diag, key, &self.known_keys, "keys")
            };
            errs.push(diag);
        }
        for block in &self.blocks {
            let name = block.name.text.as_str();
            if known_blocks.contains(&name) {
                continue;
            }
            let diag = Diag::new(
                "plcc::recipe::unknown-block",
                format!("unknown block `{name}` in {}", self.owner),
            )
            .label(block.name.span, "not a block here");
            let diag = if self.known_keys.contains(&name) {
                diag.help(format!("`{name}` is a property: write `{name}: VALUE`"))
            } else if known_blocks.is_empty() {
                diag.help(format!("{} has no nested blocks", self.owner))
            } else {
                with_suggestion(diag, name, known_blocks, "blocks")
            };
            errs.push(diag);
        }
    }
}

fn with_suggestion(diag: Diag, name: &str, known: &[&str], kind: &str) -> Diag {
    match did_you_mean(name, known.iter().copied()) {
        Some(s) => diag.help(format!("did you mean `{s}`?")),
        None => {
            let mut sorted: Vec<&str> = known.to_vec();
            sorted.sort_unstable();
            diag.help(format!("known {kind}: {}", sorted.join(", ")))
        }
    }
}

/// Checks that a block has exactly the arguments `expected` describes
/// (e.g. "a name and a path string").
pub fn arg_count(block: &Block, count: usize, expected: &str) -> Result<(), Diag> {
    if block.args.len() == count {
        return Ok(());
    }
    let span = match (block.args.first(), block.args.last()) {
        (Some(first), Some(last)) => first.span.join(last.span),
        _ => block.name.span,
    };
    let shape = if count == 0 {
        format!("`{}` takes no arguments", block.name.text)
    } else {
        format!("`{}` takes {expected}", block.name.text)
    };
    Err(Diag::new(
        "plcc::recipe::wrong-arguments",
        format!(
            "{shape}, found {} argument{}",
            block.args.len(),
            if block.args.len() == 1 { "" } else { "s" }
        ),
    )
    .label(span, shape))
}

/// Reports `property`'s key given a second time in one body (first at `first`).
pub fn duplicate_key(property: &Property, first: Span) -> Diag {
    Diag::new(
        "plcc::recipe::duplicate-key",
        format!("`{}` is given twice", property.key.text),
    )
    .label(property.key.span, "given again here")
    .label(first, "first given here")
}

/// Reports a statement given where a different form is needed (used by blocks
/// whose bodies hold only arguments).
pub fn statement_kind_error(statement: &Statement, expected: &str) -> Diag {
    let name = statement.name();
    Diag::new(
        "plcc::recipe::unknown-block",
        format!("unexpected `{}` here", name.text),
    )
    .label(name.span, format!("expected {expected}"))
}
