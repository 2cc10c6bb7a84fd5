//! Recipe text → `Document`: runs the character scan (`lex`), the pest
//! grammar (`grammar/recipe.pest`), and builds the syntax tree. Comments found
//! inside a statement (in a list, between a block's arguments) move to their
//! own line just before that statement, so the tree has a place for every
//! comment. Grammar failures become `plcc::syntax::*` diagnostics that say in
//! words what was expected.

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser;
use pest_derive::Parser;

use super::ast::{
    Block, Comment, Document, Item, Name, Property, Statement, TimeUnit, Value, ValueKind,
};
use super::lex;
use crate::diag::Diag;
use crate::diag::Span;

#[derive(Parser)]
#[grammar = "../grammar/recipe.pest"]
struct RecipeParser;

/// Parses a recipe text into its syntax tree.
pub fn parse(text: &str) -> Result<Document, Diag> {
    lex::scan(text)?;
    let mut pairs =
        RecipeParser::parse(Rule::document, text).map_err(|e| grammar_error(text, &e))?;
    let document = pairs
        .next()
        .ok_or_else(|| Diag::new("plcc::syntax::internal", "the parser returned no document"))?;
    let builder = Builder { text };
    let items = builder.items(document.into_inner(), None, 0)?;
    Ok(Document { items })
}

struct Builder<'t> {
    text: &'t str,
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

