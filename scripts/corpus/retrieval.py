"""The retrieval set: for test packages, the short description is the query
and the long description (as running text) the document."""

from collections import Counter, defaultdict

from .descriptions import Description, running_text
from .split import seeded
from .text import clean, dedup_key

MIN_DOCUMENT_WORDS = 8


def representative(versions: Counter) -> Description:
    """A package's description: the one most of the lists carry (ties: the
    smallest text), so that the choice does not depend on the reading order."""
    return min(versions, key=lambda d: (-versions[d], d.short, d.body))


def build(descriptions_by_package: dict, trained_keys: set, seed: int, limit: int):
    """(pairs, stats): at most `limit` (query, document) pairs, one per test
    package, in seeded order. A package is skipped when its document has fewer
    than MIN_DOCUMENT_WORDS words, when its query or document is another
    package's too (case-insensitively), or when its query is a training
    sentence."""
    chosen = {}
    stats = Counter()
    for package, versions in descriptions_by_package.items():
        description = representative(versions)
        query, document = clean(description.short), running_text(description)
        stats["test packages"] += 1
        if len(document.split()) < MIN_DOCUMENT_WORDS:
            stats["document under 8 words"] += 1
            continue
        chosen[package] = (query, document)
    queries = Counter(dedup_key(q) for q, _ in chosen.values())
    documents = Counter(dedup_key(d) for _, d in chosen.values())
    kept = {}
    for package, (query, document) in chosen.items():
        if queries[dedup_key(query)] > 1 or documents[dedup_key(document)] > 1:
            stats["query or document shared with another package"] += 1
        elif dedup_key(query) in trained_keys:
            stats["query is a training sentence"] += 1
        else:
            kept[package] = (query, document)
    stats["candidates"] = len(kept)
    order = seeded(kept, seed, "retrieval")[:limit]
    return [kept[p] for p in order], stats


def by_package(descriptions, wanted) -> dict:
    """package -> Counter of its Description versions, for packages `wanted`
    accepts; `descriptions` is every (list, Description) read."""
    found = defaultdict(Counter)
    for description in descriptions:
        if wanted(description.package):
            found[description.package][description] += 1
    return found
