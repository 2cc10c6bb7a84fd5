#!/usr/bin/env bash
# Fidelity to the fp32 teacher of the compressions users reach for, against
# plcc's, in one run on the same sentences (scripts/fidelity_peers.py):
#   teacher fp32 (PyTorch, sentence-transformers: mean pooling, L2 normalize),
#   PyTorch dynamic int8 (quantize_dynamic of every nn.Linear, qint8),
#   ONNX fp32 and ONNX Runtime dynamic int8 per channel (optimum export and
#   ORTQuantizer, avx512_vnni config), and each plcc artifact (`plcc run`).
# One table row per model: bytes on disk, ratio to the teacher's
# model.safetensors, mean / min cosine to the teacher's embeddings, and the
# similarity-ranking Spearman (rank correlation of the teacher's and the
# model's cosine similarities over all pairs of sentences). Written as
# peers.md and peers.json into $OUT_DIR (default: out/peers).
#
# Usage (from anywhere):
#   scripts/fidelity-vs-peers.sh [--teacher DIR] [--artifact DIR]...
#                                [--input FILE] [--limit N] [--plcc PATH]
#                                [--threads N] [--batch-size N]
# Defaults: teacher models/all-MiniLM-L6-v2, input corpus/heldout.txt (see
# scripts/fetch-corpus.sh), its first 1000 sentences, 2 threads, batch 32,
# plcc target/release/plcc (built if missing and an artifact is given). A
# checkpoint folder works as --artifact too (plcc's own fp32 run).
# The Python peers are installed by this script into .venv-peers/
# (git-ignored) from scripts/requirements-peers.txt (pinned), and reinstalled
# when that file changes. PyPI serves no CPU-only torch for Linux (the CPU
# wheels live on PyTorch's own index, which is not used here), so the default
# torch wheel comes with its CUDA libraries (about 3 GB in the venv); only
# the CPU runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

teacher="models/all-MiniLM-L6-v2"
artifacts=()
input="corpus/heldout.txt"
limit=1000
plcc=""
threads=2
batch_size=32
while [ $# -gt 0 ]; do
  case "$1" in
    --teacher) teacher="$2"; shift 2 ;;
    --artifact) artifacts+=("$2"); shift 2 ;;
    --input) input="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --plcc) plcc="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --batch-size) batch_size="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0" | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
    *) echo "fidelity-vs-peers: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done
out_dir="${OUT_DIR:-out/peers}"

if [ ! -f "$input" ]; then
  echo "fidelity-vs-peers: no input $input (the default comes from scripts/fetch-corpus.sh)" >&2
  exit 1
fi
if [ ! -f "$teacher/model.safetensors" ]; then
  echo "fidelity-vs-peers: no teacher at $teacher (scripts/fetch-minilm.sh fetches it)" >&2
  exit 1
fi

# The Python peers: a private venv, rebuilt when the pinned requirements change.
venv=".venv-peers"
requirements="scripts/requirements-peers.txt"
stamp="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements-sha256" 2>/dev/null || true)" != "$stamp" ]; then
  echo "fidelity-vs-peers: installing $requirements into $venv (a few GB, once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$requirements"
  echo "$stamp" > "$venv/.requirements-sha256"
fi

if [ ${#artifacts[@]} -gt 0 ]; then
  if [ -z "$plcc" ]; then
    plcc="target/release/plcc"
    if [ ! -x "$plcc" ]; then
      echo "fidelity-vs-peers: building plcc (release)..." >&2
      cargo build --release --quiet --bin plcc
    fi
  fi
  [ -x "$plcc" ] || { echo "fidelity-vs-peers: no plcc binary at $plcc" >&2; exit 1; }
fi

artifact_args=()
for a in "${artifacts[@]}"; do
  artifact_args+=(--artifact "$a")
done
# Offline: the teacher and every model are local folders.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  "$venv/bin/python" scripts/fidelity_peers.py --model "$teacher" --input "$input" \
  --limit "$limit" --plcc "${plcc:-target/release/plcc}" --threads "$threads" \
  --batch-size "$batch_size" --out-dir "$out_dir" "${artifact_args[@]}"
