//! Schema of the `vocab` block: vocabulary pruning on a data set, by a
//! total size (`keep`) or a frequency floor (`min_count`), exactly one.

use super::fields::{arg_count, Body, Errors};
use super::values::{ident, integer, out_of_range, positive};
use crate::base::VocabRule;
use crate::diag::Diag;
use crate::recipe::VocabSpec;
use crate::syntax::{Block, Value};

/// `vocab { data, keep | min_count }`
pub fn vocab(block: &Block, errs: &mut Errors) -> Option<VocabSpec> {
    errs.ok(arg_count(block, 0, ""))?;
    let mut body = Body::new(&block.body, "`vocab`", block.name.span, errs);
    let data = body.require("data", errs, ident);
    let keep_given = body.get("keep").is_some();
    let min_given = body.get("min_count").is_some();
    let keep = body.take("keep", errs, |v| positive(v).map(VocabRule::Keep));
    let min_count = body.take("min_count", errs, min_count);
    body.finish(&[], errs);
    let rule = match (keep, min_count) {
        (Some(k), Some(m)) => {
            errs.push(
                Diag::new(
                    "plcc::recipe::conflicting-keys",
                    "give either `keep` or `min_count`, not both",
                )
                .label(m.span, "second rule")
                .label(k.span, "first rule")
                .help("`keep: N` fixes the vocabulary size; `min_count: K` keeps what the data uses K times or more"),
            );
            return None;
        }
        (Some(rule), None) | (None, Some(rule)) => rule,
        (None, None) => {
            if !keep_given && !min_given {
                errs.push(
                    Diag::new(
                        "plcc::recipe::missing-key",
                        "`vocab` needs `keep` or `min_count`",
                    )
                    .label(block.name.span, "say how much of the vocabulary to keep")
                    .help("`keep: N` keeps N pieces in all; `min_count: K` keeps the pieces the data uses at least K times"),
                );
            }
            return None;
        }
    };
    Some(VocabSpec {
        span: block.span,
        keyword: block.name.span,
        data: data?,
        rule,
    })
}

/// `min_count`: an integer ≥ 1 (every piece is seen at least 0 times).
fn min_count(value: &Value) -> Result<VocabRule, Diag> {
    let i = integer(value)?;
    match u64::try_from(i) {
        Ok(n) if n >= 1 => Ok(VocabRule::MinCount(n)),
        _ => Err(out_of_range(
            value.span,
            format!("`min_count` must be at least 1, found {i}"),
            "must be 1 or more",
        )
        .help("`min_count: 0` would keep every piece; leave out the `vocab` block instead")),
    }
}

#[cfg(test)]
mod tests {
    use crate::base::VocabRule;
    use crate::recipe::parse_str;

    fn parse(body: &str) -> Result<crate::recipe::Recipe, crate::Diag> {
        let text = format!(
            "teacher: \"builtin:tiny-bert\"\ndata corpus \"c.txt\" {{}}\nvocab {{ {body} }}\n"
        );
        parse_str(&text, std::path::Path::new("."))
    }

    #[test]
    fn vocab_block_takes_one_rule() {
        let r = parse("data: corpus keep: 300").unwrap();
        let v = r.vocab.unwrap();
        assert_eq!(v.data.value, "corpus");
        assert_eq!(v.rule.value, VocabRule::Keep(300));
        let r = parse("data: corpus min_count: 2").unwrap();
        assert_eq!(r.vocab.unwrap().rule.value, VocabRule::MinCount(2));

        let d = parse("data: corpus keep: 300 min_count: 2").unwrap_err();
        assert_eq!(d.code, "plcc::recipe::conflicting-keys");
        let d = parse("data: corpus").unwrap_err();
        assert_eq!(d.code, "plcc::recipe::missing-key");
        let d = parse("data: corpus min_count: 0").unwrap_err();
        assert_eq!(d.code, "plcc::recipe::out-of-range");
        let d = parse("data: nope keep: 300").unwrap_err();
        assert_eq!(d.code, "plcc::recipe::unknown-dataset");
        let d = parse("keep: 300").unwrap_err();
        assert_eq!(d.code, "plcc::recipe::missing-key");
    }
}
