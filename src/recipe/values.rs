//! Conversions from syntax-tree values to the typed values of the schema.
//! Each returns a diagnostic pointing at the value when it has the wrong type
//! or an impossible magnitude ("expected an integer, found a string").

use crate::base::{ExitScope, LabelSet};
use crate::diag::{did_you_mean, Diag};
use crate::diag::{Span, Spanned};
use crate::recipe::Amount;
use crate::syntax::{Value, ValueKind};

/// "expected WHAT, found KIND" at the value.
pub fn wrong_type(value: &Value, expected: &str) -> Diag {
    let found = value.kind.describe();
    Diag::new(
        "plcc::recipe::wrong-type",
        format!("expected {expected}, found {found}"),
    )
    .label(value.span, format!("expected {expected}"))
}

/// A value outside the range its key allows.
pub fn out_of_range(span: Span, message: impl Into<String>, label: impl Into<String>) -> Diag {
    Diag::new("plcc::recipe::out-of-range", message).label(span, label)
}

pub fn integer(value: &Value) -> Result<i64, Diag> {
    match value.kind {
        ValueKind::Int(i) => Ok(i),
        _ => Err(wrong_type(value, "an integer")),
    }
}

/// An integer ≥ 0.
pub fn count(value: &Value) -> Result<usize, Diag> {
    let i = integer(value)?;
    usize::try_from(i).map_err(|_| {
        out_of_range(
            value.span,
            format!("expected a non-negative integer, found {i}"),
            "must be 0 or more",
        )
    })
}

/// An integer ≥ 1.
pub fn positive(value: &Value) -> Result<usize, Diag> {
    let i = integer(value)?;
    match usize::try_from(i) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(out_of_range(
            value.span,
            format!("expected a positive integer, found {i}"),
            "must be 1 or more",
        )),
    }
}

/// An integer or a float.
pub fn number(value: &Value) -> Result<f64, Diag> {
    match value.kind {
        ValueKind::Int(i) => Ok(i as f64),
        ValueKind::Float(x) => Ok(x),
        _ => Err(wrong_type(value, "a number")),
    }
}

/// A number > 0.
pub fn positive_number(value: &Value) -> Result<f64, Diag> {
    let x = number(value)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(out_of_range(
            value.span,
            format!("expected a positive number, found {x}"),
            "must be greater than 0",
        ))
    }
}

/// A duration > 0 (`90s`, `45min`, `1.5h`), in seconds.
pub fn duration(value: &Value) -> Result<f64, Diag> {
    let ValueKind::Duration(amount, unit) = value.kind else {
        return Err(wrong_type(
            value,
            "a duration such as `45min`, `90s` or `1.5h`",
        ));
    };
    if amount > 0.0 {
        Ok(amount * unit.seconds())
    } else {
        Err(out_of_range(
            value.span,
            format!(
                "expected a positive duration, found {amount}{}",
                unit.suffix()
            ),
            "must be longer than 0",
        ))
    }
}

/// A number ≥ 0.
pub fn non_negative_number(value: &Value) -> Result<f64, Diag> {
    let x = number(value)?;
    if x >= 0.0 {
        Ok(x)
    } else {
        Err(out_of_range(
            value.span,
            format!("expected a number ≥ 0, found {x}"),
            "must not be negative",
        ))
    }
}

/// A percent in (0, 100%], as a fraction.
pub fn fraction(value: &Value) -> Result<f64, Diag> {
    match value.kind {
        ValueKind::Percent(p) => fraction_of(p, value.span),
        _ => Err(wrong_type(value, "a percent")),
    }
}

fn fraction_of(percent: f64, span: Span) -> Result<f64, Diag> {
    if percent > 0.0 && percent <= 100.0 {
        Ok(percent / 100.0)
    } else {
        Err(Diag::new(
            "plcc::recipe::fraction-out-of-range",
            format!("{percent}% is outside (0, 100%]"),
        )
        .label(span, "a fraction must be more than 0% and at most 100%"))
    }
}

/// A count ≥ 1 or a percent in (0, 100%].
pub fn amount(value: &Value) -> Result<Amount, Diag> {
    match value.kind {
        ValueKind::Int(_) => Ok(Amount::Count(positive(value)?)),
        ValueKind::Percent(p) => Ok(Amount::Fraction(fraction_of(p, value.span)?)),
        _ => Err(wrong_type(value, "a count or a percent")),
    }
}

/// A count ≥ 0 or a percent in [0, 100%] (a warm-up may be empty).
pub fn amount_or_zero(value: &Value) -> Result<Amount, Diag> {
    match value.kind {
        ValueKind::Int(_) => Ok(Amount::Count(count(value)?)),
        ValueKind::Percent(p) => match p {
            0.0 => Ok(Amount::Fraction(0.0)),
            _ => Ok(Amount::Fraction(fraction_of(p, value.span)?)),
        },
        _ => Err(wrong_type(value, "a count or a percent")),
    }
}

pub fn string(value: &Value) -> Result<String, Diag> {
    match &value.kind {
        ValueKind::Str(s) => Ok(s.clone()),
        _ => Err(wrong_type(value, "a string")),
    }
}

/// A non-empty string.
pub fn non_empty_string(value: &Value) -> Result<String, Diag> {
    let s = string(value)?;
    if s.is_empty() {
        Err(out_of_range(
            value.span,
            "expected a non-empty string",
            "empty",
        ))
    } else {
        Ok(s)
    }
}

