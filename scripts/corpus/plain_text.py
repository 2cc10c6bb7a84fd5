"""Plain-text documents: Debian's project texts and the dictd databases of
literature, read as paragraphs separated by blank lines."""

import re

EMPHASIS = re.compile(r"(?<!\w)_([^_\n]+)_(?!\w)")  # _title_ in plain-text books
RULE = re.compile(r"^\s*[-=*_~#]{3,}\s*$")


def blocks(source: str):
    """Paragraphs of running text: blank lines or an indented first line
    begin a new one; lines indented eight spaces or more (tables, centred
    titles, verse layout) and rules are dropped; `_emphasis_` loses its
    underscores."""
    current = []
    for line in source.split("\n"):
        indent = len(line) - len(line.lstrip(" \t"))
        if not line.strip() or RULE.match(line) or indent >= 8:
            if current:
                yield EMPHASIS.sub(r"\1", " ".join(current))
            current = []
            continue
        if indent >= 2 and current:
            yield EMPHASIS.sub(r"\1", " ".join(current))
            current = []
        current.append(line.strip())
    if current:
        yield EMPHASIS.sub(r"\1", " ".join(current))


def dictd_blocks(source: str):
    """A dictd database (`.dict`, the text of all entries one after another)
    read as plain text, minus its `00-database-*` header entries."""
    lines = source.split("\n")
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("00-database-") or line.startswith("00database"):
            start = i + 2
    yield from blocks("\n".join(lines[start:]))


JARGON_XREF = re.compile(r"\{([^{}]*)\}")


def jargon_blocks(source: str):
    """The Jargon File's plain-text edition: its body is indented three
    spaces and cross-references are braced (`{chrome}`); both are undone
    before reading it as plain text (the `:headword: /pronunciation/` lines
    are no sentences and fall to the filter)."""
    lines = [line[3:] if line.startswith("   ") else line for line in source.split("\n")]
    yield from blocks(JARGON_XREF.sub(r"\1", "\n".join(lines)))
