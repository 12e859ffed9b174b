"""darkswap_wasm/tasks.py: a background task that ends unexpectedly is logged under its name."""

from __future__ import annotations

import asyncio
import logging

from darkswap_wasm.errors import ConnectionClosed
from darkswap_wasm.tasks import spawn

from .helpers import async_test


async def fail(exc: BaseException) -> None:
    await asyncio.sleep(0)
    raise exc


def test_a_bug_is_an_error_with_its_traceback_and_the_network_only_debug(caplog) -> None:
    @async_test(10)
    async def run() -> None:
        bug = spawn(fail(RuntimeError("boom")), "the session timer")
        net = spawn(fail(ConnectionClosed("peer went away")), "a reader")
        ok = spawn(asyncio.sleep(0), "a quiet task")
        stopped = spawn(asyncio.sleep(10), "a cancelled task")
        await asyncio.sleep(0.01)
        stopped.cancel()
        await asyncio.gather(bug, net, ok, stopped, return_exceptions=True)
        await asyncio.sleep(0)

    with caplog.at_level(logging.DEBUG, logger="darkswap_wasm.tasks"):
        run()
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "darkswap_wasm.tasks"]
    assert ("ERROR", "the session timer failed") in records
    assert ("DEBUG", "a reader ended: ConnectionClosed('peer went away')") in records
    assert len(records) == 2  # nothing for the task that returned or the one cancelled
    err = next(r for r in caplog.records if r.levelname == "ERROR")
    assert err.exc_info and "boom" in str(err.exc_info[1])
