#!/usr/bin/env bash
# Benchmarks, in one run and on the same input, threads, batch size and
# truncation: `plcc bench --alone` on the teacher checkpoint and on each
# compressed artifact given; PyTorch (scripts/bench_pytorch.py:
# sentence-transformers `encode`) on the teacher in fp32 and dynamically
# quantized to int8; ONNX Runtime (scripts/bench_onnx.py) on the teacher
# exported by optimum in fp32 and quantized by optimum's ORTQuantizer to
# dynamic int8, per channel. Prints one table and the performance targets.
#
# Usage (from anywhere; needs cargo, and python3 with torch,
# sentence-transformers, onnxruntime and optimum, or the .venv-peers/ that
# scripts/fidelity-vs-peers.sh installs, used if present):
#   scripts/bench-vs-pytorch.sh [--teacher DIR] [--artifact DIR]... [--input FILE]
#                               [--threads N] [--batch-size N] [--repeat K]
#                               [--rounds R] [--max-len N] [--plcc PATH]
#                               [--no-pytorch] [--no-onnx] [--one-batch-at-a-time]
#                               [--cpu-cap avx512|avx2]
# Defaults: teacher models/all-MiniLM-L6-v2, no artifact, input
# benches/corpus/sentences-en.txt, 2 threads, batch 32, 2 timed passes, 1
# round, max length the teacher's max_seq_length (sentence_bert_config.json),
# plcc target/release/plcc built by `cargo build --release` (not built when
# --plcc is given). --no-pytorch / --no-onnx leave those peers out.
# --one-batch-at-a-time makes plcc run one batch at a time on every thread
# (by default it runs batches side by side, one per thread; the peers always
# run one batch at a time on their intra-op threads).
# --cpu-cap runs every engine, plcc and the peers alike, as on a CPU without
# the instruction sets above the cap: scripts/cpuid-cap/ (built here with
# cargo) is preloaded and hides them from CPUID (avx512: no AMX, like an
# AMD Zen 4; avx2: no AVX-512, AVX-VNNI nor AMX, like a Zen 2/3), so ONNX
# Runtime's MLAS, PyTorch and plcc each dispatch as they would there. Needs
# Linux on a CPU with CPUID faulting (the `cpuid_fault` flag).
#
# Every engine sorts the sentences by token count and batches them
# --batch-size at a time, times tokenization, the forward pass and mean
# pooling, warms up with one whole pass, then makes --repeat timed
# passes and keeps the fastest; each uses --threads threads (torch intra-op
# threads; ONNX Runtime intra_op_num_threads, inter_op 1). Each measurement
# is its own process. RSS growth is the peak resident set while loading and
# running the model minus the resident set just before loading it (the peak
# reset through /proc/self/clear_refs), as plcc bench measures it; the
# Python peers import their libraries before that baseline.
# The ONNX models are exported once into $OUT_DIR/onnx/ and reused while the
# teacher's weights are unchanged.
#
# With --rounds R every benchmark runs R times, interleaved (plcc teacher,
# artifacts, PyTorch fp32, PyTorch int8, ONNX Runtime fp32, ONNX Runtime
# int8, then again), and the table shows each one's best round: on a shared
# machine the best round is the one least slowed by other work.
#
# The table's header names the CPU, its ISA level, threads, batch size,
# sentence count and PLCC_SIMD when set (the environment reaches plcc, so
# PLCC_SIMD=avx2 caps its kernels). One row per model: sentences/s, speed
# relative to the plcc teacher, to PyTorch fp32 and to ONNX Runtime int8, RSS
# growth (MiB) and RSS growth relative to the plcc teacher. Then PASS/FAIL
# lines for the targets whose rows are present: plcc teacher >= 1.5x PyTorch
# fp32 and >= 1.2x ONNX Runtime fp32; the artifact whose directory is named
# `int8` >= 2x the plcc teacher, >= 1.3x ONNX Runtime int8 and RSS growth
# <= 0.5x the teacher's; the artifact named `w4` >= 1.5x the plcc teacher,
# >= 1.0x ONNX Runtime int8 and RSS growth <= 0.35x the teacher's; the one
# named `xtc` >= 2.5x ONNX Runtime int8 (a FAIL does not change the exit
# status). Written to
# $OUT_DIR (default: out/bench): table.md (the table as Markdown),
# summary.json (all numbers, every round), and each run's JSON and stderr.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

