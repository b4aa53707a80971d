"""Rendering the benchmark page from a few result files keeps every other part's section."""

from __future__ import annotations

import json

from bench import report
from tests.bench.test_ingestion_report import RESULT as INGESTION

OLD_PAGE = """# Benchmarks

Intro.

## SciFact (BEIR): answer-source quality

_Run 20261201T000000 (300 s)._

| hybrid | 0.720 |

## Retrieval

Not measured yet: `make bench PART=retrieval`.

## Ingestion: API → queue → worker, against the seed stack and raw encoding

_Run 20261130T000000 (900 s)._ an old ingestion figure 0.99×

## Streaming: websocket protocol against raw llama-cpp-python

_Run 20261201T010000 (90 s)._ decode 0.97×
"""


def test_a_part_without_results_keeps_its_measured_section_and_a_part_with_results_is_rendered(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    run = {"started": "20261204T000000", "machine": {}, "options": {}, "parts": {"ingestion": INGESTION}}
    (results / "20261204T000000.json").write_text(json.dumps(run), encoding="utf-8")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(OLD_PAGE, encoding="utf-8")

    report.write_docs(results, doc=doc, plot_path=tmp_path / "plot.png")
    text = doc.read_text(encoding="utf-8")

    # Kept exactly, in the parts' order.
    assert "## SciFact (BEIR): answer-source quality\n\n_Run 20261201T000000 (300 s)._\n\n| hybrid | 0.720 |" in text
    assert "_Run 20261201T010000 (90 s)._ decode 0.97×" in text
    assert text.index("## SciFact") < text.index("## Ingestion") < text.index("## Streaming")
    # Re-rendered from the new result, not kept.
    assert "an old ingestion figure" not in text
    assert "**0.40×** (target ≤ 0.5)" in text
    # Never measured anywhere: still a placeholder.
    assert "Not measured yet: `make bench PART=retrieval`." in text
    assert "Not measured yet: `make bench PART=answers`." in text
    assert text.count("## Ingestion") == 1
