#!/usr/bin/env python3
"""Builds the real-text English corpus (train / held-out split) from Debian's
English package descriptions (apt's `*_i18n_Translation-en*` lists) and
English man pages (roff sources, as the manpages packages ship them).

Usage (from the repository root; Python 3 standard library only; normally run
by scripts/fetch-corpus.sh):

    python3 scripts/make_corpus.py --out corpus [--seed 20240611] \\
        [--heldout 2000] [--min-sentences 200000] \\
        [--descriptions LIST...] [--man-pages DIR...]

Each LIST is one of apt's Translation-en files, plain or compressed (.gz, .xz,
.bz2 and .lzma are read with the standard library; .lz4, .zst and any other
compression apt keeps are decompressed by `/usr/lib/apt/apt-helper cat-file`).
Each DIR holds man pages (`*.N` or `*.N.gz`, searched recursively). Inputs are
read in sorted order.

From each `Description-en:` field it keeps
  - the short description (the field's first line), and
  - the sentences of the long description: continuation lines start with one
    space, ` .` separates paragraphs, lines indented further are "verbatim"
    (list items, tables, examples). List items lose their marker (`*`, `-`,
    `+`, `o`, `1.`, `a)`, ...) and keep only the complete sentences they hold;
    other verbatim blocks (tables, code, ASCII art) are dropped.
From a man page it keeps the running text of its paragraphs (text lines and
font macros such as `.BR`, escapes resolved); no-fill regions, examples,
tables and the terms of `.TP` lists are dropped.
Text is split into sentences (common abbreviations and initials such as
"e.g.", "etc.", "A.D." do not end one); whitespace is normalised; apart from
short descriptions, a sentence must start with a capital letter, digit, quote
or bracket and end with `.`, `!` or `?`. Every candidate is then filtered:
4 to 64 words, mostly letters, mostly ASCII, no URL or e-mail address, no
code-like text (braces, `=`, `$`, `|`, backslashes, `::`, `->`, file paths,
identifiers_with_underscores) and no long runs of capitals.
Duplicates are removed case-insensitively after whitespace normalisation.
The distinct sentences are then shuffled with the fixed seed: each is placed
by the sha256 of the seed and its lower-cased text, so that a sentence's split
does not depend on which other sentences the inputs hold. The first
`--heldout` of them become the held-out split, all the others the training
split. The same inputs give byte-identical outputs.

Writes OUT/train.txt and OUT/heldout.txt (one sentence per line, UTF-8, `\\n`)
and OUT/README.md (sources, counts, seed, sha256 of both files); prints a
summary. Exits with status 1 if fewer than --min-sentences distinct sentences
result.
"""

import argparse
import bz2
import gzip
import hashlib
import lzma
import os
import re
import subprocess
import sys
import unicodedata

APT_HELPER = "/usr/lib/apt/apt-helper"

MIN_WORDS, MAX_WORDS = 4, 64

# Words whose trailing period does not end a sentence (compared lower-cased,
# without the period).
ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "cf", "al", "approx", "incl", "inc", "ltd", "co",
    "corp", "no", "nos", "vol", "fig", "figs", "eq", "ed", "eds", "dr", "mr",
    "mrs", "ms", "prof", "jr", "sr", "st", "ver", "rev", "resp", "esp", "dept",
    "univ", "min", "max", "sec", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "viz", "ca", "pp", "ch", "sect",
}
INITIALS = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]?$")  # A.D, U.S, e.g (period stripped)

LIST_MARKER = re.compile(r"^(?:[-*+o•·‣◦]|\(?[0-9]{1,2}[.)]|\(?[a-zA-Z][.)])\s+")
SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
SENTENCE_START = re.compile(r"^[\"'“‘(\[]?[A-Z0-9]")
URL_OR_MAIL = re.compile(r"://|\bwww\.|\bftp\.|\S@\S+\.[A-Za-z]{2,}|\b[a-z0-9-]+\.(?:com|org|net|io)\b", re.I)
CODE_LIKE = re.compile(r"[{}<>=$|\\`^~]|::|->|=>|;;|\b\w+_\w+\b|(?:^|\s)\.{0,2}/\w|\w/\w+/\w|\[\]")
CAPS_RUN = re.compile(r"\b[A-Z]{2,}(?:\s+[A-Z]{2,}){4,}\b")  # five shouting words in a row
WHITESPACE = re.compile(r"\s+")


