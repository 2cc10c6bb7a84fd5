#!/usr/bin/env python3
"""Reference throughput of a sentence-embedding model under PyTorch
(sentence-transformers `encode`, CPU), to compare with `plcc bench`.

Usage (from the repository root; needs torch and sentence-transformers):

    python3 scripts/bench_pytorch.py --model models/all-MiniLM-L6-v2 \\
        --input benches/corpus/sentences-en.txt --threads 2 --batch-size 32 \\
        [--repeat 3] [--warmup-batches 3] [--max-len N] [--quantize-dynamic]
        [--sort-by-length]

The input file holds one sentence per line. Sentences are encoded in file order,
`--batch-size` at a time; one `encode` call per batch is timed. After a warm-up of
`--warmup-batches` batches, the whole file is encoded `--repeat` times.
`--sort-by-length` first orders the sentences by token count, longest first,
so that each batch holds sentences of similar length (as `plcc bench` batches).
`--quantize-dynamic` replaces every nn.Linear by its dynamic int8 version
(`torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
dtype=torch.qint8)`: int8 weights, activations quantized per batch at run
time, int8 GEMM by fbgemm) before timing.

Prints one JSON object on stdout with the keys `plcc bench --json` uses:
sentences_per_s, tokens_per_s (non-padding tokens, [CLS]/[SEP] included, after
truncation to the model's max length), p50_ms / p95_ms (per-batch latency) and
peak_rss_mb (peak resident memory of the whole process, Python and torch included),
plus a description of the run (cpu_per_wall and loadavg_1m tell whether other
work competed for the cores).
"""

import argparse
import json
import os
import resource
import time

from peers_common import import_torch, load_sentence_transformer, quantize_dynamic_int8, read_sentences


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="sentence-transformers model folder")
    parser.add_argument("--input", required=True, help="text file, one sentence per line")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the input")
    parser.add_argument("--warmup-batches", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=None, help="truncate to this many tokens")
    parser.add_argument("--quantize-dynamic", action="store_true", help="int8 dynamic Linear")
    parser.add_argument(
        "--sort-by-length", action="store_true", help="batch sentences of similar token count"
    )
    args = parser.parse_args()
    if args.batch_size < 1 or args.repeat < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--batch-size, --repeat and --threads must be at least 1")
    return args


def percentile(sorted_values: list, q: float) -> float:
    """Linear-interpolated percentile (as numpy's default) of an ascending list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def main() -> None:
    args = parse_args()
    torch = import_torch(args.threads)
    sentences = read_sentences(args.input)
    model = load_sentence_transformer(args.model, args.max_len)
    if args.quantize_dynamic:
        model = quantize_dynamic_int8(model)

    tokenizer = model.tokenizer
    max_len = model.max_seq_length
    if args.sort_by_length:
        lengths = [len(ids) for ids in tokenizer(sentences, truncation=True, max_length=max_len)["input_ids"]]
        order = sorted(range(len(sentences)), key=lambda i: -lengths[i])
        sentences = [sentences[i] for i in order]
    batches = [sentences[i : i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]
    tokens_per_pass = sum(
        len(ids)
        for batch in batches
        for ids in tokenizer(batch, truncation=True, max_length=max_len)["input_ids"]
    )

    def encode(batch: list) -> None:
        model.encode(batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)

    with torch.inference_mode():
        for batch in batches[: args.warmup_batches]:
            encode(batch)
        latencies_ms = []
        cpu_started = time.process_time()
        started = time.perf_counter()
        for _ in range(args.repeat):
            for batch in batches:
                t0 = time.perf_counter()
                encode(batch)
                latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        total_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started

    latencies_ms.sort()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    result = {
        "engine": "pytorch",
        "torch": torch.__version__,
        "model": args.model,
        "quantized": "dynamic-int8-linear" if args.quantize_dynamic else None,
        "sorted_by_length": args.sort_by_length,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "max_len": max_len,
        "sentences": len(sentences),
        "tokens": tokens_per_pass,
        "repeat": args.repeat,
        "total_s": round(total_s, 4),
        # CPU seconds of all threads over wall seconds: close to `threads` when the
        # run had its cores to itself; the load average shows competing work.
        "cpu_per_wall": round(cpu_s / total_s, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "sentences_per_s": round(len(sentences) * args.repeat / total_s, 2),
        "tokens_per_s": round(tokens_per_pass * args.repeat / total_s, 1),
        "p50_ms": round(percentile(latencies_ms, 0.50), 3),
        "p95_ms": round(percentile(latencies_ms, 0.95), 3),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
