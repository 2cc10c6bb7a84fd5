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
