"""Fortune cookie files (fortune-mod's data): quotations, literature, jokes."""

import re

ATTRIBUTION = re.compile(r"^\s*(?:--|—|~~)\s*\S")  # "-- Mark Twain"


def blocks(source: str):
    """The text of each fortune (entries are separated by lines holding only
    `%`), its lines joined; the attribution line and what follows it are
    dropped."""
    for entry in re.split(r"\n%\n", "\n" + source + "\n"):
        lines = []
        for line in entry.split("\n"):
            if ATTRIBUTION.match(line):
                break  # the attribution and anything after it (source, date)
            if line.strip():
                lines.append(line.strip())
        if lines:
            yield " ".join(lines)
