"""Start and stop the relay CLI (``python -m darkswap_wasm.relay``) as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class RelayProcess:
    def __init__(self, proc: asyncio.subprocess.Process, addrs: list[str]) -> None:
        self.proc = proc
        self.addrs = addrs

    @classmethod
    async def start(cls, *args: str, timeout: float = 20.0) -> RelayProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "darkswap_wasm.relay", "--log-level", "WARNING", *args,
            stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), env=env,
        )
        addrs = []
        n_listen = max(1, sum(1 for a in args if a == "--listen")) if "--listen" in args else 2
        try:
            while len(addrs) < n_listen:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout)
                if not line:
                    raise RuntimeError(f"relay exited early with {await proc.wait()}")
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

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode
