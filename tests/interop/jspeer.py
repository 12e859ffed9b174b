"""Python client of the js-libp2p interop peer (``js/peer.mjs``): its JSON-lines protocol.

The command protocol is documented in ``js/README.md``. Used by the interop tests, the
benchmarks and ``js/selftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "js"
NODE = HERE / "node_modules" / ".bin" / "node"
PEER = HERE / "peer.mjs"
MIB = 1024 * 1024


def pattern(n: int) -> bytes:
    """The deterministic payload peer.mjs sends: byte i is i % 251."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


def require_node() -> Path:
    """The Node 22 binary the harness runs on; a clear failure (never a skip) when missing."""
    if not NODE.exists() or not (HERE / "node_modules" / "libp2p" / "package.json").exists():
        raise RuntimeError(
            f"js-libp2p interop peer is not installed ({NODE} missing): run `npm ci` in {HERE} "
            "(./build.sh test does it)"
        )
    return NODE


class JsPeer:
    """Drives one peer.mjs process over its JSON-lines stdin/stdout protocol."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process):
        self.name = name
        self.proc = proc
        self.ready: dict = {}
        self.events: list[dict] = []
        self.errors: list[dict] = []
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self._event_waiters: list[tuple] = []
        self._reader_task: asyncio.Task | None = None

    @classmethod
    async def start(cls, name: str, *args: str, ready_timeout: float = 30.0) -> JsPeer:
        proc = await asyncio.create_subprocess_exec(
            str(NODE),
            str(PEER),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # inherit: diagnostics go to our stderr
            limit=16 * MIB,
        )
        peer = cls(name, proc)
        peer._reader_task = asyncio.create_task(peer._read_loop())
        peer.ready = await peer.wait_event(lambda e: e.get("event") in ("ready", "fatal"), ready_timeout)
        if peer.ready["event"] != "ready":
            raise RuntimeError(f"{name} failed to start: {peer.ready}")
        return peer

    @property
    def peer_id(self) -> str:
        return self.ready["peerId"]

    def addr(self, kind: str) -> str:
        for a in self.ready["addrs"]:
            if kind == "ws" and "/ws/" in a:
                return a
            if kind == "tcp" and "/ws/" not in a and "/tcp/" in a:
                return a
        raise LookupError(f"{self.name} has no {kind} addr: {self.ready['addrs']}")

    async def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            msg = json.loads(line)
            if "id" in msg and "ok" in msg:
                fut = self._pending.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                continue
            self.events.append(msg)
            if msg.get("event") in ("error", "fatal"):
                self.errors.append(msg)
            for pred, fut in list(self._event_waiters):
                if not fut.done() and pred(msg):
                    fut.set_result(msg)
                    self._event_waiters.remove((pred, fut))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(EOFError(f"{self.name} closed stdout"))
        for _, fut in self._event_waiters:
            if not fut.done():
                fut.set_exception(EOFError(f"{self.name} closed stdout"))

    async def wait_event(self, pred, timeout: float = 10.0, since: int = 0) -> dict:
        """Wait for an event line matching pred (events[since:] are checked first)."""
        for e in self.events[since:]:
            if pred(e):
                return e
        fut = asyncio.get_running_loop().create_future()
        self._event_waiters.append((pred, fut))
        return await asyncio.wait_for(fut, timeout)

    async def call(self, cmd: str, timeout: float = 60.0, **kw) -> dict:
        """Send a command; returns the reply dict (check reply['ok'])."""
        self._next_id += 1
        rid = self._next_id
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"id": rid, "cmd": cmd, **kw}) + "\n").encode())
        await self.proc.stdin.drain()
        return await asyncio.wait_for(fut, timeout)

    async def ok(self, cmd: str, timeout: float = 60.0, **kw) -> dict:
        r = await self.call(cmd, timeout=timeout, **kw)
        if not r.get("ok"):
            raise AssertionError(f"{self.name} {cmd} {kw} failed: {r.get('error')}")
        return r

    async def stop(self) -> int:
        if self.proc.returncode is None:
            try:
                await self.call("stop", timeout=10)
            except (EOFError, TimeoutError, ConnectionError) as e:
                print(f"{self.name}: stop command failed ({e!r}); waiting for exit", file=sys.stderr)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader_task is not None:
            await self._reader_task
        return self.proc.returncode
