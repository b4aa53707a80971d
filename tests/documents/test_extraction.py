"""Text comes out of every supported format with its structure: PDF pages and heading paths."""

from __future__ import annotations

import pytest

from documents.extraction import ExtractionError, Section, extract
from documents.filetypes import DOCX, HTML, MARKDOWN, PDF, PLAIN
from tests.documents.samples import make_docx, make_image_only_pdf, make_pdf


def test_pdf_text_keeps_its_page_numbers():
    data = make_pdf([["Kubernetes runs the web pods."], [], ["Postgres keeps every chunk."]])
    sections = extract(data, PDF)
    assert [(s.page, s.text) for s in sections] == [
        (1, "Kubernetes runs the web pods."),
        (3, "Postgres keeps every chunk."),
    ]


def test_an_encrypted_pdf_fails_with_a_readable_message():
    data = make_pdf([["The secret plan."]], password="hunter2")
    with pytest.raises(ExtractionError) as error:
        extract(data, PDF)
    assert str(error.value) == "this PDF is encrypted — remove the password and upload it again"


def test_a_pdf_with_only_an_empty_user_password_opens():
    data = make_pdf([["Anyone may read this, nobody may print it."]], password="")
    assert extract(data, PDF)[0].text == "Anyone may read this, nobody may print it."


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage garbage\n",
        make_pdf([["Half a file."] * 20])[:900],
    ],
    ids=["header-only", "garbage", "truncated"],
)
def test_a_damaged_pdf_fails_with_a_readable_message(data):
    with pytest.raises(ExtractionError, match=r"^this PDF is damaged and cannot be read"):
        extract(data, PDF)


def test_a_pdf_without_text_is_reported_as_probably_scanned():
    with pytest.raises(ExtractionError) as error:
        extract(make_image_only_pdf(), PDF)
    assert str(error.value) == "no text found — scanned PDF?"


def test_docx_headings_become_heading_paths():
    data = make_docx(
        [
            ("h1", "Install"),
            ("p", "Download the installer."),
            ("h2", "Linux"),
            ("p", "Use the package manager."),
            ("bullet", "apt on Debian"),
            ("table", "Distro | Command\nDebian | apt install kb"),
            ("h1", "Usage"),
            ("p", "Open the site."),
        ]
    )
    sections = extract(data, DOCX)
    assert [s.headings for s in sections] == [("Install",), ("Install", "Linux"), ("Usage",)]
    assert sections[0].text == "Install\n\nDownload the installer."
    assert "- apt on Debian" in sections[1].text
    assert "Debian | apt install kb" in sections[1].text
    assert all(s.page is None for s in sections)


def test_a_damaged_docx_fails_with_a_readable_message():
    data = make_docx([("p", "Hello")])
    with pytest.raises(ExtractionError, match="Word document is damaged"):
        extract(data[: len(data) // 2], DOCX)


def test_markdown_headings_become_heading_paths_and_markup_is_dropped():
    data = b"""---
title: front matter is not content
---
Intro before any heading.

# Install

Read *this* [first](https://example.com).

## Linux

```
apt install kb
```

- one
- two

| OS | Command |
|----|---------|
| Debian | apt |

### Debian

Stable works.

# Usage

Ask a question.
"""
    sections = extract(data, MARKDOWN)
    assert [s.headings for s in sections] == [
        (),
        ("Install",),
        ("Install", "Linux"),
        ("Install", "Linux", "Debian"),
        ("Usage",),
    ]
    assert sections[0].text == "Intro before any heading."
    assert sections[1].text == "Install\n\nRead this first."
    assert "apt install kb" in sections[2].text
    assert "- one\n- two" in sections[2].text
    assert "Debian | apt" in sections[2].text
    assert "front matter" not in " ".join(s.text for s in sections)


def test_html_drops_scripts_styles_and_navigation_and_keeps_heading_paths():
    data = b"""<!doctype html><html><head><title>t</title><style>p{color:red}</style></head>
<body><nav>Home | About</nav>
<h1>Install</h1><p>Intro <b>bold</b> words.</p><script>alert("x")</script>
<h2>Linux</h2><ul><li>apt</li><li>dnf</li></ul>
<h1>Usage</h1><p>Ask<br>away.</p><!-- a comment -->
</body></html>"""
    sections = extract(data, HTML)
    assert [s.headings for s in sections] == [("Install",), ("Install", "Linux"), ("Usage",)]
    assert sections[0].text == "Install\n\nIntro bold words."
    assert sections[1].text == "Linux\n\n- apt\n\n- dnf"
    assert sections[2].text == "Usage\n\nAsk\naway."
    everything = " ".join(s.text for s in sections)
    assert "alert" not in everything
    assert "color" not in everything
    assert "Home" not in everything
    assert "comment" not in everything


def test_deeply_nested_html_does_not_hit_the_recursion_limit():
    data = b"<div>" * 5000 + b"deep text" + b"</div>" * 5000
    assert extract(data, HTML)[0].text == "deep text"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "latin-1"])
def test_plain_text_in_odd_encodings_is_one_section_of_paragraphs(encoding):
    text = "Première ligne.\r\n\r\nDeuxième paragraphe, très naïf.\r\n"
    sections = extract(text.encode(encoding), PLAIN)
    assert sections == [Section(text="Première ligne.\n\nDeuxième paragraphe, très naïf.")]


def test_control_characters_and_nul_are_removed():
    sections = extract("one\x00two\x07 three\u00a0four".encode(), PLAIN)
    assert sections[0].text == "onetwo three four"


@pytest.mark.parametrize("mime_type", [PLAIN, MARKDOWN, HTML])
def test_a_file_with_no_text_fails(mime_type):
    with pytest.raises(ExtractionError, match="^no text found$"):
        extract(b"  \n\n \t \n", mime_type)


def test_an_unknown_type_fails_with_a_readable_message():
    with pytest.raises(ExtractionError, match="cannot be read"):
        extract(b"data", "image/png")


# Hostile shapes for the patterns that clean and split extracted text: each must come out right,
# in time linear in its size (a backtracking pattern would make these run for minutes).
def test_front_matter_that_never_closes_is_kept_as_text():
    data = b"---\n" + b"title: x\n---   x\n" * 20_000 + b"The body."
    sections = extract(data, MARKDOWN)
    assert sections[-1].text.endswith("The body.")


def test_front_matter_is_dropped_however_long_its_lines():
    data = b"---\ntitle: " + b" " * 200_000 + b"x\n---" + b" \t" * 50_000 + b"\n# Guide\n\nText."
    assert [(s.headings, s.text) for s in extract(data, MARKDOWN)] == [(("Guide",), "Guide\n\nText.")]


def test_long_runs_of_hashes_and_white_space_are_cleaned_in_markdown():
    data = b"#" * 100_000 + b" x\n\nword" + b" " * 200_000 + b"end\n\n\n\n\n" + b"\n" * 100_000 + b"last"
    # More than six hashes open no heading: a paragraph.
    assert [s.text for s in extract(data, MARKDOWN)] == ["#" * 100_000 + " x\n\nword end\n\nlast"]


def test_long_runs_of_white_space_are_collapsed_in_html_and_plain_text():
    html = b"<html><body><h1>T</h1><p>a" + b" \n\t" * 100_000 + b"b</p></body></html>"
    assert extract(html, HTML)[0].text == "T\n\na b"
    plain = b"a" + b" \t" * 100_000 + b"b" + b"\n" * 100_000 + b"c"
    assert extract(plain, PLAIN)[0].text == "a b\n\nc"
