"""host/wakeup.py: the stream's event whose waits time out without a timer per wait."""

from __future__ import annotations

import asyncio
import time

from darkswap_wasm.host.wakeup import Wakeup

from .helpers import async_test


def count_timers(loop: asyncio.AbstractEventLoop) -> list:
    """Record the timers Wakeup arms on ``loop`` (the instance attribute shadows the method;
    asyncio.sleep's own timers are not counted)."""
    calls: list = []
    real = loop.call_later

    def call_later(delay, cb, *args, **kw):
        if getattr(cb, "__self__", None).__class__ is Wakeup:
            calls.append(delay)
        return real(delay, cb, *args, **kw)

    loop.call_later = call_later  # type: ignore[method-assign]
    return calls


@async_test(10)
async def test_set_wakes_every_waiter_and_a_set_event_does_not_wait() -> None:
    w = Wakeup()
    waiters = [asyncio.ensure_future(w.wait(5)) for _ in range(3)] + [asyncio.ensure_future(w.wait())]
    await asyncio.sleep(0)
    assert not any(t.done() for t in waiters)
    w.set()
    assert await asyncio.gather(*waiters) == [True] * 4
    assert w.is_set() and await w.wait(0) is True
    w.clear()
    assert not w.is_set()


@async_test(10)
async def test_timeout_returns_false_no_earlier_than_the_deadline() -> None:
    w = Wakeup()
    t0 = time.monotonic()
    assert await w.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.045
    assert not w.timer_armed  # nothing pending: no timer left behind
    assert await w.wait(0) is False and await w.wait(-1) is False  # a deadline already passed


@async_test(10)
async def test_steady_traffic_arms_one_timer_not_one_per_wait() -> None:
    loop = asyncio.get_running_loop()
    calls = count_timers(loop)
    w = Wakeup()
    for _ in range(200):
        w.clear()
        loop.call_soon(w.set)
        assert await w.wait(30) is True
    assert len(calls) == 1  # asyncio.wait_for would have armed 200


@async_test(10)
async def test_timer_rearms_for_a_later_wait_and_still_times_it_out() -> None:
    loop = asyncio.get_running_loop()
    calls = count_timers(loop)
    w = Wakeup()
    first = asyncio.ensure_future(w.wait(0.05))
    await asyncio.sleep(0)
    w.set()
    assert await first is True
    w.clear()
    await asyncio.sleep(0.03)
    t0 = time.monotonic()
    assert await w.wait(0.1) is False  # the first timer fires early for it, re-arms, then times it out
    assert time.monotonic() - t0 >= 0.095
    assert len(calls) == 2


@async_test(10)
async def test_an_earlier_deadline_rearms_and_cancelled_waits_are_forgotten() -> None:
    w = Wakeup()
    slow = asyncio.ensure_future(w.wait(5))
    await asyncio.sleep(0)
    t0 = time.monotonic()
    assert await w.wait(0.05) is False  # its own, earlier deadline: not held up by the 5 s one
    assert time.monotonic() - t0 < 2
    assert w.timer_armed  # re-armed for the 5 s waiter
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    assert "waiters=0" in repr(w)
    w.set()
    assert await w.wait(1) is True
