"""The project's own golden set for ``make bench PART=answers``, separate from SciFact.

- ``documents``: seven documents about invented organisations and products (a harbor's access
  handbook, a wind turbine's specification, an employee handbook, a vet clinic's FAQ, a bakery's
  production notes, a rail project's status report, a company's quarterly sales review), with
  made-up facts no model can know, in every supported format: two PDFs, two Word documents,
  Markdown, HTML and plain text, rendered from Python at bench time (``render``).
- ``questions``: answerable questions with their expected facts, follow-up pairs, questions the
  knowledge base cannot answer, and answer sentences with planted wrong facts for scoring the
  grounding check.

``tests/bench/test_golden.py`` checks the set against itself: every expected fact occurs in the
text the product extracts from its document, and every planted wrong sentence differs from a
true one by exactly one fact that the document does not state.
"""

from __future__ import annotations

from bench.golden.documents import BY_KEY, DOCUMENTS, GoldenDocument
from bench.golden.questions import (
    CLAIMS,
    FOLLOW_UPS,
    QUESTIONS,
    UNANSWERABLE,
    Claim,
    FollowUp,
    PlantedSentence,
    Question,
    all_questions,
    planted_sentences,
)
from bench.golden.render import render

__all__ = [
    "BY_KEY",
    "CLAIMS",
    "DOCUMENTS",
    "FOLLOW_UPS",
    "QUESTIONS",
    "UNANSWERABLE",
    "Claim",
    "FollowUp",
    "GoldenDocument",
    "PlantedSentence",
    "Question",
    "all_questions",
    "planted_sentences",
    "render",
    "sizes",
]


def sizes() -> dict[str, int]:
    """How big the set is, by category (reported with the figures)."""
    planted = planted_sentences()
    return {
        "documents": len(DOCUMENTS),
        "answerable_questions": len(QUESTIONS),
        "follow_up_pairs": len(FOLLOW_UPS),
        "unanswerable_questions": len(UNANSWERABLE),
        "planted_wrong_sentences": sum(sentence.wrong for sentence in planted),
        "planted_true_sentences": sum(not sentence.wrong for sentence in planted),
    }
