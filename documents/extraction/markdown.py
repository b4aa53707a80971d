"""Markdown: front matter dropped, then markdown-it parses the text a slice at a time (so its
tokens stay bounded in memory); headings cut sections; lists, tables, code and HTML blocks
become paragraphs; inline markup is dropped and its text kept.
"""

from __future__ import annotations

import re

from documents.extraction.common import Section, _decode, _SectionBuilder, _TextBudget
from documents.extraction.html import _html_to_text

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(---|\.\.\.)[ \t]*(\n|\Z)", re.S)
# markdown-it keeps every token of a parse in memory, several hundred bytes each, and some
# inputs make one or more tokens per byte ("a\n\n" or "- a\n" repeated, "*a* " repeated):
# a whole file at once could take gigabytes. So blocks are parsed in slices of about this
# many characters, cut at a blank line outside fenced code (or, in a block longer than that,
# before a line), and the inline markup of a long paragraph in pieces of this size cut at a
# space. Memory stays bounded whatever the file's size; only a construct spanning a cut (a
# list continued after a blank line, emphasis across a piece) reads slightly differently.
_MARKDOWN_SLICE_CHARS = 32 * 1024


def _extract_markdown(data: bytes, budget: _TextBudget) -> list[Section]:
    from markdown_it import MarkdownIt

    text = _decode(data)
    text = _FRONT_MATTER.sub("", text, count=1)
    # The commonmark preset caps nesting (blockquotes in lists in blockquotes...) at 20 levels.
    inline_parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    block_parser = MarkdownIt("commonmark").enable(["table", "strikethrough"]).disable("inline")
    reader = _MarkdownTokens(_SectionBuilder(budget), inline_parser)
    for piece in _markdown_slices(text, _MARKDOWN_SLICE_CHARS):
        budget.check()  # also the time, in a file of markup without text
        env: dict = {}  # link reference definitions of the slice, for its inline markup
        reader.read(block_parser.parse(piece, env), env)
    return reader.builder.finish()


def _markdown_slices(text: str, size: int):
    """``text`` in consecutive pieces of about ``size`` characters (see ``_MARKDOWN_SLICE_CHARS``)."""
    start = position = 0
    end_of_text = len(text)
    fence: str | None = None  # the marker of the open fenced code block
    while position < end_of_text:
        line_end = text.find("\n", position)
        line_end = end_of_text if line_end == -1 else line_end + 1
        if fence is None and line_end - start > size and position > start:
            # This block runs past the slice: cut before its next line.
            yield text[start:position]
            start = position
        line = text[position:line_end]
        fence = _fence_after(line, fence)
        position = line_end
        if fence is None and not line.strip() and position - start >= size // 2:
            yield text[start:position]
            start = position
    if start < end_of_text:
        yield text[start:]


def _fence_after(line: str, fence: str | None) -> str | None:
    """The open fence marker after ``line`` (CommonMark: ``` or ~~~, three or more, indented
    less than four spaces; closed by at least as many of the same character)."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return fence
    marker = stripped[:1]
    if marker not in ("`", "~"):
        return fence
    run = len(stripped) - len(stripped.lstrip(marker))
    if run < 3:
        return fence
    if fence is None:
        return marker * run
    if marker == fence[0] and run >= len(fence) and not stripped[run:].strip():
        return None
    return fence


class _MarkdownTokens:
    """Turns markdown-it tokens into sections: headings cut sections; lists, tables, code and
    HTML blocks become paragraphs; inline markup is dropped, its text kept."""

    def __init__(self, builder: _SectionBuilder, inline_parser) -> None:
        self.builder = builder
        self.inline_parser = inline_parser

    def read(self, tokens, env: dict) -> None:
        builder = self.builder
        list_depth = 0
        list_lines: list[str] = []
        table_rows: list[str] = []
        row: list[str] | None = None
        heading_level: int | None = None
        item_prefix = ""
        for token in tokens:
            kind = token.type
            if kind == "heading_open":
                heading_level = int(token.tag[1])
            elif kind == "heading_close":
                heading_level = None
            elif kind in ("bullet_list_open", "ordered_list_open"):
                list_depth += 1
            elif kind in ("bullet_list_close", "ordered_list_close"):
                list_depth -= 1
                if list_depth == 0:
                    builder.paragraph("\n".join(list_lines))
                    list_lines = []
            elif kind == "list_item_open":
                marker = f"{token.info}." if token.info else "-"
                item_prefix = "  " * (list_depth - 1) + marker + " "
            elif kind == "tr_open":
                row = []
            elif kind == "tr_close":
                if row and any(row):
                    table_rows.append(" | ".join(row))
                row = None
            elif kind == "table_close":
                builder.paragraph("\n".join(table_rows))
                table_rows = []
            elif kind in ("fence", "code_block"):
                _add_markdown_block(builder, list_lines, list_depth, token.content)
            elif kind == "html_block":
                _add_markdown_block(builder, list_lines, list_depth, _html_to_text(token.content, builder.budget))
            elif kind == "inline":
                content = self._inline_text(token.content, env)
                if heading_level is not None:
                    builder.heading(heading_level, content)
                elif row is not None:
                    row.append(" ".join(content.split()))
                elif list_depth:
                    list_lines.append(item_prefix + content)
                    item_prefix = "  " * list_depth  # later paragraphs of the same item
                else:
                    builder.paragraph(content)
        if list_lines:
            builder.paragraph("\n".join(list_lines))
        if table_rows:
            builder.paragraph("\n".join(table_rows))

    def _inline_text(self, content: str, env: dict) -> str:
        """The text of a block's inline markup, parsed in pieces (see ``_MARKDOWN_SLICE_CHARS``)."""
        parts = []
        chars = start = 0
        while start < len(content):
            end = start + _MARKDOWN_SLICE_CHARS
            if end < len(content):
                space = content.rfind(" ", start + 1, end)
                end = space if space > start else end
            for token in self.inline_parser.parseInline(content[start:end], env):
                parts.append(_inline_text(token))
                chars += len(parts[-1])
            self.builder.budget.check(chars)
            start = end
        return "".join(parts)


def _add_markdown_block(builder: _SectionBuilder, list_lines: list[str], list_depth: int, text: str) -> None:
    if list_depth:
        list_lines.append(text.strip())
    else:
        builder.paragraph(text)


def _inline_text(token) -> str:
    # Iterative: an image's alt text is itself inline tokens, nested as deep as the markup.
    parts = []
    stack = list(reversed(token.children or []))
    while stack:
        child = stack.pop()
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            stack.extend(reversed(child.children or []))
    return "".join(parts)
