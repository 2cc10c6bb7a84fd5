#!/usr/bin/env bash
# Installs the CUDA 13.0 toolkit pieces the `cuda` cargo feature needs (nvcc,
# its headers, CCCL, the runtime, NVRTC, cuBLAS, cuRAND) from PyPI into the
# git-ignored folder .cuda-toolkit/, makes the libraries linkable, and prints
# the environment for a cuda build on stdout (progress goes to stderr):
#
#   eval "$(scripts/cuda-toolkit.sh)"
#   cargo build --release --features cuda        # into target-cuda/
#   cargo test --features cuda --test runtime cuda_kernels
#
# No GPU or driver is needed to build: the driver library (libcuda) is linked
# against a stub generated here from cudarc's bindings, which only names the
# symbols; at run time the real driver's libcuda.so.1 is loaded instead (so the
# stub's folder, lib/stubs, must never be on LD_LIBRARY_PATH).
#
# Environment: CUDA_TOOLKIT_DIR (default .cuda-toolkit), CUDA_COMPUTE_CAP
# (default 90: the architecture candle-kernels compiles for, and plcc's PTX
# floor when lower than 75), PYTHON (default python3).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CUDA_TOOLKIT_DIR:-$root/.cuda-toolkit}"
python="${PYTHON:-python3}"
version="13.0.3.0"
cuda="$dir/nvidia/cu13"

if [ ! -x "$cuda/bin/nvcc" ] || [ ! -e "$dir/.installed-$version" ]; then
    echo "installing cuda-toolkit $version from PyPI into $dir" >&2
    "$python" -m pip install --quiet --upgrade --no-warn-conflicts --target "$dir" \
        "cuda-toolkit[nvcc,cudart,nvrtc,cublas,curand,cccl]==$version" >&2
    touch "$dir/.installed-$version"
fi

# The wheels ship only versioned sonames (libcublas.so.13); `-lcublas` needs
# the unversioned name.
for lib in "$cuda"/lib/lib*.so.*; do
    base="${lib%%.so.*}.so"
    [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
done

# A link-time stand-in for the driver library: every `cu*` function cudarc
# declares, as a stub returning CUDA_ERROR_UNKNOWN, with the driver's soname.
stub="$cuda/lib/stubs/libcuda.so"
if [ ! -e "$stub" ]; then
    (cd "$root" && cargo fetch --locked >&2)
    bindings="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | tail -n 1)"
    mkdir -p "$cuda/lib/stubs"
    grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$bindings" | sed 's/^pub unsafe fn //' | sort -u |
        sed 's/.*/int &(void) { return 999; }/' >"$cuda/lib/stubs/libcuda-stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$cuda/lib/stubs/libcuda-stub.c"
    echo "wrote the link stub $stub" >&2
fi

cat <<EOF
export PATH="$cuda/bin:\$PATH"
export CUDA_ROOT="$cuda"
export CUDARC_CUDA_VERSION=13000
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export LD_LIBRARY_PATH="$cuda/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="$root/target-cuda"
EOF
