//! The CUDA sources that `build.rs` compiles, checked in every `cargo test`
//! (no CUDA toolkit or GPU needed): the build script is compiled here as a
//! module, so these tests read its own kernel list and source paths. Each
//! named source exists, lies in the folder of the `cuda` module (`cuda/`
//! beside this file), and is the PTX that module includes; every `.cu` file
//! there is compiled.

use std::fs;
use std::path::{Path, PathBuf};

#[allow(dead_code)] // `main` and the nvcc lookup run only as the build script
#[path = "../../../build.rs"]
mod build_script;

use build_script::{source, KERNELS};

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folder of `runtime::kernels::cuda`, relative to the crate root.
fn cuda_module_dir() -> PathBuf {
    let here = Path::new(file!());
    let relative = here
        .components()
        .skip_while(|c| c.as_os_str() != "src")
        .collect::<PathBuf>();
    relative.with_file_name("cuda")
}

#[test]
fn every_kernel_source_named_by_the_build_script_exists() {
    assert!(!KERNELS.is_empty(), "build.rs names no CUDA kernel");
    for name in KERNELS {
        let path = crate_root().join(source(name));
        assert!(
            path.is_file(),
            "build.rs compiles `{name}` from {}, which does not exist",
            path.display()
        );
    }
}

#[test]
fn kernel_sources_live_in_the_cuda_module_folder() {
    let dir = cuda_module_dir();
    assert!(
        crate_root().join(&dir).join("mod.rs").is_file(),
        "no `cuda` module at {}",
        dir.display()
    );
    for name in KERNELS {
        let source = source(name);
        assert_eq!(
            Path::new(&source).parent(),
            Some(dir.as_path()),
            "build.rs compiles `{name}` from {source}, outside the `cuda` module's folder"
        );
    }
}

#[test]
fn the_cuda_module_includes_the_ptx_of_every_kernel() {
    let module = fs::read_to_string(crate_root().join(cuda_module_dir()).join("mod.rs"))
        .expect("the cuda module reads");
    for name in KERNELS {
        let ptx = format!("\"/{name}.ptx\"");
        assert!(
            module.contains(&ptx),
            "the cuda module does not include {ptx}, which build.rs writes"
        );
    }
}

#[test]
fn every_cuda_source_in_the_folder_is_compiled() {
    let dir = crate_root().join(cuda_module_dir());
    for entry in fs::read_dir(&dir).expect("the cuda folder lists") {
        let path = entry.expect("a folder entry").path();
        if path.extension().is_some_and(|e| e == "cu") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            assert!(
                KERNELS.contains(&stem),
                "{} is not among the kernels build.rs compiles",
                path.display()
            );
        }
    }
}
