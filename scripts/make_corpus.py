#!/usr/bin/env python3
"""Builds the real-text English corpus from Debian: a training split, an
in-domain held-out split split off by package and document, a dev split, an
out-of-domain held-out set, a held-out set of general English, a retrieval
set and the sections classification data.

Usage (from the repository root; Python 3 standard library only; normally run
by scripts/fetch-corpus.sh):

    python3 scripts/make_corpus.py --out corpus [--seed 20240611] \\
        [--heldout 2000] [--min-sentences 300000] [--retrieval 2000] \\
        --descriptions LIST... [--packages-lists LIST...] [--docs DIR...]
    python3 scripts/make_corpus.py --list-packages

Each --descriptions LIST is one of apt's Translation-en files and each
--packages-lists LIST a binary-amd64 `Packages` file (plain or compressed);
each --docs DIR a Debian package unpacked by `dpkg-deb -x` into a folder named
`NAME_VERSION_ARCH`, NAME one of the packages `--list-packages` prints
(scripts/corpus/documents.py says what is read from each: man pages, HTML
manuals, Perl's POD, plain texts, lexicons, fortunes, WordNet's glosses, the
World English Bible).

Sentences: the short description and the complete sentences of each long
description, and the running text of the documents, split into sentences and
filtered by the rules of scripts/corpus/text.py (4 to 64 words, mostly
letters and ASCII, no URL, e-mail address or code-like text); duplicates are
removed case-insensitively.

Split: a seeded sha256 of a package's source package name (from the Packages
lists; the binary name where they do not list it) puts it in train (90%),
dev (5%) or test (5%), so that the binary packages of one source, whose
descriptions share paragraphs, fall together; documents other than
descriptions are placed the same way by their id (`package/path`; each
paragraph for the single-document dictionary and lexicon, each synset of
WordNet, each chapter of the Bible).
  - train.txt: the sentences of train packages and documents, except any
    sentence the quotations (fortunes) also hold, and except any sentence of
    the general kinds (WordNet, the Bible) that the dev and test packages and
    documents of the other kinds hold;
  - train-debian.txt: train.txt without the general kinds: Debian's own
    registers, for what should be counted or calibrated on them alone (a
    vocabulary pruned for package descriptions and manuals);
  - dev.txt, heldout.txt: --heldout sentences each, of dev and test packages
    and documents, none of them in train.txt (heldout.txt none in dev.txt);
  - ood.txt: --heldout sentences of the quotations (fortunes, not those
    about computers or Debian), a kind of text no training sentence comes
    from;
  - general.txt: --heldout sentences of the general kinds' test units, none
    of them in any other file; the general kinds only train and are never
    drawn into dev.txt or heldout.txt, which come out as without them;
  - retrieval.tsv: `query<TAB>document` for at most --retrieval test packages
    (short description, long description as running text);
  - sections/{train,dev,test}.tsv: `text<TAB>section`, one line per distinct
    description of the twelve topic sections (amd64 Packages joined to
    Translation-en by Description-md5), split by package like the sentences.
Every selection is a seeded hash order, so the same inputs give
byte-identical outputs. Also writes OUT/README.md and OUT/sections/README.md
(sources, counts, seed, sha256 of every file). Exits with status 1 if fewer
than --min-sentences distinct sentences result, if a held-out pool holds
fewer than --heldout sentences, or if a written held-out file shares a
sentence with train.txt (or general.txt one with any other file).
"""

import argparse
import hashlib
import os
import sys
from collections import defaultdict

from corpus import descriptions, documents, report, retrieval, sections
from corpus.apt_lists import binary_packages, list_name, read_list
from corpus.split import SPLITS, seeded, split_of
from corpus.text import acceptable, clean, dedup_key, full_sentences

GENERAL = "general-"  # split prefix of the general kinds' sentences