impl<'t> Builder<'t> {
    /// Builds a statement list from `pairs` (statements, comments and
    /// punctuation, in source order). `anchor` is the end of the token a
    /// comment must share a line with to count as trailing (a block's `{`);
    /// `start` is where the list begins.
    fn items<'i>(
        &self,
        pairs: impl Iterator<Item = Pair<'i, Rule>>,
        mut anchor: Option<usize>,
        start: usize,
    ) -> Result<Vec<Item>, Diag> {
        let mut items = Vec::new();
        let mut prev_end = start;
        for pair in pairs {
            let span = span_of(&pair);
            match pair.as_rule() {
                Rule::COMMENT => {
                    let comment = self.comment(&pair);
                    self.push_comment(&mut items, comment, anchor, prev_end);
                    anchor = Some(span.end);
                    prev_end = span.end;
                }
                Rule::property | Rule::block => {
                    let blank = !items.is_empty() && self.has_blank_line(prev_end, span.start);
                    let mut inner = Vec::new();
                    let mut statement = if pair.as_rule() == Rule::property {
                        Statement::Property(self.property(pair, &mut inner)?)
                    } else {
                        Statement::Block(self.block(pair, &mut inner)?)
                    };
                    let end = statement.span().end;
                    // The grammar hands over comments that follow the last
                    // value inside the statement's pair: they come after it.
                    let (hoisted, following): (Vec<Comment>, Vec<Comment>) =
                        inner.into_iter().partition(|c| c.span.start < end);
                    let mut hoisted = hoisted;
                    match hoisted.first_mut() {
                        Some(first) => first.blank_line_before = blank,
                        None => set_blank(&mut statement, blank),
                    }
                    items.extend(hoisted.into_iter().map(Item::Comment));
                    items.push(Item::Statement(statement));
                    anchor = Some(end);
                    prev_end = end;
                    for comment in following {
                        let comment_end = comment.span.end;
                        self.push_comment(&mut items, comment, anchor, prev_end);
                        anchor = Some(comment_end);
                        prev_end = comment_end;
                    }
                }
                _ => {}
            }
        }
        Ok(items)
    }

    /// Adds a comment that follows `anchor` (the end of the previous token)
    /// and `prev_end` (the end of the previous item).
    fn push_comment(
        &self,
        items: &mut Vec<Item>,
        mut comment: Comment,
        anchor: Option<usize>,
        prev_end: usize,
    ) {
        let start = comment.span.start;
        comment.trailing = anchor.is_some_and(|a| {
            self.text
                .get(a..start)
                .is_some_and(|gap| !gap.contains('\n'))
        });
        comment.blank_line_before =
            !comment.trailing && !items.is_empty() && self.has_blank_line(prev_end, start);
        items.push(Item::Comment(comment));
    }

    fn has_blank_line(&self, from: usize, to: usize) -> bool {
        self.text
            .get(from..to)
            .is_some_and(|gap| gap.matches('\n').count() >= 2)
    }

    fn comment(&self, pair: &Pair<'_, Rule>) -> Comment {
        Comment {
            text: pair.as_str().trim_end().to_string(),
            span: span_of(pair),
            trailing: false,
            blank_line_before: false,
        }
    }

    fn name(&self, pair: &Pair<'_, Rule>) -> Name {
        Name {
            text: pair.as_str().to_string(),
            span: span_of(pair),
        }
    }

    fn property(&self, pair: Pair<'_, Rule>, hoisted: &mut Vec<Comment>) -> Result<Property, Diag> {
        let span = span_of(&pair);
        let mut key = None;
        let mut value = None;
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::name => key = Some(self.name(&inner)),
                Rule::value => value = Some(self.value(inner, hoisted)?),
                Rule::COMMENT => hoisted.push(self.comment(&inner)),
                _ => {}
            }
        }
        match (key, value) {
            (Some(key), Some(value)) => Ok(Property {
                span: key.span.join(value.span),
                key,
                value,
                blank_line_before: false,
            }),
            _ => Err(internal(span, "a property without key or value")),
        }
    }

    fn block(&self, pair: Pair<'_, Rule>, hoisted: &mut Vec<Comment>) -> Result<Block, Diag> {
        let span = span_of(&pair);
        let mut name = None;
        let mut args = Vec::new();
        let mut inner = pair.into_inner();
        let mut open = None;
        for part in inner.by_ref() {
            match part.as_rule() {
                Rule::name => name = Some(self.name(&part)),
                Rule::value => args.push(self.value(part, hoisted)?),
                Rule::COMMENT => hoisted.push(self.comment(&part)),
                Rule::open_brace => {
                    open = Some(span_of(&part).end);
                    break;
                }
                _ => {}
            }
        }
        let (Some(name), Some(open)) = (name, open) else {
            return Err(internal(span, "a block without name or `{`"));
        };
        let body = self.items(inner, Some(open), open)?;
        Ok(Block {
            name,
            args,
            body,
            span,
            blank_line_before: false,
        })
    }

    fn value(&self, pair: Pair<'_, Rule>, hoisted: &mut Vec<Comment>) -> Result<Value, Diag> {
        let span = span_of(&pair);
        let mut operands = Vec::new();
        for inner in pair.into_inner() {
            match inner.as_rule() {
                Rule::COMMENT => hoisted.push(self.comment(&inner)),
                Rule::arrow => {}
                _ => operands.push(self.operand(inner, hoisted)?),
            }
        }
        let mut operands = operands.into_iter();
        match (operands.next(), operands.next()) {
            (Some(single), None) => Ok(single),
            (Some(left), Some(right)) => Ok(Value {
                span: left.span.join(right.span),
                kind: ValueKind::Pair(Box::new(left), Box::new(right)),
            }),
            _ => Err(internal(span, "an empty value")),
        }
    }

    fn operand(&self, pair: Pair<'_, Rule>, hoisted: &mut Vec<Comment>) -> Result<Value, Diag> {
        let span = span_of(&pair);
        let kind = match pair.as_rule() {
            Rule::number => number(pair.as_str(), span)?,
            Rule::percent => ValueKind::Percent(float(pair.as_str().trim_end_matches('%'), span)?),
            Rule::duration => {
                let text = pair.as_str();
                let (amount, unit) = [TimeUnit::Minutes, TimeUnit::Hours, TimeUnit::Seconds]
                    .into_iter()
                    .find_map(|u| text.strip_suffix(u.suffix()).map(|a| (a, u)))
                    .ok_or_else(|| internal(span, "a duration without a unit"))?;
                ValueKind::Duration(float(amount, span)?, unit)
            }
            Rule::name => ValueKind::Ident(pair.as_str().to_string()),
            Rule::string => {
                let raw = pair.as_str();
                let body = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
                let decoded = lex::unescape(body).ok_or_else(|| {
                    Diag::new("plcc::syntax::bad-escape", "invalid escape in string")
                        .label(span, "here")
                })?;
                ValueKind::Str(decoded)
            }
            Rule::range => {
                let mut ends = Vec::new();
                let mut inclusive = false;
                for part in pair.into_inner() {
                    match part.as_rule() {
                        Rule::integer => ends.push(integer(part.as_str(), span_of(&part))?),
                        Rule::range_op => inclusive = part.as_str() == "..=",
                        _ => {}
                    }
                }
                match ends[..] {
                    [start, end] => ValueKind::Range {
                        start,
                        end,
                        inclusive,
                    },
                    _ => return Err(internal(span, "a range without two ends")),
                }
            }
            Rule::list => {
                let mut items = Vec::new();
                for part in pair.into_inner() {
                    match part.as_rule() {
                        Rule::value => items.push(self.value(part, hoisted)?),
                        Rule::COMMENT => hoisted.push(self.comment(&part)),
                        _ => {}
                    }
                }
                ValueKind::List(items)
            }
            other => return Err(internal(span, &format!("unexpected {other:?} in a value"))),
        };
        Ok(Value { kind, span })
    }
}

