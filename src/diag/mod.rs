//! The one error type of plcc: a message, a stable code, labelled source spans
//! and help, rendered by miette. Passes and loaders never hold the recipe text;
//! the CLI attaches it once (`Diag::with_source`) before rendering.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

mod span;

pub use span::{Span, Spanned};

/// A tensor shape as messages show it: `384×30522`, `scalar` for no dimensions.
pub fn shape_text(dims: &[usize]) -> String {
    if dims.is_empty() {
        return "scalar".into();
    }
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// A list of counts or indices as messages show it: `[0, 3, 5]`.
pub fn list_text(items: &[usize]) -> String {
    let items: Vec<String> = items.iter().map(usize::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// A labelled span inside the recipe text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// A diagnostic: every user-facing failure in plcc is one of these.
#[derive(Debug, Clone)]
pub struct Diag {
    /// Stable machine-readable code, e.g. `plcc::recipe::unknown-key`.
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    /// Further notes (e.g. the underlying I/O error).
    pub notes: Vec<String>,
    /// A warning: shown, but nothing fails because of it.
    pub warning: bool,
    /// Further problems found independently of this one, in text order.
    more: Vec<Diag>,
    source: Option<NamedSource<String>>,
}

impl Diag {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Diag {
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
            warning: false,
            more: Vec::new(),
            source: None,
        }
    }

    /// A warning: reported with its spans, without failing the command.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diag {
            warning: true,
            ..Diag::new(code, message)
        }
    }

    /// Every problem of `list` as one diagnostic, ordered by where each
    /// points in the text (those pointing nowhere last); `None` for none.
    pub fn gather(list: Vec<Diag>) -> Option<Diag> {
        let mut list = list.into_iter();
        let first = list.next()?;
        Some(first.and(list.collect()))
    }

    /// This problem and `others` as one diagnostic, ordered as `gather`
    /// orders them, a problem found twice kept once.
    pub fn and(self, others: Vec<Diag>) -> Diag {
        let mut all = self.into_problems();
        all.extend(others.into_iter().flat_map(Diag::into_problems));
        all.sort_by_key(|d| d.labels.first().map_or(usize::MAX, |l| l.span.start));
        // The same problem found by two checks is shown once.
        all.dedup_by(|a, b| a.code == b.code && a.message == b.message && a.labels == b.labels);
        // `all` holds at least this problem.
        let mut first = all.remove(0);
        first.more = all;
        first
    }

    /// This problem and the ones found beside it.
    pub fn problems(&self) -> impl Iterator<Item = &Diag> {
        std::iter::once(self).chain(self.more.iter())
    }

    /// This problem and the ones found beside it, each on its own.
    pub fn into_problems(mut self) -> Vec<Diag> {
        let more = std::mem::take(&mut self.more);
        let mut out = vec![self];
        out.extend(more.into_iter().flat_map(Diag::into_problems));
        out
    }

    /// `3 errors`, `2 errors, 1 warning`: the line after several rendered
    /// problems; `None` for a single one.
    pub fn count_line(&self) -> Option<String> {
        let total = self.problems().count();
        if total < 2 {
            return None;
        }
        let warnings = self.problems().filter(|d| d.warning).count();
        let errors = total - warnings;
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        Some(match (errors, warnings) {
            (_, 0) => plural(errors, "error"),
            (0, _) => plural(warnings, "warning"),
            _ => format!(
                "{}, {}",
                plural(errors, "error"),
                plural(warnings, "warning")
            ),
        })
    }

    /// Adds a labelled span.
    pub fn label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// True when the diagnostic already points somewhere in the recipe.
    pub fn has_span(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Adds `span` as the primary label unless the diagnostic already has one.
    pub fn or_span(mut self, span: Span, message: impl Into<String>) -> Self {
        if self.labels.is_empty() {
            self.labels.push(Label {
                span,
                message: message.into(),
            });
        }
        self
    }

    /// Attaches the recipe text so the labels can be rendered.
    pub fn with_source(mut self, name: impl AsRef<str>, text: impl Into<String>) -> Self {
        let text = text.into();
        self.more = std::mem::take(&mut self.more)
            .into_iter()
            .map(|d| d.with_source(name.as_ref(), text.clone()))
            .collect();
        self.source = Some(NamedSource::new(name, text));
        self
    }

    /// Renders every problem without colour, then the count line when
    /// there are several: stable for snapshots and logs.
    pub fn render_plain(&self) -> String {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100);
        let mut parts = Vec::new();
        for problem in self.problems() {
            let mut out = String::new();
            parts.push(match handler.render_report(&mut out, problem) {
                Ok(()) => out,
                Err(_) => format!("error[{}]: {}", problem.code, problem.message),
            });
        }
        parts.extend(self.count_line());
        parts.join("\n")
    }

    /// Shorthand for an I/O failure on `path`.
    pub fn io(
        code: &'static str,
        what: &str,
        path: &std::path::Path,
        err: &std::io::Error,
    ) -> Self {
        Diag::new(code, format!("cannot {what} `{}`", path.display())).note(err.to_string())
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

impl Diagnostic for Diag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.warning {
            miette::Severity::Warning
        } else {
            miette::Severity::Error
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut parts: Vec<String> = Vec::new();
        if let Some(h) = &self.help {
            parts.push(h.clone());
        }
        if parts.is_empty() && self.notes.is_empty() {
            return None;
        }
        parts.extend(self.notes.iter().map(|n| format!("note: {n}")));
        Some(Box::new(parts.join("\n")))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        if self.labels.is_empty() {
            return None;
        }
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() || self.source.is_none() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(|(i, l)| {
            let span =
                SourceSpan::new(l.span.start.into(), l.span.end.saturating_sub(l.span.start));
            if i == 0 {
                LabeledSpan::new_primary_with_span(Some(l.message.clone()), span)
            } else {
                LabeledSpan::new_with_span(Some(l.message.clone()), span)
            }
        })))
    }
}

/// The name among `candidates` closest to `name`, if it is close enough to be a
/// plausible typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.filter(|(s, _)| *s >= 0.8).map(|(_, c)| c)
}

pub type Result<T, E = Diag> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_problems_are_ordered_by_span_once_each_and_counted() {
        let at = |code, start| Diag::new(code, code).label(Span::new(start, start + 1), "here");
        let warning = Diag::warning("w", "w").label(Span::new(5, 6), "here");
        let all = Diag::gather(vec![at("c", 9), at("a", 1), warning, at("a", 1)]);
        let all = all.map(|d| d.with_source("r.pc", "0123456789"));
        let codes: Vec<&str> = all
            .iter()
            .flat_map(|d| d.problems())
            .map(|d| d.code)
            .collect();
        assert_eq!(codes, ["a", "w", "c"]);
        let all = all.as_ref().map(|d| (d.count_line(), d.render_plain()));
        let (count, text) = all.unwrap_or_default();
        assert_eq!(count.as_deref(), Some("2 errors, 1 warning"));
        assert!(text.ends_with("2 errors, 1 warning"), "{text}");
        assert!(Diag::gather(Vec::new()).is_none());
    }
}
