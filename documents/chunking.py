"""Split extracted sections into chunks that the embedding model reads whole.

Contract: ``split_sections(sections, count_tokens=..., max_tokens=..., overlap_tokens=...)``
returns ``ChunkDraft``s in reading order such that for every draft
``draft.token_count == count_tokens(draft.text) <= max_tokens`` (``count_tokens`` includes the
model's special tokens), so the embedder never truncates anything silently. Chunks:

- never span two sections (PDF pages, heading sections);
- hold at most 16 characters per token of the budget (binds only on pathological text);
- break between paragraphs where possible, else between sentences (or lines), and only as a
  last resort inside a sentence, between words, or inside a word that alone is too long;
- start with roughly ``overlap_tokens`` of the previous chunk of the same section (whole
  sentences where they fit, else trailing words), so a passage cut in two is found from both.

Cost: every paragraph is tokenised once; only paragraphs too long for one chunk are split into
sentences and tokenised again; each chunk is checked once more. So the tokenizer reads the
text about twice, whatever its shape. With ``tokens_add_up=True`` (the tokenizer reads text
joined at white space as its parts one after the other, ``Backend.tokens_add_up``; BERT's
does) and ``count_many`` (a list counted in one call), it reads the text once: every sentence
of a section is counted in a few calls, a paragraph's count and a chunk's are sums of its
parts', and only a chunk joined inside a word (a cut word) and the trailing words an overlap
takes from a long sentence are counted on their own: about 5 tokenizer calls per SciFact
abstract instead of 14.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from documents.extraction import Section

HEADING_SEPARATOR = " › "
# Chunks hold at most this many characters per token of budget. Prose averages about four, so
# this binds only on pathological text, such as a "word" of thousands of characters that the
# tokenizer reads as one unknown token: it is still cut, not stored as one giant chunk. It also
# bounds how much text the tokenizer reads at a time when cutting a very long line.
_MAX_CHARS_PER_TOKEN = 16
# These patterns read uploaded text, so each must take time linear in it (see
# documents/filetypes.py): no quantifier inside another, and where a search tries every
# position, a lookbehind lets it give up at once inside a run it already tried from the start.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# After sentence punctuation (optionally closed by quotes or brackets) and before the next
# word, or at a line break (with the spaces before it). The line-break branch starts only where
# a run of spaces starts: tried inside a long run with no line break after it, it would scan
# the rest of the run from every position (quadratic).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*[ \t]+|(?<![ \t])[ \t]*\n\s*")
_WHITE_SPACE = re.compile(r"\s")
_WHITE_SPACE_RUN = re.compile(r"\s+")
# Sentences counted per call when counts add up: one call reads many on every core, and a huge
# section is still counted a slice at a time.
_COUNT_GROUP = 512


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    token_count: int
    location: str
    page: int | None


@dataclass
class _Unit:
    """A paragraph or a sentence: the pieces chunks are packed from."""

    text: str
    tokens: int  # without special tokens
    separator: str  # what joins it to the unit before it in the same chunk
    is_paragraph: bool


def location_for(section: Section) -> str:
    """Where a section's chunks come from: ``page 3``, ``Install › Linux``, or ``page 3 · Install``."""
    parts = []
    if section.page is not None:
        parts.append(f"page {section.page}")
    if section.headings:
        parts.append(HEADING_SEPARATOR.join(section.headings))
    return " · ".join(parts)


def split_sections(
    sections: Iterable[Section],
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    overlap_tokens: int,
    count_many: Callable[[list[str]], list[int]] | None = None,
    tokens_add_up: bool = False,
) -> list[ChunkDraft]:
    """Chunks of every section, in order (see the module docstring)."""
    splitter = _Splitter(count_tokens, max_tokens, overlap_tokens, count_many, tokens_add_up)
    drafts: list[ChunkDraft] = []
    for section in sections:
        location = location_for(section)
        for text, tokens in splitter.split(section.text):
            drafts.append(ChunkDraft(text=text, token_count=tokens, location=location, page=section.page))
    return drafts


