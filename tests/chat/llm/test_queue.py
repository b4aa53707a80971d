"""The fair FIFO queue in front of the model, with fake holders and no model at all: the order
of grants, the positions waiters are told, giving up while waiting, releasing from another
thread, waiters whose event loop is gone, and a stop during generation handing the model on.

Nothing here measures time: every step waits for an event, so a busy machine only slows it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator

from chat.llm.engine import Engine, _Done, _Piece, _Prepared
from chat.llm.params import GenerationParams
from chat.llm.queue import FairSlot, Lease

PATIENCE = 30  # seconds before a step that never happens fails the test instead of hanging it


class Told:
    """The queue positions one waiter is told; ``reach`` waits until the latest is ``position``."""

    def __init__(self) -> None:
        self.positions: list[int] = []
        self._changed = asyncio.Event()

    async def __call__(self, position: int) -> None:
        self.positions.append(position)
        self._changed.set()

    async def reach(self, position: int) -> None:
        async with asyncio.timeout(PATIENCE):
            while not self.positions or self.positions[-1] != position:
                self._changed.clear()
                await self._changed.wait()


class Holder:
    """A fake user of the model: queues, records when it gets the model, holds it until told."""

    def __init__(self, slot: FairSlot, name: str, granted: list[str]) -> None:
        self.name = name
        self.told = Told()
        self.lease: Lease | None = None
        self.finish = asyncio.Event()
        self.task = asyncio.create_task(self._use(slot, granted))

    async def _use(self, slot: FairSlot, granted: list[str]) -> None:
        self.lease = await slot.acquire(self.told)
        granted.append(self.name)
        await self.finish.wait()
        self.lease.release()


async def until(condition) -> None:
    async with asyncio.timeout(PATIENCE):
        while not condition():
            await asyncio.sleep(0)


# --- Order and positions ------------------------------------------------------------------------


async def test_the_model_goes_to_waiters_in_the_order_they_came():
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire()
    holders = [Holder(slot, name, granted) for name in ("a", "b", "c")]
    for place, holder in enumerate(holders, start=1):
        await holder.told.reach(place)

    assert slot.busy and slot.waiting == 3
    first.release()
    for holder in holders:
        await until(lambda holder=holder: holder.name in granted)
        holder.finish.set()
        await holder.task

    assert granted == ["a", "b", "c"]
    assert not slot.busy and slot.waiting == 0


async def test_waiters_are_told_their_place_each_time_it_changes():
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire()
    a, b, c = (Holder(slot, name, granted) for name in ("a", "b", "c"))
    await c.told.reach(3)

    first.release()
    await c.told.reach(2)
    await b.told.reach(1)
    a.finish.set()
    await c.told.reach(1)
    b.finish.set()
    c.finish.set()
    await asyncio.gather(a.task, b.task, c.task)

    assert a.told.positions == [1]
    assert b.told.positions == [2, 1]
    assert c.told.positions == [3, 2, 1]
    assert granted == ["a", "b", "c"]


async def test_the_free_model_is_granted_at_once_without_a_position():
    slot = FairSlot()
    told = Told()

    lease = await slot.acquire(told)

    assert slot.busy and told.positions == []
    lease.release()
    assert not slot.busy


# --- Giving up ----------------------------------------------------------------------------------


async def test_a_waiter_that_gives_up_leaves_the_queue_and_the_others_move_up():
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire()
    a, b, c = (Holder(slot, name, granted) for name in ("a", "b", "c"))
    await c.told.reach(3)

    b.task.cancel()
    await c.told.reach(2)
    assert slot.waiting == 2
    first.release()
    a.finish.set()
    c.finish.set()
    await asyncio.gather(a.task, c.task)

    assert b.task.cancelled()
    assert granted == ["a", "c"]
    assert a.told.positions == [1] and c.told.positions == [3, 2]
    assert not slot.busy


async def test_a_waiter_cancelled_just_as_it_is_granted_the_model_passes_it_on():
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire()
    a, b = Holder(slot, "a", granted), Holder(slot, "b", granted)
    await b.told.reach(2)

    first.release()  # hands the model to a, whose task has not woken up yet...
    a.task.cancel()  # ...and gives up before it does
    await until(lambda: granted == ["b"])
    b.finish.set()
    await b.task

    assert a.task.cancelled()
    assert granted == ["b"]
    assert not slot.busy and slot.waiting == 0


# --- Releasing ----------------------------------------------------------------------------------


async def test_a_lease_released_from_another_thread_hands_the_model_on_exactly_once():
    slot = FairSlot()
    granted: list[str] = []
    lease = await slot.acquire()
    a, b = Holder(slot, "a", granted), Holder(slot, "b", granted)
    await b.told.reach(2)

    worker = threading.Thread(target=lambda: (lease.release(), lease.release()))
    worker.start()
    await asyncio.to_thread(worker.join)

    assert slot.waiting == 1  # the second release of the same lease handed nothing over
    await until(lambda: granted == ["a"])
    await b.told.reach(1)
    a.finish.set()
    b.finish.set()
    await asyncio.gather(a.task, b.task)
    assert granted == ["a", "b"]


def test_a_waiter_whose_event_loop_is_gone_is_skipped():
    slot = FairSlot()
    with contextlib.closing(asyncio.new_event_loop()) as loop:
        lease = loop.run_until_complete(slot.acquire())
    dead = asyncio.new_event_loop()
    abandoned = dead.create_task(slot.acquire())
    dead.run_until_complete(asyncio.sleep(0))  # the waiter queues and goes to sleep
    dead.close()

    queued = threading.Event()
    granted: list[str] = []

    async def live_waiter() -> None:
        async def told(position: int) -> None:
            queued.set()

        (await slot.acquire(told)).release()
        granted.append("live")

    live = threading.Thread(target=asyncio.run, args=(live_waiter(),))
    live.start()
    assert queued.wait(PATIENCE)
    assert slot.waiting == 2
    lease.release()
    live.join(PATIENCE)

    assert granted == ["live"]
    assert not slot.busy and slot.waiting == 0
    abandoned.get_coro().close()  # here rather than when garbage collection gets to it


# --- A stop during generation ---------------------------------------------------------------------


class CountingEngine(Engine):
    """A fake backend that counts "1, 2, 3, ..." one piece per loop turn until stopped.

    With ``worker_lets_go`` set, a "worker thread" holds the model after a stop until the test
    lets it go, as ``LocalEngine``'s thread does while llama.cpp finishes its token.
    """

    model_name = "counting"
    context_size = 4096

    def __init__(self, worker_lets_go: threading.Event | None = None) -> None:
        super().__init__()
        self.worker_lets_go = worker_lets_go

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _prepare(self, messages):
        return _Prepared(payload=messages, prompt_tokens=sum(len(m["content"].split()) for m in messages))

    async def _produce(self, prepared, params, lease) -> AsyncIterator[_Piece | _Done]:
        stopped = threading.Event()
        if self.worker_lets_go is not None:
            lease.handed_over = True

            def worker() -> None:
                stopped.wait(PATIENCE)
                self.worker_lets_go.wait(PATIENCE)
                lease.release()

            threading.Thread(target=worker).start()
        try:
            for count in range(1, params.max_tokens + 1):
                yield _Piece(f"{count}, ", count, time.perf_counter())
                await asyncio.sleep(0)
            yield _Done("length", params.max_tokens)
        finally:
            stopped.set()


QUESTION = [{"role": "user", "content": "Count from 1 to 1000."}]


async def collect(generation) -> str:
    return "".join([piece async for piece in generation])


async def test_stopping_a_generation_hands_the_model_to_the_next_request():
    engine = CountingEngine()
    first = engine.stream(QUESTION, GenerationParams(max_tokens=100))
    told = Told()

    pieces = [await anext(first), await anext(first)]
    second = engine.stream(QUESTION, GenerationParams(max_tokens=3), on_queue_position=told)
    answering = asyncio.create_task(collect(second))
    await told.reach(1)
    assert engine.queue_length == 1
    await first.aclose()
    answer = await asyncio.wait_for(answering, PATIENCE)

    assert pieces == ["1, ", "2, "]
    assert first.stats["finish_reason"] == "cancelled"
    assert first.stats["completion_tokens"] == 2
    assert answer == "1, 2, 3, "
    assert second.stats["finish_reason"] == "length"
    assert told.positions == [1]
    assert not engine.busy and engine.queue_length == 0


async def test_a_worker_thread_holds_the_model_after_a_stop_until_it_lets_go():
    worker_lets_go = threading.Event()
    engine = CountingEngine(worker_lets_go)
    first = engine.stream(QUESTION, GenerationParams(max_tokens=100))
    told = Told()

    await anext(first)
    second = engine.stream(QUESTION, GenerationParams(max_tokens=3), on_queue_position=told)
    answering = asyncio.create_task(collect(second))
    await told.reach(1)
    await first.aclose()

    assert first.stats["finish_reason"] == "cancelled"
    assert engine.busy and engine.queue_length == 1  # stopped, but the worker has not let go
    worker_lets_go.set()
    assert await asyncio.wait_for(answering, PATIENCE) == "1, 2, 3, "
    await until(lambda: not engine.busy)


async def test_cancelling_the_task_that_reads_the_answer_hands_the_model_on():
    engine = CountingEngine()
    reading = asyncio.Event()

    async def read_forever() -> None:
        async for _piece in engine.stream(QUESTION, GenerationParams(max_tokens=100)):
            reading.set()

    reader = asyncio.create_task(read_forever())
    await reading.wait()
    told = Told()
    second = engine.stream(QUESTION, GenerationParams(max_tokens=2), on_queue_position=told)
    answering = asyncio.create_task(collect(second))
    await told.reach(1)
    reader.cancel()

    assert await asyncio.wait_for(answering, PATIENCE) == "1, 2, "
    assert reader.cancelled()
