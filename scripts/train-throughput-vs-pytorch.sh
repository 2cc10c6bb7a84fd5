#!/usr/bin/env bash
# Compares CPU training throughput (tokens/s) of plcc and PyTorch on the same
# student and the same batches: the MiniLM student of examples/cost_eff.pc,
# stage `general` (hidden_mse + cosine distillation from all-MiniLM-L6-v2,
# AdamW). plcc trains it with `plcc build --max-steps N`, writing every
# micro-batch's token ids (PLCC_DUMP_BATCHES); scripts/train_pytorch.py then
# trains the same student, from the same initial weights (the artifact of
# `plcc build --max-steps 0`), on those batches, and reports how far its loss
# per step is from plcc's. Rounds alternate plcc and PyTorch so that changing
# load on the machine hits both sides.
#
# Usage (from anywhere; needs cargo, python3 with torch, transformers, safetensors):
#   scripts/train-throughput-vs-pytorch.sh [--steps N] [--warmup K] [--threads T]
#                                          [--rounds R] [--recipe FILE] [--report-only]
# Defaults: 30 steps, the first 5 left out of the timing, 2 threads, 2 rounds,
# recipe examples/cost_eff.pc. Tokens are real (unpadded) tokens. The table
# gives tokens/s over all timed steps of a round (total tokens / total
# seconds) and the median of the per-step tokens/s, which a few steps slowed
# by other work on the machine move less.
# Raw results are kept in $OUT_DIR (default: out/train-vs-pytorch);
# --report-only prints the table again from them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

steps=30
warmup=5
threads=2
rounds=2
recipe="examples/cost_eff.pc"
report_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --recipe) recipe="$2"; shift 2 ;;
    --report-only) report_only=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed -e 's/^# //' -e 's/^#$//'; exit 0 ;;
    *) echo "train-throughput-vs-pytorch: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done
out="${OUT_DIR:-out/train-vs-pytorch}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

run_all() {
  cargo build --release --quiet
  plcc="$root/target/release/plcc"
  export RAYON_NUM_THREADS="$threads" CANDLE_NUM_THREADS="$threads"

  echo "conditions: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg), $threads threads" >&2
  echo "building the untrained student (plcc build --max-steps 0)" >&2
  "$plcc" build "$recipe" --max-steps 0 -o "$out/init" >"$out/init.log" 2>&1

  for r in $(seq 1 "$rounds"); do
    echo "round $r/$rounds: plcc build --max-steps $steps" >&2
    rm -f "$out/batches-$r.jsonl"
    PLCC_DUMP_BATCHES="$out/batches-$r.jsonl" \
      "$plcc" build "$recipe" --max-steps "$steps" -o "$out/trained-$r" >"$out/plcc-$r.log" 2>&1
    for attention in sdpa eager; do
      echo "round $r/$rounds: PyTorch ($attention attention)" >&2
      python3 scripts/train_pytorch.py --artifact "$out/init" --batches "$out/batches-$r.jsonl" \
        --loss-log "$out/trained-$r/loss.jsonl" --threads "$threads" --warmup-steps "$warmup" \
        --attention "$attention" --json >"$out/torch-$attention-$r.json"
    done
  done
}
[ "$report_only" = 1 ] || run_all

python3 - "$out" "$rounds" "$warmup" <<'EOF'
import json, statistics, sys
out, rounds, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def plcc_steps(r):
    """(tokens, seconds) of plcc's timed `general` steps (seconds = tokens / tokens_per_s)."""
    tokens = {}
    for line in open(f"{out}/batches-{r}.jsonl"):
        b = json.loads(line)
        if b["stage"] == "general":
            tokens[b["step"]] = tokens.get(b["step"], 0) + sum(len(x) for x in b["ids"])
    log = [json.loads(l) for l in open(f"{out}/trained-{r}/loss.jsonl")]
    return [(tokens[l["step"]], tokens[l["step"]] / l["tokens_per_s"])
            for l in log if l["stage"] == "general" and l["step"] > warmup]

def torch_steps(j):
    return [(s["tokens"], s["seconds"]) for s in j["per_step"][j["warmup_steps"]:]]

def rate(steps):
    return sum(t for t, _ in steps) / sum(s for _, s in steps)

def median_rate(steps):
    return statistics.median(t / s for t, s in steps)

sides = ("plcc", "sdpa", "eager")
every = {k: [] for k in sides}
worst = 0.0
rows = []
for r in range(1, rounds + 1):
    steps = {"plcc": plcc_steps(r)}
    load = None
    for a in ("sdpa", "eager"):
        j = json.load(open(f"{out}/torch-{a}-{r}.json"))
        steps[a] = torch_steps(j)
        worst = max(worst, j["max_rel_loss_diff_vs_plcc"] or 0.0)
        load = load or j["loadavg_1m"]
    for k in sides:
        every[k] += steps[k]
    rows.append((f"round {r}", steps, load))
rows.append(("all", every, None))
j = json.load(open(f"{out}/torch-sdpa-1.json"))
print(f"stage general, {j['timed_steps']} timed steps per round after {warmup} warm-up steps, "
      f"{j['threads']} threads, torch {j['torch']}")
print("tokens/s over the timed steps (median of per-step tokens/s)")
print(f"{'':<9} {'plcc':>12} {'torch sdpa':>12} {'torch eager':>12} {'plcc/sdpa':>12} "
      f"{'plcc/eager':>12} {'load 1m':>8}")
for name, steps, load in rows:
    p, s, e = (rate(steps[k]) for k in sides)
    pm, sm, em = (median_rate(steps[k]) for k in sides)
    cell = lambda a, b, f: f"{a:{f}} ({b:{f}})"
    print(f"{name:<9} {cell(p, pm, '.0f'):>12} {cell(s, sm, '.0f'):>12} {cell(e, em, '.0f'):>12} "
          f"{cell(p / s, pm / sm, '.2f'):>12} {cell(p / e, pm / em, '.2f'):>12} "
          f"{'' if load is None else f'{load:.1f}':>8}")
print(f"largest relative difference of PyTorch's loss from plcc's at the same step: {worst:.1e}")
EOF
