#!/usr/bin/env python3
"""Run the browser demo locally: our relay plus a static web server, both on 127.0.0.1.

    python scripts/demo.py [--build] [--http-port 8000] [--relay-tcp-port 4001] [--relay-ws-port 4002]
                           [--room NAME] [--max-reservations-per-peer 64]

Starts
  * the relay CLI: ``python -m darkswap_wasm.relay --listen /ip4/127.0.0.1/tcp/4001
    --listen /ip4/127.0.0.1/tcp/4002/ws --identity .cache/demo-relay.key
    --max-reservations-per-peer 64 ...`` (the key file keeps the relay's peer ID stable across
    runs; every tab comes from 127.0.0.1, so the per-IP reservation cap, 4 by default, is raised);
  * an HTTP server on 127.0.0.1 serving the repository root, so that ``/dist/`` (the browser
    build: ``python scripts/build_dist.py --out dist --browser``, or ``--build`` here) and
    ``/demo/`` are reachable from one origin (``demo/index.html`` loads ``../dist/darkswap.js``);

then prints the demo URL: the relay's WebSocket address and a random room name. Open it twice:
the two tabs find each other in the room (through the relay's rendezvous service) and connect.
Ctrl-C (or SIGTERM) stops everything in every state (building, starting the relay, running);
the exit code is then 0. A port in use is one line naming it, exit code 1. Standard library and
this project only.
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from scripts.static_server import StaticServer  # noqa: E402

DIST_FILES = ["darkswap.js", "js_glue/boot.js", "pyodide/pyodide.mjs", "pyodide/pyodide-lock.json"]
RELAY_START_TIMEOUT = 30.0  # s until the relay prints its addresses
STOP_TIMEOUT = 10.0  # s a child gets after SIGTERM before it is killed
ROOM_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: easy to read out


def random_room() -> str:
    return "".join(secrets.choice(ROOM_ALPHABET) for _ in range(8))


def relay_command(
    tcp_port: int,
    ws_port: int,
    identity: str | Path,
    *,
    max_reservations_per_peer: int = 64,
    log_level: str = "INFO",
) -> list[str]:
    """The demo relay's command line: many tabs from 127.0.0.1, circuits without the default
    2 min / 128 KiB limits (tabs without WebRTC stay on the relayed path)."""
    return [
        sys.executable,
        "-m",
        "darkswap_wasm.relay",
        "--listen",
        f"/ip4/127.0.0.1/tcp/{tcp_port}",
        "--listen",
        f"/ip4/127.0.0.1/tcp/{ws_port}/ws",
        "--identity",
        str(identity),
        "--max-reservations-per-peer",
        str(max_reservations_per_peer),
        "--max-circuits-per-peer",
        str(max_reservations_per_peer),
        "--max-circuits-per-ip",  # every tab comes from 127.0.0.1
        str(2 * max_reservations_per_peer),
        "--max-circuits-to-peer-per-ip",
        str(max_reservations_per_peer),
        "--max-circuits",
        str(max(16, 2 * max_reservations_per_peer)),
        "--circuit-duration",
        "0",
        "--circuit-data",
        "0",
        "--log-level",
        log_level,
    ]


def demo_url(base_url: str, relay_ws: str, room: str) -> str:
    query = f"relay={urllib.parse.quote(relay_ws, safe='/:')}&room={urllib.parse.quote(room, safe='')}"
    return f"{base_url}demo/index.html?{query}"


class Stopping(Exception):
    """SIGINT/SIGTERM arrived: stop what is running, exit 0."""


class RelayFailed(Exception):
    """The relay did not come up; the message is one line."""


class Relay:
    """The relay CLI as a child: stdout lines (its addresses) queued, stderr kept until it is up,
    then passed through to ours."""

    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        self.passthrough = False
        self._lock = threading.Lock()
        threading.Thread(target=self._pump_out, daemon=True).start()
        self._err_thread = threading.Thread(target=self._pump_err, daemon=True)
        self._err_thread.start()

    def _pump_out(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line.strip())
        self.lines.put(None)

    def _pump_err(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            with self._lock:
                if self.passthrough:
                    sys.stderr.write(line)
                    sys.stderr.flush()
                else:
                    self.err.append(line)

    def pass_stderr_through(self) -> None:
        with self._lock:
            self.passthrough = True
            for line in self.err:
                sys.stderr.write(line)
            sys.stderr.flush()

    def wait_for_addrs(self, n: int, stopping: threading.Event) -> list[str]:
        """The first ``n`` address lines; raises :class:`Stopping` on a signal, :class:`RelayFailed`
        when the relay exits first or takes too long."""
        addrs: list[str] = []
        deadline = time.monotonic() + RELAY_START_TIMEOUT
        while len(addrs) < n:
            if stopping.is_set():
                raise Stopping
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RelayFailed(f"it printed no address within {RELAY_START_TIMEOUT:.0f} s") from None
                continue
            if line is None:
                if stopping.wait(0.3):  # a Ctrl-C reaches the relay too (one process group)
                    raise Stopping
                self.proc.wait(STOP_TIMEOUT)
                self._err_thread.join(2)
                raise RelayFailed(self.reason())
            if line:
                addrs.append(line)
        return addrs

    def reason(self) -> str:
        """The relay's own one-line error (it names the address), else its exit code."""
        lines = [ln.strip() for ln in self.err if ln.strip()]
        if lines:
            last = lines[-1]
            return last.split(": ", 1)[1] if last.startswith("darkswap-relay: ") else last
        return f"exit code {self.proc.returncode}"

    def stop(self) -> None:
        stop_child(self.proc)


