"""Word documents (DOCX): the body streamed out of its ZIP archive and parsed as libxml2
events, never inflated whole nor built as a tree; paragraphs become sections under the
heading path of their styles, lists are marked, top-level tables become rows of cells.
Bytes inflated are counted against ``Limits.max_uncompressed_bytes`` and nesting is capped.
"""

from __future__ import annotations

import io
import re
import zipfile

from documents.extraction.common import TOO_DEEP, ExtractionError, Section, _SectionBuilder, _TextBudget, log

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)
_DOCX_DAMAGED = "this Word document is damaged and cannot be read"
# The parts read, by the names every Word processor writes (and that file type detection
# requires). Nothing else in the archive is inflated: images, fonts and the rest stay packed.
_DOCX_BODY = "word/document.xml"
_DOCX_STYLES = "word/styles.xml"
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_W_VAL = f"{_W}val"
# Run content as text, as python-docx reads it (``CT_R.text``).
_RUN_TEXT = {f"{_W}tab": "\t", f"{_W}ptab": "\t", f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-"}


def _extract_docx(data: bytes, budget: _TextBudget) -> list[Section]:
    """A Word document's body, streamed: its paragraphs (headings and lists by style name)
    and top-level tables (rows of cells joined by " | "), as python-docx presents them.

    The archive's directory is checked before anything is inflated, and the bytes inflated
    are counted as they are read, so a directory that lies does not help. The XML goes
    through libxml2 as parse events (no tree is built), so memory does not grow with the
    document; nesting deeper than 256 elements is refused.
    """
    from lxml import etree

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        log.info("unreadable DOCX archive: %s", exc)
        raise ExtractionError(_DOCX_DAMAGED) from None
    if _DOCX_BODY not in names:
        raise ExtractionError(_DOCX_DAMAGED)
    parts = [name for name in (_DOCX_STYLES, _DOCX_BODY) if name in names]
    unpacked = _Unpacked(budget.limits.max_uncompressed_bytes)
    unpacked.check_declared(sum(archive.getinfo(name).file_size for name in parts))
    try:
        styles = _DocxStyles()
        if _DOCX_STYLES in names:
            _parse_xml_part(archive, _DOCX_STYLES, styles, unpacked)
        body = _DocxBody(_SectionBuilder(budget), styles)
        _parse_xml_part(archive, _DOCX_BODY, body, unpacked)
        return body.builder.finish()
    except ExtractionError:
        raise
    except etree.XMLSyntaxError as exc:
        log.info("unreadable DOCX XML: %s", exc)
        if "depth" in str(exc).lower():
            raise ExtractionError(TOO_DEEP) from None
        raise ExtractionError(_DOCX_DAMAGED) from None
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        # Bad CRC (a directory that understates a part's size ends in one), truncated or
        # corrupt data (zlib.error), unsupported compression...
        log.info("unreadable DOCX: %s: %s", type(exc).__name__, exc)
        raise ExtractionError(_DOCX_DAMAGED) from None


def _size(size: int) -> str:
    # Binary units, as Django's filesizeformat in the upload messages.
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


class _Unpacked:
    """Bytes inflated out of an archive: refused from the directory's figures before reading,
    and counted while reading."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def check_declared(self, size: int) -> None:
        if size > self.limit:
            raise self._error(f"unpacks to {_size(size)}")

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise self._error(f"unpacks to more than {_size(self.limit)}")

    def _error(self, what: str) -> ExtractionError:
        return ExtractionError(
            f"this Word document {what} of text and markup; kb unpacks at most {_size(self.limit)} "
            "from one document — split it into smaller files"
        )


_XML_FEED_BYTES = 64 * 1024
# Word nests a few dozen elements deep; libxml2 refuses 256 when it builds a tree, but not
# when it reports events, so the body's reader counts.
_XML_MAX_DEPTH = 256


def _parse_xml_part(archive: zipfile.ZipFile, name: str, target, unpacked: _Unpacked) -> None:
    """Stream the archive member ``name`` through libxml2 to the parser ``target``, counting
    the inflated bytes. No DTDs, entities or network: a "billion laughs" document has nothing
    to expand."""
    from lxml import etree

    parser = etree.XMLParser(target=target, resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)
    with archive.open(name) as stream:
        while chunk := stream.read(_XML_FEED_BYTES):
            unpacked.spend(len(chunk))
            parser.feed(chunk)
    parser.close()


class _DocxStyles:
    """Parser target for ``word/styles.xml``: paragraph style names by id."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # paragraph style id -> name
        self.default = ""  # the default paragraph style's name
        self._style: tuple[str, bool] | None = None  # (id, is default) of the open paragraph style
        self._depth = 0

    def name(self, style_id: str | None) -> str:
        # python-docx: no style, or an unknown one, means the default paragraph style.
        return self.names.get(style_id or "", self.default)

    def start(self, tag, attrib) -> None:
        self._depth += 1
        if self._depth > _XML_MAX_DEPTH:
            raise ExtractionError(TOO_DEEP)
        if tag == f"{_W}style" and attrib.get(f"{_W}type") == "paragraph":
            self._style = (attrib.get(f"{_W}styleId") or "", attrib.get(f"{_W}default") in ("1", "true", "on"))
            self.names.setdefault(self._style[0], "")
        elif tag == f"{_W}name" and self._style is not None:
            style_id, is_default = self._style
            self.names[style_id] = attrib.get(_W_VAL) or ""
            if is_default:
                self.default = self.names[style_id]

    def end(self, tag) -> None:
        self._depth -= 1
        if tag == f"{_W}style":
            self._style = None

    def data(self, text) -> None:
        pass

    def close(self) -> None:
        pass


class _DocxBody:
    """Parser target for ``word/document.xml`` (see ``_extract_docx``).

    Like python-docx: the blocks are the body's own paragraphs and tables (content controls
    and nested tables are not); a paragraph's text is that of its runs and hyperlinked runs;
    a table cell's text is its paragraphs', white space collapsed; a cell merged with the one
    above repeats that cell's text, and a cell spanning columns counts once per column
    (neighbouring repeats are then joined).
    """

    def __init__(self, builder: _SectionBuilder, styles: _DocxStyles) -> None:
        self.builder = builder
        self.styles = styles
        self.path: list[str] = []  # tags of the open elements, at most _XML_MAX_DEPTH
        self.paragraph: list[str] | None = None  # text of the paragraph being read
        self.paragraph_chars = 0
        self.paragraph_style: str | None = None
        self.paragraph_depth = 0  # index in path of the paragraph's element
        self.in_text = False  # inside a w:t of the paragraph's runs
        self.table_depth = 0  # open tables; only the outermost is read
        self.rows: list[str] = []
        self.table_chars = 0
        self.cells: list[str] = []
        self.cell: list[str] | None = None  # paragraphs of the cell being read
        self.cell_span = 1
        self.cell_merge: str | None = None
        self.column = 0
        self.above: dict[int, str] = {}  # column -> text of the last cell that began there

    # parser target interface

    def start(self, tag, attrib) -> None:
        w = _W
        parent = self.path[-1] if self.path else ""
        if len(self.path) >= _XML_MAX_DEPTH:
            raise ExtractionError(TOO_DEEP)
        self.path.append(tag)
        depth = len(self.path) - 1
        if tag == f"{w}p" and self.paragraph is None and self._paragraph_context(parent):
            self._start_paragraph()
        elif tag == f"{w}tbl":
            if self.table_depth or parent == f"{w}body":
                self.table_depth += 1
                if self.table_depth == 1:
                    self.rows = []
                    self.table_chars = 0
                    self.above = {}
        elif self.table_depth == 1 and self.paragraph is None:
            self._table_start(tag, attrib, parent)
        elif self.paragraph is not None and self._in_run_content(depth):
            if tag == f"{w}t":
                self.in_text = True
            elif tag in _RUN_TEXT:
                self._add_text(_RUN_TEXT[tag])
            elif tag == f"{w}br" and attrib.get(f"{w}type", "textWrapping") == "textWrapping":
                self._add_text("\n")
        elif (
            tag == f"{w}pStyle"
            and self.paragraph is not None
            and depth == self.paragraph_depth + 2
            and parent == f"{w}pPr"
        ):
            self.paragraph_style = attrib.get(_W_VAL)

    def end(self, tag) -> None:
        w = _W
        depth = len(self.path) - 1
        if tag == f"{w}t":
            self.in_text = False
        elif tag == f"{w}p" and self.paragraph is not None and depth == self.paragraph_depth:
            self._end_paragraph()
        elif tag == f"{w}tbl" and self.table_depth:
            self.table_depth -= 1
            if not self.table_depth:
                self._block(None, "\n".join(self.rows))
        elif self.table_depth == 1 and self.paragraph is None:
            self._table_end(tag)
        self.path.pop()

    def data(self, text: str) -> None:
        if self.in_text:
            self._add_text(text)

    def close(self) -> None:
        pass

    # paragraphs

    def _paragraph_context(self, parent: str) -> bool:
        """Whether a paragraph in ``parent`` is read: the body's own, or a top-level table cell's."""
        if not self.table_depth:
            return parent == f"{_W}body"
        return self.table_depth == 1 and parent == f"{_W}tc"

    def _start_paragraph(self) -> None:
        self.paragraph = []
        self.paragraph_chars = 0
        self.paragraph_style = None
        self.paragraph_depth = len(self.path) - 1

    def _in_run_content(self, depth: int) -> bool:
        """Whether the element at ``depth`` of the path is content of one of the current
        paragraph's runs: ``p/r/x`` or ``p/hyperlink/r/x``."""
        w = _W
        below = depth - self.paragraph_depth
        if below == 2:
            return self.path[depth - 1] == f"{w}r"
        if below == 3:
            return self.path[depth - 1] == f"{w}r" and self.path[depth - 2] == f"{w}hyperlink"
        return False

    def _add_text(self, text: str) -> None:
        self.paragraph.append(text)
        self.paragraph_chars += len(text)
        # A paragraph can be the whole document: stop at the limit before it ends.
        self.builder.budget.check(self.paragraph_chars)

    def _end_paragraph(self) -> None:
        self.builder.budget.check()  # also the time, in a document of empty paragraphs
        text = "".join(self.paragraph)
        style = self.paragraph_style
        self.paragraph = None
        self.in_text = False
        if self.table_depth == 1 and self.cell is not None:
            self.cell.append(text)
        elif not self.table_depth:
            self._block(self.styles.name(style), text)

    def _block(self, style_name: str | None, text: str) -> None:
        builder = self.builder
        if style_name is None:  # a table
            builder.paragraph(text)
            return
        level = _docx_heading_level(style_name)
        if level is not None:
            builder.heading(level, text)
        elif style_name.lower().startswith("list"):
            builder.paragraph(f"- {text}" if text.strip() else "")
        else:
            builder.paragraph(text)

    # tables

    def _table_start(self, tag: str, attrib, parent: str) -> None:
        w = _W
        if tag == f"{w}tr" and parent == f"{w}tbl":
            self.cells = []
            self.column = 0
        elif tag == f"{w}gridBefore" and parent == f"{w}trPr":
            self.column += _int_attribute(attrib)
        elif tag == f"{w}tc" and parent == f"{w}tr":
            self.cell = []
            self.cell_span = 1
            self.cell_merge = None
        elif self.cell is not None and parent == f"{w}tcPr":
            if tag == f"{w}gridSpan":
                self.cell_span = max(1, _int_attribute(attrib))
            elif tag == f"{w}vMerge":
                self.cell_merge = attrib.get(_W_VAL) or "continue"

    def _table_end(self, tag: str) -> None:
        w = _W
        if tag == f"{w}tc" and self.cell is not None:
            if self.cell_merge == "continue":
                text = self.above.get(self.column, "")
            else:
                text = " ".join("\n".join(self.cell).split())
                self.above[self.column] = text
            # python-docx repeats a cell once per column it spans, and a merged cell's text
            # in each row it spans; neighbouring repeats are joined.
            if not self.cells or self.cells[-1] != text:
                self.cells.append(text)
            self.column += self.cell_span
            self.cell = None
        elif tag == f"{w}tr":
            if any(self.cells):
                row = " | ".join(self.cells)
                self.table_chars += len(row) + 1
                self.builder.budget.check(self.table_chars)
                self.rows.append(row)
            self.cells = []


def _int_attribute(attrib) -> int:
    try:
        return max(0, int(attrib.get(_W_VAL) or 0))
    except ValueError:
        return 0


def _docx_heading_level(style_name: str) -> int | None:
    if style_name.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(style_name.strip())
    return int(match.group(1)) if match else None