fn set_blank(statement: &mut Statement, blank: bool) {
    match statement {
        Statement::Property(p) => p.blank_line_before = blank,
        Statement::Block(b) => b.blank_line_before = blank,
    }
}

fn internal(span: Span, what: &str) -> Diag {
    Diag::new(
        "plcc::syntax::internal",
        format!("internal parser error: {what}"),
    )
    .label(span, "here")
}

fn number(text: &str, span: Span) -> Result<ValueKind, Diag> {
    if text.contains(['.', 'e', 'E']) {
        Ok(ValueKind::Float(float(text, span)?))
    } else {
        Ok(ValueKind::Int(integer(text, span)?))
    }
}

fn integer(text: &str, span: Span) -> Result<i64, Diag> {
    text.parse::<i64>().map_err(|_| {
        Diag::new(
            "plcc::syntax::number-out-of-range",
            format!("integer `{text}` is too large"),
        )
        .label(span, "does not fit in 64 bits")
    })
}

fn float(text: &str, span: Span) -> Result<f64, Diag> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(Diag::new(
            "plcc::syntax::number-out-of-range",
            format!("number `{text}` is out of range"),
        )
        .label(span, "not a finite 64-bit float")),
    }
}

/// Translates a pest error into a diagnostic saying, in words, what was expected.
fn grammar_error(text: &str, err: &pest::error::Error<Rule>) -> Diag {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
    .min(text.len());
    // At the end of the text, point just after the last token instead.
    let pos = if text[pos..].trim().is_empty() {
        text.trim_end().len().min(pos)
    } else {
        pos
    };
    let found = describe_found(text, pos);
    let span = found_span(text, pos);
    let (expected, wants_brace) = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => (
            expected_words(positives),
            positives.contains(&Rule::open_brace),
        ),
        ErrorVariant::CustomError { message } => (message.clone(), false),
    };
    let diag = Diag::new(
        "plcc::syntax::unexpected-token",
        format!("expected {expected}, found {found}"),
    )
    .label(span, format!("expected {expected}"));
    if wants_brace {
        diag.help("a property is written `key: value`, a block `name arguments { ... }`")
    } else {
        diag
    }
}

/// The span of the token at `pos` (an empty span at the end of the text).
fn found_span(text: &str, pos: usize) -> Span {
    let rest = &text[pos..];
    let len = match rest.chars().next() {
        None => 0,
        Some(_) if rest.trim().is_empty() => 0,
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(rest.len()),
        Some(c) => c.len_utf8(),
    };
    Span::new(pos, pos + len)
}

fn describe_found(text: &str, pos: usize) -> String {
    let span = found_span(text, pos);
    if text[pos..].trim().is_empty() {
        return "end of file".to_string();
    }
    match &text[span.start..span.end] {
        "" => "end of file".to_string(),
        "\n" | "\r" => "end of line".to_string(),
        token => format!("`{token}`"),
    }
}

