"""Background tasks that cannot die unnoticed.

A loop run with ``asyncio.ensure_future`` that raises ends silently (asyncio at most prints
"Task exception was never retrieved" when the task is garbage-collected, without saying which
loop it was): a messaging session whose timer task died that way sent no more acks and stalled
(see ``transports/webloop.py``). :func:`spawn` names the task and logs how it ended: a
:class:`~darkswap_wasm.errors.DarkSwapError` (the network, the peer) at debug level, anything
else (a bug) as an error with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from .errors import DarkSwapError

__all__ = ["TaskSet", "spawn"]

log = logging.getLogger(__name__)


def spawn(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task:
    """``asyncio.ensure_future(coro)`` whose unexpected end is logged under ``what``."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(lambda t: _report(t, what))
    return task


def _report(task: asyncio.Task, what: str) -> None:
    if task.cancelled():
        return
    exc = task.exception()  # retrieved here, so asyncio does not complain again at GC
    if exc is None:
        return
    if isinstance(exc, DarkSwapError):
        log.debug("%s ended: %r", what, exc)
    else:
        log.error("%s failed", what, exc_info=exc)


class TaskSet:
    """Spawned tasks a component owns: each one is tracked until it ends (so none is lost to
    garbage collection or outlives its owner) and :meth:`close` cancels and awaits them all."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task:
        task = spawn(coro, what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        """Cancel every task and wait for them to end (their errors were logged by spawn)."""
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
