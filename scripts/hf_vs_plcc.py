#!/usr/bin/env python3
"""Loads a Hugging Face export (`plcc export ARTIFACT --format hf -o DIR`)
with sentence-transformers and compares its embeddings with `plcc run
ARTIFACT`'s for the same lines: mean / min cosine.

Usage: hf_vs_plcc.py --export DIR --plcc-jsonl RUN.jsonl --input FILE
       [--min-cosine 0.999]
Needs sentence-transformers (the .venv-peers/ of scripts/fidelity-vs-peers.sh).
Exit 1 when the mean cosine is below --min-cosine."""
import argparse, json, sys

import numpy as np
from sentence_transformers import SentenceTransformer

from peers_common import row_cosines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--plcc-jsonl", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--min-cosine", type=float, default=0.999)
    a = ap.parse_args()
    lines = [l.rstrip("\n") for l in open(a.input, encoding="utf-8") if l.strip()]
    ref = np.array([json.loads(l)["embedding"] for l in open(a.plcc_jsonl)], dtype=np.float32)
    model = SentenceTransformer(a.export, device="cpu")
    ours = model.encode(lines, batch_size=32, convert_to_numpy=True)
    cos = row_cosines(ours, ref)
    print(f"{len(lines)} lines: mean cosine {cos.mean():.6f}, min {cos.min():.6f}; "
          f"lengths: sentence-transformers {np.linalg.norm(ours, axis=1).mean():.4f}, "
          f"plcc {np.linalg.norm(ref, axis=1).mean():.4f}")
    sys.exit(0 if cos.mean() >= a.min_cosine else 1)


if __name__ == "__main__":
    main()
