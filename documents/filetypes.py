"""What kind of file an upload is, decided by its bytes (the name only breaks ties among text types).

Contract:

- ``detect_mime_type(file_name, data)`` returns one of ``SUPPORTED_TYPES`` or raises
  ``UnsupportedFile`` whose message a person can act on ("photo.png is a PNG image, ...",
  "report.pdf is not a PDF (looks like plain text)").
- ``decode_text(data)`` turns text bytes into ``str``: UTF-8 (with or without BOM), UTF-16/32
  with a BOM, and legacy single-byte encodings (Latin-1/Windows-1252 first, others through
  charset-normalizer). Raises ``UnsupportedFile`` for bytes that are not text.
- ``safe_filename(name)`` is a display-safe base name: no folders, no control characters,
  at most 255 characters, never empty.
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
import zipfile
from pathlib import PurePath

import filetype
from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MARKDOWN = "text/markdown"
HTML = "text/html"
PLAIN = "text/plain"
SUPPORTED_TYPES = (PDF, DOCX, MARKDOWN, HTML, PLAIN)

SUPPORTED_HINT = "Upload a PDF, Word (.docx), Markdown, HTML or plain-text file."

_MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdown", ".mkd", ".mkdn"}
_HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
_TYPE_NAMES = {PDF: "a PDF", DOCX: "a Word document", MARKDOWN: "Markdown", HTML: "HTML", PLAIN: "plain text"}
# Formats whose bytes are readable text but whose text is markup a reader would not want.
_TEXTUAL_UNSUPPORTED = {"application/rtf": "an RTF document", "application/postscript": "a PostScript file"}
# Every pattern here (and in extraction and chunking) must run in time linear in its input:
# they see uploaded bytes in the web process, where a backtracking pattern stops every request
# (re holds the GIL). So no quantifier inside another, and a pattern searched at every position
# must fail fast where it cannot match (tests/documents/test_filetypes.py checks both).
# (A linear-time engine such as google-re2 would guarantee this, but would add a compiled
# dependency for a handful of small patterns that re runs linearly when written this way.)
# What may come before an HTML document's first tag: white space, then comments. These are
# skipped by a loop, not a repeated group, which backtracked exponentially over many comments.
# (No sniffing library fits: libmagic needs a system library, mimesniff is unmaintained.)
_HTML_SPACE = re.compile(r"[ \t\n\r\f\v]*")
_HTML_FIRST_TAG = re.compile(r"<(?:!doctype[ \t\n\r\f\v]+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.A)
# A heading's marker and its text on one line: the space run cannot reach past the line.
_MARKDOWN_HEADING = re.compile(r"^#{1,6}[ \t]+\S", re.M)
# Bytes enough to recognise every format we look at, without decoding whole files twice.
_SNIFF_BYTES = 64 * 1024


class UnsupportedFile(ValueError):
    """The upload is not a file we can read; ``str(exc)`` is the message to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def detect_mime_type(file_name: str, data: bytes) -> str:
    """The MIME type of ``data`` (one of ``SUPPORTED_TYPES``), or ``UnsupportedFile``."""
    name = safe_filename(file_name)
    extension = PurePath(name).suffix.lower()
    mime, description = _sniff(data, extension)
    if extension == ".pdf" and mime != PDF:
        raise UnsupportedFile(f"{name} is not a PDF (looks like {description}).")
    if extension == ".docx" and mime != DOCX:
        raise UnsupportedFile(f"{name} is not a Word document (looks like {description}).")
    if mime is None:
        raise UnsupportedFile(f"{name} is {description}, which is not supported. {SUPPORTED_HINT}")
    return mime


def describe(data: bytes) -> str:
    """A few words for what ``data`` looks like, e.g. "a PNG image" or "plain text"."""
    return _sniff(data, "")[1]


