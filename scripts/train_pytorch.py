#!/usr/bin/env python3
"""Reference training throughput under PyTorch (CPU) for a plcc-built BERT
student, to compare with plcc's own training loop on the same batches.

Usage (from the repository root; needs torch, transformers, safetensors):

    python3 scripts/train_pytorch.py --artifact ART --batches BATCHES.jsonl \\
        [--teacher models/all-MiniLM-L6-v2] [--stage general] [--loss-log LOG] \\
        [--threads 2] [--warmup-steps 5] [--attention sdpa|eager] [--json]

ART is a plcc artifact of an encoder student (`manifest.json` gives the
per-layer heads / head width / FFN width, the embedding rank and the exit
heads; `model.safetensors` the f32 weights under plcc's names: Hugging Face
BERT names, `embeddings.word_embeddings_proj.weight` [hidden, r] for a
factorized embedding, `exit.{layer}.dense.*` for the pooler exit heads).
Build it with `plcc build RECIPE --max-steps 0` to get the student as it is
when training starts.

BATCHES.jsonl holds the token id rows of every training micro-batch, as
`PLCC_DUMP_BATCHES=BATCHES.jsonl plcc build ...` writes them; the rows of
stage `--stage` are replayed in order, padded on the right with id 0.

One training step is what plcc's `general` distillation stage does
(src/lower/train/): the teacher's forward without gradient (hidden states of every
layer); the student's forward (post-LN BERT layers, erf GELU, mean-pooled
exit heads `tanh(dense(x))`); the loss `hidden_mse` (per student layer i and
the teacher layer it came from, the masked mean over real tokens of the
per-token mean squared difference; averaged over the pairs 0->0 .. L->L) plus
`cosine` (1 - cosine of the mean-pooled final hidden state and of every exit
output against the teacher's mean-pooled final hidden state, averaged); the
backward pass; the global gradient norm (no clipping); AdamW (betas 0.9 /
0.999, eps 1e-8, decoupled weight decay on matrices only). The learning rate
of each step is taken from plcc's loss log of the same run (`--loss-log`,
the `loss.jsonl` of the artifact that trained on the batches) or, without
one, is `--lr`.

Prints tokens/s and ms/step over the steps after `--warmup-steps` (tokens are
real, unpadded tokens, as plcc counts them), the loss of every step, and, with
`--loss-log`, how far the losses are from plcc's. `--json` prints one JSON
object instead.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn


class Layer(nn.Module):
    """One post-LN BERT encoder layer with its own head count, head width and FFN width."""

    def __init__(self, hidden, heads, head_dim, ffn, eps, attention):
        super().__init__()
        inner = heads * head_dim
        self.heads, self.head_dim, self.attention = heads, head_dim, attention
        self.query = nn.Linear(hidden, inner)
        self.key = nn.Linear(hidden, inner)
        self.value = nn.Linear(hidden, inner)
        self.attn_out = nn.Linear(inner, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x, bias):
        b, s, _ = x.shape

        def split(t):
            return t.view(b, s, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if self.attention == "sdpa":
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            scores = (q / math.sqrt(self.head_dim)) @ k.transpose(-1, -2) + bias
            ctx = scores.softmax(-1) @ v
        ctx = ctx.transpose(1, 2).reshape(b, s, self.heads * self.head_dim)
        x = self.attn_norm(self.attn_out(ctx) + x)
        return self.ffn_norm(self.ffn_out(F.gelu(self.ffn_in(x))) + x)


class Student(nn.Module):
    """The plcc student: BERT embeddings (word table optionally factorized),
    per-layer shaped encoder layers, pooler exit heads after chosen layers."""

    def __init__(self, config, exits_after, attention):
        super().__init__()
        h, eps = config["hidden_size"], config["layer_norm_eps"]
        rank = config.get("embedding_rank")
        self.word = nn.Embedding(config["vocab_size"], rank or h)
        self.word_proj = nn.Linear(rank, h, bias=False) if rank else None
        self.position = nn.Embedding(config["max_positions"], h)
        self.token_type = nn.Embedding(config["type_vocab_size"], h)
        self.emb_norm = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(
            Layer(h, l["heads"], l["head_dim"], l["ffn"], eps, attention)
            for l in config["layers"]
        )
        self.exits_after = list(exits_after)
        self.exits = nn.ModuleList(nn.Linear(h, h) for _ in self.exits_after)

    def load_plcc(self, tensors):
        """Copies plcc's tensors (by name) into the module; every tensor must be used."""
        names = {
            "embeddings.word_embeddings.weight": self.word.weight,
            "embeddings.position_embeddings.weight": self.position.weight,
            "embeddings.token_type_embeddings.weight": self.token_type.weight,
            "embeddings.LayerNorm.weight": self.emb_norm.weight,
            "embeddings.LayerNorm.bias": self.emb_norm.bias,
        }
        if self.word_proj is not None:
            names["embeddings.word_embeddings_proj.weight"] = self.word_proj.weight
        for i, layer in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            for name, mod in [
                ("attention.self.query", layer.query),
                ("attention.self.key", layer.key),
                ("attention.self.value", layer.value),
                ("attention.output.dense", layer.attn_out),
                ("attention.output.LayerNorm", layer.attn_norm),
                ("intermediate.dense", layer.ffn_in),
                ("output.dense", layer.ffn_out),
                ("output.LayerNorm", layer.ffn_norm),
            ]:
                names[p + name + ".weight"] = mod.weight
                names[p + name + ".bias"] = mod.bias
        for after, head in zip(self.exits_after, self.exits):
            names[f"exit.{after}.dense.weight"] = head.weight
            names[f"exit.{after}.dense.bias"] = head.bias
        unused = sorted(set(tensors) - set(names))
        missing = sorted(set(names) - set(tensors))
        if unused or missing:
            sys.exit(f"train_pytorch: tensors not matched: unused {unused}, missing {missing}")
        with torch.no_grad():
            for name, param in names.items():
                t = tensors[name]
                if tuple(t.shape) != tuple(param.shape):
                    sys.exit(f"train_pytorch: {name} has shape {tuple(t.shape)}, "
                             f"the module {tuple(param.shape)}")
                param.copy_(t.float())

    def forward(self, ids, types, mask, bias):
        s = ids.shape[1]
        x = self.word(ids)
        if self.word_proj is not None:
            x = self.word_proj(x)
        x = x + self.position.weight[:s] + self.token_type(types)
        x = self.emb_norm(x)
        hidden = [x]
        for layer in self.layers:
            x = layer(x, bias)
            hidden.append(x)
        exits = [torch.tanh(head(mean_pool(hidden[after], mask)))
                 for after, head in zip(self.exits_after, self.exits)]
        return hidden, exits


