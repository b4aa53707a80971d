"""The answer use case: retrieve → quote the evidence → build the prompt → stream → check → save.

Contract
--------
``await answer(question, params, user=..., emit=...)`` answers a saved question ``Message``
and sends the events of docs/websocket-protocol.md through ``emit`` (an async callable taking
one event dict, built by ``chat.protocol``): ``sources`` → ``evidence`` → ``queued``* →
``token``* → ``done``, or ``error`` instead of ``done`` when the model fails. It returns the
saved assistant ``Message`` (``None`` only after a failure it could not save) and never
raises, except ``asyncio.CancelledError``: cancelling the task that runs it stops
generation, saves the partial answer as ``stopped`` (checked like a finished one), sends
``done`` and re-raises.

Steps:

1. **Retrieve** only what ``user`` may read. A follow-up ("And what is its hub height?") is
   searched together with the previous question and the names the previous answer's evidence
   gave ("How much does it cost?" after "the best-selling product was the Loop S2": the
   Loop S2), and its evidence is looked for with those names too (``follow_up_context``,
   ``retrieval_query``): no extra model call.
   ``FOLLOWUP_REWRITE=llm`` asks the model to rewrite it into a standalone question instead.
   Nothing relevant — no passage above the relevance floor, or ``answerable`` says no — the
   honest not-found answer is saved without calling the model.
2. **Fewer, better passages**: passages scoring below ``ANSWER_RELATIVE_SCORE`` × the best
   one's are left out (of the prompt and of the sources shown), except one of the same
   documents holding the only answer of the kind asked (``with_best_evidence``). With
   ``PROMPT_PASSAGE_SCOPE=evidence`` the model reads only each passage's evidence sentence
   and the sentences around it (``evidence.around``).
3. **Evidence** (``chat.evidence``, found right after retrieval): the best sentence of each
   passage is highlighted in ``sources``, and the best one overall is sent at once as
   ``evidence``, before the answer waits for the model.
4. **Stream** the model's answer; the repetition guard (``chat.repetition``) ends it when the
   model starts looping and keeps what came before (``finish_reason`` ``loop``).
5. **Check** every sentence against the sources (``chat.grounding``); supported sentences
   that cite nothing get their ``[n]``. Saved with the answer and sent in ``done``.

Embedding work (query, evidence, grounding) runs in the embedding module's own thread;
database work runs in small ``database_sync_to_async`` calls.

``await check_question(question, params)`` raises ``PromptTooLong`` when the question cannot fit
the model's context even with no passages and no history (the caller refuses it before saving).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

from channels.db import database_sync_to_async
from django.conf import settings

from chat import evidence, grounding, llm, prompting, protocol, repetition, sentences, services
from chat.models import Conversation, EarlierTurns, GenerationStats, Message, MessageStatus, numbered
from documents import embeddings, retrieval
from documents.models import Scope
from kb_site import metrics

log = logging.getLogger(__name__)

Emit = Callable[[dict], Awaitable[None]]

# Words that point back at an earlier question ("its", "that one", "and ...").
_REFERRING_TEXT = """it its it's they them their theirs this that these those he she him his her hers there one
ones same also and but then"""
_REFERRING = frozenset(_REFERRING_TEXT.split())
FOLLOW_UP_MAX_WORDS = 2
REWRITE_PROMPT = (
    "Rewrite the follow-up question so that it can be understood without the previous question. "
    "Reply with the rewritten question only."
)
REWRITE_MAX_TOKENS = 48


async def check_question(question: str, params: llm.GenerationParams) -> None:
    """``PromptTooLong`` when ``question`` alone cannot fit (see the module doc)."""
    try:
        engine = await llm.aget_engine()
    except llm.LLMUnavailable:
        return  # reported, and recorded as a failed answer, when the answer is attempted
    await asyncio.to_thread(prompting.check_question_fits, question, engine, params)


def is_follow_up(question: str) -> bool:
    """Whether ``question`` likely leans on the previous one: it is short, or refers back."""
    words = [word.lower() for word in sentences.words(question)]
    return len(sentences.content_words(question)) <= FOLLOW_UP_MAX_WORDS or any(w in _REFERRING for w in words)


def follow_up_context(previous: str | None, previous_evidence: str = "") -> str:
    """The names and codes the previous answer's evidence gave that its question did not ask
    about: what "it" in a follow-up most likely is."""
    return " ".join(evidence.answer_values(previous_evidence, "entity", previous or ""))


def retrieval_query(question: str, previous: str | None, previous_evidence: str = "") -> str:
    """What to search for: a follow-up together with the question before it and the names its
    answer's evidence gave (``follow_up_context``)."""
    if not previous or not is_follow_up(question):
        return question
    return "\n".join(filter(None, [previous, question, follow_up_context(previous, previous_evidence)]))


