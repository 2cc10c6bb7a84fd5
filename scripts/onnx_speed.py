#!/usr/bin/env python3
"""Throughput of ONNX exports under ONNX Runtime (CPU), side by side in one
run: each export (`plcc export ARTIFACT --format onnx -o DIR`, or any folder
with model.onnx and tokenizer.json whose graph outputs `sentence_embedding`)
encodes the same sentences in batches of `--batch-size`, sorted by token
count (longest first, as `plcc bench` batches), with `--threads` intra-op
threads. The exports take turns pass by pass, so a change in the machine's
load reaches all of them; the fastest of `--repeat` passes is reported.
Tokenization (the export's tokenizer.json) is timed with the run.

`--int8 LABEL=DIR` first makes ONNX Runtime's own int8 model of the float
export in DIR (onnxruntime.quantization: quant_pre_process, then
quantize_dynamic with per_channel=True, int8 weights and uint8 activations
quantized per batch) into DIR/int8/, once, and times it as LABEL.

Usage: onnx_speed.py --export LABEL=DIR [--export ...] [--int8 LABEL=DIR]
       --input FILE [--limit 512] [--threads 2] [--batch-size 32]
       [--repeat 3] [--json OUT]
Needs onnxruntime, onnx, tokenizers and numpy (scripts/export-vs-plcc.sh
provides them). Prints one line per model: sentences/s, tokens/s and the
speed relative to the first model named."""
import argparse, json, os, shutil, time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from peers_common import length_sorted, onnx_feed, read_sentences


def labelled(value: str):
    label, sep, path = value.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=DIR, got `{value}`")
    return label, path


def int8_of(export_dir: str) -> str:
    """The int8 folder of the float export in `export_dir`, made once."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_dir = os.path.join(export_dir, "int8")
    model = os.path.join(out_dir, "model.onnx")
    if os.path.isfile(model):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    pre = os.path.join(out_dir, "pre.onnx")
    # Folds the graph's weight transposes into initializers, so that every
    # MatMul reads a constant weight the quantizer can quantize.
    quant_pre_process(os.path.join(export_dir, "model.onnx"), pre, skip_symbolic_shape=True)
    quantize_dynamic(pre, model, per_channel=True, weight_type=QuantType.QInt8)
    os.remove(pre)
    shutil.copy(os.path.join(export_dir, "tokenizer.json"), out_dir)
    return out_dir


class Model:
    def __init__(self, label: str, folder: str, sentences: list, args):
        self.label = label
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(
            os.path.join(folder, "model.onnx"), sess_options=options,
            providers=["CPUExecutionProvider"])
        self.names = {i.name for i in self.session.get_inputs()}
        self.tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(args.max_len)
        lengths = [len(e.ids) for e in self.tok.encode_batch(sentences)]
        self.tokens = sum(lengths)
        ordered = length_sorted(sentences, lengths)
        self.batches = [ordered[i:i + args.batch_size]
                        for i in range(0, len(ordered), args.batch_size)]
        self.passes = []

    def encode(self, batch: list) -> np.ndarray:
        feed = onnx_feed(self.tok.encode_batch(batch), self.names)
        return self.session.run(["sentence_embedding"], feed)[0]

    def one_pass(self) -> float:
        start = time.perf_counter()
        for batch in self.batches:
            self.encode(batch)
        seconds = time.perf_counter() - start
        self.passes.append(seconds)
        return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=labelled, action="append", default=[])
    ap.add_argument("--int8", type=labelled, action="append", default=[])
    ap.add_argument("--input", required=True)
    ap.add_argument("--limit", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    named = [(label, int8_of(path)) for label, path in a.int8] + a.export
    if not named:
        ap.error("name at least one --export or --int8")
    sentences = read_sentences(a.input, a.limit)
    models = [Model(label, path, sentences, a) for label, path in named]
    for m in models:  # warm-up: one whole pass each
        m.one_pass()
        m.passes.clear()
    for _ in range(a.repeat):
        for m in models:
            m.one_pass()
    base = len(sentences) / min(models[0].passes)
    rows = []
    for m in models:
        best = min(m.passes)
        row = {
            "model": m.label,
            "sentences": len(sentences),
            "tokens": m.tokens,
            "best_s": round(best, 4),
            "sentences_per_s": round(len(sentences) / best, 2),
            "tokens_per_s": round(m.tokens / best, 1),
            "relative": round(len(sentences) / best / base, 3),
            "passes_s": [round(s, 4) for s in m.passes],
        }
        rows.append(row)
        print(f"{m.label}: {row['sentences_per_s']} sentences/s, {row['tokens_per_s']} tokens/s "
              f"({row['relative']}x {models[0].label}; passes {row['passes_s']} s)")
    run = {"onnxruntime": ort.__version__, "threads": a.threads, "batch_size": a.batch_size,
           "input": a.input, "sorted_by_length": True, "loadavg_1m": round(os.getloadavg()[0], 2),
           "models": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(run, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