def mean_pool(x, mask):
    m = mask.unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def cosine_loss(a, b):
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-8)
    return (1.0 - cos).mean()


def losses(s_hidden, s_exits, t_hidden, mask):
    """hidden_mse over the pairs i->i and cosine over the final state and the exits."""
    count = mask.sum().clamp(min=1.0)
    mse = torch.stack([
        (((hs - ht) ** 2).mean(-1) * mask).sum() / count
        for hs, ht in zip(s_hidden, t_hidden)
    ]).mean()
    target = mean_pool(t_hidden[-1], mask)
    terms = [cosine_loss(mean_pool(s_hidden[-1], mask), target)]
    terms += [cosine_loss(e, target) for e in s_exits]
    return mse, torch.stack(terms).mean()


def read_batches(path, stage):
    steps = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec["stage"] == stage:
                steps.append(rec)
    if not steps:
        sys.exit(f"train_pytorch: no batches of stage `{stage}` in {path}")
    steps.sort(key=lambda r: (r["step"], r["micro"]))
    return steps


def read_loss_log(path, stage):
    out = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec["stage"] == stage:
                out[rec["step"]] = rec
    return out


def pad(rows):
    seq = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), seq, dtype=torch.long)
    mask = torch.zeros(len(rows), seq)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1.0
    return ids, mask


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifact", required=True, help="plcc artifact of the student (initial weights)")
    ap.add_argument("--batches", required=True, help="PLCC_DUMP_BATCHES file")
    ap.add_argument("--teacher", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--stage", default="general")
    ap.add_argument("--loss-log", help="plcc's loss.jsonl: learning rates, and losses to compare")
    ap.add_argument("--lr", type=float, default=3e-4, help="learning rate without --loss-log")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--w-hidden", type=float, default=1.0, help="weight of hidden_mse")
    ap.add_argument("--w-cosine", type=float, default=1.0, help="weight of cosine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup-steps", type=int, default=5, help="steps left out of the timing")
    ap.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa",
                    help="student attention: F.scaled_dot_product_attention or matmul/softmax")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers
    from transformers import AutoModel

    transformers.utils.logging.disable_progress_bar()

    manifest = json.load(open(os.path.join(args.artifact, "manifest.json")))
    config = manifest["config"]
    if config.get("arch") != "bert":
        sys.exit(f"train_pytorch: the student is `{config.get('arch')}`; only bert is supported")
    exits_after = [e["after"] for e in manifest.get("exits", []) if e.get("head") == "Pooler"]
    student = Student(config, exits_after, args.attention)
    student.load_plcc(load_file(os.path.join(args.artifact, "model.safetensors")))
    student.train()
    teacher = AutoModel.from_pretrained(args.teacher, add_pooling_layer=False).float().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    decay = [p for n, p in student.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in student.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
    )
    params = decay + no_decay
    batches = read_batches(args.batches, args.stage)
    plcc_log = read_loss_log(args.loss_log, args.stage) if args.loss_log else {}

    records = []
    for rec in batches:
        if rec["micro"] != 0:
            sys.exit("train_pytorch: gradient accumulation is not supported")
        step = rec["step"]
        lr = plcc_log[step]["lr"] if step in plcc_log else args.lr
        for g in opt.param_groups:
            g["lr"] = lr
        start = time.perf_counter()
        ids, mask = pad(rec["ids"])
        types = torch.zeros_like(ids)
        # Additive attention bias [batch, 1, 1, seq]: 0 at real keys, -1e9 at padding.
        bias = ((mask - 1.0) * 1e9)[:, None, None, :]
        with torch.no_grad():
            t_out = teacher(input_ids=ids, attention_mask=mask.long(), token_type_ids=types,
                            output_hidden_states=True)
        s_hidden, s_exits = student(ids, types, mask, bias)
        mse, cos = losses(s_hidden, s_exits, t_out.hidden_states, mask)
        loss = args.w_hidden * mse + args.w_cosine * cos
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]))
        opt.step()
        loss_v, norm_v = loss.item(), norm.item()
        secs = time.perf_counter() - start
        tokens = sum(len(r) for r in rec["ids"])
        records.append({"step": step, "tokens": tokens, "seconds": secs, "loss": loss_v,
                        "plcc_loss": plcc_log.get(step, {}).get("loss"),
                        "grad_norm": norm_v, "lr": lr})

    timed = records[args.warmup_steps:] or records
    tokens = sum(r["tokens"] for r in timed)
    seconds = sum(r["seconds"] for r in timed)
    compared = [r for r in records if r["plcc_loss"] is not None]
    max_rel = max((abs(r["loss"] - r["plcc_loss"]) / max(abs(r["plcc_loss"]), 1e-12)
                   for r in compared), default=None)
    result = {
        "stage": args.stage,
        "steps": len(records),
        "timed_steps": len(timed),
        "warmup_steps": len(records) - len(timed),
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "ms_per_step": 1000.0 * seconds / len(timed),
        "threads": torch.get_num_threads(),
        "attention": args.attention,
        "torch": torch.__version__,
        "loadavg_1m": os.getloadavg()[0],
        "max_rel_loss_diff_vs_plcc": max_rel,
        "per_step": records,
    }
    if args.json:
        print(json.dumps(result))
        return
    for r in records:
        other = "" if r["plcc_loss"] is None else f"  plcc {r['plcc_loss']:.6f}"
        print(f"step {r['step']:>4}  {r['tokens']:>5} tokens  {1000 * r['seconds']:8.1f} ms  "
              f"loss {r['loss']:.6f}{other}")
    print(f"PyTorch {torch.__version__}, {result['threads']} threads, attention {args.attention}: "
          f"{result['tokens_per_s']:.0f} tokens/s, {result['ms_per_step']:.1f} ms/step "
          f"over {len(timed)} steps after {result['warmup_steps']} warm-up steps")
    if max_rel is not None:
        print(f"largest relative loss difference from plcc over {len(compared)} steps: {max_rel:.2e}")


if __name__ == "__main__":
    main()
