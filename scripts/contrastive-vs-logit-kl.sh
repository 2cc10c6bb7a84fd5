#!/usr/bin/env bash
# Does token-level contrastive distillation help a 2-bit generative model?
# Builds examples/quant_gpt.pc (contrastive + logit KL) and
# examples/quant_gpt_logit_kl.pc (logit KL alone), or with `--family bart`
# examples/quant_bart.pc and examples/quant_bart_logit_kl.pc, with each given
# seed and prints the held-out perplexities side by side. The recipes differ
# only in the contrastive loss; with the same seed both pretrain the same
# teacher, so each seed is a paired comparison.
#
# Usage (from anywhere):
#   scripts/contrastive-vs-logit-kl.sh [--family gpt|bart] [SEED ...]   (default: gpt; 11 12 13)
# Artifacts and logs are kept in $OUT_DIR (default: out/contrastive-vs-kl).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
family=gpt
if [ "${1:-}" = "--family" ]; then
    family=${2:?--family needs gpt or bart}
    shift 2
fi
case "$family" in
    gpt | bart) ;;
    *) echo "unknown family '$family' (gpt or bart)" >&2; exit 2 ;;
esac
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(11 12 13)
out="${OUT_DIR:-out/contrastive-vs-kl}"
mkdir -p "$out"
cargo build --release --quiet
plcc="$root/target/release/plcc"

# A copy of RECIPE with `seed: SEED`, beside it so relative data paths hold.
seeded() {
    local recipe=$1 seed=$2
    local copy
    copy="$(dirname "$recipe")/.$(basename "$recipe" .pc).seed$seed.pc"
    sed "s/^seed: .*/seed: $seed/" "$recipe" > "$copy"
    echo "$copy"
}

field() { grep -A6 '^fidelity on' "$1" | awk -v k="$2" '$1 == k { print $2 }'; }

printf '%-6s %-14s %-22s %-18s %-10s %s\n' seed teacher_ppl "contrastive+KL ppl" "KL alone ppl" difference "top-1 (c / kl)"
for seed in "${seeds[@]}"; do
    declare -A ppl top1
    for name in "quant_$family" "quant_${family}_logit_kl"; do
        recipe=$(seeded "examples/$name.pc" "$seed")
        log="$out/$name.seed$seed.log"
        if ! "$plcc" build "$recipe" -o "$out/$name.seed$seed" > "$log" 2>&1; then
            rm -f "$recipe"
            echo "build of $name (seed $seed) failed; see $log" >&2
            exit 1
        fi
        rm -f "$recipe"
        ppl[$name]=$(field "$log" student_perplexity)
        top1[$name]=$(field "$log" top1_agreement)
        teacher=$(field "$log" teacher_perplexity)
    done
    c="quant_$family" k="quant_${family}_logit_kl"
    diff=$(python3 -c "print(f'{${ppl[$c]} - ${ppl[$k]}:+.4f}')")
    printf '%-6s %-14s %-22s %-18s %-10s %s / %s\n' "$seed" "$teacher" "${ppl[$c]}" \
        "${ppl[$k]}" "$diff" "${top1[$c]}" "${top1[$k]}"
done
