"""The grounding check: which sentences of an answer do the sources support?

Contract: ``check(answer, sources)`` takes the answer text and the sources as ``(n, text)`` or
``(n, text, title)`` (``n`` being the number the answer cites as ``[n]``; a fact found in the
title of a statement's source counts as found: "the WX-7" need not be repeated in every
sentence of the WX-7's manual) and returns a ``Grounded``:

- ``sentences``: one ``{"text", "supported", "sources"}`` per sentence of the answer, in order;
  ``sources`` lists the ``n`` of the sources that back the sentence (empty when none does, or
  for a sentence with nothing to check);
- ``content``: the answer with ``[n]`` added to each supported sentence that cites nothing.

The rule, for each sentence (citation markers set aside):

1. The not-found answer, and sentences with nothing to check (no fact and fewer than
   ``MIN_CONTENT_WORDS`` content words: "Sure.", "Here is what I found:"), are supported,
   with no sources.
2. **Find what the sentence is about**: the source statement (a sentence, or a sentence with
   the one before it when it opens with "It", "Its"...) that matches it best — by the share of
   its content words found there, and by MiniLM embedding similarity.
3. **That statement must say it.** It must hold every number (number words count as
   digits), code, name and address of the sentence (``chat.sentences.facts``), and be close enough:
   cosine similarity at least ``MIN_SIMILARITY``, or ``MIN_OVERLAP`` of the sentence's content
   words. Statements scoring within ``MARGIN`` of the best count too. So a wrong value is
   caught even when it occurs elsewhere in the sources ("the revised budget is 44.9 million"
   when 44.9 million was the *original* budget), and so is a statement the sources never
   make although its words are all there somewhere.

4. **An answer agrees with the evidence.** Given the ``question`` and the evidence sentences
   (``chat.evidence``'s highlights), a sentence holding a new answer of the kind the question
   asks for (``evidence.answer_kind``: a number for "how many", "when"…, a name for "who")
   must hold at least one such value that an evidence sentence holds too, when it answers the
   question (shares a content word with it, or is a bare value). "The answer is: 1."
   to "How many days a week may staff work remotely?" is flagged although some source holds
   a "1", since the sentence that answers the question says "three".

The thresholds were tuned on the answer benchmark's planted wrong facts and paraphrases
(``make bench PART=answers``, docs/benchmarks.md). Embeds through ``documents.embeddings``
(a few dozen short texts): async callers run it with ``embeddings.arun``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chat import evidence, sentences
from chat.evidence import REFERRING, Embed, overlap, word_weights
from chat.prompting import NOT_FOUND_ANSWER
from documents import embeddings

MIN_SIMILARITY = 0.62
MIN_OVERLAP = 0.75
MIN_CONTENT_WORDS = 2
MARGIN = 0.05
LEXICAL_WEIGHT = 0.5
# Statements per answer sentence compared by embedding: the ones sharing most words.
COMPARED = 6
_NOT_FOUND = sentences.normalised(NOT_FOUND_ANSWER)


@dataclass(frozen=True)
class Grounded:
    content: str
    sentences: list[dict]

    @property
    def unsupported(self) -> int:
        return sum(not sentence["supported"] for sentence in self.sentences)


@dataclass
class _Statement:
    n: int
    text: str
    words: set[str]
    normalised: str


@dataclass
class _Claim:
    index: int
    text: str
    facts: list[str]
    compared: list[tuple[float, _Statement]]  # (word overlap, statement)


def check(
    answer: str,
    sources: Sequence[tuple],
    embed: Embed = embeddings.embed_sentences,
    *,
    question: str = "",
    evidence_texts: Sequence[str] = (),
) -> Grounded:
    """Check every sentence of ``answer`` against ``sources`` (see the module doc); rule 4 only
    with a ``question`` and its ``evidence_texts``."""
    pool = [
        _Statement(n, span.text, sentences.content_words(span.text), sentences.normalised(f"{title}\n{span.text}"))
        for n, text, title in ((source[0], source[1], source[2] if len(source) > 2 else "") for source in sources)
        for span in statements(text)
    ]
    spans = sentences.split(answer)
    verdicts: list[tuple[bool, list[int]]] = []
    claims: list[_Claim] = []
    for index, span in enumerate(spans):
        plain = sentences.strip_citations(span.text)
        facts = sentences.facts(plain)
        words = sentences.content_words(plain)
        verdicts.append((True, []))
        if _NOT_FOUND in sentences.normalised(plain) or (not facts and len(words) < MIN_CONTENT_WORDS):
            continue
        weights = word_weights(plain, [s.words for s in pool])
        ranked = sorted(((overlap(weights, s.words), s) for s in pool), key=lambda pair: -pair[0])
        claims.append(_Claim(index, plain, facts, ranked[:COMPARED]))
    if claims:
        _judge(claims, verdicts, embed)
        if question and evidence_texts:
            _agree_with_evidence(claims, verdicts, question, evidence_texts)
    checked = [
        {"text": span.text, "supported": supported, "sources": cited}
        for span, (supported, cited) in zip(spans, verdicts, strict=True)
    ]
    return Grounded(content=_add_citations(answer, spans, checked), sentences=_with_citations(checked))


def statements(text: str) -> list[sentences.Span]:
    """The sentences of a source, each sentence that opens by referring back ("Its code is…")
    together with the one before it."""
    spans = sentences.split(text)
    joined = []
    for index, span in enumerate(spans):
        if index and sentences.words(span.text)[:1] and sentences.words(span.text)[0].lower() in REFERRING:
            previous = spans[index - 1]
            span = sentences.Span(text[previous.start : span.end], previous.start, span.end)
        joined.append(span)
    return joined


def _judge(claims: list[_Claim], verdicts: list[tuple[bool, list[int]]], embed: Embed) -> None:
    """Settle each claim against its best-matching statements (see the module doc)."""
    texts = list(dict.fromkeys([c.text for c in claims] + [s.text for c in claims for _, s in c.compared]))
    vectors = dict(zip(texts, embed(texts), strict=True))
    for claim in claims:
        scored = []
        for share, statement in claim.compared:
            similarity = float(np.dot(vectors[claim.text], vectors[statement.text]))
            scored.append((similarity + LEXICAL_WEIGHT * share, similarity, share, statement))
        best = max(score for score, *_ in scored) if scored else 0.0
        backing = sorted(
            {
                statement.n
                for score, similarity, share, statement in scored
                if score >= best - MARGIN
                and (similarity >= MIN_SIMILARITY or share >= MIN_OVERLAP)
                and all(f" {fact} " in statement.normalised for fact in claim.facts)
            }
        )
        verdicts[claim.index] = (bool(backing), backing)


def _agree_with_evidence(
    claims: list[_Claim], verdicts: list[tuple[bool, list[int]]], question: str, evidence_texts: Sequence[str]
) -> None:
    """Rule 4: a supported sentence answering ``question`` must share a value with the evidence."""
    kind = evidence.answer_kind(question)
    held = sentences.normalised(" ".join(evidence_texts))
    asked = sentences.content_words(question)
    for claim in claims:
        values = evidence.answer_values(claim.text, kind, question)
        if not verdicts[claim.index][0] or not values:
            continue
        # Only a sentence answering the question: it shares a word with it, or is a bare value
        # ("The answer is: 1"). "Laptops are replaced every 4 years" is context, not an answer.
        rest = {word for word in sentences.content_words(claim.text) if word not in values}
        if not (rest & asked or len(rest) < MIN_CONTENT_WORDS):
            continue
        if not any(f" {value} " in held for value in values):
            verdicts[claim.index] = (False, [])


def _citation_for(sentence: dict) -> str:
    return f" [{sentence['sources'][0]}]" if sentence["supported"] and sentence["sources"] else ""


def _add_citations(answer: str, spans: list[sentences.Span], checked: list[dict]) -> str:
    """``answer`` with ``[n]`` before the final punctuation of supported sentences citing nothing."""
    pieces: list[str] = []
    position = 0
    for span, sentence in zip(spans, checked, strict=True):
        marker = _citation_for(sentence) if not sentences.cited_numbers(span.text) else ""
        if not marker:
            continue
        end = span.end
        while end > span.start and answer[end - 1] in ".!?…\"'”’)":
            end -= 1
        pieces += [answer[position:end], marker]
        position = end
    pieces.append(answer[position:])
    return "".join(pieces)


def _with_citations(checked: list[dict]) -> list[dict]:
    """The sentences as ``content`` now reads them."""
    result = []
    for sentence in checked:
        text = sentence["text"]
        marker = _citation_for(sentence) if not sentences.cited_numbers(text) else ""
        if marker:
            stem = text.rstrip(".!?…\"'”’)")
            text = stem + marker + text[len(stem) :]
        result.append({**sentence, "text": text})
    return result
