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
