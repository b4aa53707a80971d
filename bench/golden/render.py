"""Render a golden document's mini-Markdown source to the file format its name asks for.

``render(document) -> (file name, bytes)``: PDF (reportlab), Word (python-docx), Markdown,
HTML or plain text, chosen by the file name's extension. The files are built at bench time from
the Python sources, never committed, and are deterministic for a given library version (the
PDF's creation date and ID are fixed), so a document uploaded twice has the same bytes.

The source grammar (``parse``): blocks separated by blank lines; a block starting with ``#`` is a
heading (the number of ``#`` is its level); a block whose lines all start with ``- `` is a bullet
list; a block whose lines all start with ``|`` is a table (its ``---`` row separates the
header); anything else is a paragraph, its lines joined with spaces.
"""

from __future__ import annotations

import html
import io
import textwrap
from dataclasses import dataclass
from pathlib import PurePath

from bench.golden.documents import GoldenDocument


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    rows: tuple[tuple[str, ...], ...]  # the first row is the header


Block = Heading | Paragraph | Bullets | Table


def parse(source: str) -> list[Block]:
    blocks: list[Block] = []
    for raw in source.strip().split("\n\n"):
        lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("#"):
            marks, _, text = lines[0].partition(" ")
            blocks.append(Heading(len(marks), text.strip()))
            if lines[1:]:
                blocks.append(Paragraph(" ".join(lines[1:])))
        elif all(line.startswith("- ") for line in lines):
            blocks.append(Bullets(tuple(line[2:].strip() for line in lines)))
        elif all(line.startswith("|") for line in lines):
            rows = [tuple(cell.strip() for cell in line.strip("|").split("|")) for line in lines]
            blocks.append(Table(tuple(row for row in rows if not all(set(cell) <= {"-"} for cell in row))))
        else:
            blocks.append(Paragraph(" ".join(lines)))
    return blocks


def plain_text(document: GoldenDocument) -> str:
    """The document's words, one block per paragraph (what a reader sees, markup removed)."""
    out = []
    for block in parse(document.source):
        if isinstance(block, Heading | Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(block.items))
        else:
            out.append("\n".join(" | ".join(row) for row in block.rows))
    return "\n\n".join(out)


def render(document: GoldenDocument) -> tuple[str, bytes]:
    """``(file name, bytes)`` of ``document`` in the format its file name's extension names."""
    extension = PurePath(document.file_name).suffix.lower()
    renderers = {".pdf": _pdf, ".docx": _docx, ".md": _markdown, ".html": _html, ".txt": _text}
    if extension not in renderers:
        raise ValueError(f"no renderer for {document.file_name}")
    return document.file_name, renderers[extension](document, parse(document.source))


def _markdown(document: GoldenDocument, blocks: list[Block]) -> bytes:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(textwrap.fill(block.text, 100))
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        else:
            header, *body = block.rows
            lines = [_pipe(header), _pipe(tuple("---" for _ in header))] + [_pipe(row) for row in body]
            out.append("\n".join(lines))
    return ("\n\n".join(out) + "\n").encode()


def _pipe(row: tuple[str, ...]) -> str:
    return "| " + " | ".join(row) + " |"


def _html(document: GoldenDocument, blocks: list[Block]) -> bytes:
    esc = html.escape
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>\n" + "\n".join(f"  <li>{esc(item)}</li>" for item in block.items) + "\n</ul>")
        else:
            header, *rows = block.rows
            head = "".join(f"<th>{esc(cell)}</th>" for cell in header)
            cells = "\n".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
            body.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{cells}\n</tbody>\n</table>")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(document.title)}</title>\n"
        "<style>body { font-family: sans-serif; max-width: 48em; margin: auto; }</style>\n"
        '</head>\n<body>\n<nav><a href="/">Home</a> · <a href="/contact">Contact</a></nav>\n<main>\n'
        + "\n".join(body)
        + "\n</main>\n<footer><p>Last updated in spring.</p></footer>\n</body>\n</html>\n"
    )
    return page.encode()


def _text(document: GoldenDocument, blocks: list[Block]) -> bytes:
    """Plain text as people write it: underlined headings, paragraphs wrapped at 78 columns."""
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{block.text}\n{('=' if block.level == 1 else '-') * len(block.text)}")
        elif isinstance(block, Paragraph):
            out.append(textwrap.fill(block.text, 78))
        elif isinstance(block, Bullets):
            out.append(
                "\n".join(
                    textwrap.fill(item, 78, initial_indent="  * ", subsequent_indent="    ") for item in block.items
                )
            )
        else:
            widths = [max(len(row[i]) for row in block.rows) for i in range(len(block.rows[0]))]
            out.append(
                "\n".join(
                    "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in block.rows
                )
            )
    return ("\n\n".join(out) + "\n").encode()


def _docx(document: GoldenDocument, blocks: list[Block]) -> bytes:
    import docx

    word = docx.Document()
    word.core_properties.title = document.title
    for block in blocks:
        if isinstance(block, Heading):
            word.add_heading(block.text, level=0 if block.level == 1 else block.level - 1)
        elif isinstance(block, Paragraph):
            word.add_paragraph(block.text)
        elif isinstance(block, Bullets):
            for item in block.items:
                word.add_paragraph(item, style="List Bullet")
        else:
            table = word.add_table(rows=len(block.rows), cols=len(block.rows[0]))
            table.style = "Table Grid"
            for row, cells in zip(table.rows, block.rows, strict=True):
                for cell, text in zip(row.cells, cells, strict=True):
                    cell.text = text
    out = io.BytesIO()
    word.save(out)
    return _fixed_zip_times(out.getvalue())


def _fixed_zip_times(data: bytes) -> bytes:
    """The same archive with every member dated 1 January 2025: python-docx stamps the time of
    saving, which would make each rendering a different file (and a new upload, not a duplicate)."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            fixed = zipfile.ZipInfo(member.filename, date_time=(2025, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(member.filename))
    return out.getvalue()


def _pdf(document: GoldenDocument, blocks: list[Block]) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import ListFlowable, ListItem, SimpleDocTemplate, Spacer
    from reportlab.platypus import Paragraph as PdfParagraph
    from reportlab.platypus import Table as PdfTable

    styles = getSampleStyleSheet()
    heading_styles = {1: styles["Title"], 2: styles["Heading2"], 3: styles["Heading3"]}
    body = ParagraphStyle("Body", parent=styles["BodyText"], fontSize=11, leading=15, spaceAfter=6)
    story = []
    for block in blocks:
        if isinstance(block, Heading):
            story.append(PdfParagraph(html.escape(block.text), heading_styles.get(block.level, styles["Heading4"])))
        elif isinstance(block, Paragraph):
            story.append(PdfParagraph(html.escape(block.text), body))
        elif isinstance(block, Bullets):
            items = [ListItem(PdfParagraph(html.escape(item), body)) for item in block.items]
            story.append(ListFlowable(items, bulletType="bullet"))
        else:
            table = PdfTable([list(row) for row in block.rows], hAlign="LEFT")
            table.setStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey), ("FONTSIZE", (0, 0), (-1, -1), 9)])
            story += [Spacer(1, 0.2 * cm), table, Spacer(1, 0.2 * cm)]
    out = io.BytesIO()
    pdf = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=document.title,
        author="kb bench",
        leftMargin=2.5 * cm,
        rightMargin=2.5 * cm,
        topMargin=2.5 * cm,
        bottomMargin=2.5 * cm,
        invariant=1,  # a fixed creation date and document ID: the same bytes every time
    )
    pdf.build(story)
    return out.getvalue()