def read_list(path: str) -> str:
    """The text of one apt list, decompressed."""
    openers = {".gz": gzip.open, ".xz": lzma.open, ".lzma": lzma.open, ".bz2": bz2.open}
    ext = os.path.splitext(path)[1]
    if ext in openers:
        with openers[ext](path, "rb") as f:
            data = f.read()
    elif ext in ("", ".txt") or path.endswith("Translation-en"):
        with open(path, "rb") as f:
            data = f.read()
    else:
        if not os.access(APT_HELPER, os.X_OK):
            sys.exit(f"make_corpus: {path}: needs {APT_HELPER} to decompress {ext} files")
        data = subprocess.run([APT_HELPER, "cat-file", path], check=True, capture_output=True).stdout
    return data.decode("utf-8", errors="replace")


def descriptions(text: str):
    """Yields (short description, long-description lines) for every
    Description-en field of a Translation file."""
    short, body = None, []
    for line in text.split("\n"):
        if line.startswith("Description-en:"):
            if short is not None:
                yield short, body
            short, body = line[len("Description-en:"):].strip(), []
        elif short is not None and line.startswith(" "):
            body.append(line)
        elif short is not None:  # another field or the blank line between records
            yield short, body
            short, body = None, []
    if short is not None:
        yield short, body


def blocks(body: list):
    """Splits a long description into blocks of prose: paragraphs and list items
    (markers removed). Verbatim blocks that are neither are dropped."""
    current, kind, item_indent = [], None, 0

    def flush():
        if current and kind in ("prose", "item"):
            yield " ".join(current)

    for line in body:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if stripped == "." or not stripped:
            yield from flush()
            current, kind = [], None
            continue
        marker = LIST_MARKER.match(stripped)
        if marker and (indent > 1 or kind != "prose" or not current):
            yield from flush()
            current, kind, item_indent = [stripped[marker.end():]], "item", indent
        elif indent == 1:
            if kind != "prose":
                yield from flush()
                current, kind = [], "prose"
            current.append(stripped)
        elif kind == "item" and indent > item_indent:
            current.append(stripped)
        else:  # verbatim text outside a list item: tables, examples, code
            if kind != "verbatim":
                yield from flush()
                current, kind = [], "verbatim"
            current.append(stripped)
        if kind in ("item", "verbatim") and re.search(r"\S\s{3,}\S", stripped):
            kind = "verbatim"  # columns: a table, not prose
    yield from flush()


def is_boundary(token: str, following: str) -> bool:
    """Whether a sentence ends after `token` (which ends with . ! or ?)."""
    if not following or not SENTENCE_START.match(following):
        return False
    core = token.rstrip("\"'”’)]")
    if core.endswith(("!", "?")):
        return True
    word = core[:-1].lstrip("\"'“‘([")
    if word.lower() in ABBREVIATIONS or INITIALS.match(word):
        return False
    return True


def sentences(block: str):
    tokens = block.split()
    start = 0
    for i, token in enumerate(tokens):
        if SENTENCE_END.search(token) and (i + 1 == len(tokens) or is_boundary(token, tokens[i + 1])):
            yield " ".join(tokens[start : i + 1])
            start = i + 1
    if start < len(tokens):
        yield " ".join(tokens[start:])  # no final punctuation: rejected by the caller


def clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in text)
    return WHITESPACE.sub(" ", text).strip()


def acceptable(text: str) -> bool:
    words = text.split(" ")
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    visible = text.replace(" ", "")
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.75 * len(visible):
        return False
    if sum(c.isascii() for c in visible) < 0.95 * len(visible):
        return False  # mostly another script: not English prose
    if sum(any(c.isalpha() for c in w) for w in words) < 0.8 * len(words):
        return False
    if not any(c.islower() for c in text):
        return False
    return not (URL_OR_MAIL.search(text) or CODE_LIKE.search(text) or CAPS_RUN.search(text))


def description_candidates(text: str, stats: dict):
    for short, body in descriptions(text):
        stats["documents"] += 1
        short = clean(short)
        if short:
            yield short
        for block in blocks(body):
            yield from full_sentences(block)


def full_sentences(block: str):
    """The complete sentences of a block of prose."""
    for sentence in sentences(clean(block)):
        if SENTENCE_START.match(sentence) and SENTENCE_END.search(sentence):
            yield sentence


