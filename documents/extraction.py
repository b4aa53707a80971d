"""Text out of uploaded files, keeping the structure people cite: PDF pages and heading paths.

Contract: ``extract(data, mime_type)`` returns a non-empty list of ``Section``s in reading order.
A section is text from one PDF page, or the text under one heading path (its heading first,
then its paragraphs, separated by blank lines). Text is cleaned of control characters (and NUL,
which Postgres cannot store). Raises ``ExtractionError`` with a message a person can act on:
damaged, encrypted or text-less files, or an unsupported type.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field

from documents import filetypes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    headings: tuple[str, ...] = field(default_factory=tuple)


class ExtractionError(Exception):
    """The file cannot be turned into text; ``str(exc)`` is the message to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def extract(data: bytes, mime_type: str) -> list[Section]:
    """The text sections of ``data`` (see the module docstring), or ``ExtractionError``."""
    readers = {
        filetypes.PDF: _extract_pdf,
        filetypes.DOCX: _extract_docx,
        filetypes.MARKDOWN: _extract_markdown,
        filetypes.HTML: _extract_html,
        filetypes.PLAIN: _extract_plain,
    }
    reader = readers.get(mime_type)
    if reader is None:
        raise ExtractionError(f"files of type {mime_type or 'unknown'} cannot be read. {filetypes.SUPPORTED_HINT}")
    sections = [section for section in reader(data) if section.text]
    if not sections:
        raise ExtractionError("no text found")
    return sections


# -- cleaning ---------------------------------------------------------------------------------

# Patterns here read uploaded text and must take time linear in it (see documents/filetypes.py).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_WHITE_SPACE_RUN = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Normalise line ends and spaces, drop control characters; keep paragraph breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = _CONTROL.sub("", text)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


