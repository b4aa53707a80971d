"""HTML: the page read by libxml2's HTML parser as a stream of tags (no tree), in time linear
in the markup; scripts, navigation and the like are skipped, h1-h6 cut sections, block
elements end paragraphs. Also reads the HTML blocks of Markdown (``_html_to_text``).
"""

from __future__ import annotations

import re

from documents.extraction.common import TOO_DEEP, ExtractionError, Section, _decode, _SectionBuilder, _TextBudget

# Patterns here read uploaded text and must take time linear in it (see documents/filetypes.py).
_WHITE_SPACE_RUN = re.compile(r"\s+")


_SKIP_TAGS = {"script", "style", "nav", "noscript", "template", "svg", "head", "iframe", "object", "canvas"}
# Elements whose text is not page text (BeautifulSoup's string containers).
_NO_TEXT_TAGS = {"script", "style", "template", "rt", "rp"}
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html", "li", "main", "ol",
    "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
}  # fmt: skip
# What an open element does, kept one byte per element (see _HtmlText).
_PLAIN, _SKIP, _HEADING, _PRE, _BLOCK, _NO_TEXT = range(6)
_HTML_FEED_CHARS = 256 * 1024
# Pages nest a few dozen elements deep, sloppy ones (unclosed inline tags) a few hundred.
# libxml2 keeps its own stack of open elements, so deeper is refused rather than followed.
_HTML_MAX_DEPTH = 10_000


def _extract_html(data: bytes, budget: _TextBudget) -> list[Section]:
    builder = _SectionBuilder(budget)
    _read_html(_decode(data), builder)
    return builder.finish()


def _html_to_text(markup: str, budget: _TextBudget) -> str:
    """The text of an HTML fragment (a Markdown HTML block); its headings are plain paragraphs."""
    # Its own budget for the fragment's text, which the caller's builder then spends.
    builder = _SectionBuilder(_TextBudget(budget.limits))
    _read_html(markup, builder)
    return "\n\n".join(section.text for section in builder.finish())


def _read_html(markup: str, builder: _SectionBuilder) -> None:
    """Feed ``markup`` to libxml2's HTML parser, which reports tags and text to ``_HtmlText``
    as events, in time linear in the markup and without building a tree. (Python's
    html.parser, under BeautifulSoup, takes quadratic time on some malformed markup: 60 kB
    of ``<a `` took 20 s.) libxml2 closes elements as browsers do, so every start has its end."""
    from lxml import etree

    parser = etree.HTMLParser(target=_HtmlText(builder), recover=True, no_network=True)
    for start in range(0, len(markup), _HTML_FEED_CHARS):
        parser.feed(markup[start : start + _HTML_FEED_CHARS])
    parser.close()


class _HtmlText:
    """An lxml parser target: the page's text, paragraph by paragraph, into a builder.

    Skipped elements (scripts, navigation, ``head``...) contribute nothing; a heading (h1-h6)
    becomes a heading with the text of everything inside it; block elements end paragraphs;
    ``li`` starts with "- "; ``br`` is a line break; table cells are joined by " | "; white
    space is collapsed except inside ``pre``. What each open element does is kept as one byte
    on a stack, so thousands of nested elements cost kilobytes and no recursion; past
    ``_HTML_MAX_DEPTH`` the page is refused.
    """

    def __init__(self, builder: _SectionBuilder) -> None:
        from array import array

        self.builder = builder
        self.stack = array("b")
        self.skipping = 0  # open skipped elements
        self.pre = 0  # open pre elements
        self.heading_level: int | None = None
        self.heading_parts: list[str] = []
        self.heading_chars = 0
        self.buffer: list[str] = []
        self.buffer_chars = 0
        self.buffer_has_text = False
        self.pending: list[str] = []  # text not handled yet: libxml2 splits it at entities

    # parser target interface

    def start(self, tag, attrib) -> None:
        self._flush_text()
        if len(self.stack) >= _HTML_MAX_DEPTH:
            raise ExtractionError(TOO_DEEP)
        name = tag.lower() if isinstance(tag, str) else ""
        if self.skipping or self.heading_level is not None:
            self.stack.append(_NO_TEXT if name in _NO_TEXT_TAGS else _PLAIN)
            return
        if name in _SKIP_TAGS:
            self.skipping += 1
            self.stack.append(_SKIP)
        elif name in _HEADING_TAGS:
            self._end_paragraph()
            self.heading_level = _HEADING_TAGS[name]
            self.heading_parts = []
            self.heading_chars = 0
            self.stack.append(_HEADING)
        elif name == "br":
            self._append("\n")
            self.stack.append(_PLAIN)
        else:
            if name in ("td", "th") and self.buffer_has_text:
                self._append(" | ")
            if name in _BLOCK_TAGS:
                self._end_paragraph()
                if name == "li":
                    self._append("- ")
                if name == "pre":
                    self.pre += 1
                self.stack.append(_PRE if name == "pre" else _BLOCK)
            else:
                self.stack.append(_NO_TEXT if name in _NO_TEXT_TAGS else _PLAIN)

    def end(self, tag) -> None:
        self._flush_text()
        if not self.stack:
            return
        kind = self.stack.pop()
        if kind == _SKIP:
            self.skipping -= 1
        elif kind == _HEADING:
            parts, self.heading_parts = self.heading_parts, []
            self.builder.heading(self.heading_level, " ".join(parts))
            self.heading_level = None
        elif kind in (_PRE, _BLOCK):
            if kind == _PRE:
                self.pre -= 1
            self._end_paragraph()

    def data(self, text: str) -> None:
        self.pending.append(text)

    def comment(self, text) -> None:
        self._flush_text()  # a comment separates texts, as in BeautifulSoup

    def pi(self, target, data=None) -> None:
        self._flush_text()

    def doctype(self, *args) -> None:
        self._flush_text()

    def close(self) -> None:
        self._flush_text()
        while self.stack:
            self.end(None)
        self._end_paragraph()

    # text

    def _flush_text(self) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        if self.skipping or (self.stack and self.stack[-1] == _NO_TEXT):
            return
        if self.heading_level is not None:
            piece = text.strip()
            if piece:
                self.heading_parts.append(piece)
                self.heading_chars += len(piece) + 1
                self.builder.budget.check(self.heading_chars)
            return
        self._append(text if self.pre else _WHITE_SPACE_RUN.sub(" ", text))

    def _append(self, text: str) -> None:
        self.buffer.append(text)
        self.buffer_chars += len(text)
        if not self.buffer_has_text and text.strip():
            self.buffer_has_text = True
        # A paragraph can be the whole page: stop at the limit before it ends.
        self.builder.budget.check(self.buffer_chars)

    def _end_paragraph(self) -> None:
        self.builder.budget.check()  # also the time, in a page of empty paragraphs
        if self.buffer:
            self.builder.paragraph("".join(self.buffer))
        self.buffer = []
        self.buffer_chars = 0
        self.buffer_has_text = False
