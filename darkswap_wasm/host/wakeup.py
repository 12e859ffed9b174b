"""An ``asyncio.Event`` whose waits time out without a timer per wait.

``asyncio.wait_for(event.wait(), t)`` arms a timer on every wait and cancels it when the event
comes first. Natively that is cheap; on Pyodide every timer is a JS ``setTimeout`` with a fresh
callable proxy, and a cancelled one still fires later (to find its handle cancelled): a stream
with steady traffic pays that on every read. :class:`Wakeup` keeps at most one timer: armed at
the earliest pending deadline; when it fires and the waits that armed it are gone (woken in
time), it re-arms itself at the next pending deadline, if any. With data flowing, that is about
one timer per timeout period instead of one per wait.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Wakeup"]

_EARLY = 0.001  # s: a timer that fires this much before a deadline counts as on time


class Wakeup:
    """``set`` / ``clear`` / ``is_set`` / ``wait`` like ``asyncio.Event``; ``wait(timeout)``
    returns ``False`` when ``timeout`` seconds pass before the event is set."""

    __slots__ = ("_flag", "_timer", "_timer_at", "_waiters")

    def __init__(self) -> None:
        self._flag = False
        self._waiters: dict[asyncio.Future, float] = {}  # future -> deadline (loop time; inf: none)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        waiters, self._waiters = self._waiters, {}
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout: float | None = None) -> bool:
        """``True`` once the event is set (at once if it is); ``False`` after ``timeout`` s."""
        if self._flag:
            return True
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        deadline = math.inf if timeout is None else loop.time() + max(0.0, timeout)
        self._waiters[fut] = deadline
        if deadline < self._timer_at:
            self._arm(loop, deadline)
        try:
            return await fut
        finally:
            self._waiters.pop(fut, None)  # cancelled: forget it (set/_expire already did otherwise)

    @property
    def timer_armed(self) -> bool:
        """Whether a timer is pending (tests: one timer, not one per wait)."""
        return self._timer is not None

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        # call_later with a clamped delay, not call_at: Pyodide's loop raises for a time in the past
        self._timer = loop.call_later(max(0.0, when - loop.time()), self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = loop.time() + _EARLY
        nxt = math.inf
        for fut, deadline in list(self._waiters.items()):
            if deadline <= now:
                del self._waiters[fut]
                if not fut.done():
                    fut.set_result(False)
            elif deadline < nxt:
                nxt = deadline
        if nxt < math.inf:
            self._arm(loop, nxt)

    def __repr__(self) -> str:
        return f"<Wakeup {'set' if self._flag else 'clear'} waiters={len(self._waiters)}>"
