#!/usr/bin/env python3
"""Writes tests/fixtures/minilm/reference.json: token ids and sentence embeddings
of tests/fixtures/minilm/sentences.txt computed by PyTorch with the real
all-MiniLM-L6-v2, the reference the runtime's end-to-end test compares against.

Usage (from the repository root; needs torch and transformers):

    python3 scripts/make_minilm_reference.py [MODEL_DIR]      # default models/all-MiniLM-L6-v2

Each sentence is tokenized by AutoTokenizer (with [CLS]/[SEP], no truncation)
and run alone (no padding) through AutoModel in fp32 eval mode. Its embedding is
the mean of last_hidden_state over its tokens, NOT L2-normalised.
Output: {"input_ids": [[...] per sentence], "embeddings": [[384 floats] per sentence]};
floats are written with full float32 precision.
"""

import argparse
import json
import os

import torch
from transformers import AutoModel, AutoTokenizer

SENTENCES = "tests/fixtures/minilm/sentences.txt"
OUTPUT = "tests/fixtures/minilm/reference.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default="models/all-MiniLM-L6-v2")
    parser.add_argument("--sentences", default=SENTENCES)
    parser.add_argument("--out", default=OUTPUT)
    args = parser.parse_args()

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModel.from_pretrained(args.model_dir, dtype=torch.float32).eval()

    with open(args.sentences, encoding="utf-8") as f:
        sentences = [line.rstrip("\n") for line in f if line.strip()]

    all_ids, all_embeddings = [], []
    with torch.no_grad():
        for sentence in sentences:
            encoded = tokenizer(sentence, return_tensors="pt", truncation=False)
            hidden = model(**encoded).last_hidden_state[0]  # [seq, 384]
            mask = encoded["attention_mask"][0].unsqueeze(-1).to(hidden.dtype)
            embedding = (hidden * mask).sum(0) / mask.sum()
            all_ids.append(encoded["input_ids"][0].tolist())
            # float32 -> Python float is exact; json writes the shortest round-trip repr.
            all_embeddings.append([float(x) for x in embedding.float()])

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"input_ids": all_ids, "embeddings": all_embeddings}, f)
        f.write("\n")
    lengths = [len(ids) for ids in all_ids]
    print(f"wrote {args.out}: {len(sentences)} sentences, {min(lengths)}-{max(lengths)} tokens")


if __name__ == "__main__":
    main()
