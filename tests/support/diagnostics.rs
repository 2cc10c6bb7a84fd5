//! Reading rendered diagnostics independently of where they wrap.

/// A rendered diagnostic as one line of text: miette wraps messages at a
/// width, so where a line breaks depends on the lengths around it (a
/// temporary path with the process id in it, say). The gutter (`│`) and
/// every run of white space become one space.
pub fn unwrapped(rendered: &str) -> String {
    rendered
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
