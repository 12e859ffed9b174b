"""host/driver.py: the one driver of a sans-I/O machine on a real event loop."""

from __future__ import annotations

import asyncio
import logging
import time

from darkswap_wasm.host.driver import Driver

from .helpers import async_test


class Machine:
    """A toy machine: one deadline at a time; ``handle_timeout`` records when it ran."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.timeouts: list[float] = []
        self.flushes = 0
        self.steps = 0
        self.fail = False

    def next_deadline(self) -> float | None:
        return self.deadline

    def handle_timeout(self, now: float) -> None:
        if self.fail:
            raise RuntimeError("machine bug")
        if self.deadline is not None and now >= self.deadline:
            self.timeouts.append(now)
            self.deadline = None

    def flush(self, now: float) -> None:
        self.flushes += 1


def driver_for(m: Machine, errors: list) -> Driver:
    def after() -> None:
        m.steps += 1

    return Driver(
        next_deadline=m.next_deadline,
        handle_timeout=m.handle_timeout,
        flush=m.flush,
        after=after,
        on_error=errors.append,
        what="toy machine",
    )


@async_test(timeout=10)
async def test_one_timer_at_the_machines_deadline_and_none_without_one():
    m, errors = Machine(), []
    d = driver_for(m, errors)
    d.step()
    assert m.steps == 1 and d.armed_at is None  # no deadline: no timer (nothing polls)
    m.deadline = time.monotonic() + 0.1
    d.step()
    assert d.armed_at == m.deadline
    d.rearm()  # same deadline: the same timer, not a second one
    assert d.armed_at == m.deadline
    await asyncio.sleep(0.3)
    assert len(m.timeouts) == 1 and m.timeouts[0] >= time.monotonic() - 0.3
    assert m.steps == 3  # the timer's handle_timeout is followed by a step (dispatch + write)
    assert d.armed_at is None and errors == []


@async_test(timeout=10)
async def test_a_later_deadline_moves_the_timer():
    m, errors = Machine(), []
    d = driver_for(m, errors)
    m.deadline = time.monotonic() + 0.05
    d.step()
    m.deadline = time.monotonic() + 0.4
    d.step()
    await asyncio.sleep(0.2)
    assert m.timeouts == []  # the first timer was cancelled
    await asyncio.sleep(0.4)
    assert len(m.timeouts) == 1


@async_test(timeout=10)
async def test_soon_coalesces_flushes_to_one_per_turn():
    m, errors = Machine(), []
    d = driver_for(m, errors)
    for _ in range(100):
        d.soon()
    assert m.flushes == 0 and m.steps == 0  # at the end of the turn, not inline
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert m.flushes == 1 and m.steps == 1
    d.soon()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert m.flushes == 2


@async_test(timeout=10)
async def test_a_failing_machine_is_reported_not_lost(caplog):
    m, errors = Machine(), []
    d = driver_for(m, errors)
    m.fail = True
    m.deadline = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="darkswap_wasm.host.driver"):
        d.rearm()
        await asyncio.sleep(0.05)
    assert len(errors) == 1 and "machine bug" in str(errors[0])
    assert "toy machine: driving the machine failed" in caplog.text


@async_test(timeout=10)
async def test_close_cancels_the_timer_and_pending_flush():
    m, errors = Machine(), []
    d = driver_for(m, errors)
    m.deadline = time.monotonic() + 0.05
    d.step()
    d.soon()
    d.close()
    await asyncio.sleep(0.15)
    assert m.timeouts == [] and m.flushes == 0 and m.steps == 1
    d.step()  # a closed driver does nothing
    assert m.steps == 1 and d.armed_at is None
