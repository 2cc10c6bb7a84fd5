//! Small dense linear algebra the compiler needs on the CPU, independent of
//! candle: the symmetric eigen-decomposition and the truncated SVD used to
//! factorize embeddings to a lower rank, and the Cholesky factorizations
//! GPTQ needs.

mod cholesky;
mod eigen;
mod svd;

pub use cholesky::inverse_upper_factor;
#[cfg(test)]
pub use cholesky::spd_inverse;
pub use svd::truncated_svd_factors;
