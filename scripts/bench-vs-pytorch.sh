#!/usr/bin/env bash
# Benchmarks, in one run and on the same input, threads and batch size:
# `plcc bench` on the teacher checkpoint and on each compressed artifact given,
# and the PyTorch reference (scripts/bench_pytorch.py) on the teacher in fp32
# and dynamically quantized to int8; prints one table with each model's speed
# relative to the plcc teacher and to PyTorch int8.
#
# Usage (from anywhere; needs cargo, and python3 with torch + sentence-transformers
# or the .venv-peers/ that scripts/fidelity-vs-peers.sh installs, used if present):
#   scripts/bench-vs-pytorch.sh [--teacher DIR] [--artifact DIR]... [--input FILE]
#                               [--threads N] [--batch-size N] [--repeat K]
#                               [--rounds R]
# Defaults: teacher models/all-MiniLM-L6-v2, no artifact, input
# benches/corpus/sentences-en.txt, 2 threads, batch 32, 2 timed passes on the
# PyTorch side, 1 round. Both engines batch sentences sorted by length.
# With --rounds R every benchmark runs R times, interleaved (plcc teacher,
# artifacts, PyTorch fp32, PyTorch int8, then again), and the table shows each
# one's best round: on a shared machine the best round is the one least slowed
# by other work. Raw JSON results are kept in $OUT_DIR (default: out/bench).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

teacher="models/all-MiniLM-L6-v2"
artifacts=()
input="benches/corpus/sentences-en.txt"
threads=2
batch_size=32
repeat=2
rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --teacher) teacher="$2"; shift 2 ;;
    --artifact) artifacts+=("$2"); shift 2 ;;
    --input) input="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --batch-size) batch_size="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
    *) echo "bench-vs-pytorch: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done
out_dir="${OUT_DIR:-out/bench}"
python=python3
[ -x .venv-peers/bin/python ] && python=.venv-peers/bin/python
mkdir -p "$out_dir"
rm -f "$out_dir"/*.json

echo "building plcc (release)..." >&2
cargo build --release --quiet --bin plcc

plcc_bench() { # NAME MODEL ROUND
  echo "round $3: plcc bench $2" >&2
  target/release/plcc bench "$2" --input "$input" --threads "$threads" \
    --batch-size "$batch_size" --json > "$out_dir/$1.$3.json"
}
torch_bench() { # NAME ROUND [--quantize-dynamic]
  echo "round $2: pytorch bench $teacher ${3:-}" >&2
  "$python" scripts/bench_pytorch.py --model "$teacher" --input "$input" --threads "$threads" \
    --batch-size "$batch_size" --repeat "$repeat" --sort-by-length ${3:-} \
    2>/dev/null > "$out_dir/$1.$2.json"
}

names=("plcc teacher")
files=("plcc-teacher")
for i in "${!artifacts[@]}"; do
  names+=("plcc $(basename "${artifacts[$i]}")")
  files+=("plcc-artifact-$i")
done
names+=("pytorch fp32" "pytorch int8")
files+=("pytorch-fp32" "pytorch-int8")

for round in $(seq 1 "$rounds"); do
  plcc_bench plcc-teacher "$teacher" "$round"
  for i in "${!artifacts[@]}"; do
    plcc_bench "plcc-artifact-$i" "${artifacts[$i]}" "$round"
  done
  torch_bench pytorch-fp32 "$round"
  torch_bench pytorch-int8 "$round" --quantize-dynamic
done

python3 - "$out_dir" "$rounds" "${#names[@]}" "${names[@]}" "${files[@]}" <<'PY'
import json, os, sys

out_dir, rounds, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names, files = sys.argv[4 : 4 + count], sys.argv[4 + count : 4 + 2 * count]

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

best = {}
for name, stem in zip(names, files):
    runs = [last_json_object(os.path.join(out_dir, f"{stem}.{r}.json")) for r in range(1, rounds + 1)]
    best[name] = max(runs, key=lambda r: r["sentences_per_s"])
    best[name]["all_rounds"] = [r["sentences_per_s"] for r in runs]

teacher, int8 = best["plcc teacher"]["sentences_per_s"], best["pytorch int8"]["sentences_per_s"]
print(f"{'model':<28}{'sent/s':>9}{'tok/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'RSS MB':>9}"
      f"{'vs plcc teacher':>17}{'vs torch int8':>15}")
for name in names:
    r = best[name]
    s = r["sentences_per_s"]
    print(f"{name:<28}{s:>9.1f}{r['tokens_per_s']:>10.0f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
          f"{r['peak_rss_mb']:>9.0f}{s / teacher:>16.2f}x{s / int8:>14.2f}x")
if rounds > 1:
    print(f"best of {rounds} rounds; sentences/s of every round:")
    for name in names:
        print(f"  {name:<26}" + " ".join(f"{v:.1f}" for v in best[name]["all_rounds"]))
print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
PY
