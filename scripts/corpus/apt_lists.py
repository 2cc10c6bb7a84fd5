"""Reading apt's lists: decompression and the deb822 records they hold."""

import bz2
import gzip
import lzma
import os
import subprocess
import sys

APT_HELPER = "/usr/lib/apt/apt-helper"


def read_list(path: str) -> str:
    """The text of one apt list, decompressed (.gz, .xz, .lzma and .bz2 with
    the standard library; other compressions apt keeps, such as .lz4 and
    .zst, with `apt-helper cat-file`)."""
    openers = {".gz": gzip.open, ".xz": lzma.open, ".lzma": lzma.open, ".bz2": bz2.open}
    ext = os.path.splitext(path)[1]
    if ext in openers:
        with openers[ext](path, "rb") as f:
            data = f.read()
    elif ext in ("", ".txt") or path.endswith(("Translation-en", "Packages")):
        with open(path, "rb") as f:
            data = f.read()
    else:
        if not os.access(APT_HELPER, os.X_OK):
            sys.exit(f"make_corpus: {path}: needs {APT_HELPER} to decompress {ext} files")
        data = subprocess.run([APT_HELPER, "cat-file", path], check=True, capture_output=True).stdout
    return data.decode("utf-8", errors="replace")


def records(text: str, wanted: set):
    """Yields each record (paragraph) of a deb822 file as a dict of the fields
    named in `wanted`; a field's continuation lines follow its first line,
    each after a newline, as written (leading space kept)."""
    for paragraph in text.split("\n\n"):
        fields, name = {}, None
        for line in paragraph.split("\n"):
            if line.startswith((" ", "\t")):
                if name is not None:
                    fields[name] += "\n" + line
                continue
            field, sep, value = line.partition(":")
            name = field if sep and field in wanted else None
            if name is not None:
                fields[name] = value.strip()
        if fields:
            yield fields


def list_name(path: str) -> str:
    """The name a list is reported under: its file name without compression."""
    name = os.path.basename(path)
    for ext in (".gz", ".xz", ".lzma", ".bz2", ".lz4", ".zst"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def binary_packages(text: str):
    """Yields (package, source package, section, Description-md5) for every
    record of a binary `Packages` list; the source is the package itself
    where the record names none, without the version a `Source` field may
    carry."""
    for record in records(text, {"Package", "Source", "Section", "Description-md5"}):
        if {"Package", "Section", "Description-md5"} <= record.keys():
            source = record.get("Source", record["Package"]).split(" ", 1)[0]
            yield record["Package"], source, record["Section"], record["Description-md5"]
