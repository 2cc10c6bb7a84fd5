//! `Facts`: a small bit set of properties a program has acquired (shapes
//! known, layers reduced, widths planned, ...), used to order passes.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of facts about a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Facts(u32);

impl Facts {
    pub const NONE: Facts = Facts(0);
    /// Every node has its teacher shape (after `resolve`).
    pub const SHAPES: Facts = Facts(1 << 0);
    pub const LAYERS_REDUCED: Facts = Facts(1 << 1);
    pub const WIDTH_PLANNED: Facts = Facts(1 << 2);
    pub const EXITS_PLACED: Facts = Facts(1 << 3);
    pub const QUANT_PLACED: Facts = Facts(1 << 4);
    pub const SCHEDULED: Facts = Facts(1 << 5);
    pub const VOCAB_PRUNED: Facts = Facts(1 << 6);

    const NAMES: [(Facts, &'static str); 7] = [
        (Facts::SHAPES, "shapes"),
        (Facts::LAYERS_REDUCED, "layers-reduced"),
        (Facts::WIDTH_PLANNED, "width-planned"),
        (Facts::EXITS_PLACED, "exits-placed"),
        (Facts::QUANT_PLACED, "quant-placed"),
        (Facts::SCHEDULED, "scheduled"),
        (Facts::VOCAB_PRUNED, "vocab-pruned"),
    ];

    /// A fact of a custom pass: bits 16..32 are free for user passes.
    pub const fn custom(bit: u32) -> Facts {
        Facts(1 << (16 + (bit % 16)))
    }

    pub fn contains(self, other: Facts) -> bool {
        self.0 & other.0 == other.0
    }

    /// The facts in `self` that are not in `other`.
    pub fn without(self, other: Facts) -> Facts {
        Facts(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Facts {
    type Output = Facts;
    fn bitor(self, rhs: Facts) -> Facts {
        Facts(self.0 | rhs.0)
    }
}

impl BitOrAssign for Facts {
    fn bitor_assign(&mut self, rhs: Facts) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Facts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = Facts::NAMES
            .iter()
            .filter(|(fact, _)| self.contains(*fact))
            .map(|(_, n)| n.to_string())
            .collect();
        for bit in 16..32 {
            if self.0 & (1 << bit) != 0 {
                names.push(format!("custom-{}", bit - 16));
            }
        }
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let f = Facts::SHAPES | Facts::EXITS_PLACED;
        assert!(f.contains(Facts::SHAPES));
        assert!(!f.contains(Facts::QUANT_PLACED));
        assert_eq!(
            (Facts::SHAPES | Facts::QUANT_PLACED).without(f),
            Facts::QUANT_PLACED
        );
        assert_eq!(f.to_string(), "shapes, exits-placed");
        assert_eq!(Facts::custom(1).to_string(), "custom-1");
    }
}
