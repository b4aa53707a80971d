"""Text out of uploaded files, keeping the structure people cite: PDF pages and heading paths.

Contract: ``extract(data, mime_type, limits=None)`` returns a non-empty list of ``Section``s in
reading order. A section is text from one PDF page, or the text under one heading path (its
heading first, then its paragraphs, separated by blank lines). Text is cleaned of control
characters (and NUL, which Postgres cannot store). Raises ``ExtractionError`` with a message a
person can act on: damaged, encrypted or text-less files, an unsupported type, or a file past
one of the ``Limits``.

Uploaded files are hostile until read. Every reader works in memory bounded by the
``Limits`` (settings ``EXTRACT_MAX_CHARS``, ``EXTRACT_MAX_PAGES``,
``EXTRACT_MAX_UNCOMPRESSED_BYTES``; docs/security.md), not by what a file claims or by how
it nests: a Word document is streamed out of its ZIP archive and parsed as events, never
held inflated nor built as a tree; HTML is read as a stream of tags with no tree; Markdown
is parsed a slice at a time; PDF page trees and streams are walked under pypdf's limits.
Time is bounded by ``EXTRACT_MAX_SECONDS`` (a PDF page can make pypdf work for over an hour).
"""

from __future__ import annotations

import io
import logging
import re
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from documents import filetypes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    headings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Limits:
    """How much one file may make the worker read (see docs/security.md, "Parser limits")."""

    max_chars: int  # characters of extracted text
    max_pages: int  # PDF pages
    max_uncompressed_bytes: int  # bytes inflated out of a Word document's archive
    max_seconds: float = 300.0  # time spent reading one file

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            max_chars=settings.EXTRACT_MAX_CHARS,
            max_pages=settings.EXTRACT_MAX_PAGES,
            max_uncompressed_bytes=settings.EXTRACT_MAX_UNCOMPRESSED_BYTES,
            max_seconds=settings.EXTRACT_MAX_SECONDS,
        )


class ExtractionError(Exception):
    """The file cannot be turned into text; ``str(exc)`` is the message to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


TOO_DEEP = "this file nests its content too deeply to be read"
OUT_OF_MEMORY = "this file needs more memory to read than the server has — split it into smaller files"


def extract(data: bytes, mime_type: str, limits: Limits | None = None) -> list[Section]:
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
    limits = limits or Limits.from_settings()
    budget = _TextBudget(limits)
    try:
        with _time_limit(limits.max_seconds):
            sections = [section for section in reader(data, budget) if section.text]
    except _TimeUp:
        log.info("extraction took longer than %s s", limits.max_seconds)
        seconds = f"{limits.max_seconds:g} second{'' if limits.max_seconds == 1 else 's'}"
        raise ExtractionError(
            f"this file took more than {seconds} to read, the most kb spends on one document — "
            "split it into smaller files"
        ) from None
    except RecursionError:
        # Every reader here walks structure with explicit stacks; this guards the libraries.
        log.info("extraction hit the recursion limit")
        raise ExtractionError(TOO_DEEP) from None
    except MemoryError:
        log.warning("extraction ran out of memory")
        raise ExtractionError(OUT_OF_MEMORY) from None
    if not sections:
        raise ExtractionError("no text found")
    return sections


class _TimeUp(BaseException):
    """Extraction ran past ``Limits.max_seconds``. A BaseException, like KeyboardInterrupt, so
    that a parser's ``except Exception`` (pypdf has several) cannot swallow it."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ``_TimeUp`` in the block once ``seconds`` have passed, even inside a long
    pure-Python loop of a parser (SIGALRM, in the main thread, as the django-q2 worker runs
    tasks). An alarm already set around the block (django-q2's task timeout uses one, so does
    pytest-timeout) keeps its deadline and its handler: it fires at its time, during the block
    or after it. Elsewhere (another thread, no SIGALRM) ``_TextBudget.check`` is the only bound,
    between paragraphs and pages."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.getsignal(signal.SIGALRM)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, 0)  # paused; 0.0: no alarm was set
    started = time.monotonic()
    ours_first = not outer or seconds < outer
    outer_fired = False

    def on_alarm(signum, frame):
        nonlocal outer_fired
        if ours_first:
            raise _TimeUp
        # The outer deadline came first: deliver the signal to its handler.
        outer_fired = True
        signal.signal(signal.SIGALRM, previous)
        signal.raise_signal(signal.SIGALRM)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds if ours_first else outer)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer and not outer_fired:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