def evidence_question(question: str, previous: str | None, previous_evidence: str = "") -> str:
    """What the evidence must answer: a follow-up with the names of the previous answer."""
    if not previous or not is_follow_up(question):
        return question
    return " ".join(filter(None, [question, follow_up_context(previous, previous_evidence)]))


async def search(user, query: str, scope: Scope | None = None):
    """``(hits, query vector)``: ``retrieval.search`` within ``scope``, with the query embedded
    in the embedding thread."""
    with metrics.RETRIEVAL.time():
        vector = await embeddings.aembed_query(query)
        hits = await database_sync_to_async(retrieval.search)(user, query, vector=vector, scope=scope)
    return hits, vector


def keep_relevant(hits: list) -> list:
    """The hits scoring at least ``ANSWER_RELATIVE_SCORE`` × the best hit's score."""
    if not hits:
        return hits
    floor = settings.ANSWER_RELATIVE_SCORE * hits[0].score
    return [hit for hit in hits if hit.score >= floor]


def with_best_evidence(hits: list, relevant: int, found: evidence.Evidence) -> tuple[list, evidence.Evidence]:
    """The first ``relevant`` of ``hits`` (``keep_relevant``), and the hit holding the best
    evidence (``found``, over all of ``hits``) when it ranks below them: a whole passage ranks
    by everything it says, its evidence by the one sentence that answers. "Who must approve
    flights for Brightwater employees?" ranks a handbook's introduction far above its travel
    rules, but the travel rules say who."""
    kept = list(range(relevant))
    if found.best is not None and found.best[1] > relevant:
        kept.append(found.best[1] - 1)
    return [hits[index] for index in kept], found.only(kept)


def answerable(question: str, hits: list, found: evidence.Evidence) -> bool:
    """Whether ``hits`` can answer ``question``. Not when the question names something (a
    name, code or number) that no passage mentions ("the Bellhaven vault" over the Zerelda
    handbook), nor when the best evidence is weak (``Evidence.weak``) *and* the question has
    content words no passage contains ("parental leave" over a handbook that only speaks of
    holidays): a small model would answer about the wrong thing."""
    if missing := evidence.missing_facts(question, hits):
        log.info("no passage mentions %d of the question's names, codes or numbers", len(missing))
        return False
    if found.weak and (unmatched := evidence.unmatched_words(question, hits)):
        log.info("weak evidence, and no passage holds %d of the question's words", len(unmatched))
        return False
    return True


@database_sync_to_async
def _earlier_turns(question: Message, reader) -> EarlierTurns:
    return question.conversation.messages.earlier_turns(question, reader)


_save = database_sync_to_async(services.save_assistant_message)


@dataclass
class _Answer:
    """What one answer has produced so far: saved whatever way it ends."""

    conversation: Conversation
    params: llm.GenerationParams
    question: str = ""
    owner: int | None = None  # who asked: their turn in the model's round-robin queue
    pieces: list[str] = field(default_factory=list)
    sources: list = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # each source's number in the conversation
    highlights: list[list[dict]] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    engine_stats: dict = field(default_factory=dict)  # filled by the engine; final when the stream ends
    looped_at: int | None = None
    saving: asyncio.Future | None = None  # the final check and save, once started

    @property
    def text(self) -> str:
        text = "".join(self.pieces)
        if self.looped_at is not None:
            return repetition.trim_to_sentence(text[: self.looped_at])
        return text

    @property
    def finish_reason(self) -> str:
        return "loop" if self.looped_at is not None else self.engine_stats.get("finish_reason") or ""

    @property
    def stats(self) -> GenerationStats:
        return GenerationStats.from_engine(self.engine_stats)

    def finish(self, status: str = MessageStatus.COMPLETE) -> asyncio.Future:
        """Start the final check and save. It runs to the end even if the task awaiting it is
        cancelled (callers shield it)."""
        self.saving = asyncio.ensure_future(self._check_and_save(status))
        return self.saving

    async def _check_and_save(self, status: str) -> tuple[Message, grounding.Grounded]:
        pairs = [(n, str(source.text), str(source.title)) for n, source, _ in numbered(self.sources, (), self.numbers)]
        # Rule 4 of the check (the answer agrees with the evidence) needs evidence to agree with.
        quoted = [mark["text"] for marks in self.highlights for mark in marks] if self.evidence else []
        check = functools.partial(grounding.check, question=self.question, evidence_texts=quoted)
        checked = await embeddings.arun(check, self.text, pairs) if pairs and self.text else None
        if checked is None:
            return await self.save(status=status), None
        saved = await self.save(
            status=status, content=checked.content, grounding=checked.sentences, generated=self.text
        )
        return saved, checked

    async def save(self, **fields) -> Message:
        """Save the answer as it stands; ``fields`` override or add to what it has produced."""
        recorded = {
            "content": self.text,
            "sources": self.sources,
            "numbers": self.numbers,
            "highlights": self.highlights,
            "params": self.params.to_dict(),
            "stats": self.stats,
            "finish_reason": self.finish_reason,
            "evidence": self.evidence,
        }
        return await _save(self.conversation, **(recorded | fields))


