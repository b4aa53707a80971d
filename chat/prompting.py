"""Building the chat prompt for one question: instructions, earlier turns, numbered passages.

Contract: ``build_messages(question=..., passages=..., turns=..., engine=..., params=...)``
returns a ``PromptPlan`` whose ``messages`` (chat-template input for ``Engine.stream``) satisfy
``engine.count_prompt_tokens(messages) + params.max_tokens <= engine.context_size``.

- The system message tells the model to answer only from the numbered passages, to cite them as
  ``[n]`` and to say ``NOT_FOUND_ANSWER`` when they do not hold the answer.
- Each question goes in a user message with its passages before it, numbered ``[n]`` with their
  document's title, best first (or best last, next to the question, with
  ``PROMPT_PASSAGE_ORDER=last``). ``n`` is the passage's own ``n`` when it has one (the number
  the browser shows next to the source; numbers are kept for the whole conversation, so one
  passage has one number), otherwise its 1-based rank. Each is cut to
  ``LLM_PASSAGE_MAX_TOKENS`` tokens of the model's tokenizer (ending in "…"): small models
  answer better from short passages, and one long passage must not crowd out the others.
- Earlier turns (``Turn``, oldest first) are replayed exactly as their questions were asked:
  each question with the passages it came with, then its answer. So the prompt of a follow-up
  begins with the prompt of the question before it, and the model's cache of that prompt is
  reused instead of read again (chat/llm/decoder.py). A passage the prompt already holds
  word for word is not repeated: it is named, ``[n] Title (given above)``. One it holds
  another excerpt of (a follow-up's evidence lies elsewhere in it) is shown again: naming it
  too halved the answer benchmark's correct follow-up answers (2/8 against 4/8, fda568d).
- When everything does not fit: drop the oldest turn first, then the lowest-ranked passage.
  When even the bare question (instructions + question, nothing else) does not fit, raise
  ``PromptTooLong`` with a message for the user (``check_question_fits`` alone does that check).

``passages`` are objects or mappings with ``title`` and ``text`` (and optionally ``n``);
``PromptPlan.passages_used`` returns the same objects, untrimmed, for the citations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from chat import sentences
from chat.llm import GenerationParams, PromptTooLong

NOT_FOUND_ANSWER = "I could not find this in the knowledge base."

SYSTEM_PROMPT = (
    "You are the assistant of a knowledge base. Answer the user's question using only the numbered "
    "passages given with the question. Cite every passage you use by its number in square brackets, "
    "like [1] or [2][3]. If the passages do not contain the answer, reply exactly: "
    f'"{NOT_FOUND_ANSWER}" Never invent facts. Be concise.'
)
NO_PASSAGES = "(No passages were found for this question.)"
ELLIPSIS = " …"


class TokenCounter(Protocol):
    context_size: int

    def count_tokens(self, text: str) -> int: ...

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int: ...


@dataclass(frozen=True)
class PromptPlan:
    messages: list[dict[str, str]]
    passages_used: list[Any]  # the passages in the prompt, best first (a prefix of the input)
    history_used: int  # history messages replayed (the most recent ones)
    prompt_tokens: int  # engine.count_prompt_tokens(messages)


def _field(passage: Any, name: str, default: Any = "") -> Any:
    if isinstance(passage, Mapping):
        return passage.get(name, default)
    return getattr(passage, name, default)


def trim_to_tokens(text: str, limit: int, engine: TokenCounter) -> str:
    """``text`` cut at a word boundary so that it, with a trailing "…", holds at most ``limit`` tokens."""
    text = text.strip()
    if engine.count_tokens(text) <= limit:
        return text
    low, high = 0, len(text)  # longest prefix (in characters) that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if engine.count_tokens(text[:middle].rstrip() + ELLIPSIS) <= limit:
            low = middle
        else:
            high = middle - 1
    prefix = text[:low]
    space = prefix.rfind(" ")
    if space > low * 0.8:  # cutting mid-word only when the last word is very long
        prefix = prefix[:space]
    return prefix.rstrip() + ELLIPSIS


def format_passage(number: int, passage: Any, text: str) -> str:
    # The title only: with the location (a heading path) too, small models copy the headings
    # into their answers (measured on the answer benchmark).
    return f"[{number}] {_title(passage)}\n{text}"


def _title(passage: Any) -> str:
    return str(_field(passage, "title") or "Untitled").strip()


@dataclass(frozen=True)
class Turn:
    """An earlier question and its answer, replayed to the model; ``passages`` are the ones the
    question came with (each with ``n``, ``title`` and ``text`` as the model read them)."""

    question: str
    answer: str
    passages: Sequence[Any] = ()


@dataclass(frozen=True)
class _Block:
    number: int
    title: str
    text: str  # as the model reads it, cut to LLM_PASSAGE_MAX_TOKENS

    def shown(self, held: dict[int, str]) -> str:
        """The block, given what the prompt holds of each passage already (updated): all of it
        the first time, its name when every sentence is held, else the sentences not held yet."""
        before = held.get(self.number)
        held[self.number] = self.text if before is None else f"{before}\n{self.text}"
        if before is None:
            return format_passage(self.number, self, self.text)
        new = [span.text for span in sentences.split(self.text) if span.text not in before]
        if not new:
            return f"[{self.number}] {self.title} (given above)"
        return f"[{self.number}] {self.title} (more)\n{' '.join(new)}"


def _blocks(passages: Sequence[Any], engine: TokenCounter) -> list[_Block]:
    limit = settings.LLM_PASSAGE_MAX_TOKENS
    return [
        _Block(_field(p, "n", None) or rank, _title(p), trim_to_tokens(str(_field(p, "text")), limit, engine))
        for rank, p in enumerate(passages, start=1)
    ]


def _asking(question: str, blocks: list[_Block], held: dict[int, str]) -> str:
    """The user message of one question; ``held``: what earlier messages hold of each passage."""
    shown = [block.shown(held) for block in blocks]
    # Small models attend most to what is nearest the question: PROMPT_PASSAGE_ORDER=last puts
    # the best passage there (numbers stay by rank).
    ordered = shown[::-1] if settings.PROMPT_PASSAGE_ORDER == "last" else shown
    sources = "\n\n".join(ordered) if shown else NO_PASSAGES
    return f"Passages:\n\n{sources}\n\nQuestion: {question}"


def _assemble(question: str, blocks: list[_Block], turns: Sequence[tuple[str, str, list[_Block]]]) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    held: dict[int, str] = {}
    for asked, answered, turn_blocks in turns:
        messages.append({"role": "user", "content": _asking(asked, turn_blocks, held)})
        messages.append({"role": "assistant", "content": answered})
    messages.append({"role": "user", "content": _asking(question, blocks, held)})
    return messages


def check_question_fits(question: str, engine: TokenCounter, params: GenerationParams) -> None:
    """Raise ``PromptTooLong`` unless the instructions and ``question`` alone, with
    ``params.max_tokens`` reserved for the answer, fit the model's context."""
    bare_tokens = engine.count_prompt_tokens(_assemble(question.strip(), [], []))
    if bare_tokens + params.max_tokens > engine.context_size:
        raise PromptTooLong(
            f"Your question is too long: {bare_tokens} tokens, the model's context holds {engine.context_size} "
            f"tokens including {params.max_tokens} reserved for the answer. Shorten the question or lower "
            "max tokens."
        )


