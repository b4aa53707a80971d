"""File types are decided by content; text in odd encodings decodes; file names are made safe."""

from __future__ import annotations

import os
import re
import re._constants as sre_constants
import re._parser as sre_parser
import subprocess
import sys
from pathlib import Path

import pytest

from documents import chunking, filetypes
from documents.extraction import common, docx, html, markdown
from documents.filetypes import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN,
    UnsupportedFile,
    decode_text,
    detect_mime_type,
    safe_filename,
)
from tests.documents.samples import make_docx, make_elf, make_exe, make_jpeg, make_pdf, make_png, make_zip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pdf_bytes() -> bytes:
    return make_pdf([["A page of text."]])


@pytest.fixture(scope="module")
def docx_bytes() -> bytes:
    return make_docx([("h1", "Heading"), ("p", "Body text.")])


def test_a_pdf_is_recognised_by_its_bytes_whatever_its_name(pdf_bytes):
    assert detect_mime_type("report.pdf", pdf_bytes) == PDF
    assert detect_mime_type("report", pdf_bytes) == PDF
    assert detect_mime_type("report.txt", pdf_bytes) == PDF


def test_a_word_document_is_recognised_by_its_bytes(docx_bytes):
    assert detect_mime_type("notes.docx", docx_bytes) == DOCX
    assert detect_mime_type("notes.zip", docx_bytes) == DOCX


def test_text_types_use_the_extension_and_the_content():
    assert detect_mime_type("guide.md", b"# Guide\n\nSome text.") == MARKDOWN
    assert detect_mime_type("README", b"# Guide\n\nSome text.") == MARKDOWN
    assert detect_mime_type("page.html", b"<p>Hello</p>") == HTML
    assert detect_mime_type("saved page", b"<!DOCTYPE html><html><body>Hi</body></html>") == HTML
    assert detect_mime_type("notes.txt", b"Just some notes.\n") == PLAIN
    assert detect_mime_type("notes.txt", b"# not a heading in a .txt file\n") == PLAIN


def test_text_that_starts_like_a_magic_number_is_still_text():
    # "BM" opens a BMP image and "ID3" an MP3; ordinary words must not be mistaken for them.
    assert detect_mime_type("cars.txt", b"BMW makes cars in Munich.") == PLAIN
    assert detect_mime_type("tags.txt", b"ID3 tags describe songs.") == PLAIN


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("photo.png", make_png, "photo.png is a PNG image, which is not supported"),
        ("photo.jpg", make_jpeg, "photo.jpg is a JPG image, which is not supported"),
        ("archive.zip", make_zip, "archive.zip is a ZIP archive, which is not supported"),
        ("setup.exe", make_exe, "setup.exe is a program (executable), which is not supported"),
        ("tool", make_elf, "tool is a program (executable), which is not supported"),
        ("noise.bin", lambda: os.urandom(4096), "noise.bin is binary data, which is not supported"),
    ],
)
def test_unsupported_files_are_refused_with_a_message_that_names_what_they_are(name, make, expected):
    with pytest.raises(UnsupportedFile) as error:
        detect_mime_type(name, make())
    assert str(error.value).startswith(expected)
    assert "Upload a PDF, Word (.docx), Markdown, HTML or plain-text file." in str(error.value)


def test_a_pdf_name_on_other_bytes_is_called_out():
    with pytest.raises(UnsupportedFile, match=r"^file\.pdf is not a PDF \(looks like plain text\)\.$"):
        detect_mime_type("file.pdf", b"This is a text file with a .pdf name.")
    with pytest.raises(UnsupportedFile, match=r"^scan\.pdf is not a PDF \(looks like a PNG image\)\.$"):
        detect_mime_type("scan.pdf", make_png())


def test_a_docx_name_on_a_plain_zip_is_called_out():
    with pytest.raises(UnsupportedFile, match=r"^notes\.docx is not a Word document \(looks like a ZIP archive\)\.$"):
        detect_mime_type("notes.docx", make_zip())


