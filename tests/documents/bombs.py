"""Hostile files for the extraction limits, small on disk and cheap to build: a 2 MB Word
document whose body (a ZIP entry of repeated compressed blocks) inflates to 2 GB, a PDF of
100,000 empty pages written by hand, a PDF page that keeps pypdf busy, markup nested a
million deep.

``SCENARIOS`` maps a name to a function returning ``(data, mime type)``; ``tests/documents/
test_bombs.py`` runs each in a fresh process (``python -m tests.documents.bombs NAME LIMITS``)
to measure the peak memory extraction adds. Nothing here imports Django.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib

from documents import extraction, filetypes

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    b"</Types>"
)
RELATIONSHIPS = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Target="word/document.xml" '
    b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
    b"</Relationships>"
)
BODY_START = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{W_NS}"><w:body>'.encode()
BODY_END = b"</w:body></w:document>"


# -- ZIP / DOCX ---------------------------------------------------------------------------------


def _raw_deflate(data: bytes, *, final: bool) -> bytes:
    """``data`` as a raw deflate stream that ends byte-aligned, so streams can be concatenated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def repeated_deflate(prefix: bytes, unit: bytes, size: int, suffix: bytes) -> tuple[bytes, int, int]:
    """(raw deflate stream, its inflated size, CRC-32) of ``prefix``, ``unit`` repeated to about
    ``size`` bytes, then ``suffix``: one compressed block of 1 MiB, concatenated. A full flush
    resets the compressor, so each copy of the block stands alone. 2 GB compress to ~4 MB."""
    block = unit * max(1, (1 << 20) // len(unit))
    copies = max(1, size // len(block))
    crc = zlib.crc32(prefix)
    for _ in range(copies):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(suffix, crc)
    stream = _raw_deflate(prefix, final=False) + _raw_deflate(block, final=False) * copies
    stream += _raw_deflate(suffix, final=True)
    return stream, len(prefix) + copies * len(block) + len(suffix), crc


def zip_archive(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A ZIP of deflated ``(name, raw deflate stream, declared size, CRC-32)`` entries, with the
    sizes in its directory as given (true or not)."""
    out = io.BytesIO()
    directory = []
    for name, stream, size, crc in entries:
        encoded = name.encode()
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(stream), size, len(encoded), 0))
        out.write(encoded + stream)
        directory.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                *(0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(stream), size, len(encoded), 0, 0, 0, 0, 0, offset),
            )
            + encoded
        )
    start = out.tell()
    listing = b"".join(directory)
    out.write(listing)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(listing), start, 0))
    return out.getvalue()


def _small(name: str, data: bytes) -> tuple[str, bytes, int, int]:
    return name, _raw_deflate(data, final=True), len(data), zlib.crc32(data)


def docx_bomb(size: int, *, declared: int | None = None, paragraphs: bytes | None = None) -> bytes:
    """A Word document whose word/document.xml inflates to about ``size`` bytes: one paragraph
    of that many letters (2 GB: a 2 MB file), or ``paragraphs`` repeated (e.g. empty ones,
    ``<w:p/>``, which hold no text). Its directory states ``declared`` (default: the truth)."""
    if paragraphs is None:
        prefix, unit, suffix = BODY_START + b"<w:p><w:r><w:t>", b"a", b"</w:t></w:r></w:p>" + BODY_END
    else:
        prefix, unit, suffix = BODY_START, paragraphs, BODY_END
    stream, real, crc = repeated_deflate(prefix, unit, size, suffix)
    return zip_archive(
        [
            _small("[Content_Types].xml", CONTENT_TYPES),
            _small("_rels/.rels", RELATIONSHIPS),
            ("word/document.xml", stream, real if declared is None else declared, crc),
        ]
    )


# -- PDF ----------------------------------------------------------------------------------------


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF of ``objects`` (object n is ``objects[n - 1]``; 1 is the catalog) with its xref."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_with_pages(pages: int, *, stated_count: int | None = None, fanout: int = 1000) -> bytes:
    """A PDF of ``pages`` empty pages under a two-level page tree (``fanout`` pages per node),
    whose root states ``stated_count`` pages (default: the truth). 100,000 pages: ~6 MB."""
    nodes = (pages + fanout - 1) // fanout
    first_node, first_page = 3, 3 + nodes
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = b" ".join(b"%d 0 R" % (first_node + i) for i in range(nodes))
    count = pages if stated_count is None else stated_count
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count))
    for node in range(nodes):
        members = range(node * fanout, min(pages, (node + 1) * fanout))
        node_kids = b" ".join(b"%d 0 R" % (first_page + i) for i in members)
        node_count = len(members) if stated_count is None else 0
        objects.append(b"<< /Type /Pages /Parent 2 0 R /Kids [%s] /Count %d >>" % (node_kids, node_count))
    for page in range(pages):
        parent = first_node + page // fanout
        objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 10 10] >>" % parent)
    return _pdf(objects)


def pdf_busy_page(invocations: int = 5000, operations: int = 100_000) -> bytes:
    """A one-page PDF of 2 kB whose page draws a form ``invocations`` times, each drawing
    ``operations`` empty strings: pypdf works through every one (over an hour at its defaults) and
    finds no text."""
    form = zlib.compress(b"BT /F1 1 Tf " + b"() Tj " * operations + b"ET", 9)
    content = zlib.compress(b"/X0 Do " * invocations, 9)
    font = b"<< /Font << /F1 4 0 R >> >>"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [6 0 R] /Count 1 >>",
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources %s /Length %d /Filter /FlateDecode >>\n"
            b"stream\n%s\nendstream" % (font, len(form), form),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(content), content),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] /Contents 5 0 R "
            b"/Resources << /Font << /F1 4 0 R >> /XObject << /X0 3 0 R >> >> >>",
        ]
    )


# -- scenarios ------------------------------------------------------------------------------------


class _InflateEverything(io.RawIOBase):
    """A deflated ZIP member read to the end of its data, whatever the directory says."""

    def __init__(self, raw: io.BytesIO) -> None:
        self.raw = raw
        self.inflater = zlib.decompressobj(-15)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = size if size and size > 0 else 64 * 1024
        while True:
            if self.inflater.unconsumed_tail:
                out = self.inflater.decompress(self.inflater.unconsumed_tail, size)
            else:
                compressed = self.raw.read(16 * 1024)
                if not compressed:
                    return self.inflater.flush()
                out = self.inflater.decompress(compressed, size)
            if out or self.inflater.eof:
                return out


def _docx_reader_that_trusts_the_data_over_the_directory() -> tuple[bytes, str]:
    """A 3 MB archive whose directory says word/document.xml is 1 kB, read by a ZIP reader
    that (unlike CPython's zipfile, which stops at the stated size) inflates all 2 GB of it:
    empty paragraphs, so no limit on text can stop it first."""
    data = docx_bomb(2_000_000_000, declared=1000, paragraphs=b"<w:p/>")

    def open_everything(self, name, mode="r", pwd=None, **kwargs):
        info = self.getinfo(name)
        raw = io.BytesIO(self.fp.getvalue())
        raw.seek(info.header_offset + 30 + len(info.filename.encode()))  # past the local header
        return _InflateEverything(raw)

    zipfile.ZipFile.open = open_everything
    return data, filetypes.DOCX


SCENARIOS = {
    "docx-2gb": lambda: (docx_bomb(2_000_000_000), filetypes.DOCX),
    "docx-2gb-directory-says-1kb": lambda: (docx_bomb(2_000_000_000, declared=1000), filetypes.DOCX),
    "docx-2gb-read-past-the-directory": _docx_reader_that_trusts_the_data_over_the_directory,
    "pdf-100000-pages": lambda: (pdf_with_pages(100_000), filetypes.PDF),
    "pdf-100000-pages-stating-1": lambda: (pdf_with_pages(100_000, stated_count=1), filetypes.PDF),
    "pdf-busy-page": lambda: (pdf_busy_page(), filetypes.PDF),
    "html-a-million-deep": lambda: (b"<div>" * 1_000_000 + b"deep text" + b"</div>" * 1_000_000, filetypes.HTML),
    "html-a-million-tags": lambda: (b"<b></b>" * 1_000_000, filetypes.HTML),
    "html-quadratic-for-python": lambda: (b"<a " * 60_000, filetypes.HTML),
    "markdown-200000-paragraphs": lambda: (b"a\n\n" * 200_000, filetypes.MARKDOWN),
    "markdown-200000-sections": lambda: (b"# h\n\nb\n\n" * 200_000, filetypes.MARKDOWN),
    "markdown-nested-a-million-deep": lambda: (b"> " * 1_000_000 + b"x\n", filetypes.MARKDOWN),
    "markdown-one-line-of-200000-emphases": lambda: (b"*a* " * 200_000, filetypes.MARKDOWN),
    "text-10-mb": lambda: (b"word " * 2_000_000, filetypes.PLAIN),
}


def _memory_kb(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of this process, in kB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def main() -> None:
    """``python -m tests.documents.bombs NAME LIMITS_JSON``: build the file, extract it, print
    ``{"error", "characters", "peak_growth_mb"}`` as JSON. The growth is that of the process's
    peak resident memory (Linux's VmHWM, reset just before extracting, so neither building the
    file nor importing the parsers counts). getrusage's ru_maxrss would not do: after exec it
    starts at the parent's peak, the test runner's."""
    import lxml.etree  # noqa: F401 - imported before measuring, as in a worker
    import markdown_it  # noqa: F401
    import pypdf  # noqa: F401

    name, limits = sys.argv[1], json.loads(sys.argv[2])
    data, mime_type = SCENARIOS[name]()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # the peak starts again from what is resident now
    before = _memory_kb("VmRSS")
    error, characters = None, 0
    try:
        sections = extraction.extract(data, mime_type, extraction.Limits(**limits))
        characters = sum(len(section.text) for section in sections)
    except extraction.ExtractionError as exc:
        error = exc.message
    growth_kb = _memory_kb("VmHWM") - before
    print(json.dumps({"error": error, "characters": characters, "peak_growth_mb": round(growth_kb / 1024, 1)}))


if __name__ == "__main__":
    main()
