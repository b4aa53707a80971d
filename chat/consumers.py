"""The chat websocket: ``/ws/chat/<conversation id>/``. Protocol: docs/websocket-protocol.md.

Only the conversation's owner gets a working socket. Anyone else is accepted and at once
closed with a code that says why (a browser cannot read the reason of a refused handshake):
4401 not signed in, 4404 no such conversation for this user. (A handshake from a foreign
origin never reaches this consumer: ``accounts.middleware.websocket_stack`` refuses it.)

One answer at a time per socket. It runs as an asyncio task so that ``stop`` frames are
read while tokens stream; cancelling the task releases the model, and the partial answer
is saved with status ``stopped``. Bad frames get an ``error`` event and the socket stays
open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from chat import llm, prompting, services
from chat.models import Conversation, Message, MessageStatus, Role
from documents import retrieval

log = logging.getLogger(__name__)

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_NOT_FOUND = 4404
MAX_FRAME_CHARS = 64 * 1024
MAX_QUESTION_CHARS = services.QUESTION_MAX_CHARS


class FrameError(Exception):
    """A frame the client got wrong; its message is sent back as an ``error`` event."""


# --- database helpers (each one short, each in a worker thread) -----------------------------


@database_sync_to_async
def _owned_conversation(user, public_id: uuid.UUID) -> Conversation | None:
    return Conversation.objects.for_user(user).filter(public_id=public_id).first()


@database_sync_to_async
def _refresh_settings(conversation: Conversation) -> dict:
    conversation.refresh_from_db(fields=["settings"])
    return conversation.settings


@database_sync_to_async
def _save_question(conversation: Conversation, content: str, remember: dict | None) -> Message:
    message = services.append_user_message(conversation, content)
    if remember is not None and remember != conversation.settings:
        services.update_conversation_settings(conversation, remember)
    return message


@database_sync_to_async
def _last_question(conversation: Conversation) -> Message | None:
    return conversation.messages.filter(role=Role.USER).order_by("-created", "-pk").first()


def prompt_history(conversation: Conversation, before: Message) -> list[tuple[str, str]]:
    """Earlier exchanges for the prompt, oldest first, as (role, content) pairs: each question
    followed by its complete answer.

    Stopped and failed answers (and the questions they leave unanswered) are left out, so
    the model never sees a half-finished reply as if it were its own.
    """
    earlier = list(
        conversation.messages.filter(created__lte=before.created)
        .exclude(pk=before.pk)
        .order_by("created", "pk")
        .values_list("role", "content", "status")
    )
    history: list[tuple[str, str]] = []
    for (role, question, _), (next_role, answer, status) in zip(earlier, earlier[1:], strict=False):
        if role == Role.USER and next_role == Role.ASSISTANT and status == MessageStatus.COMPLETE:
            history += [("user", question), ("assistant", answer)]
    return history


_history = database_sync_to_async(prompt_history)
_search = database_sync_to_async(retrieval.search)
_save_answer = database_sync_to_async(services.save_assistant_message)


def _source(n: int, hit) -> dict:
    return {
        "n": n,
        "document": str(hit.document_id),
        "title": hit.title,
        "location": hit.location,
        "text": hit.text,
        "score": round(float(hit.score), 6),
    }


class ChatConsumer(AsyncJsonWebsocketConsumer):
    conversation: Conversation | None = None
    generation: asyncio.Task | None = None

    # --- connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        self.closed = False
        self.stopping = False
        user = self.scope.get("user")
        # Accept first, then close with a code: a refused handshake reaches a browser as a
        # bare 1006, while a close frame after accepting carries our documented code.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_NOT_SIGNED_IN, "not signed in")
            return
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        conversation = await _owned_conversation(user, conversation_id)
        if conversation is None:
            await self._refuse(CLOSE_NOT_FOUND, "conversation not found")
            return
        self.user = user
        self.conversation = conversation
        log.debug("user %s opened conversation %s", user.pk, conversation.public_id)

    async def _refuse(self, code: int, reason: str) -> None:
        log.info("refused a chat socket: %s", reason)
        self.closed = True
        await self.close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        """The client went away: stop any answer and save what was generated so far."""
        self.closed = True
        await self._stop_generation()

    # --- frames --------------------------------------------------------------------------

    @classmethod
    async def decode_json(cls, text_data: str):
        try:
            return json.loads(text_data)
        except ValueError as exc:
            raise FrameError(f"Malformed JSON: {exc}.") from exc

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        if self.conversation is None:
            return  # a refused socket that is closing: ignore whatever still arrives
        try:
            if text_data is None:
                raise FrameError("Binary frames are not supported: send JSON text frames.")
            if len(text_data) > MAX_FRAME_CHARS:
                raise FrameError(f"Frame too large: at most {MAX_FRAME_CHARS} characters.")
            content = await self.decode_json(text_data)
            await self.receive_json(content)
        except FrameError as exc:
            await self._error(str(exc))

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            raise FrameError('Each frame must be a JSON object with a "type".')
        kind = content.get("type")
        handlers = {"ask": self.ask, "stop": self.stop, "regenerate": self.regenerate}
        if kind is None:
            raise FrameError('Missing "type": expected "ask", "stop" or "regenerate".')
        if not isinstance(kind, str) or kind not in handlers:
            shown = json.dumps(kind)[:40]
            raise FrameError(f'Unknown type {shown}: expected "ask", "stop" or "regenerate".')
        await handlers[kind](content)

    async def ask(self, content: dict) -> None:
        """``{"type": "ask", "content": "...", "params": {...}}``: save the question, answer it."""
        self._ensure_idle()
        question = content.get("content")
        if not isinstance(question, str) or not question.strip():
            raise FrameError('"content" must be a non-empty string: the question.')
        question = question.strip()
        if len(question) > MAX_QUESTION_CHARS:
            raise FrameError(f"The question is too long: at most {MAX_QUESTION_CHARS} characters.")
        params, explicit = await self._params(content)
        await self._check_fits(question, params)
        message = await _save_question(self.conversation, question, params.to_dict() if explicit else None)
        self._start(message, params)

    async def regenerate(self, content: dict) -> None:
        """``{"type": "regenerate", "params": {...}}``: a new answer to the last question."""
        self._ensure_idle()
        params, _ = await self._params(content)
        question = await _last_question(self.conversation)
        if question is None:
            raise FrameError("Nothing to regenerate: ask a question first.")
        self._start(question, params)

    async def stop(self, content: dict) -> None:
        """``{"type": "stop"}``: end the answer now, keeping its partial text. Idempotent."""
        await self._stop_generation()

    # --- validation ----------------------------------------------------------------------

    def _ensure_idle(self) -> None:
        if self.generation is not None and not self.generation.done():
            raise FrameError("An answer is still being generated: wait for it, or send stop.")

    async def _params(self, content: dict) -> tuple[llm.GenerationParams, bool]:
        """The frame's ``params`` over the conversation's remembered settings.

        Returns the validated parameters and whether the frame chose them explicitly.
        """
        raw = content.get("params")
        if raw is not None and not isinstance(raw, dict):
            raise FrameError('"params" must be a JSON object.')
        remembered = await _refresh_settings(self.conversation)
        try:
            defaults = llm.GenerationParams.from_dict(remembered).to_dict()
        except llm.InvalidParams:
            defaults = None  # settings saved under older limits: fall back to the site defaults
        try:
            params = llm.GenerationParams.from_dict(raw or {}, defaults=defaults)
        except llm.InvalidParams as exc:
            raise FrameError(f"Invalid params: {exc}") from exc
        return params, bool(raw)

    async def _check_fits(self, question: str, params: llm.GenerationParams) -> None:
        """Refuse, before anything is saved, a question that cannot fit the context window
        even with no passages and no history."""
        try:
            engine = await llm.aget_engine()
            await asyncio.to_thread(
                prompting.build_messages, question=question, passages=[], history=[], engine=engine, params=params
            )
        except llm.PromptTooLong as exc:
            raise FrameError(str(exc)) from exc
        except llm.LLMUnavailable:
            pass  # reported (and recorded as a failed answer) when the answer is attempted

    # --- generation ----------------------------------------------------------------------

    def _start(self, question: Message, params: llm.GenerationParams) -> None:
        self.stopping = False
        self.generation = asyncio.create_task(self._answer(question, params))

    async def _stop_generation(self) -> None:
        task = self.generation
        if task is None or task.done():
            return
        if not self.stopping:
            # Cancel once: a second cancel would interrupt the saving of the partial answer.
            self.stopping = True
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if asyncio.current_task() and asyncio.current_task().cancelling():
                raise  # we ourselves are being cancelled, not just the answer

    async def _send(self, event: dict) -> None:
        if not self.closed:
            await self.send_json(event)

    async def _error(self, message: str) -> None:
        await self._send({"type": "error", "message": message})

    async def _queued(self, position: int) -> None:
        """Called by the engine while this answer waits for the model (1 = next)."""
        await self._send({"type": "queued", "position": position})

    async def _answer(self, question: Message, params: llm.GenerationParams) -> None:
        """Retrieve, prompt, stream and save one answer; never raises except CancelledError."""
        conversation = self.conversation
        pieces: list[str] = []
        sources: list = []
        engine_stats: dict = {}  # filled by the engine as it runs; final when the stream ends
        saving: asyncio.Task | None = None  # the final save, once started

        def save(**fields) -> asyncio.Task:
            nonlocal saving
            saving = asyncio.ensure_future(_save_answer(conversation, params=params.to_dict(), **fields))
            return saving

        try:
            hits = await _search(self.user, question.content)
            if not hits:
                # Nothing in the knowledge base is relevant: say so honestly, without the model.
                stats = services.GenerationStats()
                await self._send({"type": "sources", "sources": []})
                await self._send({"type": "token", "text": prompting.NOT_FOUND_ANSWER})
                message = await asyncio.shield(save(content=prompting.NOT_FOUND_ANSWER, stats=stats))
                await self._done(message, stats)
                return
            history = await _history(conversation, question)
            engine = await llm.aget_engine()
            plan = await asyncio.to_thread(
                prompting.build_messages,
                question=question.content,
                passages=hits,
                history=history,
                engine=engine,
                params=params,
            )
            sources = list(plan.passages_used)
            # Sent once the model is ours (with the first token), so the order the protocol
            # promises holds: queued events first, while waiting in line, then sources.
            pending_sources = [{"type": "sources", "sources": [_source(n, h) for n, h in enumerate(sources, 1)]}]
            async with engine.stream(
                plan.messages, params, on_queue_position=self._queued, stats=engine_stats
            ) as stream:
                async for piece in stream:
                    while pending_sources:
                        await self._send(pending_sources.pop())
                    pieces.append(piece)
                    await self._send({"type": "token", "text": piece})
            while pending_sources:  # an empty answer
                await self._send(pending_sources.pop())
            stats = _stats(engine_stats)
            message = await asyncio.shield(save(content="".join(pieces), sources=sources, stats=stats))
            await self._done(message, stats)
        except asyncio.CancelledError:
            # Shielded saves: the answer is stored even if the socket's task is torn down. A stop
            # that arrives while the finished answer is being saved keeps that answer as it is.
            stats = _stats(engine_stats)
            if saving is None:
                save(content="".join(pieces), status=MessageStatus.STOPPED, sources=sources, stats=stats)
                log.info("answer stopped after %d pieces in conversation %s", len(pieces), conversation.public_id)
            message = await asyncio.shield(saving)
            await self._done(message, stats)
            raise
        except llm.LLMError as exc:
            await self._fail(exc.message, pieces, sources, params, engine_stats)
        except Exception:
            log.exception("answer failed in conversation %s", conversation.public_id)
            await self._fail("The answer failed because of an internal error.", pieces, sources, params, engine_stats)

    async def _fail(
        self, reason: str, pieces: list[str], sources: list, params: llm.GenerationParams, engine_stats: dict
    ) -> None:
        await self._error(reason)
        await _save_answer(
            self.conversation,
            content="".join(pieces),
            status=MessageStatus.FAILED,
            error=reason,
            sources=sources,
            params=params.to_dict(),
            stats=_stats(engine_stats),
        )

    async def _done(self, message: Message, stats: services.GenerationStats) -> None:
        await self._send(
            {
                "type": "done",
                "message": str(message.public_id),
                "status": message.status,
                "stats": stats.as_dict(),
            }
        )


def _stats(engine_stats: dict) -> services.GenerationStats:
    """The engine's stats dict (see chat.llm) as what we store and send."""
    return services.GenerationStats(
        model=engine_stats.get("model") or "",
        prompt_tokens=engine_stats.get("prompt_tokens"),
        completion_tokens=engine_stats.get("completion_tokens"),
        ttft_ms=engine_stats.get("ttft_ms"),
        tokens_per_s=engine_stats.get("tokens_per_s"),
    )
