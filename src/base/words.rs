//! How plcc's enums read in plans, reports and messages.

/// `AdamW` → `adamw`.
pub fn word(value: &impl std::fmt::Debug) -> String {
    let name = format!("{value:?}");
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let after_lower = i > 0 && chars[i - 1].is_lowercase();
        let before_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        if c.is_uppercase() && after_lower && before_lower {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Seconds as the recipe language writes them: `45min`, `1.5h`, `90s`.
pub fn duration_text(seconds: f64) -> String {
    let (amount, unit) = if seconds >= 3600.0 && (seconds / 3600.0 * 100.0).fract() == 0.0 {
        (seconds / 3600.0, "h")
    } else if seconds >= 60.0 && (seconds / 60.0 * 100.0).fract() == 0.0 {
        (seconds / 60.0, "min")
    } else {
        (seconds, "s")
    };
    format!("{}{unit}", (amount * 100.0).round() / 100.0)
}

/// How a student count compares with the teacher's, in words that stay
/// true when a part grows: `2.4x fewer` (teacher / student), `1.5x more`
/// (student / teacher), `same`, `slightly fewer`/`slightly more` when the
/// factor rounds to 1 at `digits` decimals, `new` when the teacher has none,
/// `removed` when the student has none, `-` when neither has any. `less`
/// and `more` are the words for each direction (`fewer`/`more`,
/// `smaller`/`larger`).
pub fn compare_counts(teacher: u64, student: u64, digits: usize, less: &str, more: &str) -> String {
    let (factor, word) = match (teacher, student) {
        (0, 0) => return "-".into(),
        (0, _) => return "new".into(),
        (_, 0) => return "removed".into(),
        (t, s) if t == s => return "same".into(),
        (t, s) if t > s => (t as f64 / s as f64, less),
        (t, s) => (s as f64 / t as f64, more),
    };
    let text = format!("{factor:.digits$}");
    if text.trim_end_matches('0').trim_end_matches('.') == "1" {
        format!("slightly {word}")
    } else {
        format!("{text}x {word}")
    }
}

#[cfg(test)]
mod tests {
    use super::compare_counts;

    #[test]
    fn growth_and_shrinking_read_truthfully() {
        let c = |t, s| compare_counts(t, s, 2, "fewer", "more");
        assert_eq!(c(300, 100), "3.00x fewer");
        assert_eq!(c(100, 150), "1.50x more");
        assert_eq!(c(0, 8320), "new");
        assert_eq!(c(8320, 0), "removed");
        assert_eq!(c(0, 0), "-");
        assert_eq!(c(5, 5), "same");
        assert_eq!(
            compare_counts(5243, 5263, 1, "fewer", "more"),
            "slightly more"
        );
        assert_eq!(
            compare_counts(5263, 5243, 1, "smaller", "larger"),
            "slightly smaller"
        );
    }
}