ROFF_FONT_MACROS = {"B", "I", "BR", "RB", "BI", "IB", "IR", "RI", "SM", "SB"}
ROFF_NAMED = {"aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "em": " - ",
              "en": "-", "hy": "-", "bu": "", "ha": "^", "ti": "~", "rs": "\\", "mu": "x",
              "co": "(C)", "rg": "(R)", "tm": "(TM)", "de": " degrees", "+-": "+/-"}
ROFF_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\(..|\[[^\]]*\]|.)|"
                         r"[sS][-+]?\d+|[-e&~%|^ 0:/,c]|.)")


def roff_inline(text: str) -> str:
    def replace(m):
        named = m.group(1) or m.group(2)
        if named is not None:
            return ROFF_NAMED.get(named, " ")
        esc = m.group(0)
        if esc.startswith(("\\f", "\\*", "\\s", "\\S")) or esc in ("\\&", "\\%", "\\|", "\\^", "\\c", "\\:", "\\/", "\\,"):
            return ""
        return {"\\-": "-", "\\e": "\\", "\\~": " ", "\\ ": " ", "\\0": " "}.get(esc, "")
    return ROFF_ESCAPE.sub(replace, text)


def roff_arguments(text: str) -> list:
    args, current, quoted = [], "", False
    for c in text:
        if c == '"':
            quoted = not quoted
        elif c in " \t" and not quoted:
            if current:
                args.append(current)
            current = ""
        else:
            current += c
    if current:
        args.append(current)
    return args


def man_page_blocks(source: str):
    """Prose paragraphs of a man page in roff (man macros): running text and the
    text of font macros; tables, examples and no-fill regions are dropped."""
    current, skipping, tag_pending = [], False, False
    for line in source.split("\n"):
        line = re.sub(r'\\".*', "", line)  # comment
        if tag_pending and line.strip() and not skipping:
            macro = line[1:].split(None, 1)[0] if line.startswith((".", "'")) and line[1:].strip() else ""
            if not line.startswith((".", "'")) or macro in ROFF_FONT_MACROS:
                tag_pending = False  # the term of a .TP item: a name, not prose
                continue
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            macro = parts[0] if parts else ""
            rest = parts[1] if len(parts) > 1 else ""
            if macro in ("nf", "EX", "TS", "de", "ig"):
                skipping = True
            elif macro in ("fi", "EE", "TE", ".", ".."):
                skipping = False
            if macro in ROFF_FONT_MACROS and not skipping:
                args = roff_arguments(rest)
                joiner = " " if macro in ("B", "I", "SM", "SB") else ""
                current.append(roff_inline(joiner.join(args)))
            elif macro not in ROFF_FONT_MACROS:
                if current:
                    yield " ".join(current)
                current = []
                tag_pending = macro in ("TP", "TQ")
        elif not skipping:
            current.append(roff_inline(line))
    if current:
        yield " ".join(current)


