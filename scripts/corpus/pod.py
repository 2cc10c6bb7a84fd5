"""Perl's documentation in POD: the text of its ordinary paragraphs."""

import re

POD_ESCAPES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&",
               "apos": "'", "nbsp": " ", "copy": "(C)", "eacute": "é", "ntilde": "ñ"}
# A formatting code with one bracket (`C<text>`), innermost first, or with
# several and spaces inside (`C<< text >>`).
SIMPLE_CODE = re.compile(r"([A-Z])<([^<>]*)>")
DOUBLE_CODE = re.compile(r"([A-Z])<{2,}\s+(.*?)\s+>{2,}")


def _format(code: str, text: str) -> str:
    if code == "E":
        return POD_ESCAPES.get(text, chr(int(text)) if text.isdigit() else "")
    if code in ("X", "Z"):
        return ""
    if code == "L":
        text = text.split("|", 1)[0] if "|" in text else text
        return text.split("/", 1)[0].strip('"') if "/" in text and "|" not in text else text
    return text


def inline(text: str) -> str:
    """Resolves formatting codes (B, I, C, F, S, L, E, X, Z) to their text."""
    text = DOUBLE_CODE.sub(lambda m: _format(m.group(1), m.group(2)), text)
    previous = None
    while previous != text:
        previous = text
        text = SIMPLE_CODE.sub(lambda m: _format(m.group(1), m.group(2)), text)
    return text


def blocks(source: str):
    """Ordinary paragraphs of a POD document, formatting codes resolved;
    commands (`=head1`, `=item`, ...), verbatim paragraphs (indented code) and
    `=begin`/`=for` regions are dropped."""
    in_pod, skipping = source.lstrip().startswith("="), False
    for paragraph in re.split(r"\n[ \t]*\n", source):
        if not paragraph.strip():
            continue
        if paragraph.startswith("="):
            command = paragraph[1:].split(None, 1)[0] if paragraph[1:].strip() else ""
            if command == "cut":
                in_pod = False
            else:
                in_pod = True
            if command == "begin":
                skipping = True
            elif command == "end":
                skipping = False
            continue
        if not in_pod or skipping or paragraph[0] in " \t":
            continue
        yield inline(paragraph)
