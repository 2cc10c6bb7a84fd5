//! Build script: with the `cuda` feature, compiles the CUDA kernels named in
//! [`KERNELS`] from [`source`] (`src/runtime/kernels/cuda/{name}.cu`, the
//! folder of the `runtime::kernels::cuda` module) to `{name}.ptx` in
//! `OUT_DIR` with nvcc (`$NVCC`, else `bin/nvcc` under `$CUDA_ROOT`,
//! `$CUDA_HOME` or `$CUDA_PATH`, else `nvcc` on the PATH). The PTX targets the
//! lower of `$CUDA_COMPUTE_CAP` and 75 (the oldest architecture CUDA 13
//! supports; `__dp4a` needs 61), so that one build loads on every newer GPU
//! through the driver's JIT. Without the feature it only checks that every
//! named source exists, so a kernel source that is moved or renamed fails
//! every build, not only the CUDA one.
//!
//! The library's unit tests compile this file as a module
//! (`runtime::kernels::cuda_sources_tests`) and check the same list.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The CUDA kernels: each compiles from [`source`]`(name)` to `{name}.ptx`
/// in `OUT_DIR`, which `runtime::kernels::cuda` includes.
pub(crate) const KERNELS: &[&str] = &["packed_linear"];

/// The source of kernel `name`, relative to the crate root.
pub(crate) fn source(name: &str) -> String {
    format!("src/runtime/kernels/cuda/{name}.cu")
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for name in KERNELS {
        let source = source(name);
        println!("cargo::rerun-if-changed={source}");
        if !Path::new(&source).is_file() {
            panic!(
                "build.rs compiles the CUDA kernel `{name}` from {source}, which does not \
                 exist; correct KERNELS or `source` in build.rs"
            );
        }
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    for var in [
        "NVCC",
        "CUDA_ROOT",
        "CUDA_HOME",
        "CUDA_PATH",
        "CUDA_COMPUTE_CAP",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let nvcc = nvcc();
    let arch = env::var("CUDA_COMPUTE_CAP")
        .ok()
        .and_then(|c| c.trim().parse::<u32>().ok())
        .map_or(75, |c| c.min(75));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in KERNELS {
        let source = source(name);
        let ptx = out_dir.join(format!("{name}.ptx"));
        let output = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17"])
            .arg(format!("--gpu-architecture=compute_{arch}"))
            .arg("-o")
            .arg(&ptx)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} for the `cuda` feature ({e}); install the CUDA toolkit \
                     (scripts/cuda-toolkit.sh) or set NVCC",
                    nvcc.display()
                )
            });
        if !output.status.success() {
            panic!(
                "nvcc failed on {source}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

fn nvcc() -> PathBuf {
    if let Some(path) = env::var_os("NVCC") {
        return path.into();
    }
    ["CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(env::var_os)
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| "nvcc".into())
}
