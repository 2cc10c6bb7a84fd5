//! What a pruned vocabulary keeps.

use serde::Serialize;

/// Which WordPiece pieces a pruned vocabulary keeps besides the always-kept
/// ones (special tokens, single characters and their `##` forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VocabRule {
    /// Keep this many pieces in all, the always-kept ones included: the
    /// most frequent others fill the rest (ties by lower id).
    Keep(usize),
    /// Keep every piece seen at least this many times (≥ 1).
    MinCount(u64),
}
