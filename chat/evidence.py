"""Which sentence of the retrieved passages answers the question.

Contract: ``find(question, question_vector, passages)`` takes the question, its embedding (as
retrieval computed it) and the passages in the order the model sees them (objects with
``text``), and returns an ``Evidence``:

- ``highlights[i]``: the best sentence of passage ``i`` as ``[{"text", "start", "end"}]``
  (offsets into the passage's text), or ``[]`` when it has no sentence worth quoting;
- ``best``: ``(sentence text, n)`` of the single best sentence over all passages, ``n`` being
  its passage's 1-based number, or ``None`` when no sentence is close enough to the question
  (cosine similarity below ``RETRIEVAL_MIN_SIMILARITY``, the relevance floor of retrieval).

Candidates are statements: sentences with final punctuation and at least ``MIN_WORDS`` words
(not headings or titles), a sentence that opens by referring back ("Its access code is …")
joined to the one before it. A candidate's score is its cosine similarity to the question
(MiniLM, the retrieval model) plus ``LEXICAL_WEIGHT`` times the share of the question's
content words it contains, each word weighted by how rare it is among the candidates. Both
look at the question's *focus* (``focus``): without the words it shares with the passage's
document title, which every sentence of that document is about — otherwise a sentence that
merely names the subject ("The Aldermoor Rail Extension is a new line …") beats the one that
answers ("The revised budget of the project is …"). To keep the cost to a few dozen short
embeddings, only the ``PER_PASSAGE`` candidates of each passage that share most words with
the question are embedded.

``missing_facts(question, passages)`` lists the names, codes and numbers of the question that
no passage mentions: the caller answers not-found for those.

It embeds through ``documents.embeddings`` and may take tens of milliseconds: async callers
run it with ``embeddings.arun``. Raises only what the embedding model raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from django.conf import settings

from chat import sentences
from documents import embeddings

LEXICAL_WEIGHT = 0.5
PER_PASSAGE = 4
MIN_WORDS = 4  # shorter "sentences" are headings or fragments, not evidence
# Words that make a sentence lean on the one before it.
REFERRING = frozenset(
    ["it", "its", "they", "their", "them", "this", "these", "that", "those", "he", "she", "his", "her"]
)

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Evidence:
    highlights: list[list[dict]]
    best: tuple[str, int] | None


@dataclass
class _Candidate:
    passage: int  # 0-based index of its passage
    span: sentences.Span
    words: set[str]
    lexical: float = 0.0
    similarity: float = 0.0

    @property
    def score(self) -> float:
        return self.similarity + LEXICAL_WEIGHT * self.lexical


def word_weights(question: str, pool: Sequence[set[str]]) -> dict[str, float]:
    """The question's content words, each weighted by its rarity among ``pool`` (sets of words)."""
    wanted = sentences.content_words(question)
    total = len(pool) + 1
    # ln(N / df), with one imaginary sentence holding every word: a word in most candidate
    # sentences (the topic, e.g. the project's name) weighs little, a word in one weighs most.
    return {word: math.log(total / (1 + sum(word in words for words in pool))) + 0.1 for word in wanted}


def overlap(weights: dict[str, float], words: set[str]) -> float:
    """The weighted share of ``weights``' words found in ``words`` (0 to 1)."""
    total = sum(weights.values())
    return sum(weight for word, weight in weights.items() if word in words) / total if total else 0.0


def focus(question: str, title: str) -> str:
    """``question`` without the words it shares with ``title``: what it asks *about* the
    document's subject. "What is the revised budget of the Aldermoor Rail Extension?" in
    "Aldermoor Rail Extension: Project Status Report" asks for "What is the revised budget of
    the?" — the embedding model otherwise prefers any sentence naming the subject."""
    topic = sentences.content_words(title)
    kept = [word for word in sentences.words(question) if sentences.stem(word) not in topic]
    return " ".join(kept)


