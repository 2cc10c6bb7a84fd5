#!/usr/bin/env python3
"""Runs an ONNX export (`plcc export ARTIFACT --format onnx -o DIR`) with ONNX
Runtime and compares its `sentence_embedding` (or `logits`) with what
`plcc run ARTIFACT` gives for the same lines: mean / min cosine, and the
export's file size against the artifact's weight file.

Usage: onnx_vs_plcc.py --export DIR --plcc-jsonl RUN.jsonl --input FILE
       [--max-len N] [--min-cosine 0.999]
Needs onnxruntime, tokenizers and numpy (scripts/export-vs-plcc.sh provides
them). Exit 1 when the mean cosine is below --min-cosine."""
import argparse, json, os, sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from peers_common import onnx_feed, row_cosines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--plcc-jsonl", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--min-cosine", type=float, default=0.999)
    a = ap.parse_args()

    lines = [l.rstrip("\n") for l in open(a.input, encoding="utf-8")]
    lines = [l for l in lines if l.strip()]
    plcc = [json.loads(l) for l in open(a.plcc_jsonl, encoding="utf-8")]
    if len(plcc) != len(lines):
        sys.exit(f"{len(plcc)} plcc outputs for {len(lines)} input lines")
    record = json.load(open(os.path.join(a.export, "export.json")))
    key = "logits" if "logits" in record["outputs"] else "embedding"
    out_name = "logits" if key == "logits" else "sentence_embedding"

    tok = Tokenizer.from_file(os.path.join(a.export, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(a.max_len)
    session = ort.InferenceSession(os.path.join(a.export, "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    outs = []
    for start in range(0, len(lines), a.batch_size):
        feed = onnx_feed(tok.encode_batch(lines[start:start + a.batch_size]), names)
        out = session.run([out_name], feed)[0]
        if out.ndim == 3:  # a language model's logits at every position: the last real token's
            mask = feed["attention_mask"]
            out = out[np.arange(len(mask)), mask.sum(1) - 1]
        outs.append(out)
    onnx_out = np.concatenate(outs)
    ref = np.array([p[key] for p in plcc], dtype=np.float32)
    cos = row_cosines(onnx_out, ref)
    onnx_bytes = os.path.getsize(os.path.join(a.export, "model.onnx"))
    ratio = onnx_bytes / record["artifact_weight_bytes"]
    print(f"{len(lines)} lines: mean cosine {cos.mean():.6f}, min {cos.min():.6f}; "
          f"model.onnx {onnx_bytes} B = {ratio:.3f}x the artifact's weight file "
          f"({record['artifact_weight_bytes']} B)")
    sys.exit(0 if cos.mean() >= a.min_cosine else 1)


if __name__ == "__main__":
    main()
