"""The README's examples, read from README.md itself (never copies), for tests/integration/test_readme.py
and tests/browser/test_readme_page.py.

:func:`blocks` parses every fenced code block with its language and section; :func:`commands`
splits a ```sh block into the commands a user types (continuation lines joined, comments and
blank lines dropped); :class:`ShellCommand` runs one of them exactly as written through ``bash
-c`` in a directory standing for the checkout's root, with ``.venv/bin`` first on ``PATH`` (what
``. .venv/bin/activate`` gives the user); :func:`matches` compares output with a ```text block
whose ``…`` stands for anything.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent  # the tests run on .venv/bin/python: the README's activated venv
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)\n(.*?)^```\s*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    section: str  # the "## " heading above it ("" before the first)
    lang: str
    code: str


def blocks(text: str | None = None) -> list[Block]:
    text = README.read_text(encoding="utf-8") if text is None else text
    out = []
    for m in FENCE.finditer(text):
        headings = re.findall(r"^## (.+)$", text[: m.start()], re.M)
        out.append(Block(headings[-1].strip() if headings else "", m.group(1), m.group(2)))
    return out


def only(found: list[Block], what: str) -> Block:
    assert len(found) == 1, f"README.md should have exactly one {what}, has {len(found)}"
    return found[0]


def commands(code: str) -> list[str]:
    """The commands of a ```sh block: ``\\``-continued lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def sh_commands(text: str | None = None) -> list[str]:
    """Every command of every ```sh block, the opening ``./build.sh`` ones left out."""
    return [c for b in blocks(text) if b.lang == "sh" for c in commands(b.code) if not c.startswith("./build.sh")]


def command(starts: str, text: str | None = None) -> str:
    found = [c for c in sh_commands(text) if c.startswith(starts)]
    assert len(found) == 1, (
        f"README.md should give exactly one command starting {starts!r}; its commands: {sh_commands(text)}"
    )
    return found[0]


def matches(expected: str, got: str) -> bool:
    """``got`` equals ``expected`` where each ``…`` in ``expected`` stands for any text (not a newline)."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("…"))
    return re.fullmatch(pattern, got.strip()) is not None


def shell_env() -> dict[str, str]:
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)  # the venv's own darkswap_wasm, as for a user
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    return env


class ShellCommand:
    """One README command as the user runs it in a terminal: ``bash -c <command>`` in ``cwd``; its
    stdout lines are collected; it runs in its own process group, stopped with SIGTERM like Ctrl-C."""

    def __init__(self, cmd: str, cwd: Path) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(
            ["bash", "-c", cmd],
            cwd=str(cwd),
            env=shell_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _pump_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def describe(self) -> str:
        return f"`{self.cmd}` (exit {self.proc.poll()}): stdout {self.lines}; stderr:\n" + "\n".join(self.stderr[-30:])

    def read_lines(self, n: int, timeout: float = 30.0) -> list[str]:
        """Wait for ``n`` stdout lines in all; an ended process or ``timeout`` fails with its output."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            try:
                line = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {n} lines within {timeout:g} s from {self.describe()}") from None
            if line is None:
                self.proc.wait(5)
                raise AssertionError(f"ended before printing {n} lines: {self.describe()}")
            self.lines.append(line)
        return self.lines

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for it to end by itself; then every stdout line is in :attr:`lines`."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"did not end within {timeout:g} s: {self.describe()}") from None
        while (line := self._q.get(timeout=10)) is not None:
            self.lines.append(line)
        return rc

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                self.proc.wait(10)
        return self.proc.returncode