def stop_child(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def build(dist: str, stopping: threading.Event) -> int:
    """scripts/build_dist.py --out DIST --browser (no test wheels), stoppable by our signals."""
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "build_dist.py"), "--out", dist, "--browser"]
    proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT))
    while proc.poll() is None:
        if stopping.is_set():
            stop_child(proc)
            raise Stopping
        try:
            proc.wait(0.2)
        except subprocess.TimeoutExpired:
            pass
    if stopping.is_set():  # a Ctrl-C reaches the build too (one process group): it ends first
        raise Stopping
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--build", action="store_true", help="build dist/ first (scripts/build_dist.py --out dist --browser)"
    )
    ap.add_argument("--dist", default=str(REPO_ROOT / "dist"), help="the browser build (default: %(default)s)")
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--relay-tcp-port", type=int, default=4001)
    ap.add_argument("--relay-ws-port", type=int, default=4002)
    ap.add_argument("--identity", default=str(REPO_ROOT / ".cache" / "demo-relay.key"), help="the relay's key file")
    ap.add_argument("--room", default=None, help="the room name in the printed URL (default: a random one)")
    ap.add_argument(
        "--max-reservations-per-peer",
        type=int,
        default=64,
        help="the relay's reservation cap per source IP (every tab is 127.0.0.1; default: %(default)s)",
    )
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="relay logging")
    args = ap.parse_args(argv)

    stopping = threading.Event()

    def on_signal(_signum, _frame) -> None:
        stopping.set()

    # first of all: a signal in any state below sets the event, never a KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    temp_root: Path | None = None
    web: StaticServer | None = None
    relay: Relay | None = None
    try:
        if args.build:
            rc = build(args.dist, stopping)
            if rc:
                print(f"demo: building {args.dist} failed (exit {rc})", file=sys.stderr)
                return rc
        dist = Path(args.dist).resolve()
        missing = [f for f in DIST_FILES if not (dist / f).is_file()]
        if missing:
            print(
                f"demo: {dist} lacks {', '.join(missing)}; build it: python scripts/build_dist.py --out dist "
                "--browser (or run this script with --build)",
                file=sys.stderr,
            )
            return 1
        # the page loads ../dist/ relative to /demo/: serve a root in which both sit
        if dist.parent == REPO_ROOT and dist.name == "dist":
            root = REPO_ROOT
        else:  # a dist elsewhere: a temporary root with dist/ and demo/ as symlinks
            root = temp_root = Path(tempfile.mkdtemp(prefix="darkswap-demo-"))
            (root / "dist").symlink_to(dist)
            (root / "demo").symlink_to(REPO_ROOT / "demo")
        try:
            web = StaticServer(root, port=args.http_port)
        except OSError as exc:
            why = exc.strerror or str(exc)
            print(f"demo: cannot listen on 127.0.0.1:{args.http_port} ({why}); pass --http-port", file=sys.stderr)
            return 1
        key = Path(args.identity)
        if not key.parent.is_dir():
            key.parent.mkdir(parents=True, exist_ok=True)
        relay = Relay(
            relay_command(
                args.relay_tcp_port,
                args.relay_ws_port,
                key,
                max_reservations_per_peer=args.max_reservations_per_peer,
                log_level=args.log_level,
            )
        )
        try:
            addrs = relay.wait_for_addrs(2, stopping)
        except RelayFailed as exc:
            print(f"demo: the relay did not start: {exc} (ports: --relay-tcp-port, --relay-ws-port)", file=sys.stderr)
            return 1
        relay.pass_stderr_through()
        ws = next((a for a in addrs if "/ws/" in a), addrs[-1])
        url = demo_url(web.base_url, ws, args.room or random_room())
        print(f"relay      {addrs[0]}", flush=True)
        for a in addrs[1:]:
            print(f"           {a}", flush=True)
        print(f"web root   {root} (dist: {dist})", flush=True)
        print(
            f"\nopen this URL in two tabs (they find each other in its room):\n  {url}\n\n"
            "Ctrl-C stops the relay and the web server.",
            flush=True,
        )
        while not stopping.wait(0.5):
            if relay.proc.poll() is not None and not stopping.wait(0.3):  # not a Ctrl-C that reached it too
                print(f"demo: the relay exited (exit code {relay.proc.returncode}): stopping", file=sys.stderr)
                return relay.proc.returncode or 1
        raise Stopping
    except Stopping:
        return 0
    finally:
        if stopping.is_set():
            print("\ndemo: stopping…", flush=True)
        if web is not None:
            web.close()
        if relay is not None:
            relay.stop()
        if temp_root is not None:
            shutil.rmtree(temp_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
