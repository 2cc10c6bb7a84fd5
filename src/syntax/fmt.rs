//! The canonical form of a recipe (`plcc fmt`): four-space indentation, one
//! statement per line, `key: value`, numbers, percents and strings in one
//! spelling each, a blank line around every top-level block (user blank lines
//! kept, collapsed to one), comments kept where they were, trailing ones
//! trailing. Formatting never changes what a recipe means, and formatting a
//! formatted recipe changes nothing.

use super::ast::{Block, Document, Item, Statement, Value, ValueKind};

const INDENT: &str = "    ";

/// The canonical text of `doc`.
pub fn format(doc: &Document) -> String {
    let mut out = Lines::default();
    write_items(&mut out, &doc.items, 0);
    let mut text = out.lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
}

impl Lines {
    fn push(&mut self, depth: usize, text: String) {
        self.lines.push(format!("{}{}", INDENT.repeat(depth), text));
    }

    fn blank(&mut self) {
        if self.lines.last().is_some_and(|l| !l.is_empty()) {
            self.lines.push(String::new());
        }
    }

    fn append(&mut self, text: &str) {
        match self.lines.last_mut() {
            Some(last) => {
                last.push(' ');
                last.push_str(text);
            }
            None => self.lines.push(text.to_string()),
        }
    }
}

fn write_items(out: &mut Lines, items: &[Item], depth: usize) {
    let mut prev_statement_is_block: Option<bool> = None;
    let mut prev_is_own_line_comment = false;
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Comment(c) if c.trailing && i > 0 => out.append(&c.text),
            Item::Comment(c) => {
                let group_start = !prev_is_own_line_comment;
                if c.blank_line_before
                    || (group_start
                        && depth == 0
                        && needs_blank(prev_statement_is_block, next_statement(items, i)))
                {
                    out.blank();
                }
                out.push(depth, c.text.clone());
            }
            Item::Statement(s) => {
                let is_block = matches!(s, Statement::Block(_));
                let blank_flag = match s {
                    Statement::Property(p) => p.blank_line_before,
                    Statement::Block(b) => b.blank_line_before,
                };
                let group_start = !prev_is_own_line_comment;
                if blank_flag
                    || (group_start
                        && depth == 0
                        && needs_blank(prev_statement_is_block, Some(is_block)))
                {
                    out.blank();
                }
                write_statement(out, s, depth);
                prev_statement_is_block = Some(is_block);
            }
        }
        prev_is_own_line_comment = matches!(item, Item::Comment(c) if !(c.trailing && i > 0));
    }
}

/// Whether a blank line separates a top-level statement group from the previous one.
fn needs_blank(prev_is_block: Option<bool>, next_is_block: Option<bool>) -> bool {
    match prev_is_block {
        None => false,
        Some(prev) => prev || next_is_block.unwrap_or(false),
    }
}

/// Whether the statement an own-line comment at `i` introduces is a block.
fn next_statement(items: &[Item], i: usize) -> Option<bool> {
    items[i..].iter().find_map(|item| match item {
        Item::Statement(s) => Some(matches!(s, Statement::Block(_))),
        Item::Comment(_) => None,
    })
}

fn write_statement(out: &mut Lines, statement: &Statement, depth: usize) {
    match statement {
        Statement::Property(p) => {
            out.push(depth, format!("{}: {}", p.key.text, format_value(&p.value)))
        }
        Statement::Block(b) => write_block(out, b, depth),
    }
}

fn write_block(out: &mut Lines, block: &Block, depth: usize) {
    let mut header = block.name.text.clone();
    for arg in &block.args {
        header.push(' ');
        header.push_str(&format_value(arg));
    }
    if block.body.is_empty() {
        out.push(depth, format!("{header} {{}}"));
        return;
    }
    out.push(depth, format!("{header} {{"));
    let body = match block.body.first() {
        Some(Item::Comment(c)) if c.trailing => {
            out.append(&c.text);
            &block.body[1..]
        }
        _ => &block.body[..],
    };
    write_items(out, body, depth + 1);
    out.push(depth, "}".to_string());
}

/// The canonical spelling of a value.
pub fn format_value(value: &Value) -> String {
    match &value.kind {
        ValueKind::Int(i) => i.to_string(),
        ValueKind::Float(x) => format_float(*x),
        ValueKind::Percent(p) => format!("{}%", format_percent(*p)),
        ValueKind::Duration(amount, unit) => {
            format!("{}{}", format_percent(*amount), unit.suffix())
        }
        ValueKind::Str(s) => quote(s),
        ValueKind::Ident(id) => id.clone(),
        ValueKind::List(items) => {
            let inner: Vec<String> = items.iter().map(format_value).collect();
            format!("[{}]", inner.join(", "))
        }
        ValueKind::Range {
            start,
            end,
            inclusive,
        } => {
            format!("{start}{}{end}", if *inclusive { "..=" } else { ".." })
        }
        ValueKind::Pair(a, b) => format!("{} -> {}", format_value(a), format_value(b)),
    }
}

/// A float that reads back as the same float (never as an integer):
/// plain decimals for ordinary magnitudes, `1e-4` style otherwise.
pub fn format_float(x: f64) -> String {
    let magnitude = x.abs();
    if x == 0.0 {
        "0.0".to_string()
    } else if !(1e-2..1e7).contains(&magnitude) {
        format!("{x:e}")
    } else {
        format!("{x:?}")
    }
}

fn format_percent(p: f64) -> String {
    if p.fract() == 0.0 && p.abs() < 1e15 {
        format!("{}", p as i64)
    } else {
        format_float(p)
    }
}

/// A string literal with the escapes the language knows.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:X}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse;

    fn fmt(text: &str) -> String {
        format(&parse(text).unwrap())
    }

    #[test]
    fn canonical_layout() {
        let text = "teacher:\"t\" , seed:1\nprune{heads:50%,ffn : 25.0% # half\nlayer 2 {heads: 1}}\ndata d \"x\" {}";
        let expected = "teacher: \"t\"\nseed: 1\n\nprune {\n    heads: 50%\n    ffn: 25% # half\n    layer 2 {\n        heads: 1\n    }\n}\n\ndata d \"x\" {}\n";
        assert_eq!(fmt(text), expected);
        assert_eq!(fmt(expected), expected);
    }

    #[test]
    fn normalises_numbers_and_strings() {
        assert_eq!(
            fmt("a: [1E-4, 2.5e3, 0.50, 1e8, 12.50%, \"\\u{41}\\t\"]"),
            "a: [1e-4, 2500.0, 0.5, 1e8, 12.5%, \"A\\t\"]\n"
        );
    }

    #[test]
    fn keeps_comment_groups_with_their_block() {
        let text = "a: 1\n# about b\nb {\n    c: 1 # why\n\n    # own\n    d: 2\n}\n// end\n";
        let expected =
            "a: 1\n\n# about b\nb {\n    c: 1 # why\n\n    # own\n    d: 2\n}\n\n// end\n";
        assert_eq!(fmt(text), expected);
        assert_eq!(fmt(expected), expected);
    }

    #[test]
    fn trailing_comment_after_open_brace() {
        let text = "pass \"x\" { # note\n}\n";
        assert_eq!(fmt(text), text);
    }
}
