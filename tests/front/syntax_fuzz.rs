//! Property test: mutated recipes (byte flips, deletions, token insertions,
//! truncations) never make the compiler's front half (parse, schema, resolve
//! against the teacher, every pass, verify) panic or hang, and every
//! diagnostic points inside the text.

use std::path::Path;

use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../../examples/quickstart.pc"),
    include_str!("../../examples/cost_eff.pc"),
    include_str!("../../examples/xtc.pc"),
    include_str!("../../examples/quant_gpt.pc"),
    include_str!("../fixtures/syntax/custom_pass.pc"),
    include_str!("../fixtures/syntax/messy.pc"),
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "->",
    "..",
    "..=",
    "%",
    "\"",
    "\\",
    "#",
    "//",
    "\n",
    " ",
    "-",
    "1e400",
    "0",
    "99999999999999999999",
    "\"\\u{",
    "layer",
    "loss",
    "x",
    "1..0",
    "\u{e9}",
    "data",
    "teacher: \"builtin:x\"",
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(usize, u8),
    Delete(usize, usize),
    Insert(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| Mutation::FlipByte(at, bit)),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert(at, token)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut bytes = text.to_vec();
    let len = bytes.len().max(1);
    match *mutation {
        Mutation::FlipByte(at, value) => {
            if !bytes.is_empty() {
                bytes[at % len] ^= value | 1;
            }
        }
        Mutation::Delete(at, n) => {
            let start = at % len;
            let end = (start + n).min(bytes.len());
            bytes.drain(start.min(end)..end);
        }
        Mutation::Insert(at, token) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, TOKENS[token].bytes());
        }
        Mutation::Truncate(at) => bytes.truncate(at % len),
    }
    bytes
}

fn check_front_end(text: &str) {
    if let Ok(doc) = plcc::syntax::parse(text) {
        let formatted = plcc::syntax::format(&doc);
        let reparsed = plcc::syntax::parse(&formatted)
            .unwrap_or_else(|d| panic!("formatted text fails to parse: {d}\n{formatted}"));
        assert_eq!(
            reparsed.without_layout(),
            doc.without_layout(),
            "formatting changed the tree:\n{formatted}"
        );
        assert_eq!(
            plcc::syntax::format(&reparsed),
            formatted,
            "formatting is not idempotent"
        );
    }
    // Recipes resolve against the real examples folder, so mutated teachers,
    // data sets and selectors reach resolve and the passes too.
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let registry = plcc::pass_registry();
    let result = plcc::syntax::parse(text)
        .and_then(|doc| plcc::recipe::from_ast(&doc, &base))
        .and_then(|recipe| {
            plcc::compile_recipe(&recipe, &registry, plcc::pass::DumpAfter::none()).map(|_| ())
        });
    if let Err(diag) = result {
        assert!(
            !diag.labels.is_empty(),
            "diagnostic without a label: {}",
            diag.message
        );
        for label in &diag.labels {
            assert!(
                label.span.start <= label.span.end && label.span.end <= text.len(),
                "label {:?} outside a text of {} bytes: {}",
                label.span,
                text.len(),
                diag.message
            );
            assert!(
                text.is_char_boundary(label.span.start) && text.is_char_boundary(label.span.end)
            );
        }
        let rendered = diag.with_source("fuzz.pc", text).render_plain();
        assert!(!rendered.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_recipes_never_panic(seed in 0..SEEDS.len(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for m in &mutations {
            bytes = apply(&bytes, m);
        }
        match plcc::syntax::decode(Path::new("fuzz.pc"), bytes) {
            Ok(source) => check_front_end(&source.text),
            Err(diag) => prop_assert_eq!(diag.code, "plcc::syntax::invalid-utf8"),
        }
    }

    #[test]
    fn arbitrary_token_soup_never_panics(tokens in prop::collection::vec(0..TOKENS.len(), 0..60)) {
        let text: String = tokens.iter().map(|t| TOKENS[*t]).collect::<Vec<_>>().join(" ");
        check_front_end(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = format!("a: {}", "[".repeat(100_000));
    check_front_end(&text);
    let text = "b {".repeat(100_000);
    check_front_end(&text);
}
