from __future__ import annotations

import asyncio
import contextlib
import functools
import time

from darkswap_wasm import Network, NetworkConfig


def async_test(timeout: float = 60.0):
    """Run an ``async def`` test on a fresh event loop, failing it after ``timeout`` seconds."""

    def wrap(fn):
        @functools.wraps(fn)
        def runner(*args, **kwargs):
            async def main():
                return await asyncio.wait_for(fn(*args, **kwargs), timeout)

            return asyncio.run(main())

        return runner

    return wrap


@contextlib.asynccontextmanager
async def networks(*listen: str):
    """One ``Network`` per listen address, all closed at the end."""
    nets = []
    try:
        for addr in listen:
            nets.append(await Network.create(NetworkConfig(listen_addrs=[addr] if addr else [])))  # noqa: PERF401
        yield nets
    finally:
        for n in nets:
            await n.close()


async def echo_handler(stream) -> None:
    while True:
        data = await stream.read()
        if not data:
            break
        await stream.write(data)
    await stream.close()


async def echo_roundtrip(stream, payload: bytes) -> bytes:
    """Write ``payload`` and half-close while reading the echo concurrently."""

    async def reader():
        parts = []
        while True:
            d = await stream.read()
            if not d:
                return b"".join(parts)
            parts.append(d)

    task = asyncio.ensure_future(reader())
    try:
        await stream.write(payload)
        await stream.close()
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    return await task


def pattern(n: int) -> bytes:
    block = bytes((i * 7 + 3) & 0xFF for i in range(65536))
    return (block * (n // len(block) + 1))[:n]


async def reserved(*nets: Network, timeout: float = 10.0) -> None:
    """Wait until every one of ``nets`` holds a relay reservation (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not all(n.reservations() for n in nets):
        assert time.monotonic() < deadline, "no relay reservation"
        await asyncio.sleep(0.05)
