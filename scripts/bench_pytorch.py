#!/usr/bin/env python3
"""Reference throughput of a sentence-embedding model under PyTorch
(sentence-transformers `encode`, CPU), to compare with `plcc bench`.

Usage (from the repository root; needs torch and sentence-transformers):

    python3 scripts/bench_pytorch.py --model models/all-MiniLM-L6-v2 \\
        --input benches/corpus/sentences-en.txt --threads 2 --batch-size 32 \\
        [--repeat 3] [--warmup-batches N] [--max-len N] [--quantize-dynamic]
        [--sort-by-length]

The input file holds one sentence per line (empty lines are skipped).
Sentences are encoded in file order, `--batch-size` at a time; one `encode`
call per batch (tokenization, the forward pass, mean pooling and
normalisation: the model's sentence-transformers pipeline) is timed. After a
warm-up (one whole pass, or the first `--warmup-batches` batches), the whole
file is encoded `--repeat` times and the fastest pass is reported (as
`plcc bench --repeat` does). `--sort-by-length` first orders the sentences by
token count, longest first, so that each batch holds sentences of similar
length (as `plcc bench` batches). `--max-len` truncates to that many tokens
(default: the model's max_seq_length). `--quantize-dynamic` replaces every
nn.Linear by its dynamic int8 version (`torch.ao.quantization.quantize_dynamic(
model, {torch.nn.Linear}, dtype=torch.qint8)`: int8 weights, activations
quantized per batch at run time, int8 GEMM by fbgemm) before timing.

Memory is measured as `plcc bench` measures it: torch and sentence-transformers
are imported first; then the peak resident set is reset (/proc/self/clear_refs)
and the resident set read just before the model is loaded. rss_growth_mb is
the peak after the timed passes minus that resident set. With
`--quantize-dynamic` the fp32 model the quantization starts from is freed and
the peak reset again once the quantized copy exists, so rss_growth_mb is that
of the quantized model in use; rss_growth_with_quantization_mb is the growth
up to the end of the quantization, fp32 copy included.

Prints one JSON object on stdout with the keys `plcc bench --json` uses:
sentences_per_s, tokens_per_s (non-padding tokens, [CLS]/[SEP] included, after
truncation), p50_ms / p95_ms (per-batch latency), total_s (of the fastest
pass), peak_rss_mb (peak resident memory of the whole process since the reset)
and rss_growth_mb, plus a description of the run (cpu_per_wall and
loadavg_1m tell whether other work competed for the cores;
pass_sentences_per_s gives every timed pass).
"""

import argparse
import gc
import json

from peers_common import (
    RssGrowth,
    import_torch,
    length_sorted,
    load_sentence_transformer,
    quantize_dynamic_int8,
    read_sentences,
    time_passes,
    timing_fields,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="sentence-transformers model folder")
    parser.add_argument("--input", required=True, help="text file, one sentence per line")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest is reported")
    parser.add_argument(
        "--warmup-batches", type=int, default=None, help="warm-up batches (default: one whole pass)"
    )
    parser.add_argument("--max-len", type=int, default=None, help="truncate to this many tokens")
    parser.add_argument("--quantize-dynamic", action="store_true", help="int8 dynamic Linear")
    parser.add_argument(
        "--sort-by-length", action="store_true", help="batch sentences of similar token count"
    )
    args = parser.parse_args()
    if args.batch_size < 1 or args.repeat < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--batch-size, --repeat and --threads must be at least 1")
    if args.warmup_batches is not None and args.warmup_batches < 0:
        parser.error("--warmup-batches must not be negative")
    return args


def main() -> None:
    args = parse_args()
    torch = import_torch(args.threads)
    import sentence_transformers  # imported before the memory baseline, as torch

    sentences = read_sentences(args.input)
    rss = RssGrowth()
    model = load_sentence_transformer(args.model, args.max_len)
    growth_with_quantization = None
    if args.quantize_dynamic:
        model = quantize_dynamic_int8(model)
        gc.collect()
        growth_with_quantization = rss.restart_peak()

    tokenizer = model.tokenizer
    max_len = model.max_seq_length
    lengths = [len(ids) for ids in tokenizer(sentences, truncation=True, max_length=max_len)["input_ids"]]
    if args.sort_by_length:
        sentences = length_sorted(sentences, lengths)
    batches = [sentences[i : i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]

    def encode(batch: list) -> None:
        model.encode(batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)

    with torch.inference_mode():
        best = time_passes(batches, encode, args.repeat, args.warmup_batches)

    result = {
        "engine": "pytorch",
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "model": args.model,
        "quantized": "dynamic-int8-linear" if args.quantize_dynamic else None,
        "sorted_by_length": args.sort_by_length,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "max_len": max_len,
        "warmup_batches": len(batches) if args.warmup_batches is None else min(args.warmup_batches, len(batches)),
    }
    result.update(timing_fields(len(sentences), sum(lengths), best))
    result["peak_rss_mb"] = round(rss.peak_mb(), 1)
    result["rss_before_mb"] = round(rss.before_mb, 1)
    result["rss_growth_mb"] = round(rss.growth_mb(), 1)
    if growth_with_quantization is not None:
        result["rss_growth_with_quantization_mb"] = round(growth_with_quantization, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
