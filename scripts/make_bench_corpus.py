#!/usr/bin/env python3
"""Generates benches/corpus/sentences-en.txt: English-looking sentences of mixed
length (5 to 60 words) for throughput benchmarks, from a small seeded grammar.
Nothing is downloaded; the same seed always writes the same file.

Usage (from the repository root; plain Python 3):

    python3 scripts/make_bench_corpus.py [--count 1000] [--seed 7] [--out benches/corpus/sentences-en.txt]
"""

import argparse
import os
import random

PEOPLE = [
    "the engineer", "my neighbour", "the old fisherman", "a young doctor", "the committee",
    "our teacher", "the mayor", "a tired nurse", "the pilot", "her brother", "the new intern",
    "the farmer", "a local baker", "the researchers", "the tourists", "the children",
    "the night guard", "my aunt", "the coach", "a quiet student", "the journalist",
    "the shop owner", "the orchestra", "the volunteers", "the chef", "a retired judge",
]
THINGS = [
    "the report", "a letter", "the bridge", "the old map", "the budget", "a small boat",
    "the garden", "the new policy", "the recipe", "a broken clock", "the database",
    "the results", "the train schedule", "a wooden chair", "the contract", "the museum",
    "the experiment", "a long novel", "the harbour", "the software update", "the soup",
    "a red bicycle", "the survey", "the roof", "the playlist", "the market stall",
    "the telescope", "a stack of invoices", "the vaccine trial", "the festival programme",
]
PLACES = [
    "in the village", "near the station", "at the edge of the forest", "in the kitchen",
    "on the third floor", "by the river", "in a crowded café", "at the airport",
    "behind the library", "across the valley", "in the north wing", "on the night shift",
    "at the conference", "in the waiting room", "along the coast", "under the old bridge",
]
TIMES = [
    "yesterday", "last winter", "on Monday morning", "after lunch", "before dawn",
    "in 2019", "every Thursday", "during the storm", "at half past six", "in early spring",
    "over the weekend", "two weeks ago", "later that evening", "for the first time",
    "in the summer of 1987", "just before midnight",
]
VERBS_PAST = [
    "repaired", "read", "painted", "questioned", "moved", "cancelled", "measured", "sold",
    "described", "rebuilt", "checked", "forgot", "delivered", "tested", "photographed",
    "borrowed", "reviewed", "cleaned", "translated", "approved", "ignored", "studied",
]
VERBS_BASE = [
    "repair", "read", "paint", "move", "measure", "sell", "check", "deliver",
    "test", "review", "clean", "translate", "study", "describe", "update",
]
VERBS_PRESENT = [v[:-1] + "ies" if v.endswith("y") else v + "s" for v in VERBS_BASE]
ADJECTIVES = [
    "careful", "unexpected", "quiet", "expensive", "remarkable", "dusty", "modern",
    "fragile", "crowded", "confusing", "brilliant", "ordinary", "strange", "generous",
    "slow", "bright", "noisy", "complicated", "gentle", "cheap",
]
ADVERBS = [
    "slowly", "carefully", "without a word", "twice", "again", "quickly", "happily",
    "reluctantly", "at once", "in silence", "with great care", "almost by accident",
]
CONNECTIVES = [
    "and", "but", "so", "while", "because", "although", "until", "even though",
    "and then", "yet",
]
OPINIONS = [
    "It seemed", "Everyone agreed it was", "Nobody thought it was", "Frankly, it was",
    "The review called it", "By all accounts it was", "She said it was",
]
QUESTION_STARTS = ["Why", "When", "How", "Where", "How often"]
PLURAL_PEOPLE = {"the researchers", "the tourists", "the children", "the volunteers"}
AMOUNTS = [
    "which cost about {n} euros", "which took roughly {n} minutes", "a trip of {n} kilometres",
    "with {n} boxes still unopened", "after reading {n} pages", "while {n} people watched",
    "about {n} litres in all", "up by {n} percent on the year",
]


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return str(rng.randint(2, 99))
    if kind < 0.7:
        return f"{rng.randint(100, 9999):,}"
    if kind < 0.9:
        return f"{rng.randint(1, 99)}.{rng.randint(0, 99):02d}"
    return str(rng.randint(1900, 2030))


def noun_phrase(rng: random.Random, pool: list) -> str:
    phrase = rng.choice(pool)
    if rng.random() < 0.3 and len(phrase.split()) == 2:
        article, rest = phrase.split(" ", 1)
        if article in ("a", "an"):
            adjective = rng.choice(ADJECTIVES)
            article = "an" if adjective[0] in "aeiou" else "a"
            phrase = f"{article} {adjective} {rest}"
        else:
            phrase = f"{article} {rng.choice(ADJECTIVES)} {rest}"
    return phrase


def clause(rng: random.Random) -> str:
    """One subject-verb-object clause with optional adverbials."""
    subject = noun_phrase(rng, PEOPLE)
    parts = [subject]
    if rng.random() < 0.75:
        parts.append(rng.choice(VERBS_PAST))
    elif subject in PLURAL_PEOPLE or subject.split()[-1].endswith("s"):
        parts.append(rng.choice(VERBS_BASE))
    else:
        parts.append(rng.choice(VERBS_PRESENT))
    parts.append(noun_phrase(rng, THINGS))
    if rng.random() < 0.35:
        parts.append(rng.choice(ADVERBS))
    if rng.random() < 0.5:
        parts.append(rng.choice(PLACES))
    if rng.random() < 0.4:
        parts.append(rng.choice(TIMES))
    return " ".join(parts)


def extra_detail(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        return rng.choice(AMOUNTS).format(n=number(rng))
    if kind < 0.65:
        return f"and {rng.choice(TIMES)} {clause(rng)}"
    return f"as {clause(rng)}"


def sentence(rng: random.Random, target_words: int) -> str:
    style = rng.random()
    if style < 0.1:
        body = (
            f"{rng.choice(QUESTION_STARTS)} did {noun_phrase(rng, PEOPLE)} "
            f"{rng.choice(VERBS_BASE)} {noun_phrase(rng, THINGS)} {rng.choice(PLACES)}"
        )
        return cap(body) + "?"
    if style < 0.18:
        return f"{rng.choice(OPINIONS)} {rng.choice(ADJECTIVES)}, {rng.choice(ADVERBS)}."
    if style < 0.25:
        return f'"{cap(clause(rng))}," said {noun_phrase(rng, PEOPLE)}.'
    text = clause(rng)
    attempts = 0
    while len(text.split()) < target_words and attempts < 20:
        attempts += 1
        if rng.random() < 0.6:
            longer = f"{text} {rng.choice(CONNECTIVES)} {clause(rng)}"
        else:
            longer = f"{text}, {extra_detail(rng)}"
        if len(longer.split()) <= 60:
            text = longer
    return cap(text) + ("!" if rng.random() < 0.05 else ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="benches/corpus/sentences-en.txt")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    lines, seen = [], set()
    while len(lines) < args.count:
        # Mostly short and medium sentences, some long ones, as in real text.
        bucket = rng.random()
        if bucket < 0.45:
            target = rng.randint(5, 14)
        elif bucket < 0.85:
            target = rng.randint(15, 30)
        else:
            target = rng.randint(31, 60)
        text = sentence(rng, target)
        if len(text.split()) >= 5 and text not in seen:
            seen.add(text)
            lines.append(text)

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    counts = [len(line.split()) for line in lines]
    print(f"wrote {args.out}: {len(lines)} sentences, {min(counts)}-{max(counts)} words, "
          f"mean {sum(counts) / len(counts):.1f}")


if __name__ == "__main__":
    main()
