"""Several answers generated together in one llama.cpp context: the local backend's decoder.

llama.cpp decodes one token of several sequences in a single call for little more than the cost
of one (docs/benchmarks.md: about 2.2× the tokens/s at 4 streams on 2 cores), so the local
engine keeps ``parallel`` sequences ("seats") in one context, each with a KV cache of its own of
``context`` tokens, and one thread, ``llm-decoder``, runs them all:

- A new request takes the free seat whose cache shares the longest prefix with its prompt (the
  system prompt, or the turn a follow-up replays), drops the rest of that cache and reads the
  remainder of its prompt in steps of ``PREFILL_CHUNK`` tokens, checking its stop flag between
  them. Answers in progress wait meanwhile.
- Then each step decodes the next token of every active seat in one ``llama_decode`` call and
  samples each with its own sampler chain, built by llama-cpp-python's own
  ``Llama._init_sampler``: a greedy answer is the one ``Llama.generate`` gives.
- Text goes to the request's ``emit`` through a ``_Coalescer``: the first token at once, later
  ones together at most every ``STREAM_INTERVAL`` seconds. Waking an event loop for every token
  takes a core from llama.cpp's threads, which spin between tokens.
- A request that ends (end of generation, ``max_tokens``, its stop flag, or a failure) gets its
  last pieces and a ``_Done`` (or the exception), then its ``release`` is called and its seat is
  free at once; the seat's cache stays for a later prompt with the same beginning.

``submit(request)`` may be called from any thread. Requests come already admitted by the
engine's fair queue, whose capacity is the number of seats, so a seat is always free.
"""

from __future__ import annotations

import codecs
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chat.llm.engine import _Done, _Piece
from chat.llm.errors import LLMUnavailable
from chat.llm.params import SEED_MAX, GenerationParams

log = logging.getLogger("chat.llm")

# Prompt tokens read per llama_decode call: a stop during a long prompt takes effect after at
# most this many tokens (reading in larger steps is no faster here: docs/benchmarks.md).
PREFILL_CHUNK = 128
# Seconds between two hand-overs of generated text to the event loop (one websocket frame each):
# short enough to read as a steady stream, long enough that the loop sleeps while the model
# decodes. docs/benchmarks.md has the measurements.
STREAM_INTERVAL = 0.04


@dataclass
class Request:
    tokens: list[int]  # the whole prompt
    params: GenerationParams
    stop: threading.Event
    emit: Callable[[_Piece | _Done | BaseException], None]
    release: Callable[[], None]  # called once, after the last emit


class _Coalescer:
    """Gathers generated pieces and sends them on as one piece: the first at once (time to first
    token), later ones when ``interval`` seconds have passed since the last sending, and whatever
    is left on ``flush``."""

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


class _Seat:
    """One sequence of the context: its cached tokens and the request it is answering, if any."""

    def __init__(self, seq: int):
        self.seq = seq
        self.cached: list[int] = []  # the tokens in this sequence's KV cache, in order
        self.reused = 0  # of the current prompt, the tokens found in the cache
        self.request: Request | None = None
        self.sampler: Any = None
        self.pending: int | None = None  # sampled, not yet in the cache
        self.produced = 0
        self.utf8: codecs.IncrementalDecoder | None = None
        self.pieces: _Coalescer | None = None


def _refuse(request: Request, exc: BaseException) -> None:
    """End a request that never got a seat."""
    try:
        request.emit(exc)
    finally:
        request.release()


def _common_prefix(a: list[int], b: list[int]) -> int:
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common


