#!/usr/bin/env bash
# Exports each artifact to ONNX (`plcc export --format onnx`), runs the
# export with ONNX Runtime and the artifact with `plcc run` on the same
# lines, and compares them (scripts/onnx_vs_plcc.py): mean / min cosine of
# the sentence embeddings (or logits), and model.onnx's size against the
# artifact's weight file. Exits 1 when any export falls below --min-cosine.
#
#   scripts/export-vs-plcc.sh --artifact out/int8 --artifact out/w4 \
#       [--input corpus/heldout.txt] [--limit 500] [--plcc target/release/plcc]
#       [--min-cosine 0.999] [--out out/export]
#
# Python: the .venv-peers/ of scripts/fidelity-vs-peers.sh when it is there,
# else a small .venv-onnx/ (git-ignored) with the pinned ONNX Runtime,
# tokenizers and numpy, installed on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

artifacts=()
input=corpus/heldout.txt
limit=500
plcc=target/release/plcc
min_cosine=0.999
out=out/export
while [ $# -gt 0 ]; do
    case "$1" in
        --artifact) artifacts+=("$2"); shift 2 ;;
        --input) input="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        --plcc) plcc="$2"; shift 2 ;;
        --min-cosine) min_cosine="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ ${#artifacts[@]} -gt 0 ] || { echo "give at least one --artifact DIR" >&2; exit 2; }
python=.venv-peers/bin/python
if [ ! -x "$python" ]; then
    python=.venv-onnx/bin/python
    if [ ! -x "$python" ]; then
        echo "export-vs-plcc: installing onnxruntime, tokenizers and numpy into .venv-onnx" >&2
        python3 -m venv .venv-onnx
        .venv-onnx/bin/pip install --quiet onnxruntime==1.23.2 tokenizers==0.22.2 numpy==2.3.5
    fi
fi
[ -x "$plcc" ] || cargo build --release --quiet --bin plcc

mkdir -p "$out"
lines="$out/input.txt"
awk -v n="$limit" 'NF && c++ < n' "$input" > "$lines"
status=0
for artifact in "${artifacts[@]}"; do
    name=$(basename "$artifact")
    "$plcc" export "$artifact" --format onnx -o "$out/$name"
    "$plcc" run "$artifact" --input "$lines" --output "$out/$name.plcc.jsonl"
    echo -n "$name: "
    "$python" scripts/onnx_vs_plcc.py --export "$out/$name" --plcc-jsonl "$out/$name.plcc.jsonl" \
        --input "$lines" --min-cosine "$min_cosine" || status=1
done
exit $status