TEXT = "Café crème brûlée, déjà vu — naïve façade."


@pytest.mark.parametrize(
    "encoded",
    [
        TEXT.encode("utf-8"),
        TEXT.encode("utf-8-sig"),
        TEXT.encode("utf-16"),  # with a BOM, little-endian here
        "\ufeff".encode("utf-16-be") + TEXT.encode("utf-16-be"),
        TEXT.encode("utf-16-le"),  # no BOM
        TEXT.encode("utf-32"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-bom", "utf-16-be-bom", "utf-16-le-no-bom", "utf-32-bom"],
)
def test_unicode_text_decodes_in_every_common_form(encoded):
    assert decode_text(encoded) == TEXT
    assert detect_mime_type("notes.txt", encoded) == PLAIN


def test_latin1_and_windows_1252_text_decode():
    latin1 = "Les élèves étudient à l'école. Ça va très bien."
    assert decode_text(latin1.encode("latin-1")) == latin1
    cp1252 = "Price: 5€ – “quoted” ‘text’"
    assert decode_text(cp1252.encode("cp1252")) == cp1252


def test_other_legacy_encodings_are_detected():
    russian = "Привет, как дела? Это тестовый документ на русском языке."
    assert decode_text(russian.encode("cp1251")) == russian


def test_binary_bytes_are_not_text():
    with pytest.raises(UnsupportedFile, match="binary"):
        decode_text(make_png())
    with pytest.raises(UnsupportedFile, match="binary"):
        decode_text(b"text with \x00 NULs \x00 and \x01\x02\x03\x04 control bytes")


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\alice\\report.pdf", "report.pdf"),
        ("evil\x00name\n\r.txt", "evilname.txt"),
        ("tab\there.md", "tab here.md"),
        ("\u202egnp.exe", "gnp.exe"),  # right-to-left override hides the real extension
        ("", "upload"),
        ("...", "upload"),
        ("/", "upload"),
        ("  Quarterly  report .pdf ", "Quarterly report .pdf"),
    ],
)
def test_file_names_lose_folders_and_control_characters(raw, safe):
    assert safe_filename(raw) == safe


def test_very_long_file_names_are_shortened_keeping_the_extension():
    name = safe_filename("a" * 400 + ".pdf")
    assert len(name) == 255
    assert name.endswith(".pdf")


# -- hostile input: sniffing is linear in the bytes it reads (issue 11, finding 1) -------------

COMMENT = b"<!---->"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (COMMENT * 5000 + b"<!DOCTYPE html><html><body>Hi</body></html>", HTML),
        (b"<!-- licence -->\n" * 2000 + b"\n<html lang='en'><p>Hi</p></html>", HTML),
        (COMMENT * 5000 + b"no markup after all", PLAIN),
        (COMMENT * 20000 + b"<html>", PLAIN),  # the tag lies past the 64 KiB sniffed
        (b"<!--" * 10000 + b"-->" + b"<html>", HTML),  # "nested" comments end at the first -->
        (b"<!--" * 10000 + b"x", PLAIN),  # never closed
        (b"<!-- " + b"-" * 60000 + b"<html>", PLAIN),
        (b" \t\r\n" * 15000 + b"<body>text</body>", HTML),
        (b"<!---->" + b" " * 60000 + b"<!--x-->" + b"\n" * 1000 + b"<head>", HTML),
    ],
    ids=[
        "5000-comments-then-html",
        "licence-comments-then-html",
        "5000-comments-then-text",
        "comments-past-the-sniffed-bytes",
        "nested-comments",
        "unclosed-comments",
        "a-comment-of-dashes",
        "white-space-then-body",
        "long-white-space-between-comments",
    ],
)
def test_comments_and_white_space_before_the_first_tag_are_skipped_whatever_their_number(data, expected):
    assert detect_mime_type("saved page", data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"#" * 60000, PLAIN),
        (b"#" + b" " * 15000 + b"x", MARKDOWN),
        (b"#" + b" " * 60000, PLAIN),
        (b"#\n" * 30000, PLAIN),  # a heading's text is on its line
        (b"# \n" * 5000 + b"# Title", MARKDOWN),
        (b"####### " * 2000 + b"\n## Real heading", MARKDOWN),
    ],
    ids=["hashes", "heading-after-spaces", "spaces-to-the-end", "empty-headings", "then-a-heading", "too-many-hashes"],
)
def test_runs_of_hashes_and_spaces_are_sniffed_correctly(data, expected):
    assert detect_mime_type("notes", data) == expected