async def answer(
    question: Message, params: llm.GenerationParams, *, user, emit: Emit, scope: Scope | None = None
) -> Message | None:
    """Answer ``question`` from ``scope`` (None: everything ``user`` may read); see the module
    docstring for the events and guarantees."""
    state = _Answer(conversation=question.conversation, params=params, owner=user.pk)
    try:
        earlier = await _earlier_turns(question, user)
        previous, previous_evidence = earlier.previous_question, earlier.previous_evidence
        rewritten = await _rewrite(question.content, previous, params, owner=state.owner)
        sources = await find_sources(
            user,
            question.content,
            previous=previous,
            previous_evidence=previous_evidence,
            rewritten=rewritten,
            scope=scope,
        )
        state.question = sources.asked  # what the evidence answers, and the answer is checked against
        if not sources.hits:
            # Nothing in the knowledge base is relevant: say so honestly, without the model.
            await emit(protocol.sources([]))
            await emit(protocol.token(prompting.NOT_FOUND_ANSWER))
            state.pieces.append(prompting.NOT_FOUND_ANSWER)
            return await _done(state, emit)
        await _generate(state, question.content, sources, earlier, emit)
        return await _done(state, emit)
    except asyncio.CancelledError:
        # A stop that arrives while the finished answer is being saved keeps that answer as it is.
        if state.saving is None:
            state.finish(MessageStatus.STOPPED)
            log.info("answer stopped after %d pieces in conversation %s", len(state.pieces), question.conversation_id)
        message, checked = await asyncio.shield(state.saving)
        _record(state, "stopped")
        await emit(protocol.done(message, state.stats))
        raise
    except llm.LLMError as exc:
        return await _fail(state, exc.message, emit)
    except Exception:
        log.exception("answer failed in conversation %s", question.conversation_id)
        return await _fail(state, "The answer failed because of an internal error.", emit)


@dataclass(frozen=True)
class Sources:
    """What ``find_sources`` found for a question: ``hits`` to answer from (empty: the
    not-found answer, without the model), their ``evidence``, and ``asked``, the question the
    evidence answers (a follow-up with its context)."""

    hits: list
    evidence: evidence.Evidence | None
    asked: str


async def find_sources(
    user,
    question: str,
    *,
    previous: str | None = None,
    previous_evidence: str = "",
    rewritten: str | None = None,
    scope: Scope | None = None,
) -> Sources:
    """Search, find the evidence, keep the relevant passages and decide whether they can
    answer ``question`` at all: the first half of ``answer``, shared with the benchmarks so
    they measure the prompts the server builds."""
    query = rewritten or retrieval_query(question, previous, previous_evidence)
    hits, vector = await search(user, query, scope)
    asked = rewritten or evidence_question(question, previous, previous_evidence)
    found = None
    if hits:
        relevant = len(keep_relevant(hits))
        found = await embeddings.arun(functools.partial(evidence.find, relevant=relevant), asked, vector, hits)
        hits, found = with_best_evidence(hits, relevant, found)
    if hits and not answerable(question, hits, found):
        hits = []
    return Sources(hits=hits, evidence=found, asked=asked)


def build_prompt(
    question: str,
    sources: Sources,
    turns: list[prompting.Turn],
    engine,
    params: llm.GenerationParams,
    numbers: Sequence[int] = (),
) -> prompting.PromptPlan:
    """The messages for the model (``prompting.build_messages``) from ``find_sources``'s passages,
    numbered ``numbers`` (default 1, 2, ...), after the earlier ``turns`` (``replayed``)."""
    shown = [as_read(hit, n, marks) for n, hit, marks in numbered(sources.hits, sources.evidence.highlights, numbers)]
    return prompting.build_messages(question=question, passages=shown, turns=turns, engine=engine, params=params)


