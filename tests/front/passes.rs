//! Every recipe in `tests/fixtures/*.pc` compiles; the IR text after each
//! pass, the plan table and the `--json` plan document are snapshotted.

use std::path::Path;

use plcc::ir::{print, Verified};
use plcc::pass::{DumpAfter, DumpSelect};

/// Compiles `path` with the built-in passes, collecting the IR text after each.
fn compile_with_dumps(path: &Path) -> (Verified, Vec<(String, String)>) {
    let mut dumps = Vec::new();
    let dump = DumpAfter::new(DumpSelect::All, |pass, program| {
        dumps.push((pass.to_string(), print(program)))
    });
    let result = plcc::compile(path, &plcc::pass_registry(), dump);
    match result {
        Ok((_, program)) => (program, dumps),
        Err(d) => panic!("{} failed:\n{}", path.display(), d.render_plain()),
    }
}

#[test]
fn fixtures_snapshot_ir_after_every_pass_and_the_plan() {
    insta::glob!("..", "fixtures/*.pc", |path| {
        let (program, dumps) = compile_with_dumps(path);
        assert_eq!(dumps.len(), 6, "one dump per built-in pass");
        for (pass, text) in dumps {
            insta::assert_snapshot!(format!("after-{pass}"), text);
        }
        insta::assert_snapshot!("plan", plcc::ir::plan_table(&program));
        insta::assert_json_snapshot!("plan-json", plcc::ir::plan_document(&program));
    });
}

#[test]
fn dump_after_one_pass_only() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prune_only.pc");
    let mut seen = Vec::new();
    let dump = DumpAfter::new(DumpSelect::parse("width-prune"), |pass, _| {
        seen.push(pass.to_string())
    });
    plcc::compile(&path, &plcc::pass_registry(), dump).unwrap();
    assert_eq!(seen, ["width-prune"]);
}

#[test]
fn dump_after_unknown_pass_suggests_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prune_only.pc");
    let dump = DumpAfter::new(DumpSelect::parse("width-prun"), |_, _| {});
    let d = plcc::compile(&path, &plcc::pass_registry(), dump).unwrap_err();
    assert_eq!(d.code, "plcc::cli::unknown-pass");
    assert_eq!(d.help.as_deref(), Some("did you mean `width-prune`?"));
}
