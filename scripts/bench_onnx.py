#!/usr/bin/env python3
"""Reference throughput of a sentence-embedding model under ONNX Runtime (CPU),
fp32 or dynamically quantized to int8, to compare with `plcc bench`.

Usage (from the repository root; needs onnxruntime and transformers, and
optimum with torch for the export):

    python3 scripts/bench_onnx.py --model models/all-MiniLM-L6-v2 \\
        --input benches/corpus/sentences-en.txt --threads 2 --batch-size 32 \\
        [--precision fp32|int8] [--cache out/bench/onnx] [--repeat 3]
        [--warmup-batches N] [--max-len N] [--sort-by-length]
    python3 scripts/bench_onnx.py --model models/all-MiniLM-L6-v2 \\
        --cache out/bench/onnx --export-only

The models come from `--cache`: the teacher exported by optimum
(ORTModelForFeatureExtraction) into CACHE/fp32/ and that export quantized by
optimum's ORTQuantizer with `AutoQuantizationConfig.avx512_vnni(
is_static=False, per_channel=True)` (ONNX Runtime dynamic quantization: int8
weights per channel for MatMul and Gather, uint8 activations per batch) into
CACHE/int8/, as scripts/fidelity_peers.py makes them. Both are made once and
reused while CACHE/source.json matches the teacher's model.safetensors;
`--export-only` makes them (if needed) and exits. When they are missing, a
benchmark run makes them first in a child process, so that the export's
memory does not enter the measurement.

The session runs on the CPU execution provider with intra_op_num_threads =
`--threads` and inter_op_num_threads = 1, sequential execution and the
default graph optimizations (all). Each batch of `--batch-size` sentences is
tokenized by the teacher's tokenizer (transformers AutoTokenizer, padded to
the batch's longest sentence, truncated to `--max-len`, default the teacher's
max_seq_length), run, and its last hidden state mean-pooled over real tokens
(sentence-transformers' Pooling(pooling_mode_mean_tokens=True)); that whole
step is timed per batch, as plcc times tokenization and the forward pass.
After a warm-up (one whole pass, or the first `--warmup-batches` batches) the
input is encoded `--repeat` times and the fastest pass is reported.
`--sort-by-length` first orders the sentences by token count, longest first
(as `plcc bench` batches).

Memory, as `plcc bench` measures it: onnxruntime and transformers (without
torch: USE_TORCH=0) are imported first; then the peak resident set is reset
(/proc/self/clear_refs) and the resident set read just before the tokenizer
and the session are created. rss_growth_mb is the peak after the timed
passes minus that resident set.

Prints one JSON object on stdout with the keys `plcc bench --json` uses
(sentences_per_s, tokens_per_s, p50_ms, p95_ms, total_s, peak_rss_mb,
rss_growth_mb) and a description of the run, as scripts/bench_pytorch.py.
"""

import argparse
import json
import os
import subprocess
import sys

from peers_common import (
    ONNX_INT8_CONFIG,
    RssGrowth,
    cached_onnx_models,
    length_sorted,
    max_seq_length,
    onnx_models,
    read_sentences,
    time_passes,
    timing_fields,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="teacher: sentence-transformers model folder")
    parser.add_argument("--cache", default="out/bench/onnx", help="folder of the ONNX exports")
    parser.add_argument("--export-only", action="store_true", help="make the ONNX models and exit")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--input", help="text file, one sentence per line")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest is reported")
    parser.add_argument(
        "--warmup-batches", type=int, default=None, help="warm-up batches (default: one whole pass)"
    )
    parser.add_argument("--max-len", type=int, default=None, help="truncate to this many tokens")
    parser.add_argument(
        "--sort-by-length", action="store_true", help="batch sentences of similar token count"
    )
    args = parser.parse_args()
    if not args.export_only and args.input is None:
        parser.error("--input is needed (or --export-only)")
    if args.batch_size < 1 or args.repeat < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--batch-size, --repeat and --threads must be at least 1")
    if args.warmup_batches is not None and args.warmup_batches < 0:
        parser.error("--warmup-batches must not be negative")
    return args


def main() -> None:
    args = parse_args()
    if args.export_only:
        for precision, path in onnx_models(args.model, args.cache).items():
            print(f"{precision}: {path}", file=sys.stderr)
        return

    paths = cached_onnx_models(args.model, args.cache)
    if paths is None:
        command = [sys.executable, os.path.abspath(__file__), "--model", args.model,
                   "--cache", args.cache, "--export-only"]
        subprocess.run(command, check=True)
        paths = cached_onnx_models(args.model, args.cache)
        if paths is None:
            sys.exit(f"bench_onnx: the export left no ONNX models in {args.cache}")
    model_path = paths[args.precision]

    # Only transformers' tokenizer is used here: without these, importing
    # transformers imports torch too, which the ONNX Runtime process needs not.
    os.environ["USE_TORCH"] = "0"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import numpy as np
    import onnxruntime
    import transformers
    from transformers import AutoTokenizer

    sentences = read_sentences(args.input)
    max_len = args.max_len or max_seq_length(args.model)

    rss = RssGrowth()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if max_len is None:
        max_len = min(tokenizer.model_max_length, 512)
    options = onnxruntime.SessionOptions()
    if args.threads is not None:
        options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    session = onnxruntime.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    hidden_name = "last_hidden_state" if "last_hidden_state" in output_names else output_names[0]

    lengths = [len(ids) for ids in tokenizer(sentences, truncation=True, max_length=max_len)["input_ids"]]
    if args.sort_by_length:
        sentences = length_sorted(sentences, lengths)
    batches = [sentences[i : i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]

    def encode(batch: list) -> np.ndarray:
        features = tokenizer(batch, padding=True, truncation=True, max_length=max_len, return_tensors="np")
        feed = {name: features[name] for name in input_names}
        hidden = session.run([hidden_name], feed)[0]
        mask = features["attention_mask"][:, :, None].astype(hidden.dtype)
        return (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)

    best = time_passes(batches, encode, args.repeat, args.warmup_batches)

    result = {
        "engine": "onnxruntime",
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "model": args.model,
        "onnx_model": model_path,
        "quantized": f"dynamic-int8-per-channel: {ONNX_INT8_CONFIG}" if args.precision == "int8" else None,
        "sorted_by_length": args.sort_by_length,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "max_len": max_len,
        "warmup_batches": len(batches) if args.warmup_batches is None else min(args.warmup_batches, len(batches)),
    }
    result.update(timing_fields(len(sentences), sum(lengths), best))
    result["peak_rss_mb"] = round(rss.peak_mb(), 1)
    result["rss_before_mb"] = round(rss.before_mb, 1)
    result["rss_growth_mb"] = round(rss.growth_mb(), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
