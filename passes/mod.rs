//! The built-in compiler passes, one file each.
