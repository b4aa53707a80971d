"""The fair queue in front of the model, with fake holders and no model at all: the order of
grants (round-robin across users, first come, first served within one), the positions waiters
are told, how much work a change in a long line costs, giving up while waiting, releasing from
another thread, waiters whose event loop is gone, and a stop during generation handing the
model on.

Nothing here measures time: every step waits for an event, so a busy machine only slows it.
Work is counted instead: callbacks invoked and wake-ups scheduled."""

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
    """A fake request for the model on behalf of ``owner``: queues, records when it gets the
    model, holds it until told."""

    def __init__(self, slot: FairSlot, name: str, granted: list[str], owner=None) -> None:
        self.name = name
        self.told = Told()
        self.lease: Lease | None = None
        self.finish = asyncio.Event()
        self.task = asyncio.create_task(self._use(slot, granted, owner))

    async def _use(self, slot: FairSlot, granted: list[str], owner) -> None:
        self.lease = await slot.acquire(self.told, owner=owner)
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


async def test_a_slot_of_capacity_two_grants_two_at_once_and_the_third_waits():
    slot = FairSlot(capacity=2)
    granted: list[str] = []
    holders = [Holder(slot, name, granted, owner=name) for name in ("a", "b", "c")]
    await until(lambda: granted == ["a", "b"])
    await holders[2].told.reach(1)

    assert slot.busy and slot.waiting == 1 and holders[0].told.positions == holders[1].told.positions == []
    holders[1].finish.set()  # one place frees: the waiter takes it
    await until(lambda: granted == ["a", "b", "c"])
    assert slot.busy and slot.waiting == 0
    for holder in (holders[0], holders[2]):
        holder.finish.set()
    await asyncio.gather(*(holder.task for holder in holders))
    assert not slot.busy


# --- Round-robin across users ----------------------------------------------------------------------


async def serve_in_turn(holders: list[Holder], granted: list[str]) -> None:
    """Let each holder use the model in the order the queue grants it, until all are done."""
    pending = {holder.name: holder for holder in holders}
    while pending:
        await until(lambda: any(name in pending for name in granted))
        name = next(name for name in granted if name in pending)
        holder = pending.pop(name)
        holder.finish.set()
        await holder.task


async def test_the_model_goes_to_the_next_user_in_turn_not_the_next_request():
    slot = FairSlot()
    granted: list[str] = []
    alices_first = await slot.acquire(owner="alice")
    # Alice queues two more before anyone else asks; then Bob asks twice and Carol once.
    alice2 = Holder(slot, "alice2", granted, owner="alice")
    alice3 = Holder(slot, "alice3", granted, owner="alice")
    await alice3.told.reach(2)
    bob1 = Holder(slot, "bob1", granted, owner="bob")
    await alice3.told.reach(3)
    bob2 = Holder(slot, "bob2", granted, owner="bob")
    await alice3.told.reach(4)
    carol1 = Holder(slot, "carol1", granted, owner="carol")
    await alice3.told.reach(5)

    alices_first.release()
    await serve_in_turn([alice2, alice3, bob1, bob2, carol1], granted)

    # Alice had her turn: Bob and Carol go first, then one each, in turn; each user's own
    # questions keep their order.
    assert granted == ["bob1", "carol1", "alice2", "bob2", "alice3"]
    assert not slot.busy and slot.waiting == 0


async def test_each_waiter_is_told_its_place_as_other_users_join_and_leave():
    slot = FairSlot()
    granted: list[str] = []
    alices_first = await slot.acquire(owner="alice")
    alice2 = Holder(slot, "alice2", granted, owner="alice")
    alice3 = Holder(slot, "alice3", granted, owner="alice")
    await alice3.told.reach(2)
    bob1 = Holder(slot, "bob1", granted, owner="bob")  # goes ahead of Alice's later questions
    await alice3.told.reach(3)
    bob2 = Holder(slot, "bob2", granted, owner="bob")  # behind Alice's second: her turn came first
    await alice3.told.reach(4)
    carol1 = Holder(slot, "carol1", granted, owner="carol")
    await alice3.told.reach(5)

    alices_first.release()
    order = [bob1, carol1, alice2, bob2, alice3]
    for n, holder in enumerate(order):
        await until(lambda holder=holder: holder.name in granted)
        for place, waiting in enumerate(order[n + 1 :], start=1):
            await waiting.told.reach(place)  # each waiter hears of each move before the next
        holder.finish.set()
        await holder.task

    assert bob1.told.positions == [1]
    assert carol1.told.positions == [2, 1]
    assert alice2.told.positions == [1, 2, 3, 2, 1]
    assert bob2.told.positions == [3, 4, 3, 2, 1]
    assert alice3.told.positions == [2, 3, 4, 5, 4, 3, 2, 1]
    assert granted == ["bob1", "carol1", "alice2", "bob2", "alice3"]


async def test_callers_without_an_owner_share_one_lane():
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire()  # a benchmark, say
    anonymous = [Holder(slot, f"script{n}", granted) for n in (2, 3)]
    await anonymous[-1].told.reach(2)
    bob = Holder(slot, "bob", granted, owner="bob")
    await bob.told.reach(1)

    first.release()
    await serve_in_turn([*anonymous, bob], granted)

    assert granted == ["bob", "script2", "script3"]