teacher="models/all-MiniLM-L6-v2"
plcc_flags=()
artifacts=()
input="benches/corpus/sentences-en.txt"
threads=2
batch_size=32
repeat=2
rounds=1
max_len=""
plcc=""
with_pytorch=1
with_onnx=1
cpu_cap=""
need_value() { # OPTION ARGS...
  if [ $# -lt 2 ]; then
    echo "bench-vs-pytorch: $1 needs a value (see --help)" >&2
    exit 2
  fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --teacher) need_value "$@"; teacher="$2"; shift 2 ;;
    --artifact) need_value "$@"; artifacts+=("$2"); shift 2 ;;
    --input) need_value "$@"; input="$2"; shift 2 ;;
    --threads) need_value "$@"; threads="$2"; shift 2 ;;
    --batch-size) need_value "$@"; batch_size="$2"; shift 2 ;;
    --repeat) need_value "$@"; repeat="$2"; shift 2 ;;
    --rounds) need_value "$@"; rounds="$2"; shift 2 ;;
    --max-len) need_value "$@"; max_len="$2"; shift 2 ;;
    --plcc) need_value "$@"; plcc="$2"; shift 2 ;;
    --no-pytorch) with_pytorch=0; shift ;;
    --no-onnx) with_onnx=0; shift ;;
    --one-batch-at-a-time) plcc_flags+=(--one-batch-at-a-time); shift ;;
    --cpu-cap) need_value "$@"; cpu_cap="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench-vs-pytorch: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
done
for option in threads batch_size repeat rounds max_len; do
  value="${!option}"
  if [ "$option" = max_len ] && [ -z "$value" ]; then continue; fi
  case "$value" in
    ''|*[!0-9]*|0*) echo "bench-vs-pytorch: --${option//_/-} must be a positive integer, not \`$value\`" >&2; exit 2 ;;
  esac
done
[ -f "$input" ] || { echo "bench-vs-pytorch: no input file $input" >&2; exit 1; }
[ -d "$teacher" ] || { echo "bench-vs-pytorch: no teacher at $teacher (scripts/fetch-minilm.sh fetches it)" >&2; exit 1; }
for artifact in "${artifacts[@]}"; do
  [ -d "$artifact" ] || { echo "bench-vs-pytorch: no artifact at $artifact" >&2; exit 1; }
done
if [ -z "$max_len" ] && [ -f "$teacher/sentence_bert_config.json" ]; then
  max_len="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("max_seq_length") or "")' \
    "$teacher/sentence_bert_config.json")"
fi
max_len_args=()
[ -n "$max_len" ] && max_len_args=(--max-len "$max_len")