def find(question: str, question_vector, passages: Sequence, embed: Embed = embeddings.embed_texts) -> Evidence:
    """The evidence in ``passages`` for ``question`` (see the module doc)."""
    candidates = [
        _Candidate(index, span, sentences.content_words(span.text))
        for index, passage in enumerate(passages)
        for span in _statements(str(passage.text))
    ]
    # Each passage's title gives the question's focus once, for both the words and the embedding.
    focused = {index: focus(question, str(getattr(passage, "title", ""))) for index, passage in enumerate(passages)}
    chosen = _most_lexical_per_passage(candidates, focused, question)
    if chosen:
        questions = sorted({text for text in focused.values() if text and text != question})
        vectors = embed([c.span.text for c in chosen] + questions)
        question_vectors = dict(zip(questions, vectors[len(chosen) :], strict=True))
        for candidate, vector in zip(chosen, vectors[: len(chosen)], strict=True):
            asked = question_vectors.get(focused[candidate.passage], question_vector)
            candidate.similarity = max(float(np.dot(vector, asked)), float(np.dot(vector, question_vector)))
    highlights: list[list[dict]] = [[] for _ in passages]
    best_per_passage: dict[int, _Candidate] = {}
    for candidate in chosen:
        current = best_per_passage.get(candidate.passage)
        if current is None or candidate.score > current.score:
            best_per_passage[candidate.passage] = candidate
    for index, candidate in best_per_passage.items():
        highlights[index] = [candidate.span.as_dict()]
    best = max(best_per_passage.values(), key=lambda c: c.score, default=None)
    if best is None or best.similarity < settings.RETRIEVAL_MIN_SIMILARITY:
        return Evidence(highlights, None)
    return Evidence(highlights, (best.span.text, best.passage + 1))


def around(passage, highlight: Sequence[dict], neighbours: int = 1):
    """``passage`` with its text cut to the highlighted sentence and ``neighbours`` sentences on
    each side (the whole passage when nothing is highlighted). Title, location and score stay."""
    if not highlight:
        return passage
    text = str(passage.text)
    spans = sentences.split(text)
    inside = [
        i for i, span in enumerate(spans) if span.end > highlight[0]["start"] and span.start < highlight[0]["end"]
    ]
    if not inside:
        return passage
    first, last = max(0, inside[0] - neighbours), min(len(spans) - 1, inside[-1] + neighbours)
    return SimpleNamespace(
        title=passage.title,
        location=passage.location,
        score=passage.score,
        text=text[spans[first].start : spans[last].end],
    )


def missing_facts(question: str, passages: Sequence) -> list[str]:
    """The names, codes and numbers of ``question`` that no passage (text or title) mentions.

    A question about "the Bellhaven vault" or "revenue in Q1" that no retrieved passage names
    cannot be answered from them, however close the passages are in meaning: the caller
    answers not-found instead of letting a small model answer about the wrong vault.
    """
    text = sentences.normalised(" ".join(f"{getattr(p, 'title', '')}\n{p.text}" for p in passages))
    return [fact for fact in sentences.facts(question) if f" {fact} " not in text]


def _statements(text: str) -> list[sentences.Span]:
    """The sentences of ``text`` that can be quoted as an answer: not headings or titles (no
    final punctuation), not fragments (fewer than ``MIN_WORDS`` words). A sentence that opens
    by referring back ("Its access code is …") is quoted together with the one before it,
    which says what "it" is."""
    spans = sentences.split(text)
    statements = []
    for index, span in enumerate(spans):
        if span.text[-1] not in '.!?…"”’)' or len(sentences.words(span.text)) < MIN_WORDS:
            continue
        first_word = sentences.words(span.text)[0].lower()
        if index > 0 and first_word in REFERRING and spans[index - 1].text[-1] in '.!?…"”’)':
            previous = spans[index - 1]
            span = sentences.Span(text[previous.start : span.end], previous.start, span.end)
        statements.append(span)
    return statements


def _most_lexical_per_passage(candidates: list[_Candidate], focused: dict[int, str], question: str) -> list[_Candidate]:
    """Score each candidate's word overlap with the question — without the words of its
    passage's title, which every sentence of the document is about — and keep the
    ``PER_PASSAGE`` best of each passage."""
    by_passage: dict[int, list[_Candidate]] = {}
    for candidate in candidates:
        by_passage.setdefault(candidate.passage, []).append(candidate)
    chosen: list[_Candidate] = []
    pool = [c.words for c in candidates]
    for index, group in by_passage.items():
        asked = focused[index] or question
        weights = word_weights(asked, pool)
        for candidate in group:
            candidate.lexical = overlap(weights, candidate.words)
        # sorted() is stable: among equal overlaps, earlier sentences first.
        chosen += sorted(group, key=lambda c: -c.lexical)[:PER_PASSAGE]
    return chosen
