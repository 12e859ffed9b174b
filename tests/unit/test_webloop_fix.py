"""transports/webloop.py: Pyodide's WebLoop.call_at must accept a time in the past (as asyncio's
own loops do). Here against a stand-in with WebLoop's behaviour; tests/browser/test_ffi_glue.py
checks the real loop in Chromium."""

from __future__ import annotations

import sys

import pytest

from darkswap_wasm.transports import webloop


class StrictLoop:
    """call_later refuses a negative delay and call_at subtracts the clock, as WebLoop does."""

    def __init__(self) -> None:
        self.now = 100.0
        self.scheduled: list[float] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay, callback, *args, context=None):
        if delay < 0:
            raise ValueError("Can't schedule in the past")
        self.scheduled.append(delay)
        return (delay, callback, args)

    def call_at(self, when, callback, *args, context=None):
        return self.call_later(when - self.time(), callback, *args, context=context)


def test_the_stand_in_has_the_bug_and_the_patch_removes_it() -> None:
    class Loop(StrictLoop):
        pass

    loop = Loop()
    with pytest.raises(ValueError, match="in the past"):
        loop.call_at(99.9999, print)
    assert webloop.patch(Loop)
    assert loop.call_at(99.9999, print, 1) == (0.0, print, (1,))  # at once, not an error
    assert loop.call_at(100.5, print)[0] == pytest.approx(0.5)  # the future is untouched
    assert loop.scheduled == [0.0, pytest.approx(0.5)]


def test_install_is_a_no_op_outside_pyodide() -> None:
    if sys.platform == "emscripten":
        assert webloop.install() is True and webloop.install() is True  # idempotent in Pyodide
    else:
        assert webloop.install() is False
