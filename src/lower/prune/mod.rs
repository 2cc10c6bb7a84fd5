//! Making the student smaller before it is trained: importance scores
//! (`importance`, `taylor`), the student's layers reduced and sliced to the
//! plan's widths (`student`, `slice`, with the checkpoint's layout from
//! `layout`), each slice checked against the masked teacher
//! (`equivalence`), and the vocabulary pruned (`vocab`).

pub mod equivalence;
pub mod importance;
pub mod layout;
pub mod slice;
pub mod student;
pub mod taylor;
pub mod vocab;

#[cfg(test)]
mod tests;