class Decoder:
    """``parallel`` sequences of ``context`` tokens each over the model ``llama`` holds."""

    def __init__(self, llama: Any, internals: Any, *, parallel: int, context: int):
        import llama_cpp
        from llama_cpp import _internals

        self._llama = llama
        self._internals = internals
        params = type(llama.context_params).from_buffer_copy(llama.context_params)  # same threads, batch sizes
        params.n_seq_max = parallel
        params.n_ctx = parallel * context
        params.kv_unified = False  # each sequence its own cache of ``context`` tokens
        try:
            self._ctx = _internals.LlamaContext(model=llama._model, params=params, verbose=False)
        except ValueError as exc:  # llama.cpp could not allocate it
            raise LLMUnavailable(
                f"The language model's cache of {parallel} × {context} tokens could not be created ({exc}): "
                "lower LLM_PARALLEL or LLM_CONTEXT."
            ) from exc
        self._memory = llama_cpp.llama_get_memory(self._ctx.ctx)
        self.context_size = llama_cpp.llama_n_ctx_seq(self._ctx.ctx)
        self._batch = llama_cpp.llama_batch_init(max(PREFILL_CHUNK, parallel), 0, 1)
        self._seats = [_Seat(seq) for seq in range(parallel)]
        self._incoming: list[Request] = []
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="llm-decoder", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, request: Request) -> None:
        with self._condition:
            if self._closed:
                raise LLMUnavailable("The language model is closed (the server is stopping).")
            self._incoming.append(request)
            self._condition.notify()

    def close(self) -> bool:
        """Stop the thread (answers in progress and waiting requests end as failed) and free the
        context; False when the thread did not stop within 2 s (the context is then left alone)."""
        import llama_cpp

        with self._condition:
            self._closed = True
            self._condition.notify()
        self._thread.join(timeout=2)
        if self._thread.is_alive():
            return False
        llama_cpp.llama_batch_free(self._batch)
        self._ctx.close()
        return True

    # --- the decoder thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._incoming and not self._busy_seats() and not self._closed:
                    self._condition.wait()
                if self._closed:
                    break
                incoming, self._incoming = self._incoming, []
            for request in incoming:
                try:
                    self._start(request)
                except Exception as exc:
                    log.exception("llama.cpp failed reading a prompt")
                    seat = next((seat for seat in self._seats if seat.request is request), None)
                    if seat is None:
                        _refuse(request, exc)
                    else:
                        self._fail(seat, exc)
            active = [seat for seat in self._seats if seat.request is not None and seat.pending is not None]
            if active:
                try:
                    self._step(active)
                except Exception as exc:
                    log.exception("llama.cpp generation failed")
                    for seat in active:
                        if seat.request is not None:  # not ended before the failure
                            self._fail(seat, exc)
        closed = LLMUnavailable("The language model was closed (the server is stopping).")
        for seat in self._busy_seats():
            self._fail(seat, closed)
        with self._condition:
            incoming, self._incoming = self._incoming, []
        for request in incoming:
            _refuse(request, closed)

    def _busy_seats(self) -> list[_Seat]:
        return [seat for seat in self._seats if seat.request is not None]

    def _start(self, request: Request) -> None:
        free = [seat for seat in self._seats if seat.request is None]
        if not free:
            raise RuntimeError("no free sequence: the queue admitted more requests than the model has seats")
        tokens = request.tokens
        seat = max(free, key=lambda candidate: _common_prefix(candidate.cached, tokens))
        seat.request, seat.pending, seat.produced = request, None, 0
        # Keep the cached prefix, but read at least the prompt's last token: its logits give the
        # first answer token.
        common = min(_common_prefix(seat.cached, tokens), len(tokens) - 1)
        if not self._drop(seat, common):
            common = 0
            self._drop(seat, 0)
        seat.reused = common
        for start in range(common, len(tokens), PREFILL_CHUNK):
            if request.stop.is_set():
                self._finish(seat, "cancelled")
                return
            chunk = tokens[start : start + PREFILL_CHUNK]
            last = start + len(chunk) == len(tokens)
            self._fill(
                [
                    (token, start + offset, seat.seq, last and offset == len(chunk) - 1)
                    for offset, token in enumerate(chunk)
                ]
            )
            self._decode()
            seat.cached.extend(chunk)
        params = request.params
        sampler = params.sampler()
        self._llama.set_seed(params.seed if params.seed is not None else random.randrange(SEED_MAX))
        seat.sampler = self._llama._init_sampler(
            temp=sampler["temperature"],
            top_k=sampler["top_k"],
            top_p=sampler["top_p"],
            min_p=sampler["min_p"],
            repeat_penalty=sampler["repeat_penalty"],
        )
        seat.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        seat.pieces = _Coalescer(request.emit, STREAM_INTERVAL)
        self._take(seat, seat.sampler.sample(self._ctx, len(chunk) - 1))

    def _step(self, active: list[_Seat]) -> None:
        self._fill([(seat.pending, len(seat.cached), seat.seq, True) for seat in active])
        self._decode()
        for index, seat in enumerate(active):
            seat.cached.append(seat.pending)
            seat.pending = None
            self._take(seat, seat.sampler.sample(self._ctx, index))

    def _take(self, seat: _Seat, token: int) -> None:
        """Hand a sampled token to its request, or end the request."""
        request = seat.request
        if request.stop.is_set():
            self._finish(seat, "cancelled")
            return
        if self._internals.is_end_of_generation(token):
            self._finish(seat, "stop")
            return
        seat.produced += 1
        text = seat.utf8.decode(self._llama.detokenize([token]))
        if seat.produced >= request.params.max_tokens:
            seat.pieces.add(_Piece(text + seat.utf8.decode(b"", final=True), seat.produced, time.perf_counter()))
            self._finish(seat, "length")
            return
        seat.pieces.add(_Piece(text, seat.produced, time.perf_counter()))
        seat.pending = token

    def _finish(self, seat: _Seat, reason: str) -> None:
        request = seat.request
        try:
            if seat.pieces is not None:
                seat.pieces.flush()
            request.emit(_Done(reason, seat.produced, seat.reused))
        finally:
            self._free(seat)

    def _fail(self, seat: _Seat, exc: BaseException) -> None:
        request = seat.request
        try:
            request.emit(exc)
        finally:
            seat.cached = []  # its cache may be half written
            self._drop(seat, 0)
            self._free(seat)

    def _free(self, seat: _Seat) -> None:
        request = seat.request
        if seat.sampler is not None:
            seat.sampler.close()
        seat.request, seat.sampler, seat.pending, seat.pieces, seat.utf8 = None, None, None, None, None
        request.release()

    # --- llama.cpp calls ---------------------------------------------------------------------

    def _drop(self, seat: _Seat, keep: int) -> bool:
        """Drop ``seat``'s cache from position ``keep`` on; False when the model cannot."""
        import llama_cpp

        if not llama_cpp.llama_memory_seq_rm(self._memory, seat.seq, keep, -1):
            return False
        del seat.cached[keep:]
        return True

    def _fill(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Fill the batch with (token, position, sequence, wants logits) entries."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for index, (token, position, seq, logits) in enumerate(entries):
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = seq
            batch.logits[index] = logits

    def _decode(self) -> None:
        import llama_cpp

        status = llama_cpp.llama_decode(self._ctx.ctx, self._batch)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")
