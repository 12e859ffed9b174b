"""Start and stop a DarkSwap node (``python -m darkswap_wasm.cli``) as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from .relayproc import ROOT


class NodeProcess:
    def __init__(self, proc: asyncio.subprocess.Process, addrs: list[str]) -> None:
        self.proc = proc
        self.addrs = addrs

    @classmethod
    async def start(cls, *args: str, expect: int = 1, timeout: float = 20.0) -> NodeProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "darkswap_wasm.cli", "--log-level", "WARNING", *args,
            stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), env=env,
        )
        addrs: list[str] = []
        try:
            while len(addrs) < expect:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout)
                if not line:
                    raise RuntimeError(f"node exited early with {await proc.wait()}")
                addrs.append(line.decode().strip())
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        return cls(proc, addrs)

    @property
    def peer_id(self) -> str:
        return self.addrs[0].rsplit("/p2p/", 1)[1]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def stop(self) -> int | None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode
