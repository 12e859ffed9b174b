"""Helpers for the page-network tests: more tabs, a Python module inside each page that runs a
real ``Network`` over the browser adapters, and native peers (relay, node CLI) as subprocesses.

Each :class:`Tab` is its own top-level window in the session's Chromium (so both run at full
speed: neither is a background tab). Inside a tab, :data:`PAGE_MODULE` is written to the Pyodide
file system as ``dsw_page.py``; tests call its coroutines through ``runPythonAsync`` and get
JSON back. The page's ``Network`` lives on in the page between calls (Pyodide's event loop is
the page's). ``DSW_NATIVE_LOG=DEBUG`` makes the native processes log verbosely (kept in
``NativeProc.stderr``).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import BLANK_PAGE, BOOT_JS, Page, StaticServer

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE_DIR = "/home/pyodide/dsw_page"

# runs in the page: `import dsw_page` after PAGE_DIR was put on sys.path
PAGE_MODULE = r'''
"""The test driver inside the page: one Network per page, over BrowserWebSocketTransport and
BrowserWebRTCRuntime (when the page has RTCPeerConnection)."""

import asyncio
import json
import os
import time

import js

from darkswap_wasm.api.network import Network, NetworkConfig
from darkswap_wasm.errors import DarkSwapError
from darkswap_wasm.host.monitor import MonitorConfig
from darkswap_wasm.host.webrtc import WebRTCSettings
from darkswap_wasm.protocols.darkswap_msg import MessagingConfig
from darkswap_wasm.transports import browser_webrtc, browser_ws
from darkswap_wasm.transports.browser_webrtc import BrowserWebRTCRuntime
from darkswap_wasm.transports.browser_ws import BrowserWebSocketTransport, live_proxies
from darkswap_wasm.transports.webrtc_base import WebRTCConfig

ECHO = "/darkswap/echo/1.0.0"
net = None


def ms(t0):
    return round((time.perf_counter() - t0) * 1000, 1)


def out(**kw):
    return json.dumps(kw)


async def echo_handler(stream):
    while data := await stream.read():
        await stream.write(data)
    await stream.close()


async def start(relays=(), rtc=None, webrtc=True, wait_reservations=True, monitor=None):
    """Create this page's Network (WebRTC only when the page has RTCPeerConnection)."""
    global net
    t0 = time.perf_counter()
    ctor = getattr(js, "RTCPeerConnection", None)
    runtime = BrowserWebRTCRuntime(ctor) if (ctor is not None and webrtc) else None
    settings = WebRTCSettings(rtc=WebRTCConfig(**(rtc or {}))) if runtime is not None else None
    net = await Network.create(NetworkConfig(
        transports=[BrowserWebSocketTransport(js.WebSocket)],
        webrtc_runtime=runtime,
        webrtc=settings,
        relays=list(relays),
        monitor=MonitorConfig(**(monitor or {})),
        messaging=MessagingConfig(compress=False),
    ))
    net.set_stream_handler(ECHO, echo_handler)
    create_ms = ms(t0)
    if relays and wait_reservations:
        deadline = time.monotonic() + 20
        while len(net.reservations()) < len(relays):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reservation on {relays} after 20 s")
            await asyncio.sleep(0.02)
    return out(peer=str(net.local_peer_id()), addrs=[str(a) for a in net.listen_addrs()],
               create_ms=create_ms, ready_ms=ms(t0), webrtc=runtime is not None,
               has_rtc=ctor is not None, proxies=live_proxies())


async def echo(peer, size, chunk=64 * 1024):
    """Open an echo stream to `peer`, send `size` random bytes, compare what comes back."""
    payload = os.urandom(size)
    t0 = time.perf_counter()
    stream = await net.new_stream(peer, [ECHO])
    transport = stream.conn.transport

    async def reader():
        parts = []
        while d := await stream.read():
            parts.append(d)
        return b"".join(parts)

    task = asyncio.ensure_future(reader())
    for off in range(0, size, chunk):
        await stream.write(payload[off:off + chunk])
    await stream.close()
    got = await asyncio.wait_for(task, 60)
    took = time.perf_counter() - t0
    return out(ok=got == payload, got=len(got), transport=transport, ms=round(took * 1000, 1),
               mb_per_s=round(2 * size / took / 1e6, 2))


def connections(peer=None):
    return [c.transport for c in net.connections(peer)]


async def connect_and_ping(addr):
    t0 = time.perf_counter()
    peer = await net.connect(addr)
    connect_ms = ms(t0)
    rtts = [await net.ping(peer) for _ in range(5)]
    info = await net.identify(peer)
    return out(peer=str(peer), connect_ms=connect_ms, rtt_ms=round(min(rtts) * 1000, 2),
               transports=connections(peer), agent=info.agent_version, protocols=list(info.protocols),
               observed=str(info.observed_addr) if info.observed_addr else None,
               key_peer=str(info.public_key.peer_id) if info.public_key is not None else None,
               proxies=live_proxies())


