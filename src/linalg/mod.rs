//! Small dense linear algebra the compiler needs on the CPU, independent of
//! candle: the symmetric eigen-decomposition and the truncated SVD used to
//! factorize embeddings to a lower rank, and the Cholesky factorizations
//! GPTQ needs.

mod cholesky;
mod eigen;
mod svd;

pub use cholesky::{cholesky_lower, inverse_upper_factor, spd_inverse, NotPositiveDefinite};
pub use eigen::symmetric_eigen;
pub use svd::{truncated_svd_factors, LowRankFactors};
