"""Small files of every supported (and some unsupported) type, generated in memory for tests."""

from __future__ import annotations

import io
import zipfile


def make_pdf(pages: list[list[str]], *, password: str | None = None) -> bytes:
    """A PDF with one page per item of ``pages``, each a list of lines of real text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    encrypt = None
    if password is not None:
        from reportlab.lib.pdfencrypt import StandardEncryption

        encrypt = StandardEncryption(password, ownerPassword=password + "-owner", strength=128)
    pdf = canvas.Canvas(buffer, pagesize=A4, encrypt=encrypt)
    for lines in pages:
        y = 800
        for line in lines:
            pdf.drawString(60, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def make_image_only_pdf() -> bytes:
    """A PDF whose page has only drawings, like a scan: no extractable text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.rect(100, 100, 300, 400, fill=1)
    pdf.circle(300, 600, 50)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def make_docx(blocks: list[tuple[str, str]]) -> bytes:
    """A Word document from (kind, text) pairs: kind is "h1".."h3", "title", "p" or "bullet"."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, level=0)
        elif kind.startswith("h"):
            document.add_heading(text, level=int(kind[1:]))
        elif kind == "bullet":
            document.add_paragraph(text, style="List Bullet")
        elif kind == "table":
            rows = [row.split("|") for row in text.split("\n")]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value.strip()
        else:
            document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "hello from inside a zip")
        archive.writestr("data.csv", "a,b\n1,2\n")
    return buffer.getvalue()


def make_exe() -> bytes:
    """The start of a Windows program: MZ header, DOS stub, PE signature, binary padding."""
    header = bytearray(512)
    header[0:2] = b"MZ"
    header[0x3C:0x40] = (0x80).to_bytes(4, "little")
    header[0x80:0x84] = b"PE\x00\x00"
    header[0x4E : 0x4E + 39] = b"This program cannot be run in DOS mode."
    return bytes(header) + bytes(range(256)) * 4


def make_elf() -> bytes:
    """The start of a Linux program (64-bit ELF header) followed by binary bytes."""
    header = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00\x01\x00\x00\x00"
    return header + bytes(range(256)) * 4
