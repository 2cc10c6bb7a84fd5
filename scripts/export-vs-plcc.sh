#!/usr/bin/env bash
# Exports each artifact to ONNX (`plcc export --format onnx`), runs the
# export with ONNX Runtime and the artifact with `plcc run` on the same
# lines, and compares them (scripts/onnx_vs_plcc.py): mean / min cosine of
# the sentence embeddings (or logits), and model.onnx's size against the
# artifact's weight file. Exits 1 when any export falls below --min-cosine.
# `--onnx-int4 nbits,nbits-int8,dequantize` exports each artifact in each of
# those forms of its 4-bit linears (`plcc export --onnx-int4`; default nbits).
#
# `--speed-teacher DIR` (a float artifact of the teacher, say one built from
# a recipe with only its `teacher:` line) then times every export against
# ONNX Runtime's own int8 model of the teacher (its export quantized by
# quantize_dynamic, per channel) in one run (scripts/onnx_speed.py): the
# first --speed-limit input lines, batches of 32 sorted by length,
# --threads intra-op threads.
#
#   scripts/export-vs-plcc.sh --artifact out/int8 --artifact out/w4 \
#       [--input corpus/heldout.txt] [--limit 500] [--plcc target/release/plcc]
#       [--min-cosine 0.999] [--out out/export] [--onnx-int4 FORMS]
#       [--speed-teacher DIR] [--speed-limit 512] [--threads 2]
#
# Python: the .venv-peers/ of scripts/fidelity-vs-peers.sh when it is there,
# else a small .venv-onnx/ (git-ignored) with the pinned ONNX Runtime, onnx,
# tokenizers and numpy, installed on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

artifacts=()
input=corpus/heldout.txt
limit=500
plcc=target/release/plcc
min_cosine=0.999
out=out/export
forms=nbits
speed_teacher=
speed_limit=512
threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        --artifact) artifacts+=("$2"); shift 2 ;;
        --input) input="$2"; shift 2 ;;
        --limit) limit="$2"; shift 2 ;;
        --plcc) plcc="$2"; shift 2 ;;
        --min-cosine) min_cosine="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --onnx-int4) forms="$2"; shift 2 ;;
        --speed-teacher) speed_teacher="$2"; shift 2 ;;
        --speed-limit) speed_limit="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ ${#artifacts[@]} -gt 0 ] || { echo "give at least one --artifact DIR" >&2; exit 2; }
python=.venv-peers/bin/python
if [ ! -x "$python" ]; then
    python=.venv-onnx/bin/python
    if [ ! -x "$python" ]; then
        echo "export-vs-plcc: installing onnxruntime, onnx, tokenizers and numpy into .venv-onnx" >&2
        python3 -m venv .venv-onnx
        .venv-onnx/bin/pip install --quiet onnxruntime==1.23.2 onnx==1.19.1 tokenizers==0.22.2 numpy==2.3.5
    fi
fi
if [ -n "$speed_teacher" ] && ! "$python" -c "import onnx" 2>/dev/null; then
    "$python" -m pip install --quiet onnx==1.19.1  # the int8 teacher's quantizer needs it
fi
[ -x "$plcc" ] || cargo build --release --quiet --bin plcc

mkdir -p "$out"
lines="$out/input.txt"
awk -v n="$limit" 'NF && c++ < n' "$input" > "$lines"
status=0
exports=()
for artifact in "${artifacts[@]}"; do
    name=$(basename "$artifact")
    "$plcc" run "$artifact" --input "$lines" --output "$out/$name.plcc.jsonl"
    for form in ${forms//,/ }; do
        dir="$out/$name-$form"
        "$plcc" export "$artifact" --format onnx --onnx-int4 "$form" -o "$dir" >/dev/null
        exports+=(--export "$name-$form=$dir")
        echo -n "$name ($form): "
        "$python" scripts/onnx_vs_plcc.py --export "$dir" --plcc-jsonl "$out/$name.plcc.jsonl" \
            --input "$lines" --min-cosine "$min_cosine" || status=1
    done
done
if [ -n "$speed_teacher" ]; then
    teacher_dir="$out/teacher-$(basename "$speed_teacher")"
    "$plcc" export "$speed_teacher" --format onnx -o "$teacher_dir" >/dev/null
    rm -rf "$teacher_dir/int8"  # made again from this export
    grep -m1 'model name' /proc/cpuinfo || true
    "$python" scripts/onnx_speed.py --int8 "int8-teacher=$teacher_dir" "${exports[@]}" \
        --input "$input" --limit "$speed_limit" --threads "$threads" --batch-size 32 \
        --json "$out/speed.json"
fi
exit $status
