//! A fast character-level scan that runs before the grammar: it finds the
//! errors a parser generator reports poorly (unterminated strings, unknown
//! escapes, stray characters) and bounds the nesting depth of `[` and `{` so
//! that neither the parser nor the tree builder can recurse without limit.

use crate::diag::Diag;
use crate::diag::Span;

/// Deepest nesting of lists and blocks a recipe may use.
pub const MAX_NESTING: usize = 32;

/// Checks strings, escapes, characters and nesting depth of `text`.
pub fn scan(text: &str) -> Result<(), Diag> {
    let mut chars = text.char_indices().peekable();
    let mut depth = 0usize;
    while let Some((pos, c)) = chars.next() {
        match c {
            '"' => scan_string(text, pos, &mut chars)?,
            '#' => skip_line(&mut chars),
            '/' if matches!(chars.peek(), Some((_, '/'))) => skip_line(&mut chars),
            '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diag::new(
                        "plcc::syntax::too-deep",
                        "lists and blocks are nested too deeply",
                    )
                    .label(
                        Span::new(pos, pos + 1),
                        format!("more than {MAX_NESTING} levels deep"),
                    ));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            c if is_allowed(c) => {}
            other => {
                let end = pos + other.len_utf8();
                let shown = if other.is_control() {
                    format!("U+{:04X} (a control character)", other as u32)
                } else {
                    format!("`{other}`")
                };
                return Err(Diag::new("plcc::syntax::unexpected-character", format!("unexpected character {shown}"))
                    .label(Span::new(pos, end), "not part of the recipe language")
                    .help("text outside strings and comments uses letters, digits, `_ - . : , % { } [ ]` and `->`"));
            }
        }
    }
    Ok(())
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\t'
                | '\r'
                | '\n'
                | '\u{FEFF}'
                | '_'
                | '-'
                | '.'
                | ':'
                | ','
                | '%'
                | '>'
                | '='
                | '+'
        )
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

fn skip_line(chars: &mut Chars<'_>) {
    while let Some((_, c)) = chars.peek() {
        if *c == '\n' {
            break;
        }
        chars.next();
    }
}

/// Scans a string whose opening quote is at `open`.
fn scan_string(text: &str, open: usize, chars: &mut Chars<'_>) -> Result<(), Diag> {
    let unterminated = |end: usize| {
        Diag::new("plcc::syntax::unterminated-string", "unterminated string")
            .label(
                Span::new(open, end.max(open + 1)),
                "this string has no closing `\"`",
            )
            .help("strings end on the line they start; write a line break as `\\n`")
    };
    loop {
        match chars.next() {
            None => return Err(unterminated(text.len())),
            Some((pos, '\n')) => return Err(unterminated(pos)),
            Some((_, '"')) => return Ok(()),
            Some((pos, '\\')) => match chars.next() {
                Some((_, '"' | '\\' | 'n' | 't' | 'r')) => {}
                Some((_, 'u')) => scan_unicode_escape(text, pos, chars)?,
                Some((at, c)) if c != '\n' => {
                    return Err(Diag::new(
                        "plcc::syntax::bad-escape",
                        format!("unknown escape `\\{c}`"),
                    )
                    .label(Span::new(pos, at + c.len_utf8()), "not an escape")
                    .help("escapes are `\\\"`, `\\\\`, `\\n`, `\\t`, `\\r` and `\\u{HEX}`"))
                }
                _ => return Err(unterminated(pos)),
            },
            Some(_) => {}
        }
    }
}

/// Scans `{HEX}` after `\u` (the backslash is at `start`).
fn scan_unicode_escape(text: &str, start: usize, chars: &mut Chars<'_>) -> Result<(), Diag> {
    let bad = |end: usize, why: &str| {
        Diag::new("plcc::syntax::bad-escape", "invalid unicode escape")
            .label(
                Span::new(start, end.min(text.len()).max(start + 1)),
                why.to_string(),
            )
            .help("write a unicode escape as `\\u{1F600}`: one to six hex digits in braces")
    };
    match chars.next() {
        Some((_, '{')) => {}
        Some((pos, _)) => return Err(bad(pos, "expected `{` after `\\u`")),
        None => return Err(bad(text.len(), "expected `{` after `\\u`")),
    }
    let mut digits = String::new();
    loop {
        match chars.next() {
            Some((pos, '}')) => {
                let valid = !digits.is_empty()
                    && digits.len() <= 6
                    && u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .is_some();
                return if valid {
                    Ok(())
                } else {
                    Err(bad(pos + 1, "not a unicode scalar value"))
                };
            }
            Some((_, c)) if c.is_ascii_hexdigit() && digits.len() < 8 => digits.push(c),
            Some((pos, _)) => return Err(bad(pos, "expected hex digits and `}`")),
            None => return Err(bad(text.len(), "expected hex digits and `}`")),
        }
    }
}

/// Decodes the escapes of a string body that `scan` accepted.
pub fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                out.push(
                    u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)?,
                );
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_strings_comments_and_values() {
        assert!(scan("a: \"x\\\"y\\u{1F600}\" # @ anything\nb: [1 -> 2] // é\n").is_ok());
    }

    #[test]
    fn reports_unterminated_string_at_its_quote() {
        let d = scan("a: \"abc\nb: 1").unwrap_err();
        assert_eq!(d.code, "plcc::syntax::unterminated-string");
        assert_eq!(d.labels[0].span, Span::new(3, 7));
    }

    #[test]
    fn reports_bad_escapes() {
        assert_eq!(
            scan("a: \"\\q\"").unwrap_err().code,
            "plcc::syntax::bad-escape"
        );
        assert_eq!(
            scan("a: \"\\u{110000}\"").unwrap_err().code,
            "plcc::syntax::bad-escape"
        );
        assert_eq!(
            scan("a: \"\\u12\"").unwrap_err().code,
            "plcc::syntax::bad-escape"
        );
    }

    #[test]
    fn bounds_nesting() {
        let deep = "a: ".to_string() + &"[".repeat(MAX_NESTING + 1);
        assert_eq!(scan(&deep).unwrap_err().code, "plcc::syntax::too-deep");
    }

    #[test]
    fn unescapes() {
        assert_eq!(
            unescape(r#"a\"b\\c\n\u{41}"#).as_deref(),
            Some("a\"b\\c\nA")
        );
    }
}