def build_messages(
    *,
    question: str,
    passages: Sequence[Any],
    turns: Sequence[Turn],
    engine: TokenCounter,
    params: GenerationParams,
) -> PromptPlan:
    """Plan the prompt for ``question``; see the module docstring. Raises ``PromptTooLong``."""
    question = question.strip()
    budget = engine.context_size - params.max_tokens
    check_question_fits(question, engine, params)
    blocks = _blocks(passages, engine)
    # Passages come before earlier turns: keep as many as fit with no turn at all, then replay
    # the most recent turns that still fit. Same result as dropping the oldest turns first and
    # then the lowest-ranked passages, but every prompt counted stays within about one turn of
    # the budget, however long the conversation.
    messages = _assemble(question, blocks, [])
    tokens = engine.count_prompt_tokens(messages)
    while tokens > budget:
        blocks.pop()  # the bare prompt fits, so this ends before blocks run out
        messages = _assemble(question, blocks, [])
        tokens = engine.count_prompt_tokens(messages)
    replayable = [
        (turn.question.strip(), turn.answer.strip(), turn.passages)
        for turn in turns
        if turn.question.strip() and turn.answer.strip()
    ]
    kept: list[tuple[str, str, list[_Block]]] = []
    for asked, answered, turn_passages in reversed(replayable):
        candidate_turns = [(asked, answered, _blocks(turn_passages, engine)), *kept]
        candidate = _assemble(question, blocks, candidate_turns)
        candidate_tokens = engine.count_prompt_tokens(candidate)
        if candidate_tokens > budget:
            break
        kept, messages, tokens = candidate_turns, candidate, candidate_tokens
    return PromptPlan(
        messages=messages,
        passages_used=list(passages[: len(blocks)]),
        history_used=2 * len(kept),
        prompt_tokens=tokens,
    )
