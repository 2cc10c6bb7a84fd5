#!/usr/bin/env bash
# Runs `plcc bench` (release build) and the PyTorch reference benchmark
# (scripts/bench_pytorch.py) on the same input with the same threads and batch
# size, one after the other, and prints a comparison table.
#
# Usage (from anywhere; needs cargo, python3 with torch + sentence-transformers):
#   scripts/bench-vs-pytorch.sh [--model DIR] [--torch-model DIR] [--input FILE]
#                               [--threads N] [--batch-size N] [--repeat K]
#                               [--quantize-dynamic]
# Defaults: model models/all-MiniLM-L6-v2, input benches/corpus/sentences-en.txt,
# 2 threads, batch 32, 3 timed passes on the PyTorch side.
# --model is what plcc runs (an original or a compressed model); --torch-model
# is what PyTorch runs (default: the same folder). --quantize-dynamic makes the
# PyTorch side int8 dynamic-quantized, for comparing with quantized plcc models.
# Both raw JSON results are kept in $OUT_DIR (default: out/bench).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

model="models/all-MiniLM-L6-v2"
torch_model=""
input="benches/corpus/sentences-en.txt"
threads=2
batch_size=32
repeat=3
quantize=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --torch-model) torch_model="$2"; shift 2 ;;
    --input) input="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --batch-size) batch_size="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --quantize-dynamic) quantize=(--quantize-dynamic); shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
    *) echo "bench-vs-pytorch: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done
torch_model="${torch_model:-$model}"
out_dir="${OUT_DIR:-out/bench}"
mkdir -p "$out_dir"

echo "building plcc (release)..." >&2
cargo build --release --quiet --bin plcc

echo "plcc bench: $model, $input, threads $threads, batch $batch_size" >&2
target/release/plcc bench "$model" --input "$input" --threads "$threads" \
  --batch-size "$batch_size" --json > "$out_dir/plcc.json"

echo "pytorch bench: $torch_model ${quantize[*]:-}" >&2
python3 scripts/bench_pytorch.py --model "$torch_model" --input "$input" --threads "$threads" \
  --batch-size "$batch_size" --repeat "$repeat" "${quantize[@]}" > "$out_dir/pytorch.json"

python3 - "$out_dir/plcc.json" "$out_dir/pytorch.json" <<'PY'
import json, sys

def last_json_object(path):
    """The JSON object printed on stdout (the last line that parses as one)."""
    text = open(path).read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    pass
    sys.exit(f"bench-vs-pytorch: no JSON object in {path}")

plcc, torch = last_json_object(sys.argv[1]), last_json_object(sys.argv[2])
rows = [
    ("sentences/s", "sentences_per_s", True),
    ("tokens/s", "tokens_per_s", True),
    ("p50 batch ms", "p50_ms", False),
    ("p95 batch ms", "p95_ms", False),
    ("peak RSS MB", "peak_rss_mb", False),
]
print(f"{'metric':<14}{'plcc':>12}{'pytorch':>12}{'plcc/pytorch':>14}")
for label, key, higher_is_better in rows:
    a, b = plcc.get(key), torch.get(key)
    ratio = f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"
    fmt = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "-"
    print(f"{label:<14}{fmt(a):>12}{fmt(b):>12}{ratio:>14}")
print("(higher is better for /s rows, lower for ms and MB)")
PY
