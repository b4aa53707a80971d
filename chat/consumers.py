"""The chat websocket: ``/ws/chat/<conversation id>/``. Protocol: docs/websocket-protocol.md.

Only the conversation's owner gets a working socket. Anyone else is accepted and at once
closed with a code that says why (a browser cannot read the reason of a refused handshake):
4401 not signed in, 4404 no such conversation for this user, 4429 this user has too many chat
sockets open already (``CHAT_MAX_SOCKETS_PER_USER``). (A handshake from a foreign origin never
reaches this consumer: ``accounts.middleware.websocket_stack`` refuses it.)

A socket keeps only the rights its credentials still give. Before every ``ask`` and
``regenerate``, every ``CHAT_SOCKET_RECHECK_SECONDS`` and whenever
``accounts.signals.credentials_changed`` says so (a sign-out, a deactivation, a new password, a
revoked token), it checks again that its session or token still signs its user in
(``accounts.services.signed_in_user``), and otherwise closes with 4401, stopping any answer
(saved as ``stopped``). Answers use the freshly loaded user, so a lost staff status or group
no longer widens retrieval from the next question on.

Per user and per server process, at most ``CHAT_MAX_PENDING_PER_USER`` questions are waiting
for the model or being answered at a time (counted over the user's sockets here); one more
gets an ``error`` event and nothing is saved. The model's queue itself is round-robin across
users (``chat.llm.queue``).

This module parses frames, checks access and runs one answer at a time per socket; the
answer itself (retrieval, prompt, streaming, saving) is ``chat.answering``. It runs as an
asyncio task so that ``stop`` frames are read while tokens stream; cancelling the task
releases the model, and the partial answer is saved with status ``stopped``. Bad frames get
an ``error`` event and the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import threading
import uuid
from collections.abc import Coroutine

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.dispatch import receiver

from accounts.services import signed_in_user
from accounts.signals import credentials_changed
from chat import answering, llm, protocol, services
from chat.models import Conversation, Message
from documents.models import Scope, ScopeUnavailable
from kb_site import metrics

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


@database_sync_to_async
def _current_scope(conversation: Conversation, user) -> Scope:
    """The scope as saved now (the page or the API may have changed it since the socket opened)."""
    conversation.refresh_from_db(fields=["scope_kind", "scope_collection", "scope_document"])
    return conversation.scope_for(user)


@database_sync_to_async
def _change_scope(conversation: Conversation, user, value) -> dict:
    services.set_conversation_scope(conversation, Scope.resolve(user, value))
    return conversation.scope_json(user)


_signed_in_user = database_sync_to_async(signed_in_user)


# --- the sockets open in this process ----------------------------------------------------------


class _OpenSockets:
    """The chat sockets open in this process, by user id: the per-user limits count them, and
    ``credentials_changed`` reaches them through it. Thread-safe: signals arrive on whichever
    thread changed the data, while the sockets live on the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_user: dict[int, set[ChatConsumer]] = {}

    def add(self, consumer: ChatConsumer, limit: int) -> bool:
        """Register ``consumer``; False (and nothing registered) when its user has ``limit`` already."""
        with self._lock:
            sockets = self._by_user.setdefault(consumer.user_id, set())
            if len(sockets) >= limit:
                return False
            sockets.add(consumer)
            return True

    def discard(self, consumer: ChatConsumer) -> None:
        with self._lock:
            sockets = self._by_user.get(consumer.user_id)
            if sockets is not None:
                sockets.discard(consumer)
                if not sockets:
                    del self._by_user[consumer.user_id]

    def of_user(self, user_id) -> list[ChatConsumer]:
        with self._lock:
            return list(self._by_user.get(user_id, ()))

    def answering(self, user_id) -> int:
        """How many of the user's questions are waiting for the model or being answered here."""
        return sum(1 for consumer in self.of_user(user_id) if consumer.answering)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(sockets) for sockets in self._by_user.values())


open_sockets = _OpenSockets()
metrics.OPEN_SOCKETS.set_function(lambda: len(open_sockets))


@receiver(credentials_changed, dispatch_uid="chat.consumers.credentials_changed")
def _credentials_changed(sender, user_id, ended_session: str | None = None, **kwargs) -> None:
    for consumer in open_sockets.of_user(user_id):
        consumer.recheck_soon(ended_session)