def _sniff(data: bytes, extension: str) -> tuple[str | None, str]:
    """(supported MIME type or None, what the bytes look like)."""
    if not data:
        return None, "an empty file"
    if b"%PDF-" in data[:1024]:  # the PDF header may follow a little junk
        return PDF, "a PDF"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _sniff_zip(data)
    kind = filetype.guess(data[:_SNIFF_BYTES])
    if kind is not None and kind.mime in _TEXTUAL_UNSUPPORTED:
        return None, _TEXTUAL_UNSUPPORTED[kind.mime]
    # Text first: short magic numbers also match ordinary words ("BMW ..." is a "BMP image").
    try:
        text = decode_text(data[:_SNIFF_BYTES], partial=len(data) > _SNIFF_BYTES)
    except UnsupportedFile:
        text = None
    if text is not None:
        mime = _text_type(text, extension)
        return mime, _TYPE_NAMES[mime]
    if kind is not None:
        return None, _describe_kind(kind)
    if data[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"):
        return None, "a program (Mach-O executable)"
    return None, "binary data"


def _sniff_zip(data: bytes) -> tuple[str | None, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None, "a damaged ZIP archive"
    if "word/document.xml" in names:
        return DOCX, "a Word document"
    if "xl/workbook.xml" in names:
        return None, "an Excel workbook"
    if "ppt/presentation.xml" in names:
        return None, "a PowerPoint presentation"
    if "mimetype" in names and "META-INF/container.xml" in names:
        return None, "an EPUB book"
    if "content.xml" in names and "mimetype" in names:
        return None, "an OpenDocument file"
    return None, "a ZIP archive"


def _describe_kind(kind) -> str:
    mime = kind.mime
    label = kind.extension.upper()
    if mime.startswith("image/"):
        return f"a {label} image"
    if mime.startswith("video/"):
        return f"a {label} video"
    if mime.startswith("audio/"):
        return f"a {label} audio file"
    if mime in ("application/x-msdownload", "application/x-executable", "application/wasm"):
        return "a program (executable)"
    if mime == "application/msword":
        return "an old Word (.doc) file — save it as .docx"
    if mime in ("application/vnd.ms-excel", "application/vnd.ms-powerpoint"):
        return f"an old Office (.{kind.extension}) file"
    if mime.startswith("font/") or mime.startswith("application/font"):
        return "a font"
    return f"a {label} file"


def _text_type(text: str, extension: str) -> str:
    if extension in _MARKDOWN_EXTENSIONS:
        return MARKDOWN
    if extension in _HTML_EXTENSIONS:
        return HTML
    if _starts_like_html(text):
        return HTML
    if extension in ("", ".text") and _MARKDOWN_HEADING.search(text[:20000]):
        return MARKDOWN
    return PLAIN


def _starts_like_html(text: str) -> bool:
    """Whether ``text`` opens with ``<!doctype html``, ``<html``, ``<head`` or ``<body``, after
    any white space and comments. Linear in ``len(text)``: each comment is found with one
    ``str.find`` from where the last one ended. (Callers pass at most ``_SNIFF_BYTES``.)"""
    position = _HTML_SPACE.match(text).end()
    while text.startswith("<!--", position):
        end = text.find("-->", position + 4)
        if end < 0:  # an unclosed comment: no tag follows
            return False
        position = _HTML_SPACE.match(text, end + 3).end()
    return _HTML_FIRST_TAG.match(text, position) is not None


_BOMS = (
    # UTF-32 first: its little-endian BOM begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_WESTERN = {"cp1252", "latin_1", "iso8859_15", "ascii"}
# Control characters other than tab, newline, vertical tab, form feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# How much mojibake (charset-normalizer's "mess") a Windows-1252 reading may show before the
# detector's guess is preferred.
_MAX_WESTERN_MESS = 0.5


def decode_text(data: bytes, *, partial: bool = False) -> str:
    """Decode text bytes, or raise ``UnsupportedFile`` if they are not text.

    ``partial`` says ``data`` was cut from a longer file, so a multi-byte character may be
    split at the end.
    """
    text = _decode(data, partial)
    sample = text[:_SNIFF_BYTES]
    if sample and len(_CONTROL.findall(sample)) > max(2, len(sample) // 100):
        raise UnsupportedFile("the file is binary data, not text")
    return text


def _decode(data: bytes, partial: bool) -> str:
    errors = "ignore" if partial else "strict"
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding, errors=errors)
            except UnicodeDecodeError:
                raise UnsupportedFile(f"the file starts like {encoding.upper()} text but is not valid") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of a sample is still UTF-8.
        if partial and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8")
    if b"\x00" in data:
        # NUL bytes occur in text only as UTF-16 (or UTF-32) without a BOM.
        return _decode_utf16_without_bom(data, errors)
    best = from_bytes(data).best()
    # Latin-1/Windows-1252 is by far the most common legacy encoding, and on short texts the
    # detector often mistakes it for a neighbour (cp1250, cp437), so it is tried first; a
    # detector guess wins only when it both recognises a language and reads cleaner.
    western = _decode_western(data)
    western_mess = mess_ratio(western[:_SNIFF_BYTES])
    if best is not None and best.encoding not in _WESTERN and best.coherence >= 0.3 and best.chaos < western_mess:
        return str(best)
    if western_mess <= _MAX_WESTERN_MESS:
        return western
    if best is not None:
        return str(best)
    raise UnsupportedFile("the file's text encoding is not recognised")


def _decode_utf16_without_bom(data: bytes, errors: str) -> str:
    """UTF-16 text in Latin scripts has a NUL in every other byte (the high byte of each
    character); which of the two is zero tells the byte order. Anything else is binary."""
    sample = data[: _SNIFF_BYTES - _SNIFF_BYTES % 2]
    units = len(sample) // 2
    if units:
        even_zeros = sample[0::2].count(0)
        odd_zeros = sample[1::2].count(0)
        for zeros, other, encoding in ((odd_zeros, even_zeros, "utf-16-le"), (even_zeros, odd_zeros, "utf-16-be")):
            if zeros >= units * 0.3 and other <= units * 0.02:
                try:
                    return data[: len(data) - len(data) % 2].decode(encoding, errors=errors)
                except UnicodeDecodeError:
                    break
    raise UnsupportedFile("the file is binary data, not text")


def _decode_western(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # five bytes are undefined in cp1252; Latin-1 reads everything
        return data.decode("latin-1")


_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
_FOLDER_SEPARATOR = re.compile(r"[/\\]")
_WHITE_SPACE_RUN = re.compile(r"\s+")


def safe_filename(name: str) -> str:
    """A base name safe to store and show: no folders, no control characters, never empty."""
    name = unicodedata.normalize("NFC", str(name or ""))
    name = _FOLDER_SEPARATOR.split(name)[-1].replace("\t", " ")
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    name = _UNSAFE_CHARS.sub("", name)
    name = _WHITE_SPACE_RUN.sub(" ", name).strip(" .")
    if not name:
        return "upload"
    if len(name) > 255:
        suffix = PurePath(name).suffix
        suffix = suffix if len(suffix) <= 16 else ""
        name = name[: 255 - len(suffix)].rstrip(" .") + suffix
    return name
