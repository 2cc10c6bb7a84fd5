//! The custom pass of `examples/custom_pass.rs`, registered next to the
//! built-ins, runs when a recipe asks for it, sees its arguments and reports
//! bad ones at their span; the example binary runs `plcc plan` with it.

use std::path::{Path, PathBuf};

use plcc::ir::Op;
use plcc::pass::{DumpAfter, DumpSelect, PassRegistry};

#[allow(dead_code)]
#[path = "../../examples/custom_pass.rs"]
mod example;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/custom")
        .join(name)
}

fn registry() -> PassRegistry {
    let mut registry = plcc::pass_registry();
    registry.register(Box::new(example::HeadFloor)).unwrap();
    registry
}

#[test]
fn head_floor_raises_pruned_heads() {
    let (_, program) =
        plcc::compile(&fixture("head_floor.pc"), &registry(), DumpAfter::none()).unwrap();
    let heads: Vec<usize> = program
        .model
        .layers()
        .iter()
        .map(|l| match &program.model.node(l.attention).op {
            Op::Attention(a) => a.heads,
            _ => 0,
        })
        .collect();
    assert_eq!(heads, [2, 3, 2, 2]);
    assert_eq!(program.plan.custom_passes[0].name, "head-floor");
}

/// How to snapshot-test a pass: dump the IR text after it and snapshot that.
#[test]
fn head_floor_ir_after_the_pass() {
    let mut after = String::new();
    let dump = DumpAfter::new(DumpSelect::parse("head-floor"), |_, program| {
        after = plcc::ir::print(program)
    });
    plcc::compile(&fixture("head_floor.pc"), &registry(), dump).unwrap();
    assert!(!after.is_empty(), "the dump hook ran after head-floor");
    insta::assert_snapshot!(after);
}

#[test]
fn head_floor_reports_a_bad_argument_at_its_span() {
    let d = plcc::compile(
        &fixture("head_floor_bad_arg.pc"),
        &registry(),
        DumpAfter::none(),
    )
    .unwrap_err();
    assert_eq!(d.code, "head-floor::bad-min");
    insta::assert_snapshot!(d.render_plain().replace(
        &fixture("head_floor_bad_arg.pc").display().to_string(),
        "<recipe>"
    ));
}

#[test]
fn registering_a_taken_name_fails() {
    let mut registry = registry();
    assert!(registry.register(Box::new(example::HeadFloor)).is_err());
    assert!(registry.names().contains(&"head-floor"));
}

/// `target/<profile>/examples/custom_pass`, which `cargo test` builds with
/// the test binaries.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir
        .join("examples")
        .join(format!("custom_pass{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn example_binary_plans_with_the_custom_pass() {
    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`",
        binary.display()
    );
    let out = std::process::Command::new(&binary)
        .arg("plan")
        .arg(fixture("head_floor.pc"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 → 2"), "{stdout}");
    assert!(stdout.contains("4 → 3"), "{stdout}");

    let passes = std::process::Command::new(&binary)
        .arg("passes")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&passes.stdout);
    assert!(listing.contains("head-floor"), "{listing}");
}