pub fn ident(value: &Value) -> Result<String, Diag> {
    match &value.kind {
        ValueKind::Ident(s) => Ok(s.clone()),
        _ => Err(wrong_type(value, "a name")),
    }
}

/// A classifier's labels: a count (`3`, classes `LABEL_0`, ...) or the
/// names in class order (`[neg, pos]`, names or strings).
pub fn label_set(value: &Value) -> Result<LabelSet, Diag> {
    let names = match &value.kind {
        ValueKind::Int(_) => {
            let n = positive(value)?;
            if !(2..=crate::base::labels::MAX_LABELS).contains(&n) {
                return Err(out_of_range(
                    value.span,
                    format!(
                        "`labels` must be from 2 to {}",
                        crate::base::labels::MAX_LABELS
                    ),
                    "a classifier needs two classes or more",
                ));
            }
            return Ok(LabelSet::numbered(n));
        }
        ValueKind::List(items) => items
            .iter()
            .map(|v| match &v.kind {
                ValueKind::Ident(s) | ValueKind::Str(s) => Ok(s.clone()),
                _ => Err(wrong_type(v, "a label name")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(
                wrong_type(value, "a number of classes or a list of label names")
                    .help("write `labels: 3` or `labels: [neg, neutral, pos]`"),
            )
        }
    };
    LabelSet::new(names)
        .map_err(|e| out_of_range(value.span, format!("`labels`: {e}"), "these labels"))
}

/// One of the named `options` (an identifier).
pub fn choice<T: Copy>(value: &Value, options: &[(&'static str, T)]) -> Result<T, Diag> {
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let listing = one_of(&names);
    match &value.kind {
        ValueKind::Ident(s) => match options.iter().find(|(n, _)| n == s) {
            Some((_, t)) => Ok(*t),
            None => Err(unknown_value(value.span, s, &names)),
        },
        _ => Err(wrong_type(value, &listing)),
    }
}

/// `all_exits` or `last_exit`: which exits a prune or a loss looks at.
pub fn exit_scope(value: &Value) -> Result<ExitScope, Diag> {
    choice(
        value,
        &[
            ("all_exits", ExitScope::AllExits),
            ("last_exit", ExitScope::LastExit),
        ],
    )
}

/// "unknown value `x`" with the known ones and a suggestion.
pub fn unknown_value(span: Span, found: &str, known: &[&str]) -> Diag {
    unknown_value_besides(span, found, known, None)
}

/// "unknown value `x`" where the key also takes another kind of value
/// (`besides`, e.g. "a list or range of layers").
pub fn unknown_value_besides(
    span: Span,
    found: &str,
    known: &[&str],
    besides: Option<&str>,
) -> Diag {
    let expected = match besides {
        Some(other) => format!("{} or {other}", known_list(known)),
        None => one_of(known),
    };
    let diag = Diag::new(
        "plcc::recipe::unknown-value",
        format!("unknown value `{found}`"),
    )
    .label(span, format!("expected {expected}"));
    match did_you_mean(found, known.iter().copied()) {
        Some(s) => diag.help(format!("did you mean `{s}`?")),
        None => diag,
    }
}

/// "`a`, `b`, `c`" (a list that goes on).
fn known_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// "`a`, `b` or `c`"
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

pub fn boolean(value: &Value) -> Result<bool, Diag> {
    choice(value, &[("true", true), ("false", false)])
}

/// A list of integers ≥ `min`, or a range of them; each element keeps its span
/// (elements of a range carry the range's span).
pub fn index_list(value: &Value, min: usize) -> Result<Vec<Spanned<usize>>, Diag> {
    let check = |i: i64, span: Span| -> Result<usize, Diag> {
        match usize::try_from(i) {
            Ok(n) if n >= min => Ok(n),
            _ => Err(out_of_range(
                span,
                format!("layer index {i} is below {min}"),
                format!("must be {min} or more"),
            )),
        }
    };
    match &value.kind {
        ValueKind::List(items) => items
            .iter()
            .map(|item| match item.kind {
                ValueKind::Int(i) => Ok(Spanned::new(check(i, item.span)?, item.span)),
                _ => Err(wrong_type(item, "an integer")),
            })
            .collect(),
        ValueKind::Range {
            start,
            end,
            inclusive,
        } => {
            let last = if *inclusive {
                *end
            } else {
                end.saturating_sub(1)
            };
            if last < *start {
                return Err(out_of_range(
                    value.span,
                    "this range is empty",
                    "no layer lies in this range",
                ));
            }
            let first = check(*start, value.span)?;
            let last = check(last, value.span)?;
            if last - first > 1_000_000 {
                return Err(out_of_range(
                    value.span,
                    "this range is too long",
                    "more than a million layers",
                ));
            }
            Ok((first..=last)
                .map(|i| Spanned::new(i, value.span))
                .collect())
        }
        ValueKind::Int(i) => Ok(vec![Spanned::new(check(*i, value.span)?, value.span)]),
        _ => Err(wrong_type(value, "a list or range of layer indices")),
    }
}

/// Checks that indices strictly increase; `what` names the list in the message.
pub fn strictly_increasing(items: &[Spanned<usize>], what: &str) -> Result<(), Diag> {
    for pair in items.windows(2) {
        if pair[1].value <= pair[0].value {
            return Err(Diag::new(
                "plcc::recipe::not-increasing",
                format!(
                    "{what} must be strictly increasing, but {} follows {}",
                    pair[1].value, pair[0].value
                ),
            )
            .label(pair[1].span, "not greater than the previous entry")
            .label(pair[0].span, "previous entry"));
        }
    }
    Ok(())
}