out_dir="${OUT_DIR:-out/bench}"
python=python3
[ -x .venv-peers/bin/python ] && python=.venv-peers/bin/python
mkdir -p "$out_dir"
rm -f "$out_dir"/*.json "$out_dir"/*.log "$out_dir"/table.md

# The preloaded CPUID cap every benchmark runs under (--cpu-cap).
cap_env=()
if [ -n "$cpu_cap" ]; then
  case "$cpu_cap" in
    avx512|avx2) ;;
    *) echo "bench-vs-pytorch: --cpu-cap takes avx512 or avx2, not \`$cpu_cap\`" >&2; exit 2 ;;
  esac
  grep -qw cpuid_fault /proc/cpuinfo || {
    echo "bench-vs-pytorch: --cpu-cap needs CPUID faulting (no cpuid_fault flag in /proc/cpuinfo)" >&2; exit 1; }
  echo "building scripts/cpuid-cap (release)..." >&2
  cargo build --release --quiet --manifest-path scripts/cpuid-cap/Cargo.toml
  cap_env=(env "LD_PRELOAD=$root/scripts/cpuid-cap/target/release/libcpuid_cap.so" "CPUID_CAP=$cpu_cap")
fi

if [ -z "$plcc" ]; then
  echo "building plcc (release)..." >&2
  cargo build --release --quiet --bin plcc
  plcc=target/release/plcc
fi

# Runs a benchmark command: its JSON into $out_dir/STEM.ROUND.json, its
# stderr into $out_dir/STEM.ROUND.log (shown if it fails).
run_bench() { # STEM ROUND COMMAND...
  local stem="$1" round="$2"
  shift 2
  echo "round $round: $*" >&2
  if ! ${cap_env[@]+"${cap_env[@]}"} "$@" > "$out_dir/$stem.$round.json" 2> "$out_dir/$stem.$round.log"; then
    echo "bench-vs-pytorch: failed (see $out_dir/$stem.$round.log): $*" >&2
    tail -n 20 "$out_dir/$stem.$round.log" >&2
    exit 1
  fi
}
plcc_bench() { # STEM MODEL ROUND
  run_bench "$1" "$3" "$plcc" bench "$2" --alone --json --input "$input" --threads "$threads" \
    --batch-size "$batch_size" --repeat "$repeat" "${max_len_args[@]}" ${plcc_flags[@]+"${plcc_flags[@]}"}
}
peer_args=(--model "$teacher" --input "$input" --threads "$threads" --batch-size "$batch_size"
           --repeat "$repeat" --sort-by-length "${max_len_args[@]}")
torch_bench() { # STEM ROUND [--quantize-dynamic]
  run_bench "$1" "$2" "$python" scripts/bench_pytorch.py "${peer_args[@]}" "${@:3}"
}
onnx_bench() { # STEM ROUND PRECISION
  run_bench "$1" "$2" "$python" scripts/bench_onnx.py "${peer_args[@]}" \
    --cache "$out_dir/onnx" --precision "$3"
}

# Rows of the table: label, file stem, kind, artifact directory name.
names=("plcc teacher")
files=("plcc-teacher")
kinds=("plcc-teacher")
bases=("-")
for i in "${!artifacts[@]}"; do
  base="$(basename "${artifacts[$i]%/}")"
  names+=("plcc $base")
  files+=("plcc-artifact-$i")
  kinds+=("plcc-artifact")
  bases+=("$base")
done
if [ "$with_pytorch" = 1 ]; then
  names+=("pytorch fp32" "pytorch int8")
  files+=("pytorch-fp32" "pytorch-int8")
  kinds+=("pytorch-fp32" "pytorch-int8")
  bases+=("-" "-")
fi
if [ "$with_onnx" = 1 ]; then
  names+=("onnxruntime fp32" "onnxruntime int8")
  files+=("onnx-fp32" "onnx-int8")
  kinds+=("onnx-fp32" "onnx-int8")
  bases+=("-" "-")
  echo "ONNX models (exported into $out_dir/onnx if not there yet)..." >&2
  "$python" scripts/bench_onnx.py --model "$teacher" --cache "$out_dir/onnx" --export-only
fi

for round in $(seq 1 "$rounds"); do
  plcc_bench plcc-teacher "$teacher" "$round"
  for i in "${!artifacts[@]}"; do
    plcc_bench "plcc-artifact-$i" "${artifacts[$i]}" "$round"
  done
  if [ "$with_pytorch" = 1 ]; then
    torch_bench pytorch-fp32 "$round"
    torch_bench pytorch-int8 "$round" --quantize-dynamic
  fi
  if [ "$with_onnx" = 1 ]; then
    onnx_bench onnx-fp32 "$round" fp32
    onnx_bench onnx-int8 "$round" int8
  fi
done

BENCH_TEACHER="$teacher" BENCH_INPUT="$input" BENCH_THREADS="$threads" BENCH_BATCH="$batch_size" \
BENCH_REPEAT="$repeat" BENCH_MAX_LEN="$max_len" BENCH_PLCC="$plcc" BENCH_CPU_CAP="$cpu_cap" \
BENCH_PLCC_VERSION="$("$plcc" --version 2>/dev/null | sed 's/^plcc //' || echo unknown)" \
python3 - "$out_dir" "$rounds" "${#names[@]}" "${names[@]}" "${files[@]}" "${kinds[@]}" "${bases[@]}" <<'PY'
import json, os, platform, sys

out_dir, rounds, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names, files, kinds, bases = (sys.argv[4 + k * count : 4 + (k + 1) * count] for k in range(4))
env = os.environ


def last_json_object(path):
    """The JSON object printed on stdout (the whole file, or the last line
    that parses as one)."""
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


def cpu_info():
    """Model name and flags of the first processor in /proc/cpuinfo."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model or platform.processor() or "unknown", flags


cpu, flags = cpu_info()
isa = {
    "avx512f": "avx512f" in flags,
    "avx512_vnni": "avx512_vnni" in flags,
    "avx_vnni": "avx_vnni" in flags,
    "avx2": "avx2" in flags,
    "fma": "fma" in flags,
    "amx": any(f.startswith("amx") for f in flags),
}
if isa["avx512f"]:
    level = "AVX-512" + (" VNNI" if isa["avx512_vnni"] else "") + (" + AMX" if isa["amx"] else "")
elif isa["avx2"] and isa["fma"]:
    level = "AVX2 + FMA" + (" + AVX-VNNI" if isa["avx_vnni"] else "")
else:
    level = "below AVX2" if flags else "unknown"
cpu_cap = env.get("BENCH_CPU_CAP") or ""
hidden = {"avx512": ("amx",),
          "avx2": ("amx", "avx512f", "avx512_vnni", "avx_vnni")}.get(cpu_cap, ())
isa_text = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in isa.items())
if hidden:
    level = {"avx512": "AVX-512" + (" VNNI" if isa["avx512_vnni"] else ""),
             "avx2": "AVX2 + FMA"}[cpu_cap]
    level += f" (--cpu-cap {cpu_cap}: {', '.join(hidden)} hidden from every engine)"
simd = env.get("PLCC_SIMD")

rows = []
for name, stem, kind, base in zip(names, files, kinds, bases):
    runs = [last_json_object(os.path.join(out_dir, f"{stem}.{r}.json")) for r in range(1, rounds + 1)]
    best = max(runs, key=lambda r: r["sentences_per_s"])
    rows.append({"name": name, "kind": kind, "artifact_name": None if base == "-" else base,
                 "best_round": runs.index(best) + 1, "best": best, "rounds": runs})
by_kind = {}
for row in rows:
    by_kind.setdefault(row["kind"], row)
teacher = by_kind["plcc-teacher"]["best"]
speed = lambda row: row["best"]["sentences_per_s"]
growth = lambda row: row["best"].get("rss_growth_mb")
references = [(label, by_kind[kind]) for label, kind in
              (("vs plcc teacher", "plcc-teacher"), ("vs PyTorch fp32", "pytorch-fp32"),
               ("vs ORT int8", "onnx-int8")) if kind in by_kind]
teacher_growth = teacher.get("rss_growth_mb") or 0.0

header = ["model", "sentences/s"] + [label for label, _ in references] + ["RSS growth MiB", "RSS vs teacher"]
cells = []
for row in rows:
    g = growth(row)
    cells.append([row["name"], f"{speed(row):.1f}"]
                 + [f"{speed(row) / speed(ref):.2f}x" for _, ref in references]
                 + ["n/a" if g is None else f"{g:.1f}",
                    f"{g / teacher_growth:.2f}x" if g is not None and teacher_growth > 0 else "n/a"])

# Targets, checked where their rows are present.
targets = []
def target(label, value, op, bound):
    ok = value >= bound if op == ">=" else value <= bound
    targets.append({"target": f"{label} {op} {bound}x", "value": value, "pass": ok})
if "pytorch-fp32" in by_kind:
    target("plcc teacher speed / pytorch fp32", speed(by_kind["plcc-teacher"]) / speed(by_kind["pytorch-fp32"]), ">=", 1.5)
if "onnx-fp32" in by_kind:
    target("plcc teacher speed / onnxruntime fp32", speed(by_kind["plcc-teacher"]) / speed(by_kind["onnx-fp32"]), ">=", 1.2)
for row in rows:
    if row["kind"] != "plcc-artifact" or row["artifact_name"] not in ("int8", "w4", "xtc"):
        continue
    n = row["name"]
    if row["artifact_name"] in ("w4", "xtc") and "onnx-int8" in by_kind:
        bound = 1.0 if row["artifact_name"] == "w4" else 2.5
        target(f"{n} speed / onnxruntime int8", speed(row) / speed(by_kind["onnx-int8"]), ">=", bound)
    if row["artifact_name"] == "xtc":
        continue
    if row["artifact_name"] == "int8":
        target(f"{n} speed / plcc teacher", speed(row) / teacher["sentences_per_s"], ">=", 2.0)
        if "onnx-int8" in by_kind:
            target(f"{n} speed / onnxruntime int8", speed(row) / speed(by_kind["onnx-int8"]), ">=", 1.3)
        rss_bound = 0.5
    else:
        target(f"{n} speed / plcc teacher", speed(row) / teacher["sentences_per_s"], ">=", 1.5)
        rss_bound = 0.35
    if teacher_growth > 0 and growth(row) is not None:
        target(f"{n} RSS growth / plcc teacher", growth(row) / teacher_growth, "<=", rss_bound)

sentence_counts = sorted({r["best"].get("sentences") for r in rows})
token_counts = {r["name"]: r["best"].get("tokens") for r in rows}
max_len = env.get("BENCH_MAX_LEN") or "model default"
runs_text = (f"best of {rounds} interleaved round{'s' if rounds > 1 else ''} of "
             f"{env['BENCH_REPEAT']} timed pass{'es' if env['BENCH_REPEAT'] != '1' else ''} each")
lines_head = [
    f"CPU: {cpu}; ISA level {level} ({isa_text})",
    f"{env['BENCH_THREADS']} threads, batch {env['BENCH_BATCH']}, "
    f"{'/'.join(str(c) for c in sentence_counts)} sentences of {env['BENCH_INPUT']} "
    f"(max {max_len} tokens), {runs_text}"
    + (f"; PLCC_SIMD={simd}" if simd is not None else ""),
]
notes = []
if len(set(token_counts.values())) > 1:
    notes.append("token counts per pass differ (another tokenizer or truncation): "
                 + ", ".join(f"{k} {v}" for k, v in token_counts.items()))
loadavg = os.getloadavg()[0]

widths = [max(len(r[i]) for r in [header] + cells) for i in range(len(header))]
fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
print()
for line in lines_head:
    print(line)
print(fmt(header))
for r in cells:
    print(fmt(r))
for t in targets:
    print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {t['value']:.2f}x")
if rounds > 1:
    print(f"sentences/s of every round:")
    for row in rows:
        print(f"  {row['name']:<26}" + " ".join(f"{r['sentences_per_s']:.1f}" for r in row["rounds"]))
for note in notes:
    print(f"note: {note}")
print(f"load average (1 min) at the end: {loadavg:.2f}")

versions = {"plcc": env.get("BENCH_PLCC_VERSION", "unknown"), "python": platform.python_version()}
for row in rows:
    for key in ("torch", "sentence_transformers", "onnxruntime", "transformers"):
        if key in row["best"]:
            versions[key] = row["best"][key]
md = [" ".join(l + "." for l in lines_head), "",
      "| " + " | ".join(header) + " |",
      "| --- | " + " | ".join("---:" for _ in header[1:]) + " |"]
md += ["| " + " | ".join(r) + " |" for r in cells]
if targets:
    md += [""] + [f"- {'PASS' if t['pass'] else 'FAIL'}: {t['target']}: {t['value']:.2f}x" for t in targets]
md += ["", f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}. "
           f"Load average (1 min) at the end: {loadavg:.2f}."]
md += [f"Note: {n}." for n in notes]
with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write("\n".join(md) + "\n")

summary = {
    "meta": {
        "cpu": cpu, "isa_level": level, "isa": isa, "plcc_simd": simd, "cpu_cap": cpu_cap or None,
        "threads": int(env["BENCH_THREADS"]), "batch_size": int(env["BENCH_BATCH"]),
        "max_len": int(env["BENCH_MAX_LEN"]) if env.get("BENCH_MAX_LEN") else None,
        "input": env["BENCH_INPUT"], "sentences": sentence_counts[0] if len(sentence_counts) == 1 else sentence_counts,
        "teacher": env["BENCH_TEACHER"], "plcc": env["BENCH_PLCC"],
        "repeat": int(env["BENCH_REPEAT"]), "rounds": rounds,
        "loadavg_1m_end": round(loadavg, 2), "versions": versions,
    },
    "header": header,
    "table": cells,
    "results": rows,
    "targets": targets,
}
with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
print(f"wrote {out_dir}/table.md and {out_dir}/summary.json", file=sys.stderr)
PY
