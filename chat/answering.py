"""The answer use case: retrieve → build the prompt → stream → save, for one question.

Contract
--------
``await answer(question, params, user=..., emit=...)`` answers a saved question ``Message``
and sends the events of docs/websocket-protocol.md through ``emit`` (an async callable taking
one event dict, built by ``chat.protocol``): ``queued``* → ``sources`` → ``token``* → ``done``,
or ``error`` instead of ``done`` when the model fails. It returns the saved assistant
``Message`` (``None`` only after a failure it could not save) and never raises, except
``asyncio.CancelledError``: cancelling the task that runs it stops generation, saves the
partial answer as ``stopped``, sends ``done`` and re-raises.

Retrieval searches only what ``user`` may read. When nothing is relevant, the honest
not-found answer is saved without calling the model. The query embedding runs in the
embedding module's own thread; database work runs in small ``database_sync_to_async`` calls.

``await check_question(question, params)`` raises ``PromptTooLong`` when the question cannot fit
the model's context even with no passages and no history (the caller refuses it before saving).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async

from chat import llm, prompting, protocol, services
from chat.models import Conversation, GenerationStats, Message, MessageStatus
from documents import embeddings, retrieval

log = logging.getLogger(__name__)

Emit = Callable[[dict], Awaitable[None]]


async def check_question(question: str, params: llm.GenerationParams) -> None:
    """``PromptTooLong`` when ``question`` alone cannot fit (see the module doc)."""
    try:
        engine = await llm.aget_engine()
    except llm.LLMUnavailable:
        return  # reported, and recorded as a failed answer, when the answer is attempted
    await asyncio.to_thread(prompting.check_question_fits, question, engine, params)


async def search(user, query: str) -> list[retrieval.Hit]:
    """``retrieval.search`` with the query embedded in the embedding thread."""
    vector = await embeddings.aembed_query(query)
    return await database_sync_to_async(retrieval.search)(user, query, vector=vector)


@database_sync_to_async
def _history(question: Message) -> list[tuple[str, str]]:
    return question.conversation.messages.prompt_history(question)


_save = database_sync_to_async(services.save_assistant_message)


@dataclass
class _Answer:
    """What one answer has produced so far: saved whatever way it ends."""

    conversation: Conversation
    params: llm.GenerationParams
    pieces: list[str] = field(default_factory=list)
    sources: list = field(default_factory=list)
    engine_stats: dict = field(default_factory=dict)  # filled by the engine; final when the stream ends
    saving: asyncio.Future | None = None  # the final save, once started

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def stats(self) -> GenerationStats:
        return GenerationStats.from_engine(self.engine_stats)

    def save(self, **fields) -> asyncio.Future:
        """Start the final save. It runs to the end even if the task awaiting it is cancelled."""
        self.saving = asyncio.ensure_future(
            _save(self.conversation, params=self.params.to_dict(), sources=self.sources, **fields)
        )
        return self.saving


async def answer(question: Message, params: llm.GenerationParams, *, user, emit: Emit) -> Message | None:
    """Answer ``question``; see the module docstring for the events and guarantees."""
    state = _Answer(conversation=question.conversation, params=params)
    try:
        hits = await search(user, question.content)
        if not hits:
            # Nothing in the knowledge base is relevant: say so honestly, without the model.
            await emit(protocol.sources([]))
            await emit(protocol.token(prompting.NOT_FOUND_ANSWER))
            message = await asyncio.shield(state.save(content=prompting.NOT_FOUND_ANSWER, stats=GenerationStats()))
            await emit(protocol.done(message, GenerationStats()))
            return message
        await _generate(state, question, hits, emit)
        message = await asyncio.shield(state.save(content=state.text, stats=state.stats))
        await emit(protocol.done(message, state.stats))
        return message
    except asyncio.CancelledError:
        # A stop that arrives while the finished answer is being saved keeps that answer as it is.
        if state.saving is None:
            state.save(content=state.text, status=MessageStatus.STOPPED, stats=state.stats)
            log.info("answer stopped after %d pieces in conversation %s", len(state.pieces), question.conversation_id)
        message = await asyncio.shield(state.saving)
        await emit(protocol.done(message, state.stats))
        raise
    except llm.LLMError as exc:
        return await _fail(state, exc.message, emit)
    except Exception:
        log.exception("answer failed in conversation %s", question.conversation_id)
        return await _fail(state, "The answer failed because of an internal error.", emit)


async def _generate(state: _Answer, question: Message, hits: list, emit: Emit) -> None:
    """Build the prompt and stream the model's answer into ``state``."""
    history = await _history(question)
    engine = await llm.aget_engine()
    plan = await asyncio.to_thread(
        prompting.build_messages,
        question=question.content,
        passages=hits,
        history=history,
        engine=engine,
        params=state.params,
    )
    state.sources = list(plan.passages_used)
    # Sent once the model is ours (with the first token), so the order the protocol promises
    # holds: queued events first, while waiting in line, then sources.
    pending_sources = [protocol.sources(state.sources)]

    async def on_queue_position(position: int) -> None:
        await emit(protocol.queued(position))

    async with engine.stream(
        plan.messages, state.params, on_queue_position=on_queue_position, stats=state.engine_stats
    ) as stream:
        async for piece in stream:
            while pending_sources:
                await emit(pending_sources.pop())
            state.pieces.append(piece)
            await emit(protocol.token(piece))
    while pending_sources:  # an empty answer
        await emit(pending_sources.pop())


async def _fail(state: _Answer, reason: str, emit: Emit) -> Message | None:
    await emit(protocol.error(reason))
    try:
        return await _save(
            state.conversation,
            content=state.text,
            status=MessageStatus.FAILED,
            error=reason,
            sources=state.sources,
            params=state.params.to_dict(),
            stats=state.stats,
        )
    except Exception:
        log.exception("could not save the failed answer in conversation %s", state.conversation.public_id)
        return None
