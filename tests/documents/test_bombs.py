"""Parser bombs: files made to exhaust the worker fail with a clear reason, stored as the
document's error, in bounded memory and time, and the worker goes on to the next document.

The bombs (tests/documents/bombs.py) are small on disk: a 2 MB Word document whose body
inflates to 2 GB, a 10 MB PDF of 100,000 pages, a 2 kB PDF page that keeps pypdf busy for over
an hour, HTML and Markdown nested a million deep. Each runs in a fresh process, which reports
how much its peak resident memory grew while extracting (the parsers imported and the file
built beforehand): the whole process is measured, C libraries (libxml2, zlib) included. Before
these limits, the Word document took about 18 GB per GB of XML, the HTML of a million tags
0.7 GB and the Markdown of a million paragraphs about 1.4 GB (docs/security.md has the table).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from documents import tasks
from documents.extraction import ExtractionError, Limits, extract
from documents.filetypes import DOCX, PDF
from documents.models import Status
from documents.services import upload_document
from tests.documents import bombs
from tests.documents.samples import make_pdf

ROOT = Path(__file__).resolve().parents[2]
# The settings' defaults, except time: a loaded test machine must not turn a bomb's reason
# into a timeout.
LIMITS = {"max_chars": 5_000_000, "max_pages": 2000, "max_uncompressed_bytes": 100 * 2**20, "max_seconds": 120}
# What one bomb may add to the worker's peak memory; the worker's limit is 3 GiB, its model
# and Python about 1 GiB.
PEAK_GROWTH_MB = 64
SPLIT = " — split it into smaller files"


def extract_in_a_fresh_process(scenario: str, **limits) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.documents.bombs", scenario, json.dumps({**LIMITS, **limits})],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["peak_growth_mb"] < PEAK_GROWTH_MB, outcome
    return outcome


# -- Word documents (ZIP archives) -------------------------------------------------------------


@pytest.mark.slow
def test_a_word_document_that_unpacks_to_2_gb_is_refused_from_its_directory():
    outcome = extract_in_a_fresh_process("docx-2gb")
    assert outcome["error"] == (
        "this Word document unpacks to 1.9 GB of text and markup; kb unpacks at most 100.0 MB from one document" + SPLIT
    )


@pytest.mark.slow
def test_a_directory_that_understates_the_body_gains_nothing():
    # The directory says 1 kB: at most that is inflated, and the checksum then fails.
    outcome = extract_in_a_fresh_process("docx-2gb-directory-says-1kb")
    assert outcome["error"] == "this Word document is damaged and cannot be read"


@pytest.mark.slow
def test_bytes_inflated_past_what_the_directory_says_are_counted_while_reading():
    # A ZIP reader that trusts the data over the directory inflates 2 GB of empty paragraphs
    # (no text for the character limit to count): the byte count stops it at the limit.
    outcome = extract_in_a_fresh_process("docx-2gb-read-past-the-directory", max_uncompressed_bytes=8 * 2**20)
    assert outcome["error"] == (
        "this Word document unpacks to more than 8.0 MB of text and markup; kb unpacks at most 8.0 MB "
        "from one document" + SPLIT
    )


@pytest.mark.slow
def test_a_word_document_of_2_gb_of_text_stops_at_the_character_limit():
    # Allowed to unpack 4 GB: the text limit stops it after 1,000,000 characters.
    outcome = extract_in_a_fresh_process("docx-2gb", max_uncompressed_bytes=4 * 2**30, max_chars=1_000_000)
    assert outcome["error"] == (
        "this file holds more than 1,000,000 characters of text, the most kb takes from one document" + SPLIT
    )


def test_a_word_document_nested_too_deep_fails_clearly():
    body = b"<w:p>" + b"<w:r>" * 300 + b"</w:r>" * 300 + b"</w:p>"
    stream, size, crc = bombs.repeated_deflate(bombs.BODY_START, body, 1, bombs.BODY_END)
    data = bombs.zip_archive([("word/document.xml", stream, size, crc)])
    with pytest.raises(ExtractionError, match="^this file nests its content too deeply to be read$"):
        extract(data, DOCX)


# -- PDF --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_pdf_of_100000_pages_is_refused_by_its_page_count():
    outcome = extract_in_a_fresh_process("pdf-100000-pages")
    assert outcome["error"] == "this PDF has 100,000 pages; kb reads at most 2,000 from one document" + SPLIT


@pytest.mark.slow
def test_a_pdf_that_understates_its_pages_stops_at_the_page_limit():
    # Its page tree says 1 page and holds 100,000: pypdf stops walking it past the limit.
    outcome = extract_in_a_fresh_process("pdf-100000-pages-stating-1")
    assert outcome["error"] == "this PDF has more than 2,000 pages; kb reads at most 2,000 from one document" + SPLIT


@pytest.mark.slow
def test_a_pdf_page_that_keeps_the_parser_busy_stops_at_the_time_limit():
    # 2 kB, one page, no text: a form drawn 5,000 times, each time 100,000 operations. pypdf
    # would work for over an hour; the limit interrupts it inside the page.
    outcome = extract_in_a_fresh_process("pdf-busy-page", max_seconds=2)
    assert outcome["error"] == "this file took more than 2 seconds to read, the most kb spends on one document" + SPLIT


# -- HTML and Markdown ---------------------------------------------------------------------------


@pytest.mark.slow
def test_html_nested_a_million_deep_fails_clearly_without_recursion():
    outcome = extract_in_a_fresh_process("html-a-million-deep")
    assert outcome["error"] == "this file nests its content too deeply to be read"


def test_html_nested_thousands_deep_is_still_read():
    assert extract(b"<div>" * 9000 + b"deep text", "text/html")[0].text == "deep text"


@pytest.mark.slow
def test_html_of_a_million_tags_is_read_without_building_a_tree():
    assert extract_in_a_fresh_process("html-a-million-tags")["error"] == "no text found"


@pytest.mark.slow
def test_html_that_pythons_parser_reads_in_quadratic_time_is_read_well_within_the_time_limit():
    # Python's html.parser (under BeautifulSoup) took 100 s for 120 kB of "<a ", four times as
    # long for twice as much; libxml2 reads these 180 kB in milliseconds.
    outcome = extract_in_a_fresh_process("html-quadratic-for-python", max_seconds=20)
    assert outcome["error"] == "no text found"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "error", "characters"),
    [
        ("markdown-200000-paragraphs", None, 599_998),
        # 200,000 sections, each counted as at least 100 characters: past 5,000,000.
        ("markdown-200000-sections", "this file holds more than 5,000,000 characters", 0),
        ("markdown-nested-a-million-deep", "no text found", 0),  # markdown-it stops nesting at 20
        ("markdown-one-line-of-200000-emphases", None, 399_999),
    ],
)
def test_nested_and_huge_markdown_is_read_a_slice_at_a_time(scenario, error, characters):
    outcome = extract_in_a_fresh_process(scenario)
    assert (outcome["error"] or "").startswith(error or "")
    assert (outcome["error"] is None) == (error is None)
    assert outcome["characters"] == characters


@pytest.mark.slow
def test_a_text_file_past_the_character_limit_fails_before_it_is_cleaned():
    outcome = extract_in_a_fresh_process("text-10-mb")
    assert outcome["error"].startswith("this file holds more than 5,000,000 characters of text")


# -- the worker --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_bomb_fails_its_document_with_the_reason_and_the_next_document_is_ingested(
    alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        bomb, _ = upload_document(alice, file_name="report.docx", data=bombs.docx_bomb(2_000_000_000))
        after, _ = upload_document(alice, file_name="notes.md", data=b"# Notes\n\nThe gate code is 4471.\n")
    bomb.refresh_from_db()
    after.refresh_from_db()
    assert bomb.status == Status.FAILED
    assert bomb.error.startswith("this Word document unpacks to 1.9 GB of text and markup")
    assert not bomb.chunks.exists()
    assert after.status == Status.READY, after.error


@pytest.mark.django_db
def test_the_limits_come_from_the_settings(alice, settings):
    settings.EXTRACT_MAX_PAGES = 2
    document, _ = upload_document(alice, file_name="three.pdf", data=make_pdf([["one"], ["two"], ["three"]]))
    tasks.ingest_document(document.pk)
    document.refresh_from_db()
    assert document.error == "this PDF has 3 pages; kb reads at most 2 from one document" + SPLIT


def test_every_section_counts_at_least_100_characters():
    # A million one-word sections would be a million passages to embed: each costs 100.
    data = b"# h\n\nb\n\n" * 30
    assert len(extract(data, "text/markdown", Limits(3000, 10, 10))) == 30
    with pytest.raises(ExtractionError, match="more than 2,999 characters"):
        extract(data, "text/markdown", Limits(2999, 10, 10))


def test_the_time_limit_keeps_an_alarm_set_around_it_as_django_q2_sets_one():
    fired = []
    outer_handler = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    outer_timer, _ = signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's, restored below
    try:
        signal.setitimer(signal.ITIMER_REAL, 5)
        with pytest.raises(ExtractionError, match="took more than 1 second to read"):
            extract(bombs.pdf_busy_page(), PDF, Limits(5_000_000, 2000, 10**8, max_seconds=1))
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining < 5  # still running, and not restarted
        deadline = time.monotonic() + 10
        while not fired and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fired == [signal.SIGALRM]  # the outer handler got its alarm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_timer:
            signal.setitimer(signal.ITIMER_REAL, outer_timer)
