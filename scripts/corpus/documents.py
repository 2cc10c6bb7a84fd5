"""The Debian packages of prose the corpus reads besides the package
descriptions, and the documents inside each unpacked package.

PACKAGES is the one list of them: scripts/fetch-corpus.sh downloads exactly
these (`make_corpus.py --list-packages`) from one release (bookworm by
default; python3.11-doc and
postgresql-doc-15 are that release's Python and PostgreSQL manuals).
The GENERAL_KINDS (WordNet's glosses, the World English Bible) are ordinary,
non-technical English that only trains: none of it is drawn into dev.txt or
heldout.txt; its held-out units give general.txt."""

import fnmatch
import gzip
import os
import re
from dataclasses import dataclass

from . import fortunes, html_docs, man_pages, plain_text, pod, sword, wordnet


@dataclass(frozen=True)
class DocPackage:
    name: str
    kind: str       # what the README reports: man pages, manuals, ...
    fmt: str        # how its documents are read: a key of FORMATS
    include: tuple  # fnmatch patterns of the document paths inside the package
    exclude: str = r"$^"  # a regex of paths to leave out (indexes, duplicates)
    unit: str = "document"  # what the split places: each document, each
    # paragraph of a single-document book (so that it is not all in one split),
    # or each unit the format names ("named": a synset, a chapter)


OOD_KIND = "quotations"
GENERAL_KINDS = ("dictionary glosses", "scripture")
INDEXES = r"/_sources/|/_static/|/(?:genindex[^/]*|search|py-modindex|searchindex)\.html$"
PACKAGES = (
    DocPackage("manpages", "man pages", "roff", ("usr/share/man/*",)),
    DocPackage("manpages-dev", "man pages", "roff", ("usr/share/man/*",)),
    DocPackage("debian-handbook", "manuals", "html", ("usr/share/doc/debian-handbook/html/en-US/*.html",)),
    DocPackage("debian-reference-en", "manuals", "html", ("usr/share/debian-reference/*.en.html",)),
    DocPackage("debian-faq", "manuals", "html", ("usr/share/doc/debian/FAQ/*.en.html",)),
    DocPackage("developers-reference", "manuals", "html", ("usr/share/developers-reference/*.html",),
               INDEXES + r"|/developers-reference\.html$"),
    DocPackage("maint-guide", "manuals", "html", ("usr/share/doc/maint-guide/html/*.en.html",)),
    DocPackage("debian-policy", "manuals", "html", ("usr/share/doc/debian-policy/*.html",),
               INDEXES + r"|-1\.html$"),
    DocPackage("debian-history", "manuals", "html", ("usr/share/doc/debian-history/docs/*.en.html",)),
    DocPackage("gnu-standards", "manuals", "html", ("usr/share/doc/gnu-standards/*.html",)),
    DocPackage("python3.11-doc", "manuals", "html", ("usr/share/doc/python3*/html/*.html",), INDEXES),
    DocPackage("git-doc", "manuals", "html", ("usr/share/doc/git-doc/*.html",)),
    DocPackage("perl-doc", "manuals", "pod", ("usr/share/perl/*/pod/*.pod",)),
    DocPackage("installation-guide-amd64", "manuals", "html",
               ("usr/share/doc/installation-guide-amd64/en/*.html",)),
    DocPackage("postgresql-doc-15", "manuals", "html", ("usr/share/doc/postgresql-doc-15/html/*.html",)),
    DocPackage("doc-debian", "project texts", "text", ("usr/share/doc/debian/*",),
               r"\.\d+\.\d+\.txt|/(?:copyright|changelog[^/]*)$"),
    DocPackage("dict-devil", "literature", "dictd", ("usr/share/dictd/*.dict.dz",), unit="paragraph"),
    DocPackage("jargon-text", "lexicons", "jargon", ("usr/share/doc/jargon-text/jargon.txt.gz",),
               unit="paragraph"),
    DocPackage("wordnet-base", GENERAL_KINDS[0], "wordnet", ("usr/share/wordnet/data.*",), unit="named"),
    DocPackage("sword-text-web", GENERAL_KINDS[1], "ztext", ("usr/share/sword/modules/texts/ztext/*/*.bzz",),
               unit="named"),
    DocPackage("fortunes", OOD_KIND, "fortune", ("usr/share/games/fortunes/*",), r"\.(?:dat|u8)$|/off/"),
    DocPackage("fortunes-min", OOD_KIND, "fortune", ("usr/share/games/fortunes/*",), r"\.(?:dat|u8)$|/off/"),
)
BY_NAME = {p.name: p for p in PACKAGES}
# Fortune files about computers and Debian: kept out of training like every
# fortune, but not drawn into the out-of-domain set, whose register is
# literature, wisdom and humour.
TECHNICAL_FORTUNES = {"computers", "debian", "linux", "linuxcookie", "perl", "knghtbrd",
                      "ascii-art", "translate-me"}
MAN_PAGE = re.compile(r"\.[1-9][a-z]*(?:\.gz)?$")
FORMATS = {"html": html_docs.blocks, "pod": pod.blocks, "text": plain_text.blocks,
           "dictd": plain_text.dictd_blocks,
           "jargon": plain_text.jargon_blocks, "fortune": fortunes.blocks, "roff": man_pages.blocks,
           "wordnet": wordnet.glosses, "ztext": sword.chapters}
PATH_FORMATS = {"ztext"}  # read from the file's path (binary files beside it), not its text


def package_of(folder: str) -> DocPackage:
    """The package an unpacked folder holds, by its name (`NAME_VERSION_ARCH`)."""
    name = os.path.basename(os.path.normpath(folder)).split("_", 1)[0]
    if name not in BY_NAME:
        raise KeyError(f"{folder}: {name} is not one of the corpus's packages "
                       f"({', '.join(BY_NAME)})")
    return BY_NAME[name]


def document_paths(folder: str, package: DocPackage) -> list:
    """The documents of an unpacked package: its matching regular files
    (links skipped), relative paths, sorted."""
    found = []
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if os.path.islink(path) or not any(fnmatch.fnmatch(rel, p) for p in package.include):
                continue
            if re.search(package.exclude, "/" + rel):
                continue
            if package.fmt == "roff" and not MAN_PAGE.search(f):
                continue
            found.append(rel)
    return sorted(found)


def read_text(path: str) -> str:
    opener = gzip.open if path.endswith((".gz", ".dz")) else open
    with opener(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def documents(folder: str):
    """Yields (document id, prose blocks) for every document of an unpacked
    package; the id (`package/path`, `package/path#N` for the Nth paragraph
    where the package's unit is the paragraph, `package/path#NAME` for the
    units a format names) decides its split."""
    package = package_of(folder)
    for rel in document_paths(folder, package):
        path = os.path.join(folder, rel)
        source = path if package.fmt in PATH_FORMATS else read_text(path)
        if package.fmt == "roff" and man_pages.is_link(source):
            continue
        if package.unit == "named":
            for name, blocks in FORMATS[package.fmt](source):
                yield f"{package.name}/{rel}#{name}", blocks
        elif package.unit == "paragraph":
            for i, block in enumerate(FORMATS[package.fmt](source)):
                yield f"{package.name}/{rel}#{i}", [block]
        else:
            yield f"{package.name}/{rel}", FORMATS[package.fmt](source)


def is_ood_candidate(document_id: str) -> bool:
    """Whether a quotation document may be drawn into the out-of-domain set."""
    return os.path.basename(document_id.split("#", 1)[0]) not in TECHNICAL_FORTUNES