def man_page_candidates(path: str, stats: dict):
    """Sentences of the man pages under a folder (plain or .gz roff files)."""
    pages = []
    for folder, _, files in os.walk(path):
        pages += [os.path.join(folder, f) for f in files if re.search(r"\.[1-9][a-z]*(?:\.gz)?$", f)]
    for page in sorted(pages):
        opener = gzip.open if page.endswith(".gz") else open
        with opener(page, "rb") as f:
            source = f.read().decode("utf-8", errors="replace")
        if source.lstrip().startswith(".so "):
            continue  # a link to another page
        stats["documents"] += 1
        for block in man_page_blocks(source):
            yield from full_sentences(block)


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def split_order(key: str, seed: int) -> bytes:
    """Position of a sentence in the seeded shuffle: a keyed hash of its dedup
    key, so that adding or removing other sentences never moves it between
    the splits."""
    return hashlib.sha256(f"{seed}\n{key}".encode("utf-8")).digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptions", nargs="+", default=[], metavar="LIST",
                        help="apt Translation-en lists")
    parser.add_argument("--man-pages", nargs="+", default=[], metavar="DIR",
                        help="folders holding man pages (roff, plain or .gz)")
    parser.add_argument("--out", default="corpus", help="output folder (default: corpus)")
    parser.add_argument("--seed", type=int, default=20240611, help="shuffle seed")
    parser.add_argument("--heldout", type=int, default=2000, help="held-out sentences")
    parser.add_argument("--min-sentences", type=int, default=200000)
    args = parser.parse_args()
    if not args.descriptions and not args.man_pages:
        parser.error("nothing to read: give --descriptions and/or --man-pages")

    sources = [("descriptions", p) for p in sorted(args.descriptions, key=lambda p: (os.path.basename(p), p))]
    sources += [("man pages", p) for p in sorted(args.man_pages, key=os.path.normpath)]
    best = {}  # dedup key -> chosen spelling (the smallest, whatever the reading order)
    per_source = []
    total_candidates = 0
    for kind, path in sources:
        stats = {"documents": 0}
        digest = ""
        if kind == "descriptions":
            text = read_list(path)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            found = description_candidates(text, stats)
        else:
            found = man_page_candidates(path, stats)
        candidates, kept = 0, set()
        for sentence in found:
            candidates += 1
            if not acceptable(sentence):
                continue
            key = sentence.casefold()
            kept.add(key)
            if key not in best or sentence < best[key]:
                best[key] = sentence
        total_candidates += candidates
        if kind == "descriptions":
            name = os.path.basename(path)
        else:  # the package folder, e.g. manpages_6.03-2_all, whatever the checkout's path
            parts = os.path.normpath(path).split(os.sep)
            name = os.sep.join(parts[-4:]) if parts[-3:] == ["usr", "share", "man"] else parts[-1]
        per_source.append((kind, name, stats["documents"], candidates, len(kept), digest))
        print(f"make_corpus: {name}: {stats['documents']} {'descriptions' if kind == 'descriptions' else 'pages'}, "
              f"{candidates} candidate sentences, {len(kept)} distinct accepted", file=sys.stderr)

    total = len(best)
    print(f"make_corpus: {total_candidates} candidates, {total} distinct sentences after "
          f"filtering and deduplication", file=sys.stderr)
    if total < args.min_sentences:
        sys.exit(f"make_corpus: only {total} distinct sentences, fewer than the "
                 f"{args.min_sentences} required; add more sources (other components or releases)")
    order = sorted(best, key=lambda key: (split_order(key, args.seed), key))
    heldout = [best[key] for key in order[: args.heldout]]
    train = [best[key] for key in order[args.heldout :]]

    os.makedirs(args.out, exist_ok=True)
    paths = {}
    for name, lines in (("train.txt", train), ("heldout.txt", heldout)):
        paths[name] = os.path.join(args.out, name)
        tmp = paths[name] + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
        os.replace(tmp, paths[name])
    digests = {name: sha256(path) for name, path in paths.items()}
    words = sum(len(s.split(" ")) for s in best.values())

    readme = [
        "# Real-text English corpus",
        "",
        "Generated by `scripts/fetch-corpus.sh` (builder: `scripts/make_corpus.py`); do not edit.",
        "Sentences of Debian's English package descriptions (short descriptions and the",
        "complete sentences of the long descriptions) and of the English man pages that",
        "Debian ships, filtered, deduplicated case-insensitively and shuffled with a fixed",
        "seed (each sentence is placed by a seeded sha256 of its lower-cased text).",
        "`heldout.txt` is never trained or calibrated on; no sentence of it is in",
        "`train.txt`.",
        "",
        "| file | sentences | sha256 |",
        "| --- | ---: | --- |",
        f"| train.txt | {len(train)} | `{digests['train.txt']}` |",
        f"| heldout.txt | {len(heldout)} | `{digests['heldout.txt']}` |",
        "",
        f"- distinct sentences: {total} ({words} words, {words / total:.1f} per sentence)",
        f"- candidate sentences before filtering and deduplication: {total_candidates}",
        f"- seed: {args.seed}",
        f"- sentence length: {MIN_WORDS} to {MAX_WORDS} words",
        "",
        "Sources (the distinct accepted sentences of different sources overlap; the",
        "sha256 is that of the decompressed list):",
        "",
        "| kind | source | documents | candidates | distinct accepted | sha256 |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    readme += [f"| {kind} | {name} | {docs} | {cands} | {kept} | {f'`{digest}`' if digest else ''} |"
               for kind, name, docs, cands, kept, digest in per_source]
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(readme) + "\n")

    print(f"make_corpus: wrote {paths['train.txt']} ({len(train)} sentences, "
          f"sha256 {digests['train.txt']})")
    print(f"make_corpus: wrote {paths['heldout.txt']} ({len(heldout)} sentences, "
          f"sha256 {digests['heldout.txt']})")
    print(f"make_corpus: wrote {os.path.join(args.out, 'README.md')}")


if __name__ == "__main__":
    main()
