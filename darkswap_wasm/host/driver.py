"""One driver for a sans-I/O machine on the event loop (as aioquic's protocol re-arms its
connection's one timer from ``get_timer()`` after every ``transmit()``).

After input has been fed to the machine, :meth:`Driver.step` runs the owner's ``after``
callback (dispatch the machine's events, write the bytes it wants sent) and re-arms the
machine's one timer at its ``next_deadline()``; when the timer fires, ``handle_timeout(now)``
runs and then the same step. :meth:`Driver.soon` coalesces steps to the end of the loop's turn
(many sends in one turn, one flush). Nothing polls: a machine with no deadline has no timer.

An exception from the machine or from ``after`` inside a timer or a coalesced step is a bug, not
the peer: it is logged and handed to ``on_error`` (the owner fails its session with it) instead
of vanishing into the loop's exception handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = ["Driver"]


class Driver:
    def __init__(
        self,
        *,
        next_deadline: Callable[[], float | None],
        handle_timeout: Callable[[float], object],
        after: Callable[[], None],
        flush: Callable[[float], object] | None = None,
        on_error: Callable[[Exception], None],
        what: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._next_deadline = next_deadline
        self._handle_timeout = handle_timeout
        self._after = after
        self._flush = flush
        self._on_error = on_error
        self._what = what
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._soon: asyncio.Handle | None = None
        self._closed = False

    @property
    def armed_at(self) -> float | None:
        """The deadline (``clock`` time) the timer is armed for; ``None``: no timer."""
        return self._timer_at if self._timer is not None else None

    def step(self) -> None:
        """Input was fed to the machine: dispatch and write now, then re-arm the timer."""
        if self._closed:
            return
        self._after()
        self.rearm()

    def soon(self) -> None:
        """``flush(now)`` and :meth:`step` at the end of the loop's turn (coalesced: once
        however often called in one turn)."""
        if self._soon is None and not self._closed:
            self._soon = asyncio.get_running_loop().call_soon(self._run_soon)

    def rearm(self) -> None:
        if self._closed:
            return
        deadline = self._next_deadline()
        if deadline == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)
            self._timer_at = deadline

    def close(self) -> None:
        self._closed = True
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()
        self._timer = self._soon = None
        self._timer_at = None

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self._guard(lambda: self._handle_timeout(self._clock()))

    def _run_soon(self) -> None:
        self._soon = None
        flush = self._flush
        self._guard(lambda: flush(self._clock()) if flush is not None else None)

    def _guard(self, first: Callable[[], object]) -> None:
        if self._closed:
            return
        try:
            first()
            self.step()
        except Exception as exc:
            log.exception("%s: driving the machine failed", self._what)
            self._on_error(exc)
