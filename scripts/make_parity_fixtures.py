#!/usr/bin/env python3
"""Builds the small random Hugging Face checkpoints in tests/fixtures/parity/ and
their PyTorch reference outputs, for the runtime's numerical parity tests.

Usage (from the repository root; needs torch, transformers, safetensors):

    python3 scripts/make_parity_fixtures.py [--out tests/fixtures/parity]

Deterministic: every run with the same library versions writes the same files.
Folders written (each: config.json, model.safetensors, inputs.json,
reference.safetensors; see tests/fixtures/parity/README.md for the format):

    bert-odd/       BertModel, hidden 80, 5 heads, FFN 136, 3 layers, vocab 301
    bert-prefixed/  the same weights saved as BertForSequenceClassification
                    (tensor names carry the `bert.` prefix, plus a classifier)
    gpt2-odd/       GPT2LMHeadModel, n_embd 72, 6 heads, n_inner default (288),
                    2 layers, vocab 257; the tied lm_head is not in the file
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
)

SEED = 20240611
# Three sequences of different lengths, padded right with id 0.
SEQUENCE_LENGTHS = [11, 7, 3]


def randomize_parameters(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Replaces the default initialisation (zero biases, unit LayerNorm, tiny weights)
    with values that make every tensor matter, so a wrong bias, norm or transpose
    shows up in the outputs."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            shape = param.shape
            noise = torch.randn(shape, generator=generator)
            if "LayerNorm" in name or ".ln_" in name or name.startswith("ln_f") or ".ln_f." in name:
                if name.endswith("weight"):
                    param.copy_(1.0 + 0.2 * noise)
                else:
                    param.copy_(0.1 * noise)
            elif name.endswith("bias"):
                param.copy_(0.1 * noise)
            elif "embeddings" in name or ".wte." in name or ".wpe." in name:
                param.copy_(0.5 * noise)
            else:
                # Linear weights are [out, in]; GPT-2's Conv1D weights are [in, out].
                fan_in = shape[0] if ".h." in name and "transformer" in name else shape[1]
                param.copy_(noise * (1.5 / fan_in**0.5))


def make_inputs(vocab_size: int, generator: torch.Generator) -> dict:
    """Token ids in 1..vocab_size-1 (0 is the pad id), padded right to the longest."""
    width = max(SEQUENCE_LENGTHS)
    input_ids, attention_mask = [], []
    for length in SEQUENCE_LENGTHS:
        ids = torch.randint(1, vocab_size, (length,), generator=generator).tolist()
        input_ids.append(ids + [0] * (width - length))
        attention_mask.append([1] * length + [0] * (width - length))
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def run_reference(model: torch.nn.Module, inputs: dict, with_logits: bool) -> dict:
    ids = torch.tensor(inputs["input_ids"], dtype=torch.long)
    mask = torch.tensor(inputs["attention_mask"], dtype=torch.long)
    with torch.no_grad():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            output_hidden_states=True,
            output_attentions=True,
        )
    tensors = {}
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h.float().contiguous()
    for i, a in enumerate(out.attentions, start=1):
        tensors[f"attentions.{i}"] = a.float().contiguous()
    if with_logits:
        tensors["logits"] = out.logits.float().contiguous()
    return tensors


def write_folder(folder: str, model: torch.nn.Module, inputs: dict, reference: dict) -> None:
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True)
    # Only config.json and model.safetensors belong to the fixture.
    for extra in os.listdir(folder):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(folder, extra))
    with open(os.path.join(folder, "inputs.json"), "w") as f:
        json.dump(inputs, f)
        f.write("\n")
    save_file(reference, os.path.join(folder, "reference.safetensors"), metadata={"format": "pt"})
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print(f"wrote {folder} ({size / 1024:.0f} KiB)")


def bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=301,
        hidden_size=80,
        num_hidden_layers=3,
        num_attention_heads=5,
        intermediate_size=136,
        hidden_act="gelu",
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
        attn_implementation="eager",
    )


def make_bert(out_dir: str) -> None:
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = BertModel(bert_config()).eval()
    randomize_parameters(model, generator)
    inputs = make_inputs(model.config.vocab_size, generator)
    reference = run_reference(model, inputs, with_logits=False)
    write_folder(os.path.join(out_dir, "bert-odd"), model, inputs, reference)

    # The same encoder under a task head: tensor names gain the `bert.` prefix.
    config = bert_config()
    config.num_labels = 3
    prefixed = BertForSequenceClassification(config).eval()
    prefixed.bert.load_state_dict(model.state_dict())
    randomize_parameters(prefixed.classifier, generator)
    prefixed_reference = run_reference(prefixed.bert, inputs, with_logits=False)
    for key, value in reference.items():
        if not torch.equal(value, prefixed_reference[key]):
            raise SystemExit(f"bert-prefixed reference differs from bert-odd at {key}")
    write_folder(os.path.join(out_dir, "bert-prefixed"), prefixed, inputs, prefixed_reference)


def make_gpt2(out_dir: str) -> None:
    generator = torch.Generator().manual_seed(SEED + 1)
    torch.manual_seed(SEED + 1)
    config = GPT2Config(
        vocab_size=257,
        n_positions=64,
        n_embd=72,
        n_layer=2,
        n_head=6,
        n_inner=None,
        activation_function="gelu_new",
        bos_token_id=256,
        eos_token_id=256,
        attn_implementation="eager",
    )
    model = GPT2LMHeadModel(config).eval()
    randomize_parameters(model, generator)
    if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        raise SystemExit("expected GPT-2 lm_head to be tied to wte")
    inputs = make_inputs(config.vocab_size, generator)
    reference = run_reference(model, inputs, with_logits=True)
    write_folder(os.path.join(out_dir, "gpt2-odd"), model, inputs, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures/parity")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    make_bert(args.out)
    make_gpt2(args.out)


if __name__ == "__main__":
    main()
