"""Plain text: decoded, cleaned and returned as one section (chunking then splits it on
blank lines and sentences).
"""

from __future__ import annotations

from documents.extraction.common import Section, _decode, _TextBudget, clean_text


def _extract_plain(data: bytes, budget: _TextBudget) -> list[Section]:
    # One section: chunking splits it on paragraphs (blank lines), then sentences.
    text = _decode(data)
    budget.check(len(text))  # before cleaning, which takes several copies
    text = clean_text(text)
    budget.spend(len(text))
    return [Section(text=text)]
