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

from documents import filetypes
from documents.extraction.common import (
    OUT_OF_MEMORY,
    TOO_DEEP,
    ExtractionError,
    Limits,
    Section,
    _TextBudget,
    _time_limit,
    _TimeUp,
    clean_text,
    log,
)
from documents.extraction.docx import _extract_docx
from documents.extraction.html import _extract_html
from documents.extraction.markdown import _extract_markdown
from documents.extraction.pdf import PDF_DAMAGED, PDF_ENCRYPTED, PDF_TOO_COMPLEX, _extract_pdf
from documents.extraction.text import _extract_plain

__all__ = [
    "OUT_OF_MEMORY",
    "PDF_DAMAGED",
    "PDF_ENCRYPTED",
    "PDF_TOO_COMPLEX",
    "TOO_DEEP",
    "ExtractionError",
    "Limits",
    "Section",
    "clean_text",
    "extract",
]


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
