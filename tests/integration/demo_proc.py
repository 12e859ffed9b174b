"""``scripts/demo.py`` as a process for the tests (tests/integration/test_demo_script.py and the
browser demo test): in a session of its own, so that a Ctrl-C can go to its whole process group
as a terminal sends it; stdout/stderr collected by reader threads (no read can hang a test)."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, str(ROOT / "scripts" / "demo.py")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Demo:
    """demo.py in a session of its own (so a Ctrl-C can go to its whole process group)."""

    def __init__(self, *args: str, tmp: Path, dist: Path | None = None) -> None:
        self.ports = {"http": free_port(), "tcp": free_port(), "ws": free_port()}
        self.cmd = [
            *DEMO,
            "--http-port", str(self.ports["http"]),
            "--relay-tcp-port", str(self.ports["tcp"]),
            "--relay-ws-port", str(self.ports["ws"]),
            "--identity", str(tmp / "relay.key"),
            "--log-level", "WARNING",
            *(["--dist", str(dist)] if dist is not None else []),
            *args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
            start_new_session=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._on_out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err.append), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _on_out(self, line: str) -> None:
        self.stdout.append(line)
        self.out.put(line)

    @staticmethod
    def _pump(pipe, put) -> None:
        for line in pipe:
            put(line)

    def wait_for_line(self, needle: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.out.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if needle in line:
                return line.strip()
        raise AssertionError(f"{needle!r} never printed: {''.join(self.stdout)!r} / {''.join(self.err)!r}")

    def url(self) -> str:
        return self.wait_for_line("/demo/index.html?")

    def stop(self, how: str) -> tuple[int, str, str]:
        if how == "ctrl-c":
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"did not stop within 15 s of {how}") from None
        for t in self._threads:
            t.join(2)
        return self.proc.returncode, "".join(self.stdout), "".join(self.err)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