class _SectionBuilder:
    """Collects paragraphs under the current heading path and cuts a section at each heading."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []  # (level, heading text)
        self._heading: str | None = None
        self._paragraphs: list[str] = []

    def heading(self, level: int, text: str) -> None:
        text = clean_text(text).replace("\n", " ")
        if not text:
            return
        self._flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._heading = text

    def paragraph(self, text: str) -> None:
        text = clean_text(text)
        if text:
            self._paragraphs.append(text)

    def _flush(self) -> None:
        # A heading with nothing under it makes no section: its text is in its children's path.
        if self._paragraphs:
            parts = ([self._heading] if self._heading else []) + self._paragraphs
            headings = tuple(text for _, text in self._stack)
            self.sections.append(Section(text="\n\n".join(parts), headings=headings))
        self._paragraphs = []

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections


# -- PDF --------------------------------------------------------------------------------------


def _extract_pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    damaged = "this PDF is damaged and cannot be read"
    encrypted = "this PDF is encrypted — remove the password and upload it again"
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password only to restrict printing;
            # those open without asking anyone for a password.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError):
                opened = 0
            if not opened:
                raise ExtractionError(encrypted)
        pages = list(reader.pages)
    except ExtractionError:
        raise
    except FileNotDecryptedError:
        raise ExtractionError(encrypted) from None
    except Exception as exc:  # PdfReadError, and on broken files also ValueError, KeyError, zlib errors...
        log.info("unreadable PDF: %s: %s", type(exc).__name__, exc)
        raise ExtractionError(damaged) from None

    sections = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except FileNotDecryptedError:
            raise ExtractionError(encrypted) from None
        except Exception as exc:  # pypdf raises many kinds of errors on broken content streams
            log.info("unreadable PDF page %d: %s", number, exc)
            raise ExtractionError(f"{damaged} (page {number})") from None
        text = clean_text(text)
        if text:
            sections.append(Section(text=text, page=number))
    if not sections:
        raise ExtractionError("no text found — scanned PDF?")
    return sections


# -- DOCX -------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)


def _extract_docx(data: bytes) -> list[Section]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception as exc:  # python-docx surfaces zip, XML and package errors alike
        log.info("unreadable DOCX: %s", exc)
        raise ExtractionError("this Word document is damaged and cannot be read") from None

    builder = _SectionBuilder()
    for block in blocks:
        if isinstance(block, Table):
            builder.paragraph(_docx_table_text(block))
            continue
        style_name = (block.style.name if block.style is not None else "") or ""
        level = _docx_heading_level(style_name)
        if level is not None:
            builder.heading(level, block.text)
        elif style_name.lower().startswith("list"):
            builder.paragraph(f"- {block.text}" if block.text.strip() else "")
        else:
            builder.paragraph(block.text)
    return builder.finish()


def _docx_heading_level(style_name: str) -> int | None:
    if style_name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(style_name.strip())
    return int(match.group(1)) if match else None


def _docx_table_text(table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # merged cells repeat their text
                cells.append(text)
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# -- Markdown ---------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(---|\.\.\.)[ \t]*(\n|\Z)", re.S)


def _extract_markdown(data: bytes) -> list[Section]:
    from markdown_it import MarkdownIt

    text = _decode(data)
    text = _FRONT_MATTER.sub("", text, count=1)
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)

    builder = _SectionBuilder()
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
            _add_markdown_block(builder, list_lines, list_depth, _html_to_text(token.content))
        elif kind == "inline":
            content = _inline_text(token)
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
    return builder.finish()


def _add_markdown_block(builder: _SectionBuilder, list_lines: list[str], list_depth: int, text: str) -> None:
    if list_depth:
        list_lines.append(text.strip())
    else:
        builder.paragraph(text)


def _inline_text(token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(_inline_text(child))
    return "".join(parts)


# -- HTML -------------------------------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "nav", "noscript", "template", "svg", "head", "iframe", "object", "canvas"}
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html", "li", "main", "ol",
    "p", "pre", "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
}  # fmt: skip
_EXIT = object()


def _extract_html(data: bytes) -> list[Section]:
    return _html_sections(_decode(data))


def _html_sections(markup: str) -> list[Section]:
    from bs4 import BeautifulSoup, NavigableString, Tag

    soup = BeautifulSoup(markup, "html.parser")
    builder = _SectionBuilder()
    buffer: list[str] = []
    pre_depth = 0

    def end_paragraph() -> None:
        builder.paragraph("".join(buffer))
        buffer.clear()

    # An explicit stack instead of recursion: deeply nested pages must not hit the recursion limit.
    stack: list = [(child, None) for child in reversed(soup.contents)]
    while stack:
        node, marker = stack.pop()
        if marker is _EXIT:
            if node.name == "pre":
                pre_depth -= 1
            end_paragraph()
            continue
        if isinstance(node, Tag):
            name = node.name.lower()
            if name in _SKIP_TAGS:
                continue
            if name in _HEADING_TAGS:
                end_paragraph()
                builder.heading(_HEADING_TAGS[name], node.get_text(" ", strip=True))
                continue
            if name == "br":
                buffer.append("\n")
                continue
            if name in ("td", "th") and buffer and "".join(buffer).strip():
                buffer.append(" | ")
            if name in _BLOCK_TAGS:
                end_paragraph()
                if name == "li":
                    buffer.append("- ")
                if name == "pre":
                    pre_depth += 1
                stack.append((node, _EXIT))
            stack.extend((child, None) for child in reversed(node.contents))
        elif type(node) is NavigableString:  # skips comments, doctypes, CDATA, processing instructions
            text = str(node)
            buffer.append(text if pre_depth else _WHITE_SPACE_RUN.sub(" ", text))
    end_paragraph()
    return builder.finish()


def _html_to_text(markup: str) -> str:
    return "\n\n".join(section.text for section in _html_sections(markup))


# -- plain text -------------------------------------------------------------------------------


def _extract_plain(data: bytes) -> list[Section]:
    # One section: chunking splits it on paragraphs (blank lines), then sentences.
    return [Section(text=clean_text(_decode(data)))]


def _decode(data: bytes) -> str:
    try:
        return filetypes.decode_text(data)
    except filetypes.UnsupportedFile as exc:
        raise ExtractionError(str(exc)) from None
