"""Sentence rules shared by every source: normalisation, sentence splitting,
the acceptance filter and the case-insensitive deduplication key."""

import re
import unicodedata

MIN_WORDS, MAX_WORDS = 4, 64

# Words whose trailing period does not end a sentence (compared lower-cased,
# without the period).
ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "cf", "al", "approx", "incl", "inc", "ltd", "co",
    "corp", "no", "nos", "vol", "fig", "figs", "eq", "ed", "eds", "dr", "mr",
    "mrs", "ms", "prof", "jr", "sr", "st", "ver", "rev", "resp", "esp", "dept",
    "univ", "min", "max", "sec", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "viz", "ca", "pp", "ch", "sect",
}
INITIALS = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]?$")  # A.D, U.S, e.g (period stripped)

LIST_MARKER = re.compile(r"^(?:[-*+o•·‣◦]|\(?[0-9]{1,2}[.)]|\(?[a-zA-Z][.)])\s+")
SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
SENTENCE_START = re.compile(r"^[\"'“‘(\[]?[A-Z0-9]")
URL_OR_MAIL = re.compile(r"://|\bwww\.|\bftp\.|\S@\S+\.[A-Za-z]{2,}|\b[a-z0-9-]+\.(?:com|org|net|io)\b", re.I)
CODE_LIKE = re.compile(r"[{}<>=$|\\`^~]|::|->|=>|;;|\b\w+_\w+\b|(?:^|\s)\.{0,2}/\w|\w/\w+/\w|\[\]")
CAPS_RUN = re.compile(r"\b[A-Z]{2,}(?:\s+[A-Z]{2,}){4,}\b")  # five shouting words in a row
WHITESPACE = re.compile(r"\s+")


def is_boundary(token: str, following: str) -> bool:
    """Whether a sentence ends after `token` (which ends with . ! or ?)."""
    if not following or not SENTENCE_START.match(following):
        return False
    core = token.rstrip("\"'”’)]")
    if core.endswith(("!", "?")):
        return True
    word = core[:-1].lstrip("\"'“‘([")
    if word.lower() in ABBREVIATIONS or INITIALS.match(word):
        return False
    return True


def sentences(block: str):
    """Splits a block of running text into sentences; the last piece may lack
    final punctuation (the caller rejects it)."""
    tokens = block.split()
    start = 0
    for i, token in enumerate(tokens):
        if SENTENCE_END.search(token) and (i + 1 == len(tokens) or is_boundary(token, tokens[i + 1])):
            yield " ".join(tokens[start : i + 1])
            start = i + 1
    if start < len(tokens):
        yield " ".join(tokens[start:])


def clean(text: str) -> str:
    """NFC, control characters to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in text)
    return WHITESPACE.sub(" ", text).strip()


def full_sentences(block: str):
    """The complete sentences of a block of prose: starting with a capital
    letter, digit, quote or bracket and ending with `.`, `!` or `?`."""
    for sentence in sentences(clean(block)):
        if SENTENCE_START.match(sentence) and SENTENCE_END.search(sentence):
            yield sentence


def acceptable(text: str) -> bool:
    """The filter every candidate passes: 4 to 64 words, mostly letters and
    ASCII, no URL, e-mail address, code-like text or run of capitals."""
    words = text.split(" ")
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    visible = text.replace(" ", "")
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.75 * len(visible):
        return False
    if sum(c.isascii() for c in visible) < 0.95 * len(visible):
        return False  # mostly another script: not English prose
    if sum(any(c.isalpha() for c in w) for w in words) < 0.8 * len(words):
        return False
    if not any(c.islower() for c in text):
        return False
    return not (URL_OR_MAIL.search(text) or CODE_LIKE.search(text) or CAPS_RUN.search(text))


def dedup_key(sentence: str) -> str:
    """Two sentences are the same when their keys are: case-insensitive, on
    text whose whitespace `clean` has already normalised."""
    return sentence.casefold()
