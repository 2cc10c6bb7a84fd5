//! The syntax front end over real recipe files: every example and fixture
//! that parses survives parse → fmt → parse unchanged, formatting is
//! idempotent, the examples are already canonical and pass the schema check.

use std::path::{Path, PathBuf};

use plcc::syntax::{format, parse};

fn recipe_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for pattern in ["examples/*.pc", "tests/fixtures/**/*.pc"] {
        let full = root.join(pattern);
        let entries = glob::glob(&full.to_string_lossy()).expect("valid glob pattern");
        files.extend(entries.map(|e| e.expect("readable directory entry")));
    }
    files.sort();
    files
}

fn examples() -> Vec<PathBuf> {
    recipe_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/examples/"))
        .collect()
}

#[test]
fn parse_format_parse_round_trips() {
    let mut parsed = 0;
    for path in recipe_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(doc) = parse(&text) else { continue };
        let formatted = format(&doc);
        let reparsed = parse(&formatted)
            .unwrap_or_else(|d| panic!("{}: formatted text fails: {d}", path.display()));
        assert_eq!(
            reparsed.without_layout(),
            doc.without_layout(),
            "{}",
            path.display()
        );
        assert_eq!(
            format(&reparsed),
            formatted,
            "{}: formatting is not idempotent",
            path.display()
        );
        parsed += 1;
    }
    assert!(parsed >= 10, "only {parsed} recipe files parsed");
}

#[test]
fn examples_are_canonical_and_valid() {
    let examples = examples();
    for name in ["quickstart.pc", "cost_eff.pc", "xtc.pc", "quant_gpt.pc"] {
        assert!(
            examples.iter().any(|p| p.ends_with(name)),
            "examples/{name} is missing"
        );
    }
    for path in examples {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = parse(&text).unwrap_or_else(|d| panic!("{}: {d}", path.display()));
        assert_eq!(
            format(&doc),
            text,
            "{} is not in canonical form",
            path.display()
        );
        if let Err(d) = plcc::recipe::load(&path) {
            panic!("{}", d.render_plain());
        }
    }
}

#[test]
fn messy_text_formats_to_the_canonical_form() {
    let messy = "teacher:\"builtin:tiny-bert\",seed:1 # the seed\n\n\n\
        prune{heads:50.0% ffn :128\n layers 0..2 {heads:1}} exits{after:[1,2,],threshold:1E-2}\n";
    let expected = "teacher: \"builtin:tiny-bert\"\nseed: 1 # the seed\n\nprune {\n    heads: 50%\n    ffn: 128\n    \
        layers 0..2 {\n        heads: 1\n    }\n}\n\nexits {\n    after: [1, 2]\n    threshold: 0.01\n}\n";
    let formatted = format(&parse(messy).unwrap());
    assert_eq!(formatted, expected);
    assert!(plcc::recipe::parse_str(&formatted, Path::new(".")).is_ok());
}

#[test]
fn valid_fixtures_pass_the_schema_check() {
    let fixtures: Vec<PathBuf> = recipe_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/fixtures/syntax/"))
        .collect();
    assert!(fixtures.len() >= 2);
    for path in fixtures {
        if let Err(d) = plcc::recipe::load(&path) {
            panic!("{}", d.render_plain());
        }
    }
}
