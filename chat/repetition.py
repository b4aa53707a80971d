"""The repetition guard: small models sometimes repeat one phrase until ``max_tokens`` runs out.

``loop_start(text)`` returns where to cut ``text`` when its last ``LOOP_CHARS`` characters have
occurred ``LOOP_TIMES`` times — the end of the first copy of the repeated stretch — or
``None``. Cutting there keeps what the model said before it started repeating itself, and the
repeated phrase once. It costs a few scans of ``text``, so checking after every token stays
linear in the answer per token.

``trim_to_sentence(text)`` drops a trailing unfinished sentence, when a finished one precedes it.
"""

from __future__ import annotations

from chat import sentences

LOOP_CHARS = 30
LOOP_TIMES = 3


def loop_start(text: str) -> int | None:
    """Where the repetition begins (see the module doc), or ``None`` when ``text`` does not loop."""
    if len(text) < LOOP_CHARS * LOOP_TIMES:
        return None
    tail = text[-LOOP_CHARS:]
    if tail.isspace() or text.count(tail) < LOOP_TIMES:
        return None
    first = text.find(tail)
    period = text.find(tail, first + 1) - first
    # Walk back to where the periodic stretch begins, then keep one period of it.
    start = first
    while start > 0 and text[start - 1] == text[start - 1 + period]:
        start -= 1
    return start + period


def trim_to_sentence(text: str) -> str:
    """``text`` up to the end of its last complete sentence (all of it if it has none)."""
    spans = sentences.split(text)
    if len(spans) > 1 and spans[-1].text[-1] not in ".!?…":
        return text[: spans[-2].end]
    return text.rstrip()
