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
    bart-odd/       BartForConditionalGeneration, d_model 60, encoder 3 layers of
                    5 heads and FFN 104, decoder 2 layers of 3 heads and FFN 88,
                    vocab 301; also a byte-level BPE tokenizer.json, source and
                    target texts, and transformers' greedy generations
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
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
            if (
                "LayerNorm" in name
                or ".ln_" in name
                or name.startswith("ln_f")
                or ".ln_f." in name
                # BART: `*_layer_norm`, `layernorm_embedding`.
                or "layer_norm" in name
                or "layernorm" in name
            ):
                if name.endswith("weight"):
                    param.copy_(1.0 + 0.2 * noise)
                else:
                    param.copy_(0.1 * noise)
            elif name.endswith("bias"):
                param.copy_(0.1 * noise)
            elif (
                "embeddings" in name
                or ".wte." in name
                or ".wpe." in name
                or ".shared." in name
                or "embed_positions" in name
            ):
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


def write_folder(
    folder: str,
    model: torch.nn.Module,
    inputs: dict,
    reference: dict,
    tokenizer: Tokenizer | None = None,
) -> None:
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True)
    # Only config.json and model.safetensors belong to the fixture.
    for extra in os.listdir(folder):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(folder, extra))
    if tokenizer is not None:
        tokenizer.save(os.path.join(folder, "tokenizer.json"))
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


# BART: the byte-level BPE's merges spell these words (with a leading space
# first, then bare) until the vocabulary is full.
BART_WORDS = "the cat sat on mat and dog ran to park a red ball in garden"
BART_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# Source texts (encoded with `<s> ... </s>`) and targets (plain tokens, after
# the decoder start token): different lengths in both, one target empty, one
# source with non-ASCII bytes.
BART_SOURCES = [
    "the cat sat on the mat and the dog ran",
    "a red ball in the garden",
    "caf\u00e9 ok",
]
BART_TARGETS = [" the cat", "", " a red ball in"]
# Greedy generation: new tokens at most.
BART_GENERATE = 8


def bytes_to_unicode() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in its order."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def bart_tokenizer(vocab_size: int) -> Tokenizer:
    """A byte-level BPE in BART's layout: `<s>` 0, `<pad>` 1, `</s>` 2,
    `<unk>` 3, the 256 byte symbols, merges of BART_WORDS, `<mask>` last;
    `<s> $A </s>` as in facebook/bart-base's tokenizer.json."""
    vocab = {t: i for i, t in enumerate(BART_SPECIALS)}
    for c in bytes_to_unicode():
        vocab[c] = len(vocab)
    merges = []
    words = ["\u0120" + w for w in BART_WORDS.split()] + BART_WORDS.split()
    for word in words:
        piece = word[0]
        for c in word[1:]:
            if len(vocab) >= vocab_size - 1:
                break
            if piece + c not in vocab:
                merges.append((piece, c))
                vocab[piece + c] = len(vocab)
            piece += c
    if len(vocab) != vocab_size - 1:
        raise SystemExit(f"BART_WORDS give {len(vocab)} entries, want {vocab_size - 1}")
    vocab["<mask>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    tok.add_special_tokens(BART_SPECIALS + ["<mask>"])
    return tok


def pad_rows(rows: list[list[int]], pad: int) -> tuple[list[list[int]], list[list[int]]]:
    width = max(len(r) for r in rows)
    ids = [r + [pad] * (width - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return ids, mask


def make_bart(out_dir: str) -> None:
    generator = torch.Generator().manual_seed(SEED + 2)
    torch.manual_seed(SEED + 2)
    config = BartConfig(
        vocab_size=301,
        d_model=60,
        encoder_layers=3,
        encoder_attention_heads=5,
        encoder_ffn_dim=104,
        decoder_layers=2,
        decoder_attention_heads=3,
        decoder_ffn_dim=88,
        max_position_embeddings=40,
        activation_function="gelu",
        scale_embedding=True,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        # Plain greedy decoding: no token is forced at the last step.
        forced_eos_token_id=None,
        attn_implementation="eager",
    )
    model = BartForConditionalGeneration(config).eval()
    randomize_parameters(model, generator)
    with torch.no_grad():
        model.final_logits_bias.copy_(0.5 * torch.randn(model.final_logits_bias.shape, generator=generator))
    if model.lm_head.weight.data_ptr() != model.model.shared.weight.data_ptr():
        raise SystemExit("expected BART lm_head to be tied to model.shared")

    tokenizer = bart_tokenizer(config.vocab_size)
    sources = [tokenizer.encode(t).ids for t in BART_SOURCES]
    targets = [tokenizer.encode(t, add_special_tokens=False).ids for t in BART_TARGETS]
    start = config.decoder_start_token_id
    input_ids, attention_mask = pad_rows(sources, config.pad_token_id)
    decoder_input_ids, decoder_attention_mask = pad_rows([[start] + t for t in targets], config.pad_token_id)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "decoder_attention_mask": decoder_attention_mask,
        "source_text": BART_SOURCES,
        "target_text": BART_TARGETS,
    }

    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(input_ids),
            attention_mask=torch.tensor(attention_mask),
            decoder_input_ids=torch.tensor(decoder_input_ids),
            decoder_attention_mask=torch.tensor(decoder_attention_mask),
            output_hidden_states=True,
            output_attentions=True,
        )
    reference = {}
    for prefix, states, attentions in [
        ("encoder_", out.encoder_hidden_states, out.encoder_attentions),
        ("", out.decoder_hidden_states, out.decoder_attentions),
    ]:
        for i, h in enumerate(states):
            reference[f"{prefix}hidden_states.{i}"] = h.float().contiguous()
        for i, a in enumerate(attentions, start=1):
            reference[f"{prefix}attentions.{i}"] = a.float().contiguous()
    for i, a in enumerate(out.cross_attentions, start=1):
        reference[f"cross_attentions.{i}"] = a.float().contiguous()
    reference["logits"] = out.logits.float().contiguous()

    # Greedy continuation of each row alone (source, then start token and
    # target), as `plcc run --generate` defines it.
    generated, texts = [], []
    for source, target in zip(sources, targets):
        with torch.no_grad():
            ids = model.generate(
                input_ids=torch.tensor([source]),
                attention_mask=torch.ones(1, len(source), dtype=torch.long),
                decoder_input_ids=torch.tensor([[start] + target]),
                do_sample=False,
                num_beams=1,
                max_new_tokens=BART_GENERATE,
            )[0].tolist()
        new = ids[1 + len(target) :]
        if config.eos_token_id in new:
            new = new[: new.index(config.eos_token_id) + 1]
        generated.append(new)
        texts.append(tokenizer.decode(new, skip_special_tokens=True))
    inputs["generate"] = {"max_new_tokens": BART_GENERATE, "tokens": generated, "text": texts}
    write_folder(os.path.join(out_dir, "bart-odd"), model, inputs, reference, tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/fixtures/parity")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    make_bert(args.out)
    make_gpt2(args.out)
    make_bart(args.out)


if __name__ == "__main__":
    main()