async def upgrade(peer):
    t0 = time.perf_counter()
    conn = await net.create_webrtc_data_channel(peer)
    return out(transport=conn.transport, ms=ms(t0), transports=connections(peer), proxies=live_proxies())


async def send_messages(peer, sizes, webrtc=True, seed=1):
    import random
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    seq = None
    for n in sizes:
        data = rnd.randbytes(n)
        seq = await (net.send_webrtc_message(peer, data) if webrtc else net.send_message(peer, data))
    await net.wait_delivered(peer, seq, timeout=60)
    return out(ms=ms(t0), transports=connections(peer))


async def receive_messages(peer, sizes, webrtc=True, seed=1):
    import random
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    ok = []
    for n in sizes:
        want = rnd.randbytes(n)
        got = await (net.receive_webrtc_message(peer, timeout=60) if webrtc else net.receive_message(peer, timeout=60))
        ok.append(got == want)
    return out(ok=ok, ms=ms(t0), transports=connections(peer))


def messaging_transport(peer):
    from darkswap_wasm.identity import PeerId
    p = net._messaging._peers.get(PeerId.coerce(peer))
    return p.stream.conn.transport if p is not None and p.stream is not None else None


async def stop():
    global net
    if net is not None:
        await net.close()
        net = None
    for _ in range(50):  # proxies of a closing peer go on the next turn of the loop
        if live_proxies() == 0:
            break
        await asyncio.sleep(0.02)
    return out(proxies=live_proxies())


def proxies():
    return out(proxies=live_proxies())
'''


class Tab(Page):
    """A page in its own window of the session's Chromium, booted through js_glue/boot.js."""

    def __init__(self, driver, server: StaticServer, name: str) -> None:
        super().__init__(driver, server)
        self.name = name
        driver.switch_to.new_window("window")
        self.handle = driver.current_window_handle
        self.boot_info: dict = {}

    def _call(self, script: str, *args):
        self.driver.switch_to.window(self.handle)
        return super()._call(script, *args)

    def boot(self, before: str = "") -> dict:
        """Load the blank page, run ``before`` (JS) in it, boot Pyodide, install ``dsw_page``."""
        self.driver.switch_to.window(self.handle)
        self.driver.get(self.server.base_url.rstrip("/") + BLANK_PAGE)
        if before:
            self.driver.execute_script(before)
        self.boot_info = json.loads(self._call(BOOT_JS, self.server.base_url))
        self.write_file(f"{PAGE_DIR}/dsw_page.py", PAGE_MODULE)
        self.run_py(f"import sys\nsys.path.insert(0, {PAGE_DIR!r})\nimport dsw_page\n'ok'")
        return self.boot_info

    def py(self, call: str) -> dict:
        """``await dsw_page.<call>`` (or a plain call) in the page; its JSON result as a dict."""
        return json.loads(self.run_py(f"import dsw_page\n{call}"))

    def close(self, home: str) -> None:
        try:
            self.driver.switch_to.window(self.handle)
            self.driver.close()
        finally:
            self.driver.switch_to.window(home)


# --------------------------------------------------------------------------- native processes


class NativeProc:
    """A darkswap_wasm CLI (relay or node) as a subprocess; its stdout lines are its addresses."""

    def __init__(self, module: str, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.cmd = [sys.executable, "-m", module, "--log-level", os.environ.get("DSW_NATIVE_LOG", "WARNING"), *args]
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO_ROOT), env=env, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        self.addrs: list[str] = []

    @staticmethod
    def _pump(stream, q: queue.Queue) -> None:
        for line in stream:
            q.put(line.strip())
        q.put(None)

    def _pump_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def read_addrs(self, until, timeout: float = 30.0) -> list[str]:
        """Read address lines until ``until(addrs)`` holds."""
        deadline = time.monotonic() + timeout
        while not until(self.addrs):
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = ""
            if line is None or left <= 0:
                self.stop()
                pytest.fail(
                    f"{' '.join(self.cmd)}: no addresses ({self.addrs}); stderr:\n" + "\n".join(self.stderr[-30:])
                )
            if line:
                self.addrs.append(line)
        return self.addrs

    @property
    def peer_id(self) -> str:
        return self.addrs[0].rsplit("/p2p/", 1)[1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def relay_process(*args: str) -> NativeProc:
    p = NativeProc("darkswap_wasm.relay", "--listen", "/ip4/127.0.0.1/tcp/0/ws", *args)
    p.read_addrs(lambda a: len(a) >= 1)
    return p


def node_process(*args: str, until=lambda a: len(a) >= 1) -> NativeProc:
    p = NativeProc("darkswap_wasm.cli", "--echo", *args)
    p.read_addrs(until)
    return p
