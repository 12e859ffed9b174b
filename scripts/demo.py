#!/usr/bin/env python3
"""Run the browser demo locally: our relay plus a static web server, both on 127.0.0.1.

    python scripts/demo.py [--build] [--http-port 8000] [--relay-tcp-port 4001] [--relay-ws-port 4002]

Starts
  * the relay CLI: ``python -m darkswap_wasm.relay --listen /ip4/127.0.0.1/tcp/4001
    --listen /ip4/127.0.0.1/tcp/4002/ws --identity .cache/demo-relay.key`` (the key file keeps
    the relay's peer ID, and so the demo URL, stable across runs);
  * an HTTP server on 127.0.0.1 serving the repository root, so that ``/dist/`` (the browser
    build: ``python scripts/build_dist.py --out dist --browser``, or ``--build`` here) and
    ``/demo/`` are reachable from one origin (``demo/index.html`` loads ``../dist/darkswap.js``);

then prints the demo URL with the relay's WebSocket address filled in. Open it in two tabs,
paste one tab's peer ID into the other, connect, send orders. Ctrl-C (or SIGTERM) stops both.
Standard library and this project only.
"""

from __future__ import annotations

import argparse
import os
import queue
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


def start_relay(args: argparse.Namespace) -> tuple[subprocess.Popen, list[str]]:
    key = Path(args.identity)
    key.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "darkswap_wasm.relay",
        "--listen",
        f"/ip4/127.0.0.1/tcp/{args.relay_tcp_port}",
        "--listen",
        f"/ip4/127.0.0.1/tcp/{args.relay_ws_port}/ws",
        "--identity",
        str(key),
        "--log-level",
        args.log_level,
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    addrs: list[str] = []
    deadline = time.monotonic() + 30
    while len(addrs) < 2:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            stop(proc)
            raise SystemExit(f"demo: the relay did not start ({' '.join(cmd)}; exit {proc.poll()})")
        if line:
            addrs.append(line)
    return proc, addrs


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="relay logging")
    args = ap.parse_args(argv)

    if args.build:
        rc = subprocess.call(
            [sys.executable, str(REPO_ROOT / "scripts" / "build_dist.py"), "--out", args.dist, "--browser"]
        )
        if rc:
            return rc
    dist = Path(args.dist).resolve()
    missing = [f for f in DIST_FILES if not (dist / f).is_file()]
    if missing:
        print(
            f"demo: {dist} lacks {', '.join(missing)}; build it: python scripts/build_dist.py --out dist --browser "
            "(or run this script with --build)",
            file=sys.stderr,
        )
        return 1
    # the page loads ../dist/ relative to /demo/: serve a root in which both sit
    temp_root = None
    if dist.parent == REPO_ROOT and dist.name == "dist":
        root = REPO_ROOT
    else:  # a dist elsewhere: a temporary root with dist/ and demo/ as symlinks
        root = temp_root = Path(tempfile.mkdtemp(prefix="darkswap-demo-"))
        (root / "dist").symlink_to(dist)
        (root / "demo").symlink_to(REPO_ROOT / "demo")

    try:
        web = StaticServer(root, port=args.http_port)
    except OSError as exc:
        print(f"demo: cannot listen on 127.0.0.1:{args.http_port} ({exc}); pass --http-port", file=sys.stderr)
        if temp_root is not None:
            shutil.rmtree(temp_root, ignore_errors=True)
        return 1
    relay, addrs = start_relay(args)
    ws = next((a for a in addrs if "/ws/" in a), addrs[-1])

    stopping = threading.Event()

    def on_signal(signum, _frame) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    url = f"{web.base_url}demo/index.html?relay={urllib.parse.quote(ws, safe='/:')}"
    print(f"relay      {addrs[0]}", flush=True)
    for a in addrs[1:]:
        print(f"           {a}", flush=True)
    print(f"web root   {root} (dist: {dist})", flush=True)
    print(f"\nopen in two tabs:\n  {url}\n\nCtrl-C stops the relay and the web server.", flush=True)
    try:
        while not stopping.is_set():
            if relay.poll() is not None:
                print(f"demo: the relay exited ({relay.returncode})", file=sys.stderr)
                break
            stopping.wait(0.5)
    finally:
        print("\ndemo: stopping…", flush=True)
        web.close()
        stop(relay)
        if temp_root is not None:
            shutil.rmtree(temp_root, ignore_errors=True)
    return 0 if relay.returncode in (0, -signal.SIGTERM, None) else relay.returncode


if __name__ == "__main__":
    sys.exit(main())
