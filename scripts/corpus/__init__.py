"""Builders of the real-text English corpus (run by scripts/make_corpus.py).

One module per kind of source (apt lists and package descriptions, man pages,
HTML manuals, Perl's POD, plain text, fortunes, WordNet, SWORD Bible modules),
the sentence rules they all share (`text`), the seeded train / dev / test split
(`split`), the derived data sets (`retrieval`, `sections`) and the generated
README (`report`).
"""
