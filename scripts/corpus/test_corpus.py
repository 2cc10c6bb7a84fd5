"""Unit tests of the corpus builders (standard library only):
`python3 -m unittest discover -s scripts -p 'test_*.py'` from the repository root."""

import argparse
import contextlib
import io
import os
import struct
import tempfile
import unittest
import zlib
from collections import defaultdict

import make_corpus  # scripts/ is on the path (unittest's -s scripts, pytest's rootdir insertion)

from . import documents, fortunes, html_docs, plain_text, pod, sections, sword, wordnet
from .descriptions import Description, candidates, running_text
from .split import split_of
from .text import clean


class FormatTests(unittest.TestCase):
    def test_html_keeps_paragraphs_and_drops_code_and_navigation(self):
        page = ('<html><head><title>T</title></head><body><div class="sphinxsidebar"><p>Go there.</p></div>'
                '<h1>Heading</h1><p>The <code>ls</code> command lists files.</p><pre>x = 1</pre>'
                '<ul><li>First item here.</li></ul></body></html>')
        self.assertEqual(html_docs.blocks(page), ["The ls command lists files.", "First item here."])

    def test_pod_resolves_codes_and_skips_verbatim_and_commands(self):
        source = "=head1 NAME\n\nUse C<< $x->y >> and L<perlfunc/open> here E<lt>now.\n\n    code();\n\n=cut\n"
        self.assertEqual(list(pod.blocks(source)), ["Use $x->y and perlfunc here <now."])

    def test_fortune_entries_lose_their_attribution(self):
        source = "A fool and his money.\n\t\t-- Anon\n%\nSecond fortune\nspans lines.\n"
        self.assertEqual(list(fortunes.blocks(source)), ["A fool and his money.", "Second fortune spans lines."])

    def test_plain_text_paragraphs_and_emphasis(self):
        source = "_The Book_ was\nwritten.\n    Indented start.\n\n          CENTRED TITLE\n"
        self.assertEqual(list(plain_text.blocks(source)), ["The Book was written.", "Indented start."])


