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
look at the question's *focus* (``focus``): without the document's *topic* words (``topic``),
which every sentence of that document is about — otherwise a sentence that merely names the
subject ("The Aldermoor Rail Extension is a new line …") beats the one that answers ("The
revised budget of the project is …"). The topic is the words of the document's title, plus
the question's names and codes that a quarter or more of the document's retrieved sentences
contain (titles made from file names often do not name the subject). A candidate that holds the kind
of answer the question asks for (``answer_kind``: a name for "who", a number for "how many",
"when" …, a frequency for "how often") and that the question does not already contain gets
``ANSWER_KIND_WEIGHT`` more. To keep the cost to a few dozen short embeddings, only the
``PER_PASSAGE`` candidates of each passage that share most words with the question are
embedded.

``missing_facts(question, passages)`` lists the names, codes and numbers of the question that
no passage mentions, and ``unmatched_words(question, passages)`` its other content words that
no passage contains: with ``Evidence.weak`` evidence, the caller answers not-found for those
(``chat.answering.answerable``).

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
# A question word in at least this share of a document's retrieved sentences (of at least
# TOPIC_MIN_SENTENCES) is what the document is about, not what the question asks.
TOPIC_SHARE = 0.25
TOPIC_MIN_SENTENCES = 5
# Bonus for a sentence holding the kind of answer asked for, not already in the question.
ANSWER_KIND_WEIGHT = 0.15
# Evidence is weak when its similarity is below ANSWER_MIN_EVIDENCE and it holds less than
# this share of the question's (weighted) content words.
WEAK_LEXICAL = 0.35
# Words that make a sentence lean on the one before it.
REFERRING = frozenset(
    ["it", "its", "they", "their", "them", "this", "these", "that", "those", "he", "she", "his", "her"]
)

# The words that say what kind of answer is wanted ("how many", "when", "explain everything")
# rather than what it is about.
_ANSWER_KIND_TEXT = """who whom whose what which when where how many much long often old big large far high
wide tall heavy deep time year date day number amount cost price rate kind type name called explain describe
tell summarise summarize summary everything anything something list give show know overview detail details
info information please"""
_ANSWER_KIND_WORDS = frozenset(sentences.stem(word) for word in _ANSWER_KIND_TEXT.split())
_NUMBER_QUESTIONS = (
    "how many",
    "how much",
    "how long",
    "how far",
    "how old",
    "how big",
    "how high",
    "how large",
    "how heavy",
    "how deep",
    "how tall",
    "how wide",
    "when",
    "what year",
    "what time",
    "what date",
    "what temperature",
    "which year",
    "at what",
    "until what",
    "what percentage",
)
# "What/which <measure>" asks for a number too ("Above which wind speed …", "What is its hub height?").
_MEASURES_TEXT = """speed temperature height length width depth weight size distance price cost fee rate
percentage diameter capacity power voltage budget revenue duration age number amount total"""
_MEASURES = frozenset(_MEASURES_TEXT.split())
_FREQUENCY_TEXT = "every per each daily weekly monthly yearly annually hourly nightly once twice fortnightly"
_FREQUENCY_WORDS = frozenset(_FREQUENCY_TEXT.split())
_CALENDAR_TEXT = """january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday"""
CALENDAR = frozenset(_CALENDAR_TEXT.split())  # months and days are dates, not names

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Evidence:
    highlights: list[list[dict]]
    best: tuple[str, int] | None
    # The best candidate's cosine similarity to the question and its share of the question's
    # content words (0 when there is no candidate).
    similarity: float = 0.0
    lexical: float = 0.0

    def only(self, kept: Sequence[int]) -> Evidence:
        """This evidence for the passages at the 0-based indices ``kept`` (in that order), which
        must include the best one's."""
        best = self.best
        if best is not None:
            best = (best[0], list(kept).index(best[1] - 1) + 1)
        return Evidence([self.highlights[i] for i in kept], best, self.similarity, self.lexical)

    @property
    def weak(self) -> bool:
        """Whether the best sentence is neither close in meaning nor in words to the question."""
        return self.similarity < settings.ANSWER_MIN_EVIDENCE and self.lexical < WEAK_LEXICAL


@dataclass
class _Candidate:
    passage: int  # 0-based index of its passage
    span: sentences.Span
    words: set[str]
    lexical: float = 0.0
    similarity: float = 0.0
    kind_bonus: float = 0.0

    @property
    def score(self) -> float:
        return self.similarity + LEXICAL_WEIGHT * self.lexical + self.kind_bonus


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


def topic(question: str, title: str, texts: Sequence[str]) -> set[str]:
    """The content words (stems) a document is about, as far as ``question`` is concerned: those
    of its ``title``, and the question's names and codes (``sentences.facts``: "WX-7",
    "Brightwater") that at least ``TOPIC_SHARE`` of the sentences of ``texts`` (the document's
    retrieved passages) contain, when there are at least ``TOPIC_MIN_SENTENCES`` of them. Common
    words stay what is asked, however often the passages use them ("wind speed")."""
    found = sentences.content_words(title)
    spans = [sentences.content_words(span.text) for text in texts for span in sentences.split(text)]
    if len(spans) >= TOPIC_MIN_SENTENCES:
        names = {sentences.stem(fact) for fact in sentences.facts(question)}
        for word in sentences.content_words(question) & names:
            if sum(word in words for words in spans) >= TOPIC_SHARE * len(spans):
                found.add(word)
    return found


def focus(question: str, about: set[str]) -> str:
    """``question`` without its words in ``about`` (a document's ``topic``): what it asks
    *about* the document's subject. "What is the revised budget of the Aldermoor Rail
    Extension?" in "Aldermoor Rail Extension: Project Status Report" asks for "What is the
    revised budget of the?" — the embedding model otherwise prefers any sentence naming the
    subject."""
    kept = [word for word in sentences.words(question) if sentences.stem(word) not in about]
    return " ".join(kept)


def answer_kind(question: str) -> str | None:
    """What kind of answer ``question`` asks for: ``"name"`` (who), ``"frequency"`` (how
    often), ``"number"`` (how many, how much, when, at what temperature …), ``"entity"``
    (which …) or ``None``."""
    asked = " ".join(word.lower() for word in sentences.words(question))
    if asked.startswith("who") or " who " in f" {asked} " or asked.startswith("whose"):
        return "name"
    if "how often" in asked:
        return "frequency"
    if any(f" {phrase} " in f" {asked} " for phrase in _NUMBER_QUESTIONS):
        return "number"
    said = asked.split()
    if ("what" in said or "which" in said) and _MEASURES & set(said):
        return "number"
    if "which" in said:
        return "entity"  # "Which mill supplies …", "In which city …": a name, maybe one word
    return None


def answer_values(sentence: str, kind: str | None, question: str, about: set[str] = frozenset()) -> list[str]:
    """The values of ``sentence`` (normalised, as ``sentences.facts``) that could answer a
    question of ``kind`` and that ``question`` does not hold: numbers for a number or frequency;
    names and codes — not months or days, not words of the document's topic ``about`` — for a
    name or entity."""
    asked = set(sentences.facts(question))
    found = [fact for fact in sentences.facts(sentence) if fact not in asked]
    if kind in ("number", "frequency"):
        return [fact for fact in found if fact[:1].isdigit()]
    if kind in ("name", "entity"):
        return [
            fact
            for fact in found
            if not fact[:1].isdigit() and fact not in CALENDAR and sentences.stem(fact) not in about
        ]
    return []


def holds_new(sentence: str, kind: str | None, question: str, about: set[str] = frozenset()) -> bool:
    """Whether ``sentence`` holds an answer of ``kind`` (``answer_kind``) that ``question`` does
    not already contain (``answer_values``): a number (a frequency also needs "every", "per",
    "daily" …); for an entity, a name or code; for a name, two or more capitalised words in a
    row, not opening the sentence ("Zerelda Harbor Authority" names the handbook's subject,
    ``about``, not who holds a post)."""
    values = answer_values(sentence, kind, question, about)
    if kind == "number" or kind == "entity":
        return bool(values)
    if kind == "frequency":
        said = {word.lower() for word in sentences.words(sentence)}
        return bool(said & _FREQUENCY_WORDS) and (bool(values) or bool(said & {"daily", "weekly", "monthly"}))
    if kind != "name" or not values:
        return False
    asked = set(sentences.facts(question))
    tokens = sentences.words(sentence)
    run = 0
    for index, word in enumerate(tokens):
        lowered = word.lower()
        name_word = (
            index > 0
            and word[:1].isupper()
            and lowered not in sentences.STOP_WORDS
            and lowered not in CALENDAR
            and lowered not in asked
            and sentences.stem(word) not in about
        )
        run = run + 1 if name_word else 0
        if run >= 2:
            return True
    return False


def find(
    question: str,
    question_vector,
    passages: Sequence,
    embed: Embed = embeddings.embed_sentences,
    *,
    relevant: int | None = None,
) -> Evidence:
    """The evidence in ``passages`` for ``question`` (see the module doc). With ``relevant``,
    only the first ``relevant`` passages count at first: they alone tell a document's topic
    (a document with none among them is told by its own), and ``best`` is theirs unless none
    of them holds an answer of the kind asked while a later passage of one of their documents
    does (its best sentence then)."""
    candidates = [
        _Candidate(index, span, sentences.content_words(span.text))
        for index, passage in enumerate(passages)
        for span in _statements(str(passage.text))
    ]
    # Each document's topic gives the question's focus once, for both the words and the embedding.
    titles = [str(getattr(passage, "title", "")) for passage in passages]
    telling = titles[:relevant] if relevant is not None else titles
    topics = {
        title: topic(
            question,
            title,
            [
                str(p.text)
                for index, (p, t) in enumerate(zip(passages, titles, strict=True))
                if t == title and (index < len(telling) or title not in telling)
            ],
        )
        for title in set(titles)
    }
    focused = {index: focus(question, topics[title]) for index, title in enumerate(titles)}
    kind = answer_kind(question)
    for candidate in candidates:
        if holds_new(candidate.span.text, kind, question, topics[titles[candidate.passage]]):
            candidate.kind_bonus = ANSWER_KIND_WEIGHT
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
    relevant = len(passages) if relevant is None else relevant
    best = max((c for c in best_per_passage.values() if c.passage < relevant), key=lambda c: c.score, default=None)
    if kind is not None and (best is None or not best.kind_bonus):
        # The relevant passages hold no answer of the kind asked: a lower-ranked passage of
        # the same documents may.
        later = [c for c in best_per_passage.values() if c.kind_bonus and titles[c.passage] in telling]
        best = max(later, key=lambda c: c.score, default=best)
    if best is None:
        return Evidence(highlights, None)
    if best.similarity < settings.RETRIEVAL_MIN_SIMILARITY:
        return Evidence(highlights, None, best.similarity, best.lexical)
    return Evidence(highlights, (best.span.text, best.passage + 1), best.similarity, best.lexical)


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


def unmatched_words(question: str, passages: Sequence) -> list[str]:
    """The content words (stems) of ``question`` — other than those asking for a kind of answer
    ("how many", "cost") — that no passage's text or title contains, even inside a longer word.
    "How many weeks of parental leave …" over a handbook that never says "parental" gives
    ``["parental"]``."""
    pool = " ".join(" ".join(sentences.content_words(f"{getattr(p, 'title', '')}\n{p.text}")) for p in passages)
    wanted = sorted(sentences.content_words(question) - _ANSWER_KIND_WORDS)
    return [word for word in wanted if word not in pool]


def _statements(text: str) -> list[sentences.Span]:
    """The sentences of ``text`` that can be quoted as an answer: not headings or titles (no
    final punctuation), not questions, not fragments (fewer than ``MIN_WORDS`` words). A sentence that opens
    by referring back ("Its access code is …") is quoted together with the one before it,
    which says what "it" is."""
    spans = sentences.split(text)
    statements = []
    for index, span in enumerate(spans):
        if span.text[-1] not in '.!…"”’)' or len(sentences.words(span.text)) < MIN_WORDS:
            continue  # a heading, a fragment or a question (an FAQ's) answers nothing
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
