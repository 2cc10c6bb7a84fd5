"""What the Python reference scripts share (scripts/bench_pytorch.py,
scripts/fidelity_peers.py): reading the sentences, sizing torch's thread
pools, loading the teacher with sentence-transformers and quantizing it the
way PyTorch users do (dynamic int8 Linear layers)."""

import os
import sys
import warnings


def read_sentences(path: str, limit: int = None) -> list:
    """The non-empty lines of `path`, stripped, at most `limit` of them."""
    with open(path, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    if limit is not None:
        sentences = sentences[:limit]
    if not sentences:
        sys.exit(f"{path}: no sentences")
    return sentences


def import_torch(threads: int = None):
    """Imports torch with `threads` intra-op threads (and one inter-op
    thread); the OpenMP/MKL variables are set first, before torch starts its
    pools. Returns the torch module."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    return torch


def load_sentence_transformer(model_dir: str, max_len: int = None):
    """The sentence-transformers pipeline of `model_dir` (for
    all-MiniLM-L6-v2: BERT, mean pooling over real tokens, L2 normalisation)
    on the CPU, in eval mode."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    if max_len is not None:
        model.max_seq_length = max_len
    return model


def quantize_dynamic_int8(model):
    """PyTorch dynamic int8 quantization of every nn.Linear
    (`torch.ao.quantization.quantize_dynamic(model, {nn.Linear},
    dtype=torch.qint8)`: int8 weights per tensor, activations quantized per
    batch at run time, int8 GEMM by fbgemm); embeddings and LayerNorms stay
    fp32. Returns a quantized copy."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
