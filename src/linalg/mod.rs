//! Small dense linear algebra the compiler needs on the CPU, independent of
//! candle: the symmetric eigen-decomposition and the truncated SVD used to
//! factorize embeddings to a lower rank.

mod eigen;
mod svd;

pub use eigen::symmetric_eigen;
pub use svd::{truncated_svd_factors, LowRankFactors};