fn expected_words(positives: &[Rule]) -> String {
    // A comment fits anywhere, and `->`, `..` or a time unit after a number
    // rarely is what was missing: leave them out unless nothing else was
    // expected.
    let optional = [Rule::COMMENT, Rule::arrow, Rule::range_op, Rule::time_unit];
    let essential: Vec<Rule> = positives
        .iter()
        .copied()
        .filter(|r| !optional.contains(r))
        .collect();
    let positives: &[Rule] = if essential.is_empty() {
        positives
    } else {
        &essential
    };
    let has = |r: Rule| positives.contains(&r);
    let value_rules = [
        Rule::value,
        Rule::range,
        Rule::percent,
        Rule::duration,
        Rule::number,
        Rule::integer,
        Rule::string,
        Rule::list,
        Rule::open_bracket,
    ];
    let wants_value = value_rules.iter().any(|r| has(*r));
    let mut words: Vec<&str> = Vec::new();
    let mut add = |w: &'static str| {
        if !words.contains(&w) {
            words.push(w);
        }
    };
    for rule in positives {
        match rule {
            r if value_rules.contains(r) => add("a value"),
            Rule::name if wants_value => add("a value"),
            Rule::name => add("a statement (`key: value` or `name { ... }`)"),
            Rule::property | Rule::block | Rule::document => {
                add("a statement (`key: value` or `name { ... }`)")
            }
            Rule::colon => add("`:`"),
            Rule::comma => add("`,`"),
            Rule::arrow => add("`->`"),
            Rule::open_brace => add("`{`"),
            Rule::close_brace => add("`}`"),
            Rule::close_bracket => add("`]`"),
            Rule::range_op => add("`..`"),
            Rule::time_unit => add("a time unit (`s`, `min`, `h`)"),
            Rule::EOI => add("end of file"),
            Rule::COMMENT => add("a comment"),
            _ => add("a value"),
        }
    }
    match words.as_slice() {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_statement(text: &str) -> Statement {
        parse(text).unwrap().statements().next().unwrap().clone()
    }

    #[test]
    fn parses_every_value_kind() {
        let doc = parse(
            "a: [1, -2, 0.5, 1e-4, 25%, \"s\\n\", id, 0..3, 1..=2, 1 -> 3, 45min, 1.5h, 90s,]",
        )
        .unwrap();
        let Statement::Property(p) = doc.statements().next().unwrap() else {
            panic!()
        };
        let ValueKind::List(items) = &p.value.kind else {
            panic!()
        };
        let kinds: Vec<_> = items.iter().map(|v| v.kind.clone()).collect();
        assert_eq!(kinds[0], ValueKind::Int(1));
        assert_eq!(kinds[1], ValueKind::Int(-2));
        assert_eq!(kinds[2], ValueKind::Float(0.5));
        assert_eq!(kinds[3], ValueKind::Float(1e-4));
        assert_eq!(kinds[4], ValueKind::Percent(25.0));
        assert_eq!(kinds[10], ValueKind::Duration(45.0, TimeUnit::Minutes));
        assert_eq!(kinds[11], ValueKind::Duration(1.5, TimeUnit::Hours));
        assert_eq!(kinds[12], ValueKind::Duration(90.0, TimeUnit::Seconds));
        assert_eq!(kinds[5], ValueKind::Str("s\n".into()));
        assert_eq!(kinds[6], ValueKind::Ident("id".into()));
        assert_eq!(
            kinds[7],
            ValueKind::Range {
                start: 0,
                end: 3,
                inclusive: false
            }
        );
        assert_eq!(
            kinds[8],
            ValueKind::Range {
                start: 1,
                end: 2,
                inclusive: true
            }
        );
        assert!(matches!(kinds[9], ValueKind::Pair(..)));
        assert_eq!(items[5].span, Span::new(27, 32));
    }

    #[test]
    fn parses_blocks_with_args_and_commas() {
        let Statement::Block(b) = first_statement("data train \"x.txt\" { format: text, text: 0 }")
        else {
            panic!()
        };
        assert_eq!(b.name.text, "data");
        assert_eq!(b.args.len(), 2);
        assert_eq!(b.body.len(), 2);
    }

    #[test]
    fn keeps_trailing_and_own_line_comments() {
        let doc = parse("# head\na: 1 # tail\nb { # open\n  c: 2\n}\n").unwrap();
        let comments: Vec<(String, bool)> = doc
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Comment(c) => Some((c.text.clone(), c.trailing)),
                _ => None,
            })
            .collect();
        assert_eq!(
            comments,
            vec![("# head".into(), false), ("# tail".into(), true)]
        );
        let Some(Item::Statement(Statement::Block(b))) = doc.items.last() else {
            panic!()
        };
        assert!(matches!(&b.body[0], Item::Comment(c) if c.trailing));
    }

    #[test]
    fn hoists_comments_inside_values() {
        let doc = parse("a: [1, # one\n 2]\n").unwrap();
        assert!(matches!(&doc.items[0], Item::Comment(c) if c.text == "# one" && !c.trailing));
    }

    #[test]
    fn explains_what_was_expected() {
        let d = parse("a: \n}").unwrap_err();
        assert_eq!(d.message, "expected a value, found `}`");
        let d = parse("prune { heads: 2").unwrap_err();
        assert!(d.message.contains("`}`"), "{}", d.message);
        assert_eq!(d.labels[0].span, Span::new(16, 16));
        assert_eq!(
            d.message,
            "expected a statement (`key: value` or `name { ... }`) or `}`, found end of file"
        );
        let d = parse("prune {\n  heads: 2\n\n").unwrap_err();
        assert_eq!(d.labels[0].span, Span::new(18, 18));
        let d = parse("}").unwrap_err();
        assert!(
            d.message.starts_with("expected a statement"),
            "{}",
            d.message
        );
        let d = parse("a 1").unwrap_err();
        assert!(d.message.contains("`{`"), "{}", d.message);
    }

    #[test]
    fn rejects_huge_numbers() {
        assert_eq!(
            parse("a: 99999999999999999999").unwrap_err().code,
            "plcc::syntax::number-out-of-range"
        );
        assert_eq!(
            parse("a: 1e999").unwrap_err().code,
            "plcc::syntax::number-out-of-range"
        );
    }
}
