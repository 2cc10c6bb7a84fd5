//! The compiler IR: a petgraph model graph plus a plan side table.
