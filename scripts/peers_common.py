"""What the Python reference scripts share (scripts/bench_pytorch.py,
scripts/bench_onnx.py, scripts/fidelity_peers.py): reading the sentences,
sizing torch's thread pools, loading the teacher with sentence-transformers
and quantizing it the way PyTorch users do (dynamic int8 Linear layers);
for the benchmarks, measuring memory and timing passes as `plcc bench` does,
and the teacher's ONNX exports (fp32 and ONNX Runtime dynamic int8)."""

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


def max_seq_length(model_dir: str):
    """The sentence-transformers truncation length of `model_dir`
    (sentence_bert_config.json's max_seq_length), None where it has none."""
    import json

    try:
        with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
            return json.load(f).get("max_seq_length")
    except (OSError, ValueError):
        return None


# Memory, measured as `plcc bench` does: the peak resident set (VmHWM) is
# reset to the current resident set by writing "5" to /proc/self/clear_refs
# just before the model is loaded, so the peak afterwards minus the resident
# set at that moment is what loading and running the model added.


def _status_mb(field: str) -> float:
    """One /proc/self/status field in MiB, 0 where /proc is unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return float(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current resident set (Linux); False where that is
    not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssGrowth:
    """Peak resident memory added from the moment it is created."""

    def __init__(self):
        self.peak_reset = reset_peak_rss()
        self.before_mb = _status_mb("VmRSS:")

    def restart_peak(self) -> float:
        """Resets the peak again (the resident set before stays the one at
        creation) and returns the growth up to now."""
        growth = self.growth_mb()
        self.peak_reset = reset_peak_rss() and self.peak_reset
        return growth

    @staticmethod
    def peak_mb() -> float:
        return _status_mb("VmHWM:")

    def growth_mb(self) -> float:
        """Peak since the (last) reset minus the resident set at creation;
        the whole process peak where the peak could not be reset."""
        peak = self.peak_mb()
        return peak - self.before_mb if self.peak_reset else peak


def percentile(sorted_values: list, q: float) -> float:
    """Linear-interpolated percentile (as numpy's default) of an ascending list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def length_sorted(sentences: list, lengths: list) -> list:
    """The sentences ordered by token count, longest first, ties in input
    order (as `plcc bench` batches them)."""
    order = sorted(range(len(sentences)), key=lambda i: -lengths[i])
    return [sentences[i] for i in order]


def time_passes(batches: list, encode, repeat: int, warmup_batches: int = None) -> dict:
    """Runs `encode` on the first `warmup_batches` batches (all of them by
    default: one whole warm-up pass), then times `repeat` whole passes, one
    `encode` call per batch. Returns the fastest pass (total_s, cpu_s: CPU
    seconds of all the process's threads, latencies_ms ascending) with
    `pass_s`, the seconds of every pass."""
    import time

    for batch in batches if warmup_batches is None else batches[:warmup_batches]:
        encode(batch)
    best, pass_s = None, []
    for _ in range(repeat):
        latencies_ms = []
        cpu_started = time.process_time()
        started = time.perf_counter()
        for batch in batches:
            t0 = time.perf_counter()
            encode(batch)
            latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        total_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        pass_s.append(total_s)
        if best is None or total_s < best["total_s"]:
            best = {"total_s": total_s, "cpu_s": cpu_s, "latencies_ms": sorted(latencies_ms)}
    best["pass_s"] = pass_s
    return best


def timing_fields(sentences: int, tokens: int, best: dict) -> dict:
    """The `plcc bench --json` keys of the fastest pass from `time_passes`."""
    total_s = best["total_s"]
    return {
        "sentences": sentences,
        "tokens": tokens,
        "repeat": len(best["pass_s"]),
        "total_s": round(total_s, 4),
        # CPU seconds of all threads over wall seconds in that pass: close to
        # the thread count when the run had its cores to itself.
        "cpu_per_wall": round(best["cpu_s"] / total_s, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "sentences_per_s": round(sentences / total_s, 2),
        "tokens_per_s": round(tokens / total_s, 1),
        "p50_ms": round(percentile(best["latencies_ms"], 0.50), 3),
        "p95_ms": round(percentile(best["latencies_ms"], 0.95), 3),
        "pass_sentences_per_s": [round(sentences / s, 2) for s in best["pass_s"]],
    }


ONNX_INT8_CONFIG = "AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)"


def _onnx_source(teacher: str) -> dict:
    """What the ONNX cache of `teacher` is made from (its source.json)."""
    stat = os.stat(os.path.join(teacher, "model.safetensors"))
    return {
        "teacher": os.path.abspath(teacher),
        "weights_bytes": stat.st_size,
        "weights_mtime_ns": stat.st_mtime_ns,
        "int8": ONNX_INT8_CONFIG,
    }


def _onnx_file(folder: str):
    files = sorted(f for f in os.listdir(folder) if f.endswith(".onnx")) if os.path.isdir(folder) else []
    return os.path.join(folder, files[0]) if files else None


def cached_onnx_models(teacher: str, cache_dir: str):
    """The .onnx files {"fp32": path, "int8": path} of `onnx_models` when
    `cache_dir` holds them for this teacher, else None."""
    import json

    try:
        with open(os.path.join(cache_dir, "source.json")) as f:
            if json.load(f) != _onnx_source(teacher):
                return None
    except (OSError, ValueError):
        return None
    paths = {p: _onnx_file(os.path.join(cache_dir, p)) for p in ("fp32", "int8")}
    return paths if all(paths.values()) else None


def onnx_models(teacher: str, cache_dir: str) -> dict:
    """The teacher exported to ONNX by optimum (ORTModelForFeatureExtraction)
    and that export quantized by ORTQuantizer with ONNX_INT8_CONFIG (ONNX
    Runtime dynamic quantization: int8 weights per channel, uint8 activations
    per batch), as {"fp32": path, "int8": path} of the .onnx files. Kept in
    `cache_dir` (fp32/, int8/, source.json) and reused while source.json
    matches the teacher's weights file; exported otherwise (needs torch)."""
    import json
    import shutil

    cached = cached_onnx_models(teacher, cache_dir)
    if cached:
        return cached

    from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    stamp = os.path.join(cache_dir, "source.json")
    fp32_dir, int8_dir = os.path.join(cache_dir, "fp32"), os.path.join(cache_dir, "int8")
    os.makedirs(cache_dir, exist_ok=True)
    for stale in (stamp, fp32_dir, int8_dir):
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        elif os.path.exists(stale):
            os.remove(stale)
    print(f"exporting {teacher} to ONNX (optimum) into {fp32_dir}", file=sys.stderr)
    ORTModelForFeatureExtraction.from_pretrained(teacher, export=True).save_pretrained(fp32_dir)
    print(f"quantizing it (ORTQuantizer, {ONNX_INT8_CONFIG}) into {int8_dir}", file=sys.stderr)
    qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
    ORTQuantizer.from_pretrained(fp32_dir).quantize(save_dir=int8_dir, quantization_config=qconfig)
    with open(stamp, "w") as f:  # written last: its presence marks a complete cache
        json.dump(_onnx_source(teacher), f, indent=2)
        f.write("\n")
    return cached_onnx_models(teacher, cache_dir)


def row_cosines(a, b):
    """The cosine of each row of `a` with the same row of `b` (numpy)."""
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def onnx_feed(encodings: list, input_names: set) -> dict:
    """The inputs of an exported encoder for a batch of tokenizer encodings:
    ids, attention mask and (where the graph takes them) token types, each
    row padded with zeros to the longest."""
    import numpy as np
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, e in enumerate(encodings):
        n = len(e.ids)
        ids[i, :n], mask[i, :n], types[i, :n] = e.ids, e.attention_mask, e.type_ids
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        feed["token_type_ids"] = types
    return feed
