//! Every recipe in `tests/fixtures/errors/` must fail; the rendered diagnostic
//! (plain text, source attached) is snapshotted. `check` is the whole
//! pipeline a fixture runs through; extend it as later stages land.

use std::path::Path;

use plcc::Diag;

/// Runs a recipe file through the whole front half: load, resolve, the
/// built-in passes and verification.
fn check(path: &Path) -> Result<(), Diag> {
    let registry = plcc::pass_registry();
    plcc::compile(path, &registry, plcc::pass::DumpAfter::none()).map(|_| ())
}

#[test]
fn error_fixtures_render_their_diagnostic() {
    insta::glob!("..", "fixtures/errors/*.pc", |path| {
        let diag = match check(path) {
            Ok(()) => panic!("{} was accepted but must fail", path.display()),
            Err(diag) => diag,
        };
        assert!(
            diag.has_span(),
            "{}: the diagnostic points nowhere: {}",
            path.display(),
            diag.message
        );
        let rendered = diag
            .render_plain()
            .replace(&path.display().to_string(), "<recipe>");
        insta::assert_snapshot!(rendered);
    });
}
