"""Splitting text into sentences with their offsets, and the words and facts inside them.

Used on passages (to find the sentence that answers a question) and on answers (to check each
sentence against the sources). Everything here is linear in the text: one left-to-right scan,
and regular expressions without nested quantifiers.

Contract:

- ``split(text)`` returns ``Span(text, start, end)`` for each sentence, in order, with
  ``text == original[start:end]`` (offsets in code points) and no surrounding white space.
  A sentence ends at ``.``, ``!``, ``?`` or ``…`` (with closing quotes or brackets) followed by
  white space, unless the word before is an abbreviation ("e.g.", "Dr."), an initial ("J."),
  a list number ("2.") or the next word starts in lower case. A blank line, a line that starts
  a list item, and a line break after a short line with no final punctuation (a heading) end
  a sentence too; other line breaks (text wrapped by a PDF) do not. Decimals ("3.5") never do.
- ``content_words(text)`` are the lower-cased words that carry meaning (stop words removed,
  crudely stemmed), for lexical overlap.
- ``facts(text)`` are the checkable tokens of a sentence: numbers (number words up to a
  hundred count as digits), codes mixing letters and digits, and capitalised names that do
  not start the sentence, and e-mail and web addresses as wholes — each normalised so that
  ``fact in normalised(source)`` tests it ("person@brightwater.example" is not backed by a
  source that only gives "people@brightwater.example", though both words occur there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TERMINALS = ".!?…"
_CLOSERS = "\"'”’)]»"
_ABBREVIATIONS_TEXT = """e.g i.e etc vs cf al approx ca dr mr mrs ms prof st jr sr no nr fig figs eq ed eds
vol pp p jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun inc ltd co corp dept est
min max resp incl excl u.s u.k a.m p.m"""
_ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*•–]|\d{1,3}[.)]|[a-z][.)])[ \t]")
_HEADING_MAX_CHARS = 60
# Words; inside one, an apostrophe, dot or hyphen ("don't", "3.5", "QX-7731") or a thousands
# separator ("1,250"). Each repetition starts with a character the word part cannot match.
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+|,\d{3}(?!\d))*")
_CITATION = re.compile(r"\[\d{1,3}\]")
# An e-mail or web address; each repetition starts with a character the part before cannot match.
_ADDRESS = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\bhttps?://[^\s<>()\[\]]+")

_STOP_WORDS_TEXT = """a about above after again against all also am an and any are as at be because been
before being below between both but by can could did do does doing down during each either every few for from
further had has have having he her here hers herself him himself his how i if in into is it its itself just may me
might more most must my myself no nor not now of off on once only or other our ours ourselves out over own please
same shall she should so some such than that the their theirs them themselves then there these they this those
through to too under until up upon us very was we were what when where which while who whom whose why will with
within without would you your yours yourself yourselves answer passage passages question according source sources
document documents"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_NUMBERS_TEXT = """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty"""
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(_NUMBERS_TEXT.split())}
_NUMBER_WORDS.update(
    {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90"}
)
_NUMBER_WORDS["hundred"] = "100"


@dataclass(frozen=True)
class Span:
    text: str
    start: int
    end: int

    def as_dict(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end}


def split(text: str) -> list[Span]:
    """The sentences of ``text`` with their offsets (see the module doc)."""
    spans: list[Span] = []
    start = 0
    first = -1  # the current sentence's first non-space position, found once per sentence
    length = len(text)
    i = 0
    while i < length:
        char = text[i]
        if char in _TERMINALS:
            end = i + 1
            while end < length and (text[end] in _CLOSERS or text[end] in _TERMINALS):
                end += 1
            if end == length or text[end].isspace():
                if first < start:
                    first = _first(text, start, i)
                if _ends_sentence(text, first, i, end):
                    _add(spans, text, start, end)
                    start = end
            i = end
            continue
        if char == "\n":
            if first < start:
                first = _first(text, start, i)
            if first == i:  # only white space so far: the sentence has not begun
                start = i + 1
            elif _line_break_ends_sentence(text, start, first, i):
                _add(spans, text, start, i)
                start = i + 1
        i += 1
    _add(spans, text, start, length)
    return spans


def _first(text: str, start: int, limit: int) -> int:
    """The first non-space position in ``text[start:limit]`` (``limit`` if none)."""
    while start < limit and text[start].isspace():
        start += 1
    return start


def _add(spans: list[Span], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end and any(c.isalnum() for c in text[start:end]):
        spans.append(Span(text[start:end], start, end))


def _ends_sentence(text: str, first: int, terminal: int, end: int) -> bool:
    """Whether the punctuation at ``terminal`` ends the sentence whose first character is at ``first``."""
    if text[terminal] != ".":
        return True
    word_start = terminal
    while word_start > first and not text[word_start - 1].isspace() and text[word_start - 1] not in "([\"'“‘":
        word_start -= 1
    word = text[word_start:terminal].lower()
    if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return False
    if word.isdigit() and len(word) <= 3 and word_start == first:
        return False  # "2." opening a numbered list item
    following = end
    while following < len(text) and text[following] in " \t":
        following += 1
    # "e.g. the" or "approx. 40": the next word in lower case (or a digit) continues the sentence
    # when the word before the dot is short enough to be an unlisted abbreviation.
    return not (following < len(text) and text[following].islower() and len(word) <= 4)


def _line_break_ends_sentence(text: str, start: int, first: int, newline: int) -> bool:
    """Whether the line break at ``newline`` ends the sentence that began at ``start`` (its first
    character at ``first``)."""
    line_start = text.rfind("\n", 0, newline) + 1  # scans back over this one line only
    line = text[max(line_start, start) : newline].strip()
    if not line:
        return False  # nothing since the last break: the blank line itself is not a sentence
    after = newline + 1
    if after >= len(text):
        return True
    next_line_end = text.find("\n", after)
    next_line = text[after : next_line_end if next_line_end >= 0 else len(text)]
    if not next_line.strip():
        return True  # a blank line ends a paragraph
    if _LIST_ITEM.match(next_line):
        return True
    # A short line of its own (not the tail of a line where a sentence ended), with no final
    # punctuation, followed by a capitalised line, is a heading.
    return (
        first >= line_start
        and len(line) <= _HEADING_MAX_CHARS
        and not text[line_start:first].strip()  # the sentence is the whole line
        and line[-1] not in _TERMINALS + ",;:"
        and next_line.lstrip()[:1].isupper()
    )


def strip_citations(text: str) -> str:
    """``text`` without ``[n]`` markers."""
    return _CITATION.sub("", text)


def cited_numbers(text: str) -> list[int]:
    return [int(marker[1:-1]) for marker in _CITATION.findall(text)]


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def stem(word: str) -> str:
    """A crude English stem, enough to match "machines" with "machine" and "descaled" with
    "descale"; number words become digits."""
    word = word.lower().replace("’", "'")
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    if len(word) <= 4 or not word.isalpha():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ingly", "edly", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and not word.endswith("ss") and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def content_words(text: str) -> set[str]:
    """Meaningful words of ``text``, lower-cased and stemmed (see the module doc)."""
    found = set()
    for word in words(strip_citations(text)):
        if word.lower() in STOP_WORDS:
            continue
        found.add(stem(word))
        if "-" in word and not any(c.isdigit() for c in word):  # "cut-out" also counts as "cut", "out"
            found.update(stem(part) for part in word.split("-") if part.lower() not in STOP_WORDS)
    return found


def normalised(text: str) -> str:
    """``text`` as facts are looked up in it: lower case, number words as digits, thousands
    separators dropped, single spaces."""
    tokens = []
    for word in words(text):
        lowered = _without_possessive(word.lower())
        lowered = _NUMBER_WORDS.get(lowered, lowered)
        if _is_number(lowered):
            lowered = lowered.replace(",", "")
        tokens.append(lowered)
        if "-" in lowered and not any(c.isdigit() for c in lowered):
            tokens += lowered.split("-")  # "lindqvist-clinic-faq" also holds "lindqvist"
    return " " + " ".join(tokens) + " "


def _without_possessive(word: str) -> str:
    return word[:-2] if word.endswith(("'s", "’s")) else word


def _is_number(token: str) -> bool:
    return bool(token) and token[0].isdigit() and all(c.isdigit() or c in ".,-" for c in token)


def facts(text: str) -> list[str]:
    """The checkable tokens of one sentence, normalised (see the module doc)."""
    text = strip_citations(text)
    found = [normalised(address.rstrip(".,;:!?")).strip() for address in _ADDRESS.findall(text)]
    marker = _LIST_ITEM.match(text)
    tokens = words(text[marker.end() :] if marker else text)
    for index, word in enumerate(tokens):
        lowered = _without_possessive(word.lower())
        if lowered in _NUMBER_WORDS and lowered not in ("one", "zero"):
            found.append(_NUMBER_WORDS[lowered])
        elif _is_number(lowered):
            found.append(lowered.replace(",", "").rstrip(".-"))
        elif any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
            found.append(lowered)  # a code such as HARBOR999CB7 or QX-7731
        elif index > 0 and word[:1].isupper() and len(word) > 1 and lowered not in STOP_WORDS | _ABBREVIATIONS:
            found.append(lowered)  # a name, not merely the sentence's first word
        elif len(word) >= 2 and word.isupper() and lowered not in STOP_WORDS:
            found.append(lowered)  # an acronym, even first
    return list(dict.fromkeys(found))
