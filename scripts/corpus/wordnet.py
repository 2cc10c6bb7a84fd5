"""WordNet's database files (`data.noun`, `data.verb`, `data.adj`,
`data.adv`): the gloss of each synset, its definition and its quoted usage
examples, as dictionary prose."""

import re

QUOTED = re.compile(r'"([^"]*)"')
FINAL = re.compile(r"[.!?][\"'”’)\]]*$")


def as_sentence(text: str) -> str:
    """A gloss fragment in sentence form, its words unchanged: trailing
    separators dropped, the first letter capitalised (when the fragment begins
    with one), a final period added (unless it ends with . ! or ?); WordNet's
    `inner' quotes become 'inner'."""
    text = text.replace("`", "'").strip().rstrip(";:, ")
    if not text:
        return ""
    if text[0].islower():
        text = text[0].upper() + text[1:]
    return text if FINAL.search(text) else text + "."


def glosses(source: str):
    """Yields (synset offset, [definition, example, ...]) for every data line
    of a WordNet data file (`offset lex_filenum ss_type ... | gloss`; the
    license header's lines begin with two spaces). The gloss is `definition;
    "example"; "example"`: the definition is the text before the first quote,
    the examples the quoted strings (none where the quotes do not pair up);
    a definition that begins otherwise than with a letter, such as a
    `(of persons)` label, is left as it is, and so is no sentence."""
    for line in source.split("\n"):
        if not line.strip() or line.startswith("  "):
            continue
        offset, gloss = line.split(" ", 1)[0], line.partition(" | ")[2]
        if not gloss.strip():
            continue
        definition = as_sentence(gloss.split('"', 1)[0])
        examples = QUOTED.findall(gloss) if gloss.count('"') % 2 == 0 else []
        pieces = [definition] + [as_sentence(e) for e in examples]
        yield offset, [p for p in pieces if p]
