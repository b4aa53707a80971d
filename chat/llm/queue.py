"""Fair first-come, first-served admission to the one model an engine holds.

``FairSlot.acquire()`` returns a ``Lease`` at once when the model is free, otherwise queues the
caller and awaits ``on_position(n)`` each time its place changes (1 = next). Cancelling a waiting
caller takes it out of the queue and moves the others up. ``Lease.release()`` may be called from
any thread (a worker thread lets go of the model when it stops touching it); it hands the model
to the next waiter, skipping waiters whose event loop is gone.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

QueueCallback = Callable[[int], Awaitable[Any]]


class _Waiter:
    __slots__ = ("loop", "wakeup", "granted")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.wakeup: asyncio.Future | None = None
        self.granted = False


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


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

    async def acquire(self, on_position: QueueCallback | None = None) -> Lease:
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._busy and not self._queue:
                self._busy = True
                return Lease(self)
            waiter = _Waiter(loop)
            self._queue.append(waiter)
        reported = None
        try:
            while True:
                with self._lock:
                    if waiter.granted:
                        return Lease(self)
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