# Each takes hours (or longer) with a backtracking pattern and milliseconds in linear time; a
# subprocess, so that a regression fails this test instead of hanging the test run.
_ADVERSARIAL_SNIFFING = r"""
from documents.filetypes import detect_mime_type, safe_filename
for data in (
    b"<!---->" * 60,
    b"<!---->" * 5000 + b"not html",
    b"<!--" * 5000 + b"-->" * 5000 + b"x",
    b" <!-- a -->-->" * 3000 + b"x",
):
    print(detect_mime_type("page", data))
print(len(safe_filename("a" + " " * 100000 + "b.txt")))
"""


def test_sniffing_adversarial_comments_takes_no_time_worth_measuring():
    try:
        result = subprocess.run(
            [sys.executable, "-c", _ADVERSARIAL_SNIFFING], cwd=ROOT, capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail("sniffing a few KB of HTML comments ran for more than 20 s: a pattern backtracks")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["text/plain"] * 4 + ["7"]


# Modules whose patterns read uploaded bytes or the text extracted from them (the other
# modules of documents.extraction, pdf and text, hold no patterns and do not import re).
UPLOAD_PATH_MODULES = [filetypes, common, docx, html, markdown, chunking]


def _nested_quantifiers(tree, inside_repeat: bool = False) -> list[str]:
    """Unbounded quantifiers inside another quantifier: the shape that backtracks
    exponentially, as ``(<!--.*?-->\\s*)*`` did."""
    found = []
    for op, argument in tree:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
            _, high, body = argument
            if inside_repeat and high == sre_constants.MAXREPEAT and op is not sre_constants.POSSESSIVE_REPEAT:
                found.append(str(op))
            found += _nested_quantifiers(body, inside_repeat or high > 1)
        elif op is sre_constants.SUBPATTERN:
            found += _nested_quantifiers(argument[-1], inside_repeat)
        elif op is sre_constants.BRANCH:
            for branch in argument[1]:
                found += _nested_quantifiers(branch, inside_repeat)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT, sre_constants.ATOMIC_GROUP):
            found += _nested_quantifiers(argument if op is sre_constants.ATOMIC_GROUP else argument[1], inside_repeat)
    return found


def test_the_check_for_nested_quantifiers_finds_the_pattern_that_froze_the_site():
    frozen = rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])"
    assert _nested_quantifiers(sre_parser.parse(frozen, re.I | re.S))
    assert not _nested_quantifiers(sre_parser.parse(r"^#{1,6}[ \t]+\S"))


@pytest.mark.parametrize("module", UPLOAD_PATH_MODULES, ids=lambda module: module.__name__)
def test_no_pattern_on_the_upload_path_nests_quantifiers(module):
    patterns = {name: value for name, value in vars(module).items() if isinstance(value, re.Pattern)}
    assert patterns
    nested = {
        name
        for name, pattern in patterns.items()
        if _nested_quantifiers(sre_parser.parse(pattern.pattern, pattern.flags))
    }
    assert nested == set()
    # Every pattern is a named constant of the module, so the check above sees it.
    source = Path(module.__file__).read_text()
    assert re.findall(r"\bre\.(?:sub|subn|split|match|fullmatch|search|findall|finditer)\(", source) == []
