"""Unit tests of the corpus builders (standard library only):
`python3 -m unittest discover -s scripts -p 'test_*.py'` from the repository root."""

import unittest
from collections import defaultdict

from . import fortunes, html_docs, plain_text, pod, sections
from .descriptions import Description, candidates, running_text
from .split import split_of


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