async def test_the_engine_serves_the_next_user_before_the_same_users_next_answer():
    engine = CountingEngine()
    alices_first = engine.stream(QUESTION, GenerationParams(max_tokens=100), owner=7)
    await anext(alices_first)
    finished: list[str] = []

    async def answer(name: str, owner: int, told: Told) -> None:
        await collect(engine.stream(QUESTION, GenerationParams(max_tokens=2), owner=owner, on_queue_position=told))
        finished.append(name)

    alice_told, bob_told = Told(), Told()
    alices_second = asyncio.create_task(answer("alice", 7, alice_told))
    await alice_told.reach(1)
    bobs = asyncio.create_task(answer("bob", 8, bob_told))
    await alice_told.reach(2)
    await alices_first.aclose()
    await asyncio.wait_for(asyncio.gather(alices_second, bobs), PATIENCE)

    assert bob_told.positions == [1]
    assert alice_told.positions == [1, 2, 1]
    assert finished == ["bob", "alice"]


# --- Work in a long line -------------------------------------------------------------------------


LONG = 200


class Wakeups:
    """Counts the wake-ups the queue schedules on the running event loop (it wakes a waiting
    task through ``loop.call_soon_threadsafe``, since it may be released from any thread)."""

    def __init__(self, monkeypatch) -> None:
        loop = asyncio.get_running_loop()
        original = loop.call_soon_threadsafe
        self.count = 0

        def counting(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(loop, "call_soon_threadsafe", counting)


def told_so_far(holders: list[Holder]) -> int:
    return sum(len(holder.told.positions) for holder in holders)


async def line_up(slot: FairSlot, owners: list, granted: list[str]) -> list[Holder]:
    """Queue one holder per owner, in order, each once told its place (its index + 1)."""
    holders = []
    for n, owner in enumerate(owners, start=1):
        holders.append(Holder(slot, f"w{n}", granted, owner=owner))
        await holders[-1].told.reach(n)
    return holders


async def leave(holders: list[Holder]) -> None:
    for holder in holders:
        holder.task.cancel()
    await asyncio.gather(*(holder.task for holder in holders), return_exceptions=True)


async def test_a_release_in_a_line_of_200_wakes_and_tells_each_waiter_once(monkeypatch):
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire(owner="first")
    holders = await line_up(slot, list(range(LONG)), granted)
    told_before = told_so_far(holders)
    wakeups = Wakeups(monkeypatch)

    first.release()
    await until(lambda: granted == ["w1"])
    for place, holder in enumerate(holders[1:], start=1):
        await holder.told.reach(place)

    assert wakeups.count == LONG  # the one granted the model, and each waiter that moved up
    assert told_so_far(holders) - told_before == LONG - 1
    await leave(holders[1:])
    holders[0].finish.set()
    await holders[0].task
    assert not slot.busy and slot.waiting == 0


async def test_a_waiter_leaving_the_back_of_a_line_of_200_disturbs_nobody(monkeypatch):
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire(owner="first")
    holders = await line_up(slot, list(range(LONG)), granted)
    told_before = told_so_far(holders)
    wakeups = Wakeups(monkeypatch)

    await leave(holders[-1:])
    assert slot.waiting == LONG - 1

    assert wakeups.count == 0
    assert told_so_far(holders) == told_before
    await leave(holders)
    first.release()


async def test_ten_waiters_leaving_the_front_at_once_wake_each_other_waiter_once(monkeypatch):
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire(owner="first")
    holders = await line_up(slot, list(range(LONG)), granted)
    told_before = told_so_far(holders)
    wakeups = Wakeups(monkeypatch)

    await leave(holders[:10])
    for place, holder in enumerate(holders[10:], start=1):
        await holder.told.reach(place)

    # Changes that come faster than the waiters run are folded into one wake-up each, and each
    # waiter is told only its latest place.
    assert wakeups.count <= LONG
    assert told_so_far(holders) - told_before == LONG - 10
    await leave(holders)
    first.release()


async def test_a_newcomer_wakes_only_the_waiters_it_goes_ahead_of(monkeypatch):
    slot = FairSlot()
    granted: list[str] = []
    first = await slot.acquire(owner="first")
    users = list(range(LONG // 2))
    holders = await line_up(slot, users, granted)  # everyone's first question...
    seconds = [Holder(slot, f"second{n}", granted, owner=user) for n, user in enumerate(users)]
    for place, holder in enumerate(seconds, start=len(users) + 1):  # ...then their second ones
        await holder.told.reach(place)
    told_before = told_so_far(holders + seconds)
    wakeups = Wakeups(monkeypatch)

    newcomer = Holder(slot, "newcomer", granted, owner="newcomer")
    await newcomer.told.reach(len(users) + 1)  # after every first question, before every second
    for place, holder in enumerate(seconds, start=len(users) + 2):
        await holder.told.reach(place)

    assert wakeups.count == len(seconds)
    assert told_so_far(holders + seconds) - told_before == len(seconds)
    assert [holder.told.positions[-1] for holder in holders] == list(range(1, len(users) + 1))
    await leave([*holders, *seconds, newcomer])
    first.release()


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
