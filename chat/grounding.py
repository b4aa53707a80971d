"""The grounding check: which sentences of an answer do the sources support?

Contract: ``check(answer, sources)`` takes the answer text and the sources as ``(n, text)``
pairs (``n`` being the number the answer cites as ``[n]``) and returns a ``Grounded``:

- ``sentences``: one ``{"text", "supported", "sources"}`` per sentence of the answer, in order;
  ``sources`` lists the ``n`` of the sources that back the sentence (empty when none does, or
  for a sentence with nothing to check);
- ``content``: the answer with ``[n]`` added to each supported sentence that cites nothing.

The rule, for each sentence (citation markers set aside):

1. The not-found answer, and sentences with nothing to check (no fact and fewer than
   ``MIN_CONTENT_WORDS`` content words: "Sure.", "Here is what I found:"), are supported,
   with no sources.
2. **Facts must occur.** Every number (number words count as digits), code and name in the
   sentence (``chat.sentences.facts``) must occur in one source — the same one — or the
   sentence is unsupported: this is what catches a wrong date, amount or code.
3. **Meaning must match.** Among that source's sentences, one must be close to the sentence:
   cosine similarity of their MiniLM embeddings at least ``MIN_SIMILARITY``, or at least
   ``MIN_OVERLAP`` of the sentence's content words found in it. This catches statements the
   sources never make even when their words are all there somewhere.

The thresholds were tuned on the answer benchmark's planted wrong facts and paraphrases
(``make bench PART=answers``, docs/benchmarks.md). Embeds through ``documents.embeddings``
(a few dozen short texts): async callers run it with ``embeddings.arun``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chat import sentences
from chat.evidence import Embed, overlap, word_weights
from chat.prompting import NOT_FOUND_ANSWER
from documents import embeddings

MIN_SIMILARITY = 0.62
MIN_OVERLAP = 0.75
MIN_CONTENT_WORDS = 2
# Source sentences per answer sentence compared by embedding: the ones sharing most words.
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
class _SourceSentence:
    n: int
    text: str
    words: set[str]


def check(answer: str, sources: Sequence[tuple[int, str]], embed: Embed = embeddings.embed_texts) -> Grounded:
    """Check every sentence of ``answer`` against ``sources`` (see the module doc)."""
    normalised_sources = {n: sentences.normalised(text) for n, text in sources}
    pool = [
        _SourceSentence(n, span.text, sentences.content_words(span.text))
        for n, text in sources
        for span in sentences.split(text)
    ]
    spans = sentences.split(answer)
    verdicts: list[tuple[bool, list[int]]] = []
    pending: list[tuple[int, str, list[_SourceSentence]]] = []  # (verdict index, sentence, compared)
    for index, span in enumerate(spans):
        plain = sentences.strip_citations(span.text)
        facts = sentences.facts(plain)
        words = sentences.content_words(plain)
        if _NOT_FOUND in sentences.normalised(plain) or (not facts and len(words) < MIN_CONTENT_WORDS):
            verdicts.append((True, []))
            continue
        holders = [n for n, text in normalised_sources.items() if all(f" {fact} " in text for fact in facts)]
        if not holders:
            verdicts.append((False, []))
            continue
        weights = word_weights(plain, [s.words for s in pool])
        candidates = [s for s in pool if s.n in holders]
        by_words = [(overlap(weights, s.words), s) for s in candidates]
        matched = sorted({s.n for share, s in by_words if share >= MIN_OVERLAP})
        if matched:
            verdicts.append((True, matched))
            continue
        compared = [s for _, s in sorted(by_words, key=lambda pair: -pair[0])[:COMPARED]]
        verdicts.append((False, []))
        pending.append((index, plain, compared))
    if pending:
        _compare_meaning(pending, verdicts, embed)
    checked = [
        {"text": span.text, "supported": supported, "sources": cited}
        for span, (supported, cited) in zip(spans, verdicts, strict=True)
    ]
    return Grounded(content=_add_citations(answer, spans, checked), sentences=_with_citations(checked))


def _compare_meaning(
    pending: list[tuple[int, str, list[_SourceSentence]]], verdicts: list[tuple[bool, list[int]]], embed: Embed
) -> None:
    """Settle the sentences that words alone did not support, by embedding similarity."""
    texts = list(dict.fromkeys([plain for _, plain, _ in pending] + [s.text for *_, group in pending for s in group]))
    vectors = dict(zip(texts, embed(texts), strict=True))
    for index, plain, compared in pending:
        matched = sorted({s.n for s in compared if float(np.dot(vectors[plain], vectors[s.text])) >= MIN_SIMILARITY})
        verdicts[index] = (bool(matched), matched)


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
