"""Fair admission to the one model an engine holds: round-robin across owners, first come, first
served within one owner.

A ``FairSlot(capacity)`` lets ``capacity`` requests hold the model at once (the local engine
generates that many answers together). ``FairSlot.acquire(on_position, owner=...)`` returns a
``Lease`` at once when a place is free, otherwise queues the caller and awaits
``on_position(n)`` each time its place changes (1 = next).
``owner`` is whoever the request is for (a user's primary key); requests without one share one
anonymous lane. Cancelling a waiting caller takes it out of the queue and moves the others up.
``Lease.release()`` may be called from any thread (the decoder thread lets go of the model when
an answer ends), exactly once; it hands the place to the next waiter, skipping waiters whose
event loop is gone.

Round-robin
-----------
Each request gets a *turn*: the turn being served now for an owner with nothing in line or in
hand, otherwise the owner's latest turn plus one. The line is ordered by turn, then by arrival.
So a user's second and third questions go behind every other user's first one, newcomers
included, and one user cannot take the model from the others however many sockets they open;
the model goes to the next *user* in turn, not the next socket. (A request given up keeps its
turn used: the owner's later requests do not move forward.)

Positions
---------
Every change (a request queues, leaves or is granted the model) renumbers the line once, from
the first place that changed, and wakes only the waiters whose place changed; a woken waiter
reads its own place, so a change costs time linear in the length of the line, and a waiter
whose place changed several times before it ran is told only the latest.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

QueueCallback = Callable[[int], Awaitable[Any]]
Owner = Hashable | None  # None: the anonymous lane (benchmarks, scripts)


class _Waiter:
    __slots__ = ("loop", "owner", "key", "position", "wakeup", "woken", "granted", "gone")

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: Owner, key: tuple[int, int]):
        self.loop = loop
        self.owner = owner
        self.key = key  # (turn, arrival): the order of the line
        self.position = 0  # place in line, 1 = next; kept up to date by the slot
        self.wakeup: asyncio.Future | None = None  # set while the waiter sleeps
        self.woken = False  # a wake-up is already on its way
        self.granted = False
        self.gone = False  # its event loop is closed: it will never take the model


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _key(waiter: _Waiter) -> tuple[int, int]:
    return waiter.key


class Lease:
    """The right to use the model; released exactly once, from any thread."""

    def __init__(self, slot: FairSlot):
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


class FairSlot:
    """``capacity`` holders at a time; waiters are served round-robin across owners (see the module doc).

    The line lives on the event loops of its waiters (futures), guarded by a thread lock because
    a worker thread releases the slot and tests may drive the engine from several loops in turn.
    """

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError("a slot holds at least one request")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._holders = 0
        self._line: list[_Waiter] = []  # sorted by key
        self._arrivals = 0
        self._turn = 0  # the turn of the request holding (or that last held) the model
        # Each owner's latest turn, kept while it is not behind ``_turn`` (older ones change nothing).
        self._latest: dict[Owner, int] = {}

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._line)

    @property
    def busy(self) -> bool:
        """True while any request holds the model."""
        with self._lock:
            return self._holders > 0

    async def acquire(self, on_position: QueueCallback | None = None, *, owner: Owner = None) -> Lease:
        loop = asyncio.get_running_loop()
        with self._lock:
            turn = max(self._turn, self._latest.get(owner, self._turn - 1) + 1)
            self._latest[owner] = turn
            if self._holders < self.capacity and not self._line:
                self._holders += 1
                self._serving_locked(turn)
                return Lease(self)
            self._arrivals += 1
            waiter = _Waiter(loop, owner, (turn, self._arrivals))
            index = bisect.bisect(self._line, waiter.key, key=_key)
            self._line.insert(index, waiter)
            self._renumber_locked(index)
        told = None
        try:
            while True:
                with self._lock:
                    if waiter.granted:
                        return Lease(self)
                    position = waiter.position
                    waiter.wakeup = wakeup = loop.create_future()
                    waiter.woken = False
                if on_position is not None and position != told:
                    told = position
                    await on_position(position)
                    continue  # the line may have moved while the caller was told
                await wakeup
        except BaseException:
            with self._lock:
                granted = waiter.granted
                if not granted and not waiter.gone:
                    index = self._line.index(waiter)
                    del self._line[index]
                    self._renumber_locked(index)
            if granted:  # handed the model just as we left: pass it on
                self._release()
            raise

    def _release(self) -> None:
        with self._lock:
            self._holders -= 1
            while self._line and self._holders < self.capacity:
                waiter = self._line.pop(0)
                if self._wake_locked(waiter):
                    waiter.granted = True
                    self._holders += 1
                    self._serving_locked(waiter.key[0])
                else:
                    waiter.gone = True
            if not self._holders and not self._line:
                self._latest.clear()  # nobody holds or waits: past turns no longer matter
            self._renumber_locked(0)

    def _serving_locked(self, turn: int) -> None:
        """The model now serves ``turn``: forget owners whose latest turn is behind it."""
        if turn != self._turn:
            self._turn = turn
            self._latest = {owner: latest for owner, latest in self._latest.items() if latest >= turn}

    def _renumber_locked(self, start: int) -> None:
        """Number the line from ``start`` on (places before it did not change) in one pass, waking
        each waiter whose place changed; a waiter whose event loop is gone is dropped on the way."""
        position = start
        dropped = False
        for waiter in self._line[start:]:
            position += 1
            if waiter.position == position:
                continue
            waiter.position = position
            if not self._wake_locked(waiter):
                waiter.gone = dropped = True
                position -= 1
        if dropped:
            self._line = [waiter for waiter in self._line if not waiter.gone]

    def _wake_locked(self, waiter: _Waiter) -> bool:
        """Wake a waiter; False when its event loop is gone (nobody will ever take the model)."""
        if waiter.loop.is_closed():
            return False
        future = waiter.wakeup
        if future is None or waiter.woken:
            return True  # it is awake, or about to be, and will see its new state itself
        try:
            waiter.loop.call_soon_threadsafe(_resolve, future)
        except RuntimeError:
            return False
        waiter.woken = True
        return True