class SentencePool:
    """Every accepted sentence with its spelling, the splits and kinds it was
    found in, and per-source counts. The training-only general kinds are kept
    apart (their splits and spellings), so that they change no other file."""

    def __init__(self):
        self.best = {}  # key -> smallest spelling, whatever the reading order
        self.general_best = {}  # the same among the general kinds' sentences
        self.by_split = {split: set() for split in SPLITS}
        self.general = {split: set() for split in SPLITS}
        self.by_kind = defaultdict(set)
        self.ood, self.ood_eligible = set(), set()
        self.sources = []  # (kind, name, documents, candidates, distinct accepted, sha256)
        self.candidates = 0

    def add_source(self, kind: str, name: str, items, digest: str = ""):
        """Adds the candidates of one source: `items` yields (document,
        split, sentence); split is "ood" or "ood-eligible" for the
        out-of-domain kind, "general-" and the split for the general kinds."""
        documents_seen, candidates, kept = set(), 0, set()
        for doc, split, sentence in items:
            documents_seen.add(doc)
            candidates += 1
            if not acceptable(sentence):
                continue
            key = dedup_key(sentence)
            kept.add(key)
            general = split.startswith(GENERAL)
            best = self.general_best if general else self.best
            if key not in best or sentence < best[key]:
                best[key] = sentence
            if split.startswith("ood"):
                self.ood.add(key)
                if split == "ood-eligible":
                    self.ood_eligible.add(key)
            elif general:
                self.general[split[len(GENERAL):]].add(key)
            else:
                self.by_split[split].add(key)
        self.by_kind[kind] |= kept
        self.candidates += candidates
        self.sources.append((kind, name, len(documents_seen), candidates, len(kept), digest))
        print(f"make_corpus: {name}: {len(documents_seen)} documents, {candidates} candidate "
              f"sentences, {len(kept)} distinct accepted", file=sys.stderr)

    def spellings(self) -> dict:
        """key -> spelling of every sentence; where a general kind's sentence
        is another kind's too, the other kind's spelling."""
        return {**self.general_best, **self.best}

    def general_held_out(self) -> set:
        """What the general kinds may not train on: the quotations and the
        dev and test sentences of the other kinds."""
        return self.ood | self.by_split["dev"] | self.by_split["test"]


def description_items(texts, package_split):
    for description in texts:
        split = package_split(description.package)
        for sentence in descriptions.candidates(description):
            yield description.package, split, sentence


def document_items(folder: str, seed: int, kind: str):
    for doc_id, blocks in documents.documents(folder):
        if kind == documents.OOD_KIND:
            split = "ood-eligible" if documents.is_ood_candidate(doc_id) else "ood"
        else:
            split = split_of(doc_id, seed, "document")
            if kind in documents.GENERAL_KINDS:
                split = GENERAL + split
        for block in blocks:
            for sentence in full_sentences(block):
                yield doc_id, split, sentence


def read_binary_lists(paths) -> tuple:
    """(source package of each binary package, sections labels by
    Description-md5, records read) from the binary Packages lists; a binary
    that several sources built is placed by the first source by name."""
    source_of, labels, count = {}, defaultdict(list), 0
    for path in sorted(paths, key=lambda p: (os.path.basename(p), p)):
        for package, source, section, md5 in binary_packages(read_list(path)):
            source_of[package] = min(source, source_of.get(package, source))
            sections.add_labels(labels, package, section, md5)
            count += 1
    return source_of, labels, count


def read_sources(args, pool: SentencePool, package_split):
    """Reads every source into the pool; returns (descriptions by md5, test
    packages' description versions)."""
    by_md5, read = {}, []
    for path in sorted(args.descriptions, key=lambda p: (os.path.basename(p), p)):
        text = read_list(path)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        found = list(descriptions.translations(text))
        read += found
        for d in found:
            by_md5.setdefault(d.md5, d)
        pool.add_source("descriptions", list_name(path), description_items(found, package_split), digest)
    for folder in sorted(args.docs, key=lambda p: os.path.basename(os.path.normpath(p))):
        package = documents.package_of(folder)
        pool.add_source(package.kind, os.path.basename(os.path.normpath(folder)),
                        document_items(folder, args.seed, package.kind))
    test = retrieval.by_package(read, lambda p: package_split(p) == "test")
    return by_md5, test


def choose_splits(pool: SentencePool, args) -> dict:
    """{file name: sentences} of train, dev, heldout, ood and general; exits
    when a pool is too small. The general kinds train less what the other
    files may hold, so that those come out as without them; their test
    units' sentences that nothing trains on give general.txt."""
    train = pool.by_split["train"] - pool.ood
    test = pool.by_split["test"] - train - pool.ood
    dev = pool.by_split["dev"] - train - test - pool.ood
    ood = pool.ood_eligible - train
    general_train = pool.general["train"] - pool.general_held_out()
    general = pool.general["test"] - train - general_train - pool.general_held_out()
    chosen = {}
    for name, keys, purpose in (("dev.txt", dev, "dev"), ("heldout.txt", test, ""), ("ood.txt", ood, "ood"),
                                ("general.txt", general, "general")):
        if len(keys) < args.heldout:
            sys.exit(f"make_corpus: only {len(keys)} sentences could go into {name}, fewer than "
                     f"the {args.heldout} asked for; add sources or ask for fewer (--heldout)")
        chosen[name] = seeded(keys, args.seed, purpose)[: args.heldout]
    spellings = pool.spellings()
    if len(spellings) < args.min_sentences:
        sys.exit(f"make_corpus: only {len(spellings)} distinct sentences, fewer than the "
                 f"{args.min_sentences} required; add more sources (other components or releases)")
    chosen["train.txt"] = seeded(train | general_train, args.seed)
    chosen["train-debian.txt"] = seeded(train, args.seed)
    return {name: [spellings[k] for k in keys] for name, keys in chosen.items()}


