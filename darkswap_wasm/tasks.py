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

__all__ = ["spawn"]

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
