"""Several answers generated together by the local engine's decoder, with the real SmolLM2 model:
they stream side by side, each ends on its own, greedy answers do not depend on company, and
requests beyond the seats wait in the fair queue."""

from __future__ import annotations

import asyncio
import time

import pytest

from chat.llm import GenerationParams, LLMUnavailable, LocalEngine, local_model_path
from chat.prompting import SYSTEM_PROMPT

from .test_local import COUNTING, GROUNDED, PATIENCE, collect, idle_engine, wait_for

OTHER = [
    {"role": "system", "content": SYSTEM_PROMPT},
    {
        "role": "user",
        "content": "Passages:\n\n[1] Harbour ferry\nThe ferry leaves at 7:15 every morning.\n\n"
        "Question: When does the ferry leave?",
    },
]


@pytest.fixture
def engine(settings):
    settings.LLM_BASE_URL = ""
    settings.LLM_MODEL_PATH = ""
    settings.LLM_CONTEXT = 1024
    settings.LLM_PARALLEL = 2
    return idle_engine()


async def timed(generation) -> list[tuple[float, str]]:
    return [(time.monotonic(), piece) async for piece in generation]


async def test_two_answers_stream_side_by_side_without_queueing(engine):
    told: list[int] = []

    async def queued(position: int) -> None:
        told.append(position)

    long = engine.stream(COUNTING, GenerationParams(mode="greedy", max_tokens=150), on_queue_position=queued)
    short = engine.stream(GROUNDED, GenerationParams(mode="greedy", max_tokens=40), on_queue_position=queued)
    long_pieces, short_pieces = await asyncio.wait_for(asyncio.gather(timed(long), timed(short)), 120)

    assert told == []  # two seats: nobody waited
    assert engine.context_size == 1024  # each answer has its own cache of LLM_CONTEXT tokens
    # The short answer streamed while the long one was still generating: both were in progress.
    assert short_pieces[0][0] < long_pieces[-1][0]
    assert long.stats["finish_reason"] == "length" and long.stats["completion_tokens"] == 150
    assert short.stats["finish_reason"] in ("stop", "length")
    assert "1987" in "".join(piece for _, piece in short_pieces)


async def test_a_greedy_answer_is_the_same_alone_and_beside_another(engine):
    params = GenerationParams(mode="greedy", max_tokens=40)
    alone = await collect(engine.stream(OTHER, params))
    beside = await asyncio.gather(
        collect(engine.stream(COUNTING, GenerationParams(mode="greedy", max_tokens=80))),
        collect(engine.stream(OTHER, params)),
    )

    assert "7:15" in alone
    assert beside[1] == alone


async def test_stopping_one_answer_leaves_the_other_running(engine):
    stopped = engine.stream(COUNTING, GenerationParams(mode="greedy", max_tokens=300))
    other = engine.stream(OTHER, GenerationParams(mode="greedy", max_tokens=40))
    finishing = asyncio.create_task(collect(other))
    await anext(stopped)
    await stopped.aclose()
    answer = await asyncio.wait_for(finishing, PATIENCE)

    assert stopped.stats["finish_reason"] == "cancelled"
    assert stopped.stats["completion_tokens"] < 300
    assert other.stats["finish_reason"] in ("stop", "length") and "7:15" in answer
    await wait_for(lambda: not engine.busy)  # both seats were handed back


async def test_a_request_beyond_the_seats_waits_its_turn(engine):
    positions: list[int] = []

    async def told(position: int) -> None:
        positions.append(position)

    first = engine.stream(COUNTING, GenerationParams(mode="greedy", max_tokens=200))
    second = engine.stream(COUNTING, GenerationParams(mode="greedy", max_tokens=200))
    await anext(first)
    await anext(second)
    third = asyncio.create_task(
        collect(engine.stream(OTHER, GenerationParams(mode="greedy", max_tokens=40), on_queue_position=told))
    )
    await wait_for(lambda: positions == [1])
    await first.aclose()  # a seat frees: the third goes in
    answer = await asyncio.wait_for(third, PATIENCE)
    await second.aclose()

    assert positions == [1]
    assert "7:15" in answer


async def test_closing_the_engine_ends_an_answer_in_progress_and_refuses_new_ones():
    engine = LocalEngine(local_model_path(), context=512, threads=1, parallel=1)
    generation = engine.stream(COUNTING, GenerationParams(mode="greedy", max_tokens=300))
    await anext(generation)
    await asyncio.to_thread(engine.close)

    with pytest.raises(LLMUnavailable, match="closed"):
        await collect(generation)
    later = engine.stream(COUNTING, GenerationParams(max_tokens=5))
    with pytest.raises(LLMUnavailable, match="closed"):
        await collect(later)
    assert generation.stats["finish_reason"] == later.stats["finish_reason"] == "error"
    assert not engine.busy  # both places were handed back


def test_a_cache_llama_cpp_cannot_allocate_is_reported_with_the_settings_to_lower(monkeypatch):
    from llama_cpp import _internals

    create = _internals.LlamaContext

    def refuse(**kwargs):  # the decoder's context only: the tokenizer's still loads
        if kwargs["params"].n_seq_max > 1:
            raise ValueError("Failed to create llama_context")
        return create(**kwargs)

    monkeypatch.setattr(_internals, "LlamaContext", refuse)
    with pytest.raises(LLMUnavailable, match=r"16 × 4096 tokens could not be created.*LLM_PARALLEL or LLM_CONTEXT"):
        LocalEngine(local_model_path(), context=4096, threads=1, parallel=16)


async def test_a_follow_up_reads_only_what_its_cache_does_not_hold(engine):
    params = GenerationParams(mode="greedy", max_tokens=24)
    asked = [OTHER[0], {"role": "user", "content": OTHER[1]["content"] + " Answer for the harbour master."}]
    first = engine.stream(asked, params)
    answer = "".join([piece async for piece in first])
    follow_up = [*asked, {"role": "assistant", "content": answer}, {"role": "user", "content": "And on Sundays?"}]
    second = engine.stream(follow_up, params)
    await collect(second)

    prompt = engine.count_prompt_tokens(asked)
    assert first.stats["cached_tokens"] < prompt - 5  # at most the instructions, asked before
    # The first prompt, and the answer as the model wrote it, came from the cache.
    assert second.stats["cached_tokens"] >= prompt + first.stats["completion_tokens"] - 2
    assert second.stats["cached_tokens"] < second.stats["prompt_tokens"]
