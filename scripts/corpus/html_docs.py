"""HTML manuals (DocBook, Sphinx, AsciiDoc output): the text of their prose
elements, read with the standard library's html.parser."""

from html.parser import HTMLParser

# Elements whose start or end begins a new block of text.
BLOCK_TAGS = {
    "p", "div", "li", "dd", "dt", "ul", "ol", "dl", "blockquote", "section", "article",
    "table", "tr", "td", "th", "caption", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr",
    "body", "header", "footer", "nav", "figure", "figcaption", "aside", "main", "form",
}
# Elements whose text is dropped with everything inside them: code listings,
# scripts, navigation, headings and page titles.
SKIPPED_TAGS = {"pre", "script", "style", "head", "title", "nav", "noscript", "svg", "math",
                "h1", "h2", "h3", "h4", "h5", "h6", "dt", "th", "button", "select", "textarea"}
# Containers dropped by class name: navigation bars, sidebars, footers.
SKIPPED_CLASSES = {"sphinxsidebar", "related", "footer", "navheader", "navfooter", "toc",
                   "breadcrumbs", "headerlink", "highlight", "literal-block", "programlisting",
                   "screen", "synopsis", "cmdsynopsis", "funcsynopsis", "mobile-nav", "sidebar"}
VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}


class _ProseParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.current, self.skip_stack = [], [], []

    def _flush(self):
        if self.current:
            self.blocks.append("".join(self.current))
            self.current = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID_TAGS:
            if tag in BLOCK_TAGS:
                self._flush()
            return
        classes = set((dict(attrs).get("class") or "").split())
        skip = tag in SKIPPED_TAGS or bool(classes & SKIPPED_CLASSES)
        if self.skip_stack or skip:
            self.skip_stack.append(tag)
        if tag in BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag):
        if self.skip_stack and tag in self.skip_stack:
            while self.skip_stack and self.skip_stack.pop() != tag:
                pass  # unclosed elements inside a skipped one end with it
        if tag in BLOCK_TAGS:
            self._flush()

    def handle_data(self, data):
        if not self.skip_stack:
            self.current.append(data)


def blocks(source: str) -> list:
    """The blocks of text of an HTML page, outside code, navigation and
    headings."""
    parser = _ProseParser()
    parser.feed(source)
    parser.close()
    parser._flush()
    return parser.blocks
