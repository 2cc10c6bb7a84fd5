"""Debian's English package descriptions (apt's Translation-en lists): the
short description, the prose blocks of the long one, its sentences and its
running text."""

import re
from dataclasses import dataclass

from .apt_lists import records
from .text import LIST_MARKER, clean, full_sentences


@dataclass(frozen=True)
class Description:
    package: str
    md5: str
    short: str
    body: tuple  # the long description's lines, each starting with a space


def translations(text: str):
    """Yields the Description of every record of a Translation-en list."""
    for record in records(text, {"Package", "Description-md5", "Description-en"}):
        field = record.get("Description-en")
        if field is None or "Package" not in record:
            continue
        short, _, rest = field.partition("\n")
        body = tuple(rest.split("\n")) if rest else ()
        yield Description(record["Package"], record.get("Description-md5", ""), short.strip(), body)


def blocks(body):
    """Splits a long description into blocks of prose: paragraphs and list items
    (markers removed). Continuation lines start with one space, ` .` separates
    paragraphs, lines indented further are verbatim; verbatim blocks that are
    not list items (tables, code, ASCII art) are dropped."""
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


def candidates(description: Description):
    """The candidate sentences of one description: its short description and
    the complete sentences of its long description's prose blocks."""
    short = clean(description.short)
    if short:
        yield short
    for block in blocks(description.body):
        yield from full_sentences(block)


def running_text(description: Description) -> str:
    """The long description as one line of running text: its prose blocks
    joined with spaces, whitespace normalised."""
    return clean(" ".join(blocks(description.body)))
