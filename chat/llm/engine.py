"""The contract every backend keeps, and the generation loop they share.

``Engine.count_tokens(text)`` and ``Engine.count_prompt_tokens(messages)`` count with the model's
own tokenizer; the latter applies the chat template stored in the GGUF, generation prompt
included, and equals the number of tokens the model is fed for those messages (the remote
backend without a local GGUF estimates instead, erring high: see ``chat_format``).

``Engine.stream(messages, params, owner=..., on_queue_position=..., stats=...)`` returns a
``Generation``:
an async iterator of text pieces (also an async context manager, with ``aclose()``). Every error
surfaces while iterating, never at the call:

- ``PromptTooLong`` when prompt tokens + ``params.max_tokens`` exceed ``Engine.context_size``;
- ``LLMUnavailable`` when the backend fails (server unreachable, HTTP error, llama.cpp error).

An engine generates ``capacity`` answers at a time (the local one ``LLM_PARALLEL``, the remote
one a single one). Callers beyond that wait in a fair queue on the event loop
(``chat.llm.queue``): round-robin across owners, first come, first served within one. ``owner``
says whom the request is for (the asking user's primary key); requests without one share one
anonymous lane. ``on_queue_position(n)`` (async) is awaited each time a waiting caller's
position changes (1 = next). Closing the iterator (``aclose()``, leaving ``async with``) or
cancelling the task that iterates stops generation within a token or two and hands the model to
the next waiter.

``Generation.stats`` (the same dict as the ``stats=`` argument, when given) holds ``model``,
``prompt_tokens``, ``completion_tokens``, ``ttft_ms`` (from getting the model to the first token:
prompt processing included, queueing not), ``tokens_per_s`` (decode speed after the first
token), ``queue_ms`` and ``finish_reason``: ``"stop"`` (the model ended its answer),
``"length"`` (``max_tokens`` reached), ``"cancelled"`` (closed or cancelled early) or ``"error"``.
It is final once iteration ends, however it ends.

A backend subclasses ``Engine`` and provides ``count_tokens``, ``_prepare`` (messages to a
``_Prepared`` payload with its prompt token count) and ``_produce`` (an async iterator of
``_Piece`` items ending with one ``_Done``). ``_produce`` either lets ``Engine`` release the
lease when it returns, or sets ``lease.handed_over`` and releases it itself (from a worker
thread, once it no longer touches the model).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from chat.llm.errors import LLMUnavailable, PromptTooLong
from chat.llm.params import GenerationParams
from chat.llm.queue import FairSlot, Lease, Owner, QueueCallback

log = logging.getLogger("chat.llm")  # one logger for the whole package: operators filter on it

Messages = list[dict[str, str]]


class Generation:
    """Async iterator of answer text pieces; ``stats`` is filled as it runs (see module doc)."""

    def __init__(self, pieces: AsyncIterator[str], stats: dict[str, Any]):
        self._pieces = pieces
        self.stats = stats

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        """Stop generating now; the model goes to the next waiter within a token or two."""
        await self._pieces.aclose()

    async def __aenter__(self) -> Generation:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@dataclass
class _Piece:
    text: str
    completion_tokens: int
    at: float  # time.perf_counter() when the token was produced


@dataclass
class _Done:
    finish_reason: str
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens the model had in its cache already (local engine)


@dataclass
class _Prepared:
    payload: Any  # token ids (local) or the messages to send (remote)
    prompt_tokens: int


class Engine:
    """One loaded model (or one remote server) shared by every socket of the process."""

    model_name: str
    context_size: int

    def __init__(self, capacity: int = 1) -> None:
        self._slot = FairSlot(capacity)  # how many answers it generates at once

    # Subclasses provide counting, preparation and the raw token stream.
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone (no template, no BOS)."""
        raise NotImplementedError

    def count_prompt_tokens(self, messages: Messages) -> int:
        """Tokens the model is fed for ``messages``: chat template and generation prompt included."""
        return self._prepare(messages).prompt_tokens

    def _prepare(self, messages: Messages) -> _Prepared:
        raise NotImplementedError

    def _produce(self, prepared: _Prepared, params: GenerationParams, lease: Lease) -> AsyncIterator[_Piece | _Done]:
        raise NotImplementedError

    def close(self) -> None:
        """Free the model's memory (process exit). The engine is unusable afterwards."""

    @property
    def queue_length(self) -> int:
        """Requests waiting for the model right now (not counting the one generating)."""
        return self._slot.waiting

    @property
    def busy(self) -> bool:
        """True while a generation holds the model (until its worker thread has let go)."""
        return self._slot.busy

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raise ``PromptTooLong`` unless the prompt and the answer fit the context window."""
        if prompt_tokens + max_tokens > self.context_size:
            raise PromptTooLong(
                f"The prompt is too long: {prompt_tokens} tokens plus {max_tokens} reserved for the answer "
                f"exceed the model's context of {self.context_size} tokens."
            )

    def stream(
        self,
        messages: Messages,
        params: GenerationParams,
        *,
        owner: Owner = None,
        on_queue_position: QueueCallback | None = None,
        stats: dict[str, Any] | None = None,
    ) -> Generation:
        """Generate an answer to ``messages``; see the module docstring for the contract."""
        stats = {} if stats is None else stats
        return Generation(self._run(messages, params, owner, on_queue_position, stats), stats)

    async def _run(
        self,
        messages: Messages,
        params: GenerationParams,
        owner: Owner,
        on_queue_position: QueueCallback | None,
        stats: dict[str, Any],
    ) -> AsyncIterator[str]:
        stats.clear()
        stats.update(
            model=self.model_name,
            prompt_tokens=0,
            completion_tokens=0,
            ttft_ms=None,
            tokens_per_s=0.0,
            queue_ms=0,
            finish_reason=None,
            cached_tokens=None,
        )
        lease = None
        first: _Piece | None = None
        last: _Piece | None = None
        started = 0.0
        answer_started = False
        try:
            prepared = self._prepare(messages)
            stats["prompt_tokens"] = prepared.prompt_tokens
            self.check_fits(prepared.prompt_tokens, params.max_tokens)
            waited = time.perf_counter()
            lease = await self._slot.acquire(on_queue_position, owner=owner)
            started = time.perf_counter()
            stats["queue_ms"] = round((started - waited) * 1000)
            # aclosing: leaving this loop early must stop the backend at once, not when GC runs.
            async with contextlib.aclosing(self._produce(prepared, params, lease)) as items:
                async for item in items:
                    if isinstance(item, _Done):
                        if item.completion_tokens is not None:
                            stats["completion_tokens"] = item.completion_tokens
                        stats["finish_reason"] = item.finish_reason
                        stats["cached_tokens"] = item.cached_tokens
                        break
                    first = first or item
                    last = item
                    stats["completion_tokens"] = item.completion_tokens
                    if stats["ttft_ms"] is None:
                        stats["ttft_ms"] = round((item.at - started) * 1000)
                    text = item.text
                    if not answer_started:  # an answer never starts with whitespace
                        text = text.lstrip()
                        answer_started = bool(text)
                    if text:
                        yield text
            if stats["finish_reason"] is None:
                raise LLMUnavailable("The language model stopped without finishing its answer.")
        except (GeneratorExit, asyncio.CancelledError):
            stats["finish_reason"] = "cancelled"
            raise
        except Exception:
            stats["finish_reason"] = "error"
            raise
        finally:
            if lease is not None and not lease.handed_over:
                lease.release()
            if first is not None and last is not None and last.at > first.at:
                rate = (last.completion_tokens - first.completion_tokens) / (last.at - first.at)
                stats["tokens_per_s"] = round(rate, 1)
            if stats["finish_reason"] in ("stop", "length"):
                log.info(
                    "llm %s: %s prompt (%s cached) + %s completion tokens, ttft %s ms, %s tokens/s, queued %s ms",
                    self.model_name,
                    stats["prompt_tokens"],
                    stats["cached_tokens"],
                    stats["completion_tokens"],
                    stats["ttft_ms"],
                    stats["tokens_per_s"],
                    stats["queue_ms"],
                )