def as_read(passage, n: int, marks: list[dict]) -> SimpleNamespace:
    """``passage`` as the model reads it, numbered ``n``: with ``PROMPT_PASSAGE_SCOPE=evidence``
    only its answering sentence (``marks``) and the sentences around it (``evidence.around``)."""
    if settings.PROMPT_PASSAGE_SCOPE == "evidence":
        passage = evidence.around(passage, marks)
    return SimpleNamespace(n=n, title=passage.title, text=passage.text)


def replayed(earlier: EarlierTurns) -> list[prompting.Turn]:
    """The earlier turns as the model read them: each question with its cited passages, read
    as they were then (numbers, evidence sentences), and its answer."""
    return [
        prompting.Turn(turn.question, turn.answer, [as_read(c, c.n, c.highlight) for c in turn.citations])
        for turn in earlier.turns
    ]


async def _done(state: _Answer, emit: Emit) -> Message:
    message, _ = await asyncio.shield(state.finish())
    _record(state, "complete")
    await emit(protocol.done(message, state.stats))
    return message


def _record(state: _Answer, outcome: str) -> None:
    """The answer's outcome and timings: the metrics (kb_site.metrics) and one log line (no
    question or answer text)."""
    stats = state.stats
    metrics.record_answer(outcome, stats, state.engine_stats.get("queue_ms"))
    log.info(
        "answer %s in conversation %s: %s sources, %s prompt + %s completion tokens, ttft %s ms",
        outcome,
        state.conversation.public_id,
        len(state.sources),
        stats.prompt_tokens,
        stats.completion_tokens,
        stats.ttft_ms,
        extra={
            "event": "answer",
            "outcome": outcome,
            "conversation": str(state.conversation.public_id),
            "sources": len(state.sources),
            "finish_reason": state.finish_reason,
            "queue_ms": state.engine_stats.get("queue_ms"),
            **{key: value for key, value in stats.as_dict().items() if value is not None},
        },
    )


async def _generate(state: _Answer, question: str, sources: Sources, earlier: EarlierTurns, emit: Emit) -> None:
    """Quote the evidence, build the prompt and stream the model's answer into ``state``."""
    engine = await llm.aget_engine()
    hits, found = sources.hits, sources.evidence
    numbers = earlier.number([hit.chunk_id for hit in hits])
    plan = await asyncio.to_thread(
        lambda: build_prompt(question, sources, replayed(earlier), engine, state.params, numbers)
    )
    used = len(plan.passages_used)  # a prefix: passages that did not fit the context are dropped
    state.sources, state.highlights, state.numbers = hits[:used], found.highlights[:used], numbers[:used]
    await emit(protocol.sources(state.sources, state.highlights, state.numbers))
    if found.best is not None and found.best[1] <= used:
        text, rank = found.best
        state.evidence = {"text": text, "source": numbers[rank - 1]}
        await emit(protocol.evidence(text, numbers[rank - 1]))

    async def on_queue_position(position: int) -> None:
        await emit(protocol.queued(position))

    async with engine.stream(
        plan.messages, state.params, owner=state.owner, on_queue_position=on_queue_position, stats=state.engine_stats
    ) as stream:
        streamed = ""
        async for piece in stream:
            state.pieces.append(piece)
            await emit(protocol.token(piece))
            streamed += piece
            state.looped_at = repetition.loop_start(streamed)
            if state.looped_at is not None:
                log.info("the model started repeating itself; answer cut at %d characters", state.looped_at)
                break  # leaving the stream stops generation at once


async def _rewrite(question: str, previous: str | None, params: llm.GenerationParams, *, owner=None) -> str | None:
    """``FOLLOWUP_REWRITE=llm``: the model's standalone version of a follow-up, or None."""
    if settings.FOLLOWUP_REWRITE != "llm" or not previous or not is_follow_up(question):
        return None
    messages = [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"Previous question: {previous}\nFollow-up question: {question}"},
    ]
    rewrite_params = llm.GenerationParams(mode="greedy", max_tokens=min(REWRITE_MAX_TOKENS, params.max_tokens))
    try:
        engine = await llm.aget_engine()
        async with engine.stream(messages, rewrite_params, owner=owner) as stream:
            rewritten = "".join([piece async for piece in stream]).strip().splitlines()
    except llm.LLMError as exc:
        log.warning("follow-up rewrite failed, searching with context instead: %s", exc.message)
        return None
    return rewritten[0].strip() if rewritten and rewritten[0].strip() else None


async def _fail(state: _Answer, reason: str, emit: Emit) -> Message | None:
    _record(state, "failed")
    await emit(protocol.error(reason))
    try:
        return await state.save(status=MessageStatus.FAILED, error=reason)
    except Exception:
        log.exception("could not save the failed answer in conversation %s", state.conversation.public_id)
        return None
