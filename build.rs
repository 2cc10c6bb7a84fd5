//! Build script: with the `cuda` feature, compiles the CUDA kernels of
//! `src/kernels/cuda/*.cu` to PTX in `OUT_DIR` with nvcc (`$NVCC`, else
//! `bin/nvcc` under `$CUDA_ROOT`, `$CUDA_HOME` or `$CUDA_PATH`, else `nvcc` on
//! the PATH). The PTX targets the lower of `$CUDA_COMPUTE_CAP` and 75 (the
//! oldest architecture CUDA 13 supports; `__dp4a` needs 61), so that one
//! build loads on every newer GPU through the driver's JIT. Without the
//! feature it does nothing.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &["packed_linear"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
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
        let source = format!("src/kernels/cuda/{name}.cu");
        println!("cargo::rerun-if-changed={source}");
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
