//! The generic syntax tree of a recipe: statements (properties and blocks),
//! values and comments, each with its byte span. It knows nothing of the
//! recipe schema; `recipe::from_ast` gives it meaning.

use crate::diag::Span;

/// A whole recipe file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub items: Vec<Item>,
}

/// One entry of a statement list: a statement or a comment.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Statement(Statement),
    Comment(Comment),
}

/// A `#` or `//` comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The comment as written, marker included, without trailing white space.
    pub text: String,
    pub span: Span,
    /// True when it follows a statement (or a block's `{`) on the same line.
    pub trailing: bool,
    /// True when an empty line separates it from what precedes it.
    pub blank_line_before: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Property(Property),
    Block(Block),
}

/// `key: value`
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub key: Name,
    pub value: Value,
    pub span: Span,
    /// True when an empty line separates it from what precedes it.
    pub blank_line_before: bool,
}

/// `name arg arg { body }`
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: Name,
    pub args: Vec<Value>,
    pub body: Vec<Item>,
    pub span: Span,
    /// True when an empty line separates it from what precedes it.
    pub blank_line_before: bool,
}

/// A key or block name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A value with the span of its source text (for strings: quotes included).
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    Int(i64),
    Float(f64),
    /// The number written before `%` (`25%` is `Percent(25.0)`).
    Percent(f64),
    /// A length of time as written: `45min` is `Duration(45.0, TimeUnit::Minutes)`.
    Duration(f64, TimeUnit),
    /// The decoded string.
    Str(String),
    Ident(String),
    List(Vec<Value>),
    /// `start..end` or `start..=end`.
    Range {
        start: i64,
        end: i64,
        inclusive: bool,
    },
    /// `a -> b`
    Pair(Box<Value>, Box<Value>),
}

/// The unit a duration is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
}

impl TimeUnit {
    /// The unit's suffix in the recipe language.
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "min",
            TimeUnit::Hours => "h",
        }
    }

    /// Seconds in one of this unit.
    pub fn seconds(self) -> f64 {
        match self {
            TimeUnit::Seconds => 1.0,
            TimeUnit::Minutes => 60.0,
            TimeUnit::Hours => 3600.0,
        }
    }
}

impl ValueKind {
    /// What the value is, for messages: "an integer", "a string", ...
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Int(_) => "an integer",
            ValueKind::Float(_) => "a number",
            ValueKind::Percent(_) => "a percent",
            ValueKind::Duration(..) => "a duration",
            ValueKind::Str(_) => "a string",
            ValueKind::Ident(_) => "a name",
            ValueKind::List(_) => "a list",
            ValueKind::Range { .. } => "a range",
            ValueKind::Pair(..) => "a pair",
        }
    }
}

impl Statement {
    pub fn name(&self) -> &Name {
        match self {
            Statement::Property(p) => &p.key,
            Statement::Block(b) => &b.name,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Statement::Property(p) => p.span,
            Statement::Block(b) => b.span,
        }
    }
}

impl Item {
    /// The statement, if this item is one.
    pub fn statement(&self) -> Option<&Statement> {
        match self {
            Item::Statement(s) => Some(s),
            Item::Comment(_) => None,
        }
    }
}

impl Document {
    /// The statements at the top level, comments skipped.
    pub fn statements(&self) -> impl Iterator<Item = &Statement> {
        self.items.iter().filter_map(Item::statement)
    }

    /// A copy with every span zeroed and layout (blank lines) forgotten: two
    /// documents that mean the same and carry the same comments compare equal.
    pub fn without_layout(&self) -> Document {
        Document {
            items: self.items.iter().map(strip_item).collect(),
        }
    }
}

fn strip_item(item: &Item) -> Item {
    match item {
        Item::Comment(c) => Item::Comment(Comment {
            text: c.text.clone(),
            span: Span::default(),
            trailing: c.trailing,
            blank_line_before: false,
        }),
        Item::Statement(Statement::Property(p)) => Item::Statement(Statement::Property(Property {
            key: strip_name(&p.key),
            value: strip_value(&p.value),
            span: Span::default(),
            blank_line_before: false,
        })),
        Item::Statement(Statement::Block(b)) => Item::Statement(Statement::Block(Block {
            name: strip_name(&b.name),
            args: b.args.iter().map(strip_value).collect(),
            body: b.body.iter().map(strip_item).collect(),
            span: Span::default(),
            blank_line_before: false,
        })),
    }
}

fn strip_name(name: &Name) -> Name {
    Name {
        text: name.text.clone(),
        span: Span::default(),
    }
}

fn strip_value(value: &Value) -> Value {
    let kind = match &value.kind {
        ValueKind::List(items) => ValueKind::List(items.iter().map(strip_value).collect()),
        ValueKind::Pair(a, b) => {
            ValueKind::Pair(Box::new(strip_value(a)), Box::new(strip_value(b)))
        }
        other => other.clone(),
    };
    Value {
        kind,
        span: Span::default(),
    }
}
