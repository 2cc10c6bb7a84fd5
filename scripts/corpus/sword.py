"""SWORD Bible modules in the zText format (the World English Bible of
sword-text-web): the compressed verse store of each testament, and the OSIS
markup of its verses read as running text, a chapter at a time."""

import html
import re
import struct
import zlib

BLOCK = struct.Struct("<III")  # .bzs: offset in .bzz, compressed size, uncompressed size
VERSE = struct.Struct("<IIH")  # .bzv: block number, offset in the uncompressed block, size

CHAPTER = re.compile(r'<chapter\b[^>]*?\b(sID|eID)="([^"]*)"[^>]*>')
# Not running text: footnotes and cross-references, headings, speaker labels.
DROPPED = re.compile(r"<(note|title|speaker)\b[^>]*(?<!/)>.*?</\1\s*>", re.S)
# Word-level markup (words with their Strong's numbers, quotations, names,
# added words) vanishes; every other tag (lines, paragraphs, milestones)
# separates words.
INLINE = re.compile(r"</?(?:w|q|seg|name|transChange|divineName|foreign|hi|rdg|reference)\b[^>]*>")
TAG = re.compile(r"<[^>]*(?:>|$)")  # a tag cut off at the end too
GAP = "\0"  # where dropped text was: a space before a word, nothing before punctuation


def verses(path: str):
    """The markup of each verse entry of one testament in versification
    order (book and chapter headings included), given the path of its `.bzz`
    file (the blocks, zlib-compressed) with its `.bzs` (block index) and
    `.bzv` (verse index) beside it; empty entries and entries that repeat
    the previous one (linked verses) are skipped."""
    stem = path[: -len(".bzz")]
    with open(stem + ".bzs", "rb") as f:
        index = f.read()
    with open(stem + ".bzv", "rb") as f:
        entries = f.read()
    with open(path, "rb") as f:
        store = f.read()
    blocks, previous = {}, None
    for block, start, size in VERSE.iter_unpack(entries[: len(entries) - len(entries) % VERSE.size]):
        if size == 0 or (block, start, size) == previous:
            continue
        previous = (block, start, size)
        if block not in blocks:
            offset, compressed, length = BLOCK.unpack_from(index, block * BLOCK.size)
            blocks[block] = zlib.decompress(store[offset : offset + compressed])
            if len(blocks[block]) != length:
                raise ValueError(f"{path}: block {block} is {len(blocks[block])} bytes, not {length}")
        yield blocks[block][start : start + size].decode("utf-8", errors="replace")


def osis_text(markup: str) -> str:
    """The words of OSIS markup: notes, headings and speaker labels dropped,
    word-level tags and their attributes (Strong's numbers) removed, other
    tags as spaces, entities decoded."""
    text = DROPPED.sub(GAP, markup)
    text = TAG.sub(" ", INLINE.sub("", text))
    text = re.sub(GAP + r"+(?=[\w“‘(])", " ", text).replace(GAP, "")
    return html.unescape(text)


def chapters(path: str):
    """Yields (chapter id such as `Gen.1`, [its text]) for every chapter of
    a testament's zText files (see `verses`): the verses between the
    chapter's start and end milestones as running text; what lies outside
    chapters (prefaces, book titles, introductions) is left out."""
    stream = " ".join(verses(path))
    marks = list(CHAPTER.finditer(stream))
    for mark, following in zip(marks, marks[1:] + [None]):
        if mark.group(1) == "sID":
            end = following.start() if following else len(stream)
            yield mark.group(2), [osis_text(stream[mark.end() : end])]
