"""Which sentence of the retrieved passages answers the question.

Contract: ``find(question, question_vector, passages)`` takes the question, its embedding (as
retrieval computed it) and the passages in the order the model sees them (objects with
``text``), and returns an ``Evidence``:

- ``highlights[i]``: the best sentence of passage ``i`` as ``[{"text", "start", "end"}]``
  (offsets into the passage's text), or ``[]`` when it has no sentence worth quoting;
- ``best``: ``(sentence text, n)`` of the single best sentence over all passages, ``n`` being
  its passage's 1-based number, or ``None`` when no sentence is close enough to the question
  (cosine similarity below ``RETRIEVAL_MIN_SIMILARITY``, the relevance floor of retrieval).

A sentence's score is its cosine similarity to the question (MiniLM, the retrieval model)
plus ``LEXICAL_WEIGHT`` times the share of the question's content words it contains, each
word weighted by how rare it is among the candidate sentences: the embedding finds
paraphrases, the words find the exact name or code that was asked about. To keep the cost
to a few dozen short embeddings, only the ``PER_PASSAGE`` sentences of each passage that
share most words with the question are embedded (all of them when a passage has no more).

It embeds through ``documents.embeddings`` and may take tens of milliseconds: async callers
run it with ``embeddings.arun``. Raises only what the embedding model raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from chat import sentences
from documents import embeddings

LEXICAL_WEIGHT = 0.5
PER_PASSAGE = 4
MIN_WORDS = 4  # shorter "sentences" are headings or fragments, not evidence

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
    total = len(pool) or 1
    return {word: math.log(1 + total / (1 + sum(word in words for words in pool))) for word in wanted}


def overlap(weights: dict[str, float], words: set[str]) -> float:
    """The weighted share of ``weights``' words found in ``words`` (0 to 1)."""
    total = sum(weights.values())
    return sum(weight for word, weight in weights.items() if word in words) / total if total else 0.0


def find(question: str, question_vector, passages: Sequence, embed: Embed = embeddings.embed_texts) -> Evidence:
    """The evidence in ``passages`` for ``question`` (see the module doc)."""
    candidates = [
        _Candidate(index, span, sentences.content_words(span.text))
        for index, passage in enumerate(passages)
        for span in sentences.split(str(passage.text))
        if len(sentences.words(span.text)) >= MIN_WORDS
    ]
    weights = word_weights(question, [c.words for c in candidates])
    for candidate in candidates:
        candidate.lexical = overlap(weights, candidate.words)
    chosen = _most_lexical_per_passage(candidates)
    if chosen:
        vectors = embed([c.span.text for c in chosen])
        for candidate, vector in zip(chosen, vectors, strict=True):
            candidate.similarity = float(np.dot(vector, question_vector))
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


def _most_lexical_per_passage(candidates: list[_Candidate]) -> list[_Candidate]:
    by_passage: dict[int, list[_Candidate]] = {}
    for candidate in candidates:
        by_passage.setdefault(candidate.passage, []).append(candidate)
    chosen: list[_Candidate] = []
    for group in by_passage.values():
        # sorted() is stable: among equal overlaps, earlier sentences first.
        chosen += sorted(group, key=lambda c: -c.lexical)[:PER_PASSAGE]
    return chosen