class ChatConsumer(AsyncJsonWebsocketConsumer):
    conversation: Conversation | None = None
    generation: asyncio.Task | None = None
    user_id: int | None = None
    closed = False
    reserved = False  # an ask was admitted and its answer is about to start

    # --- connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        self.closed = False
        self.stopping = False
        self.loop = asyncio.get_running_loop()
        self.background: set[asyncio.Task] = set()
        self.rechecker: asyncio.Task | None = None
        self.recheck_wanted = False
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
        self.user_id = user.pk
        self.session_key, self.token_id = self._credentials()
        if not open_sockets.add(self, settings.CHAT_MAX_SOCKETS_PER_USER):
            await self._refuse(protocol.CLOSE_TOO_MANY_SOCKETS, "too many chat sockets open")
            return
        self.conversation = conversation
        self.periodic = self._in_background(self._recheck_periodically())
        log.debug("user %s opened conversation %s", user.pk, conversation.public_id)

    def _credentials(self) -> tuple[str | None, int | None]:
        """``(session key, token id)``: what signed this socket in (one of them is None)."""
        if self.scope.get("auth_method") == "token":
            return None, self.scope.get("api_token_id")
        session = self.scope.get("session")
        return (session.session_key if session is not None else None), None

    async def _refuse(self, code: int, reason: str) -> None:
        log.info("refused a chat socket: %s", reason)
        self.closed = True
        await self.close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        """The client went away: stop any answer and save what was generated so far."""
        self._closing()
        await self._stop_generation()

    def _closing(self) -> None:
        self.closed = True
        open_sockets.discard(self)
        periodic = getattr(self, "periodic", None)
        if periodic is not None and periodic is not asyncio.current_task():
            periodic.cancel()

    async def _end(self, code: int, reason: str) -> None:
        """Close the socket from our side; an answer being generated is stopped and saved first."""
        if self.closed:
            return
        log.info("closed a chat socket of user %s: %s", self.user_id, reason)
        self._closing()
        await self._stop_generation()
        await self.close(code=code, reason=reason)

    # --- do the credentials still hold? ---------------------------------------------------

    async def _still_signed_in(self) -> bool:
        """Check the socket's session or token again (see the module docstring); close the
        socket with 4401 when it no longer signs the user in. Answers use the fresh user."""
        user = await _signed_in_user(self.user_id, session_key=self.session_key, token_id=self.token_id)
        if self.closed:
            return False
        if user is None:
            await self._end(protocol.CLOSE_NOT_SIGNED_IN, "sign-in no longer valid")
            return False
        self.user = user
        return True

    async def _recheck(self) -> None:
        """``_still_signed_in`` in the background, where a failure to check (the database is
        unreachable) is logged and the socket kept until the next check or question."""
        try:
            await self._still_signed_in()
        except Exception:
            log.exception("could not re-check a chat socket of user %s", self.user_id)

    async def _recheck_periodically(self) -> None:
        # Catches what no signal reports here: a change made through another server process,
        # a session that expired, QuerySet.update(). Websocket pings keep an idle socket
        # connected; they prove nothing about its sign-in, so they do not skip this.
        while not self.closed:
            await asyncio.sleep(settings.CHAT_SOCKET_RECHECK_SECONDS)
            await self._recheck()

    def recheck_soon(self, ended_session: str | None = None) -> None:
        """From any thread: the user's sign-ins may have changed (``credentials_changed``)."""
        with contextlib.suppress(RuntimeError):  # the event loop is gone, and the socket with it
            # A fresh context: the caller's (often asgiref's sync thread) would make the check's
            # own database call believe it runs inside that thread, which asgiref refuses.
            self.loop.call_soon_threadsafe(self._recheck_now, ended_session, context=contextvars.Context())

    def _recheck_now(self, ended_session: str | None) -> None:
        if self.closed:
            return
        if ended_session is not None:
            # A sign-out: that session is about to be deleted, so do not look it up.
            if ended_session == self.session_key:
                self._in_background(self._end(protocol.CLOSE_NOT_SIGNED_IN, "signed out"))
            return
        # Coalesce bursts (deleting a user deletes each of their tokens) into one check at a
        # time, plus one more if something changed while it ran.
        self.recheck_wanted = True
        if self.rechecker is None or self.rechecker.done():
            self.rechecker = self._in_background(self._recheck_while_wanted())

    async def _recheck_while_wanted(self) -> None:
        while self.recheck_wanted and not self.closed:
            self.recheck_wanted = False
            await self._recheck()

    def _in_background(self, coroutine: Coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self.background.add(task)  # a task nobody references may be garbage-collected mid-run
        task.add_done_callback(self.background.discard)
        return task

    # --- frames --------------------------------------------------------------------------

    @classmethod
    async def decode_json(cls, text_data: str):
        try:
            return json.loads(text_data)
        except ValueError as exc:
            raise FrameError(f"Malformed JSON: {exc}.") from exc

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        if self.conversation is None or self.closed:
            return  # a refused or ended socket that is closing: ignore whatever still arrives
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
        handlers = {"ask": self.ask, "stop": self.stop, "regenerate": self.regenerate, "scope": self.change_scope}
        expected = '"ask", "stop", "regenerate" or "scope"'
        if kind is None:
            raise FrameError(f'Missing "type": expected {expected}.')
        if not isinstance(kind, str) or kind not in handlers:
            shown = json.dumps(kind)[:40]
            raise FrameError(f"Unknown type {shown}: expected {expected}.")
        if kind != "stop" and not await self._still_signed_in():
            return
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
        scope = await self._scope()
        self._reserve_answer()
        try:
            message = await _save_question(self.conversation, question, params.to_dict() if explicit else None)
        except BaseException:
            self.reserved = False
            raise
        self._start(message, params, scope)

    async def regenerate(self, content: dict) -> None:
        """``{"type": "regenerate", "params": {...}}``: a new answer to the last question."""
        self._ensure_idle()
        params, _ = await self._params(content)
        question = await _last_question(self.conversation)
        if question is None:
            raise FrameError("Nothing to regenerate: ask a question first.")
        scope = await self._scope()
        self._reserve_answer()
        self._start(question, params, scope)

    async def stop(self, content: dict) -> None:
        """``{"type": "stop"}``: end the answer now, keeping its partial text. Idempotent."""
        await self._stop_generation()

    async def change_scope(self, content: dict) -> None:
        """``{"type": "scope", "scope": {...}}``: ask that collection or document (``{}``:
        everything) from the next question on; answered with a ``scope`` event. Not while an
        answer is being written."""
        self._ensure_idle()
        try:
            shown = await _change_scope(self.conversation, self.user, content.get("scope"))
        except (ValueError, ScopeUnavailable) as exc:
            raise FrameError(str(exc)) from None
        await self._send(protocol.scope(shown))

    async def _scope(self) -> Scope:
        """The scope the next answer searches; a clear error (nothing saved) when it is gone."""
        try:
            return await _current_scope(self.conversation, self.user)
        except ScopeUnavailable as exc:
            raise FrameError(str(exc)) from None

    # --- validation ----------------------------------------------------------------------

    def _ensure_idle(self) -> None:
        if self.generation is not None and not self.generation.done():
            raise FrameError("An answer is still being generated: wait for it, or send stop.")

    @property
    def answering(self) -> bool:
        """Whether a question of this socket is waiting for the model or being answered."""
        return self.reserved or (self.generation is not None and not self.generation.done())

    def _reserve_answer(self) -> None:
        """Count this socket's next answer against ``CHAT_MAX_PENDING_PER_USER``, or refuse it.

        Synchronous, so no other socket of the user can slip in between the count and the
        reservation (every socket of the process runs on one event loop)."""
        pending = open_sockets.answering(self.user_id)
        if pending >= settings.CHAT_MAX_PENDING_PER_USER:
            questions = "question" if pending == 1 else "questions"
            raise FrameError(
                f"You already have {pending} {questions} waiting or being answered: "
                "wait for one to finish, or stop one, then ask again."
            )
        self.reserved = True

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

    def _start(self, question: Message, params: llm.GenerationParams, scope: Scope) -> None:
        self.reserved = False
        if self.closed:
            return  # the socket ended (its sign-in did) while the question was being saved
        self.stopping = False
        self.generation = asyncio.create_task(
            answering.answer(question, params, user=self.user, emit=self._send, scope=scope)
        )

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
