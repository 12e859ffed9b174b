"""A fix for Pyodide's asyncio event loop (``pyodide.webloop.WebLoop``), applied in a page.

``WebLoop.call_at(when, ...)`` computes ``when - loop.time()`` and hands it to ``call_later``,
which raises ``ValueError("Can't schedule in the past")`` when it is negative. asyncio's own
timeouts (``asyncio.wait_for``, ``asyncio.timeout``) call ``call_at`` for any deadline that was
still in the future a moment before, and the page's clock moves in 100 µs steps
(``performance.now()`` is coarsened without cross-origin isolation): a wait with a deadline a few
µs away sometimes raises ``ValueError`` instead of timing out, and the coroutine that waited dies
(measured in Chromium: 19 of 3,000 ``wait_for`` calls with delays under 100 µs). In this package
that silently stopped a messaging session's timer task, so its last acks were never sent.

:func:`install` makes ``call_at`` for a time in the past run the callback as soon as possible,
as asyncio's ``BaseEventLoop.call_at`` does. Idempotent; a no-op outside Pyodide or when the
loop already accepts past times.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["install"]

_MARK = "_darkswap_call_at_clamped"


def install() -> bool:
    """Patch ``WebLoop.call_at`` once (Pyodide only). Returns whether the patch is in place."""
    if sys.platform != "emscripten":
        return False
    try:
        from pyodide.webloop import WebLoop
    except ImportError:
        return False
    if getattr(WebLoop.call_at, _MARK, False):
        return True
    return patch(WebLoop)


def patch(loop_class: Any) -> bool:
    """Make ``loop_class.call_at`` clamp a past ``when`` to "now" (separate for the tests)."""

    def call_at(self, when: float, callback, *args: Any, context=None):
        return self.call_later(max(0.0, when - self.time()), callback, *args, context=context)

    setattr(call_at, _MARK, True)
    call_at.__doc__ = "call_at that accepts a time in the past (darkswap_wasm.transports.webloop)."
    loop_class.call_at = call_at
    return True
