"""Our CLIs as real processes for the tests: the relay (``python -m darkswap_wasm.relay``) and a
node (``python -m darkswap_wasm.cli``). Each prints its full listen multiaddrs one per line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class _CliProcess:
    MODULE = ""

    def __init__(self, proc: asyncio.subprocess.Process, addrs: list[str]) -> None:
        self.proc = proc
        self.addrs = addrs
        self.stderr: list[str] = []  # its log lines, with start(..., capture_stderr=True)
        self._stderr_task: asyncio.Task | None = None
        if proc.stderr is not None:
            self._stderr_task = asyncio.ensure_future(self._collect(proc.stderr))

    async def _collect(self, pipe: asyncio.StreamReader) -> None:
        while line := await pipe.readline():
            self.stderr.append(line.decode(errors="replace").rstrip("\n"))

    @classmethod
    async def start(cls, *args: str, expect: int | None = None, timeout: float = 20.0, capture_stderr: bool = False):
        """Start it and read ``expect`` address lines (default: one per ``--listen``, else 2)."""
        if expect is None:
            expect = sum(1 for a in args if a == "--listen") or 2
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", cls.MODULE, "--log-level", "WARNING", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE if capture_stderr else None,
            cwd=str(ROOT), env=env,
        )
        addrs: list[str] = []
        try:
            while len(addrs) < expect:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout)
                if not line:
                    raise RuntimeError(f"{cls.MODULE} exited early with {await proc.wait()}")
                addrs.append(line.decode().strip())
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        return cls(proc, addrs)

    def addr(self, kind: str = "tcp") -> str:
        return next(a for a in self.addrs if ("/ws/" in a) == (kind == "ws"))

    @property
    def peer_id(self) -> str:
        return self.addrs[0].rsplit("/p2p/", 1)[1]

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen (SIGSTOP) process must see the signal
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._stderr_task is not None:
            await asyncio.wait_for(self._stderr_task, 5)  # every line read
        return self.proc.returncode


class RelayProcess(_CliProcess):
    MODULE = "darkswap_wasm.relay"


class NodeProcess(_CliProcess):
    MODULE = "darkswap_wasm.cli"