class GeneralEnglishTests(unittest.TestCase):
    def test_wordnet_glosses_give_definition_and_examples_per_synset(self):
        source = ("  1 This software and database is being provided to you, the LICENSEE, by  \n"
                  "00001740 03 n 01 entity 0 000 | that which exists; \"the `thing' was there\"; "
                  "\"Is it alive?\"- A. Writer  \n"
                  "00002000 00 a 01 able 0 000 | (of persons) having means; \"an able teacher  \n")
        self.assertEqual(list(wordnet.glosses(source)), [
            ("00001740", ["That which exists.", "The 'thing' was there.", "Is it alive?"]),
            ("00002000", ["(of persons) having means."]),  # the quotes do not pair up
        ])

    def test_ztext_chapters_are_running_text_without_markup(self):
        blocks = [
            '<title type="main">Genesis</title><chapter osisID="Gen.1" sID="Gen.1"/>'
            '<w lemma="strong:H7225">In</w> the beginning, <w lemma="strong:H0430">God</w>'
            '<note placement="foot">Hebrew: Elohim.</note><w>created</w> it.',
            '<div sID="p1" type="x-p"/>It was <transChange>very</transChange> good.<chapter eID="Gen.1"/>'
            '<chapter osisID="Gen.2" sID="Gen.2"/>“Rest,”<note>A note.</note> he said &amp; rested.'
            '<chapter eID="Gen.2"/>',
        ]
        verses = [(0, 0, 0), (0, 0, len(blocks[0])), (0, 0, len(blocks[0])),  # an empty, a linked entry
                  (1, 0, len(blocks[1]))]
        with tempfile.TemporaryDirectory() as folder:
            stem = os.path.join(folder, "ot")
            index, store = b"", b""
            for text in blocks:
                data = zlib.compress(text.encode("utf-8"))
                index += struct.pack("<III", len(store), len(data), len(text.encode("utf-8")))
                store += data
            for suffix, data in ((".bzs", index), (".bzz", store),
                                 (".bzv", b"".join(struct.pack("<IIH", *v) for v in verses))):
                with open(stem + suffix, "wb") as f:
                    f.write(data)
            found = [(name, [clean(t) for t in texts]) for name, texts in sword.chapters(stem + ".bzz")]
        self.assertEqual(found, [("Gen.1", ["In the beginning, God created it. It was very good."]),
                                 ("Gen.2", ["“Rest,” he said & rested."])])

    def test_general_kinds_only_train_and_leave_the_other_files_alone(self):
        pool = make_corpus.SentencePool()
        with contextlib.redirect_stderr(io.StringIO()):  # the per-source counts
            pool.add_source("manuals", "m", [("d1", "train", "A training sentence is here."),
                                             ("d2", "test", "A held out sentence is here."),
                                             ("d3", "dev", "A dev sentence is here.")])
            pool.add_source(documents.OOD_KIND, "f", [("q", "ood-eligible", "A quoted sentence is here.")])
            pool.add_source(documents.GENERAL_KINDS[0], "g", [
                ("s1", "general-train", "A GENERAL sentence is here."),
                ("s1", "general-train", "A held out SENTENCE is here."),  # test of another kind
                ("s1", "general-train", "A dev sentence is here."),  # dev of another kind
                ("s1", "general-train", "A quoted sentence is here."),  # a fortune's
                ("s2", "general-test", "A general test sentence is here."),
                ("s2", "general-test", "A training sentence is here.")])  # trained elsewhere
        splits = make_corpus.choose_splits(pool, argparse.Namespace(heldout=1, seed=1, min_sentences=0))
        self.assertEqual(sorted(splits["train.txt"]),
                         ["A GENERAL sentence is here.", "A training sentence is here."])
        self.assertEqual(splits["general.txt"], ["A general test sentence is here."])
        self.assertEqual((splits["dev.txt"], splits["heldout.txt"], splits["ood.txt"]),
                         (["A dev sentence is here."], ["A held out sentence is here."],
                          ["A quoted sentence is here."]))  # the other kinds' spelling


class DescriptionTests(unittest.TestCase):
    description = Description("foo", "m", "tool to do things",
                              (" Foo does things well. It is fast.", " .", "   $ foo --bar", " .",
                               "  * It handles many files at once."))

    def test_candidates_and_running_text(self):
        self.assertEqual(list(candidates(self.description)),
                         ["tool to do things", "Foo does things well.", "It is fast.",
                          "It handles many files at once."])
        self.assertEqual(running_text(self.description),
                         "Foo does things well. It is fast. It handles many files at once.")


class SplitTests(unittest.TestCase):
    def test_split_is_seeded_and_roughly_ninety_five_five(self):
        names = [f"package{i}" for i in range(4000)]
        first = [split_of(n, 7) for n in names]
        self.assertEqual(first, [split_of(n, 7) for n in names])
        self.assertNotEqual(first, [split_of(n, 8) for n in names])
        self.assertTrue(0.87 < first.count("train") / len(names) < 0.93)

    def test_sections_drop_texts_shared_across_splits(self):
        a = Description("a", "m1", "editor for text", (" An editor.",))
        labels = defaultdict(list)
        sections.add_labels(labels, "a", "contrib/editors", "m1")
        sections.add_labels(labels, "b", "editors", "m1")
        one_split, spanning = sections.build({"m1": a}, labels, lambda p: "train", 1)
        self.assertEqual(one_split["train"], [("editor for text. An editor.", "editors")])
        self.assertEqual(spanning, 0)
        _, spanning = sections.build({"m1": a}, labels, lambda p: "train" if p == "a" else "test", 1)
        self.assertEqual(spanning, 1)


if __name__ == "__main__":
    unittest.main()
