"""The sections classification data: a package's English description
labelled with its Debian section, for twelve topic sections, split by source
package like the corpus."""

import re
from collections import Counter, defaultdict

from .descriptions import running_text
from .split import SPLITS, seeded
from .text import clean

SECTIONS = ("admin", "devel", "editors", "games", "graphics", "mail", "net", "science",
            "sound", "text", "video", "web")


def add_labels(labels: dict, package: str, section: str, md5: str) -> None:
    """Records that `package` carries the description `md5` in `section`
    (area prefix dropped: contrib/net is net)."""
    labels[md5].append((package, section.rsplit("/", 1)[-1]))


def example_text(description) -> str:
    """Short description, then the long one as running text."""
    short, long = clean(description.short), running_text(description)
    if not long:
        return short
    joiner = " " if re.search(r"[.!?:]$", short) else ". "
    return short + joiner + long


def build(descriptions_by_md5: dict, labels: dict, package_split, seed: int):
    """({split: [(text, section)]}, texts dropped for spanning splits): one
    example per distinct description text whose section (the majority over
    the records that carry it; ties: the first by name) is one of SECTIONS,
    in the split (`package_split(name)`) of the packages carrying it; a text
    that packages of different splits share is dropped, so that no package is
    in two splits; each split in seeded order."""
    by_text = defaultdict(list)
    for md5, carriers in labels.items():
        description = descriptions_by_md5.get(md5)
        if description is not None:
            by_text[example_text(description)] += carriers
    examples = {name: {} for name in SPLITS}
    spanning = 0
    for text, carriers in by_text.items():
        votes = Counter(section for _, section in carriers)
        section = min(votes, key=lambda s: (-votes[s], s))
        if section not in SECTIONS:
            continue
        splits = {package_split(package) for package, _ in carriers}
        if len(splits) > 1:
            spanning += 1
            continue
        examples[splits.pop()][text] = section
    ordered = {name: [(t, found[t]) for t in seeded(found, seed, "sections")]
               for name, found in examples.items()}
    return ordered, spanning


def counts(examples: dict) -> dict:
    """{section: {split: count}}."""
    table = {s: Counter() for s in SECTIONS}
    for split, rows in examples.items():
        for _, section in rows:
            table[section][split] += 1
    return table
