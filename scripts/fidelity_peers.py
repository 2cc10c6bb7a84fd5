#!/usr/bin/env python3
"""Fidelity of compressed sentence-embedding models to their fp32 teacher, on
the same sentences: the teacher in fp32 (sentence-transformers), PyTorch
dynamic int8, ONNX Runtime dynamic int8 (per channel) and plcc artifacts.

Usage (from the repository root; normally run by scripts/fidelity-vs-peers.sh,
which installs what it needs into .venv-peers/):

    .venv-peers/bin/python scripts/fidelity_peers.py --model models/all-MiniLM-L6-v2 \\
        --input corpus/heldout.txt [--limit 1000] [--artifact DIR]... \\
        [--plcc target/release/plcc] [--threads 2] [--batch-size 32] \\
        [--out-dir out/peers]

Models, all fed the first `--limit` non-empty lines of `--input`, truncated to
the teacher's max_seq_length (256 tokens for all-MiniLM-L6-v2):
  - teacher fp32: the sentence-transformers pipeline (BERT, mean pooling over
    real tokens, L2 normalisation);
  - pytorch int8: the same after `quantize_dynamic(model, {nn.Linear},
    dtype=torch.qint8)` (per-tensor int8 weights, activations quantized per
    batch at run time; embeddings stay fp32);
  - onnx fp32: the teacher exported by optimum (ORTModelForFeatureExtraction),
    a check of the ONNX pipeline itself;
  - onnx int8: that export quantized by optimum's ORTQuantizer with
    `AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)`
    (ONNX Runtime dynamic quantization: int8 weights per channel for MatMul
    and Gather, the word embeddings included; uint8 activations per batch);
  - each plcc artifact: `plcc run DIR --input FILE --max-len L` (JSON Lines,
    one `embedding` per sentence: the mean over real tokens).
The ONNX models are mean-pooled over real tokens and L2-normalised like the
teacher.

For each model: bytes on disk (teacher: its model.safetensors; PyTorch int8:
the state_dict written by torch.save; ONNX: the .onnx file(s); plcc: the
artifact's model.safetensors), the teacher's bytes over the model's, the mean
and minimum cosine of its embedding to the teacher's, and the
similarity-ranking Spearman: the Spearman rank correlation (tied values share
their average rank) of the teacher's and the model's cosine similarities over
all pairs i < j of the sentences (as plcc's fidelity report computes it).
Prints the table and writes it to OUT_DIR/peers.md and OUT_DIR/peers.json.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from peers_common import import_torch, load_sentence_transformer, quantize_dynamic_int8, read_sentences


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/all-MiniLM-L6-v2", help="teacher (sentence-transformers folder)")
    parser.add_argument("--input", default="corpus/heldout.txt", help="one sentence per line")
    parser.add_argument("--limit", type=int, default=1000, help="first N sentences (default 1000)")
    parser.add_argument("--artifact", action="append", default=[], help="plcc artifact (repeatable)")
    parser.add_argument("--plcc", default="target/release/plcc", help="plcc binary")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out-dir", default="out/peers")
    args = parser.parse_args()
    if args.limit < 3 or args.threads < 1 or args.batch_size < 1:
        parser.error("--limit must be at least 3, --threads and --batch-size at least 1")
    return args


def normalized(embeddings) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    return e / np.where(norms == 0.0, 1.0, norms)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def similarity_spearman(teacher: np.ndarray, model: np.ndarray) -> float:
    """Spearman correlation of the pairwise cosine similarities (i < j)."""
    upper = np.triu_indices(len(teacher), k=1)
    a = average_ranks((teacher @ teacher.T)[upper])
    b = average_ranks((model @ model.T)[upper])
    a -= a.mean()
    b -= b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def mean_pool(hidden, attention_mask) -> np.ndarray:
    """Mean of the hidden states over real tokens (sentence-transformers'
    `Pooling(pooling_mode_mean_tokens=True)`)."""
    hidden = np.asarray(hidden, dtype=np.float64)
    mask = np.asarray(attention_mask, dtype=np.float64)[:, :, None]
    return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)


def encode_onnx(ort_model, tokenizer, sentences: list, max_len: int, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(sentences), batch_size):
        batch = tokenizer(sentences[start : start + batch_size], padding=True, truncation=True,
                          max_length=max_len, return_tensors="np")
        hidden = ort_model(**batch).last_hidden_state
        out.append(mean_pool(hidden, batch["attention_mask"]))
    return np.concatenate(out)


def onnx_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
               if f.endswith((".onnx", ".onnx_data", ".onnx.data")))


def plcc_weights_bytes(folder: str) -> int:
    path = os.path.join(folder, "model.safetensors")
    if os.path.exists(path):
        return os.path.getsize(path)
    files = [f for f in os.listdir(folder) if f.endswith(".safetensors")]
    if not files:
        sys.exit(f"fidelity_peers: {folder}: no model.safetensors (not a plcc artifact?)")
    return sum(os.path.getsize(os.path.join(folder, f)) for f in files)


def run_plcc(plcc: str, artifact: str, sentences_file: str, count: int, max_len: int, args) -> np.ndarray:
    command = [plcc, "run", artifact, "--input", sentences_file, "--max-len", str(max_len),
               "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    print(f"fidelity_peers: {' '.join(command)}", file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"fidelity_peers: plcc run {artifact} failed ({done.returncode}):\n{done.stderr}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(records) != count or any("embedding" not in r for r in records):
        sys.exit(f"fidelity_peers: plcc run {artifact}: expected {count} records with an embedding, "
                 f"got {len(records)} (an embedding model is needed)")
    return np.array([r["embedding"] for r in records])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    args = parse_args()
    work = tempfile.mkdtemp(prefix="fidelity-peers-")  # the int8 state_dict and ONNX models
    try:
        evaluate(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def evaluate(args: argparse.Namespace, work: str) -> None:
    torch = import_torch(args.threads)
    sentences = read_sentences(args.input, args.limit)
    os.makedirs(args.out_dir, exist_ok=True)
    sentences_file = os.path.join(args.out_dir, "sentences.txt")
    with open(sentences_file, "w", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in sentences))

    rows = []  # (name, bytes, embeddings, seconds)

    def timed(name, size, encode):
        print(f"fidelity_peers: encoding {len(sentences)} sentences with {name}", file=sys.stderr)
        started = time.perf_counter()
        embeddings = normalized(encode())
        rows.append((name, size, embeddings, time.perf_counter() - started))

    teacher = load_sentence_transformer(args.model)
    max_len = teacher.max_seq_length
    st_encode = lambda m: m.encode(sentences, batch_size=args.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
    teacher_bytes = os.path.getsize(os.path.join(args.model, "model.safetensors"))
    with torch.inference_mode():
        timed("teacher fp32 (pytorch)", teacher_bytes, lambda: st_encode(teacher))
        int8 = quantize_dynamic_int8(teacher)
        state_path = os.path.join(work, "pytorch-int8.pt")
        torch.save(int8.state_dict(), state_path)
        timed("pytorch int8 dynamic", os.path.getsize(state_path), lambda: st_encode(int8))
    del int8

    import onnxruntime
    from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    fp32_dir, int8_dir = os.path.join(work, "onnx-fp32"), os.path.join(work, "onnx-int8")
    print("fidelity_peers: exporting the teacher to ONNX (optimum)", file=sys.stderr)
    ORTModelForFeatureExtraction.from_pretrained(args.model, export=True).save_pretrained(fp32_dir)
    qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
    ORTQuantizer.from_pretrained(fp32_dir).quantize(save_dir=int8_dir, quantization_config=qconfig)
    tokenizer = teacher.tokenizer
    for name, folder in (("onnx fp32 (optimum export)", fp32_dir), ("onnx int8 dynamic per-channel", int8_dir)):
        onnx_files = [f for f in os.listdir(folder) if f.endswith(".onnx")]
        ort = ORTModelForFeatureExtraction.from_pretrained(folder, file_name=onnx_files[0], session_options=options)
        timed(name, onnx_bytes(folder), lambda: encode_onnx(ort, tokenizer, sentences, max_len, args.batch_size))

    for artifact in args.artifact:
        label = f"plcc {os.path.basename(os.path.normpath(artifact))}"
        timed(label, plcc_weights_bytes(artifact),
              lambda: run_plcc(args.plcc, artifact, sentences_file, len(sentences), max_len, args))

    reference = rows[0][2]
    results = []
    for name, size, embeddings, seconds in rows:
        cosines = (reference * embeddings).sum(axis=1)
        results.append({
            "model": name,
            "bytes": size,
            "ratio": teacher_bytes / size,
            "mean_cosine": float(cosines.mean()),
            "min_cosine": float(cosines.min()),
            "similarity_spearman": similarity_spearman(reference, embeddings),
            "encode_s": round(seconds, 2),
        })

    header = ["model", "bytes", "vs fp32", "mean cos", "min cos", "sim. Spearman"]
    cells = [[r["model"], f"{r['bytes']:,}", f"{r['ratio']:.2f}x", f"{r['mean_cosine']:.4f}",
              f"{r['min_cosine']:.4f}", f"{r['similarity_spearman']:.4f}"] for r in results]
    widths = [max(len(row[i]) for row in [header] + cells) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    print(line(header))
    for row in cells:
        print(line(row))

    import onnx, optimum.version, sentence_transformers, transformers

    meta = {
        "input": args.input,
        "sentences": len(sentences),
        "max_len": max_len,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "cpu": cpu_model(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "optimum": optimum.version.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "teacher": args.model,
        "teacher_bytes": teacher_bytes,
        "artifacts": args.artifact,
    }
    with open(os.path.join(args.out_dir, "peers.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
        f.write("\n")
    md = [
        f"Fidelity to the fp32 teacher `{args.model}` on the first {len(sentences)} sentences of "
        f"`{args.input}` (max {max_len} tokens); CPU: {meta['cpu']}, {args.threads} threads.",
        "",
        "| " + " | ".join(header) + " |",
        "| --- | " + " | ".join("---:" for _ in header[1:]) + " |",
    ] + ["| " + " | ".join(row) + " |" for row in cells]
    md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "."]
    with open(os.path.join(args.out_dir, "peers.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"fidelity_peers: wrote {args.out_dir}/peers.md and {args.out_dir}/peers.json", file=sys.stderr)


if __name__ == "__main__":
    main()
