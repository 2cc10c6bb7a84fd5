"""Man pages in roff (man macros): the running text of their paragraphs."""

import re

ROFF_FONT_MACROS = {"B", "I", "BR", "RB", "BI", "IB", "IR", "RI", "SM", "SB"}
ROFF_NAMED = {"aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "em": " - ",
              "en": "-", "hy": "-", "bu": "", "ha": "^", "ti": "~", "rs": "\\", "mu": "x",
              "co": "(C)", "rg": "(R)", "tm": "(TM)", "de": " degrees", "+-": "+/-"}
ROFF_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\(..|\[[^\]]*\]|.)|"
                         r"[sS][-+]?\d+|[-e&~%|^ 0:/,c]|.)")


def roff_inline(text: str) -> str:
    """Resolves roff escapes: named characters to text, font and size changes
    and zero-width escapes removed."""
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


def is_link(source: str) -> bool:
    """A page that only includes another (`.so`)."""
    return source.lstrip().startswith(".so ")


def blocks(source: str):
    """Prose paragraphs of a man page: running text and the text of font
    macros; tables, examples, no-fill regions and the terms of `.TP` lists
    are dropped."""
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