def write_lines(path: str, lines) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def check_disjoint(out: str) -> dict:
    """Re-reads the written sentence files and fails if a held-out one shares
    a sentence (after normalisation, case-insensitively) with train.txt,
    heldout.txt with dev.txt or ood.txt, or general.txt with any other.
    Returns {file: line count}."""
    keys = {}
    for name in ("train.txt", "dev.txt", "heldout.txt", "ood.txt", "general.txt"):
        with open(os.path.join(out, name), encoding="utf-8") as f:
            keys[name] = {dedup_key(clean(line)) for line in f}
    pairs = [("train.txt", "dev.txt"), ("train.txt", "heldout.txt"), ("train.txt", "ood.txt"),
             ("dev.txt", "heldout.txt"), ("heldout.txt", "ood.txt"), ("train.txt", "general.txt"),
             ("dev.txt", "general.txt"), ("heldout.txt", "general.txt"), ("ood.txt", "general.txt")]
    for a, b in pairs:
        shared = keys[a] & keys[b]
        if shared:
            sys.exit(f"make_corpus: {len(shared)} sentences of {b} are in {a} too, "
                     f"e.g. {sorted(shared)[0]!r}")
    return {name: len(found) for name, found in keys.items()}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptions", nargs="+", default=[], metavar="LIST",
                        help="apt Translation-en lists")
    parser.add_argument("--packages-lists", nargs="+", default=[], metavar="LIST",
                        help="apt binary-amd64 Packages lists (for the sections data)")
    parser.add_argument("--docs", nargs="+", default=[], metavar="DIR",
                        help="unpacked documentation packages (NAME_VERSION_ARCH folders)")
    parser.add_argument("--out", default="corpus", help="output folder (default: corpus)")
    parser.add_argument("--seed", type=int, default=20240611, help="split and shuffle seed")
    parser.add_argument("--heldout", type=int, default=2000,
                        help="sentences of dev, heldout, ood and general")
    parser.add_argument("--retrieval", type=int, default=2000, help="most retrieval pairs")
    parser.add_argument("--min-sentences", type=int, default=300000)
    parser.add_argument("--list-packages", action="store_true",
                        help="print the documentation packages read with --docs and exit")
    args = parser.parse_args()
    if not args.list_packages and not args.descriptions:
        parser.error("nothing to read: give --descriptions (and --docs, --packages-lists)")
    return args


def main() -> None:
    args = parse_args()
    if args.list_packages:
        print("\n".join(p.name for p in documents.PACKAGES))
        return
    source_of, labels, package_records = read_binary_lists(args.packages_lists)

    def package_split(package: str) -> str:
        return split_of(source_of.get(package, package), args.seed)

    pool = SentencePool()
    by_md5, test_packages = read_sources(args, pool, package_split)
    print(f"make_corpus: {pool.candidates} candidates, {len(pool.spellings())} distinct sentences "
          f"after filtering and deduplication", file=sys.stderr)
    splits = choose_splits(pool, args)
    os.makedirs(os.path.join(args.out, "sections"), exist_ok=True)
    for name, lines in splits.items():
        write_lines(os.path.join(args.out, name), lines)
    check_disjoint(args.out)

    trained = {dedup_key(s) for s in splits["train.txt"]}
    pairs, retrieval_stats = retrieval.build(test_packages, trained, args.seed, args.retrieval)
    write_lines(os.path.join(args.out, "retrieval.tsv"), (f"{q}\t{d}" for q, d in pairs))

    examples, spanning = sections.build(by_md5, labels, package_split, args.seed)
    for split, rows in examples.items():
        write_lines(os.path.join(args.out, "sections", f"{split}.tsv"), (f"{t}\t{s}" for t, s in rows))

    report.write(args, pool, splits, trained, pairs, retrieval_stats, examples, (package_records, spanning))
    for name in list(splits) + ["retrieval.tsv"] + [f"sections/{s}.tsv" for s in SPLITS]:
        print(f"make_corpus: wrote {os.path.join(args.out, name)}")
    print(f"make_corpus: wrote {os.path.join(args.out, 'README.md')} and sections/README.md")


if __name__ == "__main__":
    main()