class _Splitter:
    def __init__(
        self,
        count_tokens: Callable[[str], int],
        max_tokens: int,
        overlap_tokens: int,
        count_many: Callable[[list[str]], list[int]] | None = None,
        tokens_add_up: bool = False,
    ) -> None:
        self.count_total = count_tokens
        self.count_many = count_many or (lambda texts: [count_tokens(text) for text in texts])
        self.add_up = tokens_add_up
        self._known: dict[str, int] = {}  # tokens (special ones left out) of the section's sentences
        self.special = count_tokens("")  # e.g. [CLS] and [SEP]
        self.max_tokens = max_tokens
        self.budget = max_tokens - self.special  # tokens of text a chunk may hold
        if self.budget < 1:
            raise ValueError(f"max_tokens={max_tokens} leaves no room for text after {self.special} special tokens")
        self.overlap = max(0, min(overlap_tokens, self.budget // 2))
        self.max_chars = max(self.budget * _MAX_CHARS_PER_TOKEN, 64)

    def count(self, text: str) -> int:
        """Tokens of ``text`` without the special tokens."""
        known = self._known.get(text)
        return known if known is not None else self.count_total(text) - self.special

    def split(self, text: str) -> list[tuple[str, int]]:
        """(chunk text, token count with special tokens) for one section's text."""
        text = text.replace("\x00", "").strip()
        if not text:
            return []
        chunks: list[tuple[str, int]] = []
        for group in self._pack(self._units(text)):
            chunk_text = _join(group).strip()
            if not chunk_text:
                continue
            if self.add_up and all(unit.separator and not unit.separator.strip() for unit in group[1:]):
                # Units joined at white space: their counts add up (packing kept them in budget).
                total = sum(unit.tokens for unit in group) + self.special
            else:
                total = self.count_total(chunk_text)
            if total <= self.max_tokens:
                chunks.append((chunk_text, total))
            else:
                # Token counts are not always additive across a join (pieces of one long word,
                # other tokenizers): re-cut this chunk by measuring, so the promise still holds.
                chunks.extend((piece, tokens) for piece, tokens, _ in self._hard_split(chunk_text))
        return chunks

    # -- units ------------------------------------------------------------------------------

    def _units(self, text: str) -> list[_Unit]:
        """Paragraphs that fit a chunk, else their sentences. When counts add up, every sentence
        of the section is counted first, in a few calls, and a paragraph's count is the sum of
        its sentences'; otherwise each paragraph is counted, and a long one's sentences then."""
        self._known = {}
        paragraphs = [(paragraph, _sentences(paragraph) if self.add_up else None) for paragraph in _paragraphs(text)]
        if self.add_up:
            texts = [sentence for _, sentences in paragraphs for sentence, _ in sentences]
            for start in range(0, len(texts), _COUNT_GROUP):
                group = texts[start : start + _COUNT_GROUP]
                self._known.update(zip(group, (total - self.special for total in self.count_many(group)), strict=True))
        units: list[_Unit] = []
        for paragraph, sentences in paragraphs:
            if sentences is None:
                tokens = self.count(paragraph)
            else:
                tokens = sum(self._known[sentence] for sentence, _ in sentences)
            if tokens <= self.budget and len(paragraph) <= self.max_chars:
                units.append(_Unit(paragraph, tokens, "\n\n", True))
            else:
                units += self._sentence_units(sentences if sentences is not None else _sentences(paragraph))
        return units

    def _sentence_units(self, sentences: list[tuple[str, str]]) -> list[_Unit]:
        """The units of a paragraph too long to be one: its sentences, each cut by measuring
        if it alone is too long."""
        units: list[_Unit] = []
        for number, (sentence, separator) in enumerate(sentences):
            # The first sentence of a paragraph joins what precedes it as a new paragraph.
            separator = separator if number else "\n\n"
            tokens = self.count(sentence)
            if tokens <= self.budget and len(sentence) <= self.max_chars:
                pieces = [(sentence, tokens, separator)]
            else:
                pieces = [
                    (piece, total - self.special, piece_separator if index else separator)
                    for index, (piece, total, piece_separator) in enumerate(self._hard_split(sentence))
                ]
            for piece, piece_tokens, piece_separator in pieces:
                units.append(_Unit(piece, piece_tokens, piece_separator, False))
        return units

    # -- packing ----------------------------------------------------------------------------

    def _pack(self, units: list[_Unit]) -> list[list[_Unit]]:
        """Greedy: add units while they fit; each new chunk starts with the overlap."""
        groups: list[list[_Unit]] = []
        current: list[_Unit] = []
        used = chars = 0
        for unit in units:
            if current and (used + unit.tokens > self.budget or chars + len(unit.text) > self.max_chars):
                groups.append(current)
                # The overlap is always smaller than ``current`` (it leaves room for ``unit``,
                # which did not fit beside all of ``current``), so no chunk repeats another.
                current = self._overlap_from(current, room=self.budget - unit.tokens)
                if sum(len(u.text) for u in current) + len(unit.text) > self.max_chars:
                    current = []
                used = sum(u.tokens for u in current)
                chars = sum(len(u.text) + len(u.separator) for u in current)
            current.append(unit)
            used += unit.tokens
            chars += len(unit.text) + len(unit.separator)
        if current:
            groups.append(current)
        return groups

    def _overlap_from(self, previous: list[_Unit], room: int) -> list[_Unit]:
        """The tail of ``previous`` (about ``overlap`` tokens) that starts the next chunk."""
        budget = min(self.overlap, room)
        tail: list[_Unit] = []
        used = 0
        for unit in reversed(previous):
            left = budget - used
            if left <= 0:
                break
            if unit.tokens <= left:
                tail.insert(0, unit)
                used += unit.tokens
                continue
            partial: list[_Unit] = []
            if unit.is_paragraph:
                # Whole sentences from the end of the paragraph, as many as fit.
                for sentence, separator in reversed(_sentences(unit.text)):
                    tokens = self.count(sentence)
                    if tokens > left:
                        break
                    partial.insert(0, _Unit(sentence, tokens, separator, False))
                    left -= tokens
            if not partial and not tail:
                words = self._tail_words(unit.text, left)
                partial = [words] if words else []
            tail[:0] = partial
            break
        if tail:
            tail[0] = _Unit(tail[0].text, tail[0].tokens, "", tail[0].is_paragraph)
        return tail

    def _tail_words(self, text: str, budget: int) -> _Unit | None:
        """The longest run of trailing words of ``text`` within ``budget`` tokens."""
        # Only the last few hundred characters can fit: never tokenise a long line whole.
        limit = len(text) - budget * _MAX_CHARS_PER_TOKEN
        starts = [m.end() for m in _WHITE_SPACE_RUN.finditer(text) if m.end() >= limit and m.end() < len(text)]
        low, high, best = 0, len(starts) - 1, None
        while low <= high:  # bisect for the earliest word start whose tail fits
            middle = (low + high) // 2
            tokens = self.count(text[starts[middle] :])
            if tokens <= budget:
                best, high = (starts[middle], tokens), middle - 1
            else:
                low = middle + 1
        if best is None:
            return None
        return _Unit(text[best[0] :], best[1], "", False)

    # -- last resort: cut by measuring ------------------------------------------------------

    def _hard_split(self, text: str) -> list[tuple[str, int, str]]:
        """Cut ``text`` into pieces of at most ``max_tokens`` tokens (special tokens included),
        at white space where possible, inside a word only when one word alone is too long.

        Returns (piece, token count with special tokens, separator before the piece) triples;
        the separator is "" for the first piece and for a piece cut from inside a word.
        """
        pieces: list[tuple[str, int, str]] = []
        window = self.max_chars
        position = 0
        separator = ""
        while True:
            start = position
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                break
            if pieces:
                separator = " " if position > start else ""
            candidate = text[position : position + window]
            is_last = position + window >= len(text)
            cut = self._longest_prefix(candidate, is_last)
            piece = candidate[:cut].rstrip()
            pieces.append((piece, self.count_total(piece), separator))
            position += cut
        return pieces

    def _longest_prefix(self, text: str, is_last: bool) -> int:
        """Where to cut ``text``: the longest prefix that fits, ending at white space unless a
        single word is too long for a chunk."""
        if self.count_total(text) <= self.max_tokens:
            if is_last:
                return len(text)
            # The whole window fits but more text follows: end at its last space, if any.
            spaces = [m.start() for m in _WHITE_SPACE.finditer(text[len(text) // 2 :])]
            return len(text) // 2 + spaces[-1] if spaces else len(text)
        cut = self._largest_fitting(text, [m.start() for m in _WHITE_SPACE_RUN.finditer(text) if m.start() > 0])
        if cut is None:
            cut = self._largest_fitting(text, list(range(1, len(text))))
        if cut is None:
            raise ValueError("max_tokens is too small to hold a single character")
        return cut

    def _largest_fitting(self, text: str, cuts: list[int]) -> int | None:
        """The largest cut in ``cuts`` (ascending) whose prefix fits, by bisection."""
        low, high, best = 0, len(cuts) - 1, None
        while low <= high:
            middle = (low + high) // 2
            if self.count_total(text[: cuts[middle]]) <= self.max_tokens:
                best, low = cuts[middle], middle + 1
            else:
                high = middle - 1
        return best


def _paragraphs(text: str) -> list[str]:
    return [paragraph for paragraph in (part.strip() for part in _PARAGRAPH_BREAK.split(text)) if paragraph]


def _sentences(paragraph: str) -> list[tuple[str, str]]:
    """(sentence, separator before it) pairs; the separator is a space or a line break."""
    result: list[tuple[str, str]] = []
    position = 0
    separator = ""
    for match in _SENTENCE_BREAK.finditer(paragraph):
        # Closing quotes or brackets the break matched belong to the sentence before it.
        closing = len(match.group()) - len(match.group().lstrip("\"'”’)]"))
        sentence = paragraph[position : match.start() + closing].strip()
        if sentence:
            result.append((sentence, separator))
            separator = "\n" if "\n" in match.group() else " "
        position = match.end()
    tail = paragraph[position:].strip()
    if tail:
        result.append((tail, separator))
    return result


def _join(units: list[_Unit]) -> str:
    return "".join(unit.text if index == 0 else unit.separator + unit.text for index, unit in enumerate(units))