class _TextBudget:
    """The limits of one extraction, and the characters of text taken so far."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0
        self.deadline = time.monotonic() + limits.max_seconds

    def check(self, pending: int = 0) -> None:
        """Raise once the text taken, plus ``pending`` characters not yet taken, is past the
        limit, or the time is up (see ``_time_limit``)."""
        if time.monotonic() > self.deadline:
            raise _TimeUp
        if self.used + pending > self.limits.max_chars:
            raise ExtractionError(
                f"this file holds more than {self.limits.max_chars:,} characters of text, the most kb takes "
                "from one document — split it into smaller files"
            )

    def spend(self, characters: int) -> None:
        self.used += characters
        self.check()


def _size(size: int) -> str:
    # Binary units, as Django's filesizeformat in the upload messages.
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


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
    """Collects paragraphs under the current heading path and cuts a section at each heading.

    Every character it keeps is spent from ``budget``, so no file yields more text than
    ``Limits.max_chars``; a section spends at least ``_SECTION_MIN_CHARS`` (it becomes at least
    one passage to embed and store, however short).
    """

    def __init__(self, budget: _TextBudget) -> None:
        self.budget = budget
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []  # (level, heading text)
        self._heading: str | None = None
        self._paragraphs: list[str] = []
        self._chars = 0  # of the section being collected
        # A str costs about 50 bytes besides its text: a section of millions of one-letter
        # paragraphs keeps them joined a few hundred at a time.
        self._joined: list[str] = []

    def heading(self, level: int, text: str) -> None:
        text = clean_text(text).replace("\n", " ")
        if not text:
            return
        self.budget.spend(len(text))
        self._flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._heading = text
        self._chars = len(text)

    def paragraph(self, text: str) -> None:
        text = clean_text(text)
        if text:
            self.budget.spend(len(text))
            self._chars += len(text)
            self._paragraphs.append(text)
            if len(self._paragraphs) >= 256:
                self._joined.append("\n\n".join(self._paragraphs))
                self._paragraphs = []

    def _flush(self) -> None:
        # A heading with nothing under it makes no section: its text is in its children's path.
        if self._paragraphs or self._joined:
            parts = ([self._heading] if self._heading else []) + self._joined + self._paragraphs
            headings = tuple(text for _, text in self._stack)
            self.sections.append(Section(text="\n\n".join(parts), headings=headings))
            self.budget.spend(max(0, _SECTION_MIN_CHARS - self._chars))
        self._paragraphs = []
        self._joined = []
        self._chars = 0

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections


# What a section costs at least, in characters of the text budget: each section (a page, the
# text under a heading) becomes at least one passage, however short, so a file of a million
# one-word sections would otherwise be a million passages to embed and store.
_SECTION_MIN_CHARS = 100


# -- PDF --------------------------------------------------------------------------------------

PDF_DAMAGED = "this PDF is damaged and cannot be read"
PDF_ENCRYPTED = "this PDF is encrypted — remove the password and upload it again"
PDF_TOO_COMPLEX = "this PDF holds more data than kb reads safely from one file (a stream or table past pypdf's limits)"


def _too_many_pages(count: int | None, limit: int) -> ExtractionError:
    counted = f"{count:,} pages" if count is not None else f"more than {limit:,} pages"
    return ExtractionError(
        f"this PDF has {counted}; kb reads at most {limit:,} from one document — split it into smaller files"
    )


def _extract_pdf(data: bytes, budget: _TextBudget) -> list[Section]:
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

    max_pages = budget.limits.max_pages
    # pypdf stops walking the page tree past this many entries (pages and the /Pages nodes
    # above them): a file whose /Count lies cannot make it build more page objects than that.
    with apply_configuration(page_tree_maximum_entries=2 * max_pages + 16):
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
                    raise ExtractionError(PDF_ENCRYPTED)
            declared = _declared_page_count(reader)
            if declared is not None and declared > max_pages:
                raise _too_many_pages(declared, max_pages)
            pages = reader.pages
            count = len(pages)  # walks the page tree, within the limit above
        except ExtractionError:
            raise
        except FileNotDecryptedError:
            raise ExtractionError(PDF_ENCRYPTED) from None
        except LimitReachedError as exc:
            log.info("PDF past a pypdf limit: %s", exc)
            if "page tree" in str(exc):
                raise _too_many_pages(None, max_pages) from None
            raise ExtractionError(PDF_TOO_COMPLEX) from None
        except Exception as exc:  # PdfReadError, and on broken files also ValueError, KeyError, zlib errors...
            log.info("unreadable PDF: %s: %s", type(exc).__name__, exc)
            raise ExtractionError(PDF_DAMAGED) from None
        if count > max_pages:
            raise _too_many_pages(count, max_pages)

        sections = []
        for number in range(1, count + 1):
            try:
                text = pages[number - 1].extract_text() or ""
            except FileNotDecryptedError:
                raise ExtractionError(PDF_ENCRYPTED) from None
            except LimitReachedError as exc:
                log.info("PDF page %d past a pypdf limit: %s", number, exc)
                raise ExtractionError(f"{PDF_TOO_COMPLEX} (page {number})") from None
            except Exception as exc:  # pypdf raises many kinds of errors on broken content streams
                log.info("unreadable PDF page %d: %s", number, exc)
                raise ExtractionError(f"{PDF_DAMAGED} (page {number})") from None
            budget.check(len(text))
            text = clean_text(text)
            if text:
                budget.spend(max(len(text), _SECTION_MIN_CHARS))
                sections.append(Section(text=text, page=number))
    if not sections:
        raise ExtractionError("no text found — scanned PDF?")
    return sections


def _declared_page_count(reader) -> int | None:
    """The page count the file states (``/Count`` of its page tree), read without walking it."""
    try:
        count = reader.root_object["/Pages"].get_object()["/Count"]
        return int(count)
    except Exception:  # missing or malformed: the walk decides
        return None


# -- DOCX -------------------------------------------------------------------------------------

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


# -- Markdown ---------------------------------------------------------------------------------

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


# -- HTML -------------------------------------------------------------------------------------

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


# -- plain text -------------------------------------------------------------------------------


def _extract_plain(data: bytes, budget: _TextBudget) -> list[Section]:
    # One section: chunking splits it on paragraphs (blank lines), then sentences.
    text = _decode(data)
    budget.check(len(text))  # before cleaning, which takes several copies
    text = clean_text(text)
    budget.spend(len(text))
    return [Section(text=text)]


def _decode(data: bytes) -> str:
    try:
        return filetypes.decode_text(data)
    except filetypes.UnsupportedFile as exc:
        raise ExtractionError(str(exc)) from None
