"""The chat websocket: ``/ws/chat/<conversation id>/``. Protocol: docs/websocket-protocol.md.

Only the conversation's owner gets a working socket. Anyone else is accepted and at once
closed with a code that says why (a browser cannot read the reason of a refused handshake):
4401 not signed in, 4404 no such conversation for this user. (A handshake from a foreign
origin never reaches this consumer: ``accounts.middleware.websocket_stack`` refuses it.)

This module parses frames, checks access and runs one answer at a time per socket; the
answer itself (retrieval, prompt, streaming, saving) is ``chat.answering``. It runs as an
asyncio task so that ``stop`` frames are read while tokens stream; cancelling the task
releases the model, and the partial answer is saved with status ``stopped``. Bad frames get
an ``error`` event and the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from chat import answering, llm, protocol, services
from chat.models import Conversation, Message

log = logging.getLogger(__name__)


class FrameError(Exception):
    """A frame the client got wrong; its message is sent back as an ``error`` event."""


# --- database helpers (each one short, each in a worker thread) -----------------------------


@database_sync_to_async
def _owned_conversation(user, public_id: uuid.UUID) -> Conversation | None:
    return Conversation.objects.owned(user, public_id)


@database_sync_to_async
def _remembered_settings(conversation: Conversation) -> dict:
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
    return conversation.messages.last_question()


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
            await self._refuse(protocol.CLOSE_NOT_SIGNED_IN, "not signed in")
            return
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        conversation = await _owned_conversation(user, conversation_id)
        if conversation is None:
            await self._refuse(protocol.CLOSE_NOT_FOUND, "conversation not found")
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
            if len(text_data) > protocol.MAX_FRAME_CHARS:
                raise FrameError(f"Frame too large: at most {protocol.MAX_FRAME_CHARS} characters.")
            content = await self.decode_json(text_data)
            await self.receive_json(content)
        except FrameError as exc:
            await self._send(protocol.error(str(exc)))

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
        if len(question) > services.QUESTION_MAX_CHARS:
            raise FrameError(f"The question is too long: at most {services.QUESTION_MAX_CHARS} characters.")
        params, explicit = await self._params(content)
        try:
            await answering.check_question(question, params)
        except llm.PromptTooLong as exc:
            raise FrameError(str(exc)) from exc
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
        defaults = llm.remembered_params(await _remembered_settings(self.conversation))
        try:
            params = llm.GenerationParams.from_dict(raw or {}, defaults=defaults)
        except llm.InvalidParams as exc:
            raise FrameError(f"Invalid params: {exc}") from exc
        return params, bool(raw)

    # --- generation ----------------------------------------------------------------------

    def _start(self, question: Message, params: llm.GenerationParams) -> None:
        self.stopping = False
        self.generation = asyncio.create_task(answering.answer(question, params, user=self.user, emit=self._send))

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
