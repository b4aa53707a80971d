"""Building the chat prompt for one question: instructions, numbered passages, recent history.

Contract: ``build_messages(question=..., passages=..., history=..., engine=..., params=...)``
returns a ``PromptPlan`` whose ``messages`` (chat-template input for ``Engine.stream``) satisfy
``engine.count_prompt_tokens(messages) + params.max_tokens <= engine.context_size``.

- The system message tells the model to answer only from the numbered passages, to cite them as
  ``[n]`` and to say ``NOT_FOUND_ANSWER`` when they do not hold the answer.
- Passages go into the final user message, numbered ``[n]`` with their document's title, best
  first (or best last, next to the question, with ``PROMPT_PASSAGE_ORDER=last``). ``n`` is the
  passage's own ``n`` when it has one (the number the browser shows next to the source),
  otherwise its 1-based rank. Each is cut to ``LLM_PASSAGE_MAX_TOKENS`` tokens of
  the model's tokenizer (ending in "…"): small models answer better from short passages, and
  one long passage must not crowd out the others.
- History (oldest first) is replayed as user/assistant turns. Only complete turns are kept (a
  question with no answer, e.g. a failed one, is skipped), so templates that insist on
  alternating roles accept it.
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
    title = str(_field(passage, "title") or "Untitled").strip()
    return f"[{number}] {title}\n{text}"


def _turns(history: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Complete (question, answer) pairs, oldest first."""
    turns: list[tuple[str, str]] = []
    pending: str | None = None
    for role, content in history:
        content = (content or "").strip()
        if role == "user":
            pending = content or None
        elif role == "assistant" and pending is not None and content:
            turns.append((pending, content))
            pending = None
        else:
            pending = None
    return turns


def _assemble(question: str, blocks: list[str], turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for asked, answered in turns:
        messages.append({"role": "user", "content": asked})
        messages.append({"role": "assistant", "content": answered})
    # Small models attend most to what is nearest the question: PROMPT_PASSAGE_ORDER=last puts
    # the best passage there (numbers stay by rank).
    ordered = blocks[::-1] if settings.PROMPT_PASSAGE_ORDER == "last" else blocks
    sources = "\n\n".join(ordered) if blocks else NO_PASSAGES
    messages.append({"role": "user", "content": f"Passages:\n\n{sources}\n\nQuestion: {question}"})
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
    history: Sequence[tuple[str, str]],
    engine: TokenCounter,
    params: GenerationParams,
) -> PromptPlan:
    """Plan the prompt for ``question``; see the module docstring. Raises ``PromptTooLong``."""
    question = question.strip()
    budget = engine.context_size - params.max_tokens
    check_question_fits(question, engine, params)
    limit = settings.LLM_PASSAGE_MAX_TOKENS
    blocks = [
        format_passage(_field(p, "n", None) or rank, p, trim_to_tokens(str(_field(p, "text")), limit, engine))
        for rank, p in enumerate(passages, start=1)
    ]
    # Passages come before history: keep as many as fit with no history at all, then replay the
    # most recent turns that still fit. Same result as dropping the oldest turns first and then
    # the lowest-ranked passages, but every prompt counted stays within about one turn of the
    # budget, however long the conversation.
    messages = _assemble(question, blocks, [])
    tokens = engine.count_prompt_tokens(messages)
    while tokens > budget:
        blocks.pop()  # the bare prompt fits, so this ends before blocks run out
        messages = _assemble(question, blocks, [])
        tokens = engine.count_prompt_tokens(messages)
    turns = _turns(history)
    kept = 0
    while kept < len(turns):
        candidate = _assemble(question, blocks, turns[len(turns) - kept - 1 :])
        candidate_tokens = engine.count_prompt_tokens(candidate)
        if candidate_tokens > budget:
            break
        kept += 1
        messages, tokens = candidate, candidate_tokens
    return PromptPlan(
        messages=messages,
        passages_used=list(passages[: len(blocks)]),
        history_used=2 * kept,
        prompt_tokens=tokens,
    )
