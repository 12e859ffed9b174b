"""Browser benchmark: our stack on Pyodide in headless Chromium, one Chromium for the whole run.

    python bench/bench_browser.py [--mib 32] [--runs 5] [--cold-runs 3] [--warm-runs 3]
                                  [--js-dir /tmp/jsbundle] [--skip-js] [--timeout 1800]
    python bench/bench_browser.py --prepare-js /tmp/jsbundle     # once, outside the namespace

Measures, and prints as a markdown table:

1. boot to a ready node: ``DarkSwapWasm.new_with_defaults("regtest", {relays: [relay]})`` in a
   page that loads ``dist/darkswap.js`` with a script tag, until it resolves with the relay
   reservation held; cold (a new origin, nothing of it cached; the first one also in the fresh
   profile) and warm (a reload of the same page: the HTTP, V8 and wasm code caches are warm).
   The static server answers ``Cache-Control: no-cache`` like the test server (a reload
   revalidates every file: 304s) and, on a second origin, ``max-age=3600`` (a reload fetches
   nothing). Medians of several runs.
2. bulk throughput page → page over WebRTC, two windows of the same Chromium (both foreground),
   one-way: our libp2p stream (``/darkswap/sink/1.0.0`` over the Python ``Network`` in each page,
   the upgrade through our relay as in tests/browser/test_page_network.py; 64 KiB writes, then the
   sink's 8-byte count) vs a raw ``RTCDataChannel`` between the same two pages (SDP exchanged
   through selenium; 16 KiB messages, bufferedAmount backpressure, same byte count, then the
   receiver's count), interleaved run by run, after a warm-up; plus DarkSwap messages (256 KiB
   each, until acknowledged). Medians. While each path runs, the CPU time of every Chromium
   thread is read from /proc: the notes give CPU per MiB, the busiest threads (renderers named
   after their tab) and how busy the whole machine was (other jobs included).
3. js-libp2p 3.3.11 bundled for the browser (esbuild; ``@libp2p/webrtc`` 6.0.32 = the release
   built against the same @libp2p/utils 7.4.1 / interface-internal 3.1.13 as libp2p 3.3.11):
   the same sink stream page → page over its WebRTC, through our relay. Needs the packages in
   ``--js-dir`` (``--prepare-js DIR`` installs them from npm, outside the repo; the bundle itself
   is rebuilt from bench/browser_js_libp2p_entry.mjs on every run, offline). Without them the row
   is skipped with the reason; the script still succeeds.

The WebRTC parts need a non-loopback interface (Chromium gathers no ICE candidates on loopback
only), i.e. the test network namespace::

    python scripts/build_dist.py --out dist --with-tests --browser
    python bench/bench_browser.py --prepare-js /tmp/jsbundle
    unshare -n bash -c 'ip link set lo up; ip link add v0 type veth peer name v1;
        ip addr add 10.99.0.1/24 dev v0; ip link set v0 up; ip link set v1 up;
        ip route add default via 10.99.0.2; python bench/bench_browser.py'

Chromium: ``$DARKSWAP_CHROMIUM`` or /usr/bin/chromium, chromedriver: ``$SE_CHROMEDRIVER`` or
/usr/bin/chromedriver. Every wait has a timeout; the relay, the static servers, Chromium and the
temporary profile are cleaned up on every exit path.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

MIB = 1024 * 1024
from scripts.static_server import StaticServer  # noqa: E402
from tests.browser.conftest import BUILD_CMD, CHROMIUM_FLAGS  # noqa: E402 - one set of flags for tests and bench

SCRIPT_TIMEOUT = 300  # s: selenium's bound on one execute_async_script (each page wait has its own, shorter)
JS_ENTRY = REPO_ROOT / "bench" / "browser_js_libp2p_entry.mjs"
JS_BUNDLE = "js-libp2p-bench.js"
JS_PACKAGES = [  # pinned: libp2p 3.3.11 and the packages of tests/interop/js, plus @libp2p/webrtc
    "libp2p@3.3.11",
    "@libp2p/webrtc@6.0.32",
    "@libp2p/websockets@10.1.21",
    "@chainsafe/libp2p-noise@17.0.0",
    "@chainsafe/libp2p-yamux@8.0.1",
    "@libp2p/circuit-relay-v2@4.2.13",
    "@libp2p/identify@4.1.14",
    "@libp2p/peer-id@6.0.15",
    "@multiformats/multiaddr@13.0.3",
    "esbuild@0.28.2",
]


class BenchError(Exception):
    pass


def log_exc(exc: BaseException) -> None:
    """A section failed: its message, and the traceback when it is not one of ours."""
    if isinstance(exc, BenchError):
        log(str(exc))
    else:
        import traceback

        log("".join(traceback.format_exception(exc)))


def log(msg: str) -> None:
    print(f"[bench_browser {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- js-libp2p bundle


def prepare_js(js_dir: Path) -> int:
    """npm install the pinned packages into js_dir (outside the repo) and bundle once."""
    if js_dir.resolve().is_relative_to(REPO_ROOT):
        log(f"{js_dir} is inside the repository: pick a folder outside it (e.g. /tmp/jsbundle)")
        return 2
    js_dir.mkdir(parents=True, exist_ok=True)
    pkg = js_dir / "package.json"
    if not pkg.exists():
        pkg.write_text(
            json.dumps({"name": "dsw-bench-jsbundle", "private": True, "version": "0.0.0", "type": "module"})
        )
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error", *JS_PACKAGES]
    log(f"{js_dir}: {' '.join(cmd)}")
    try:
        subprocess.run(cmd, cwd=js_dir, check=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"npm install failed: {exc}")
        return 1
    try:
        out = bundle_js(js_dir)
    except BenchError as exc:
        log(str(exc))
        return 1
    log(f"bundle ready: {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


def bundle_js(js_dir: Path) -> Path:
    """(Re)build js_dir/js-libp2p-bench.js from the repo's entry; offline (esbuild is local)."""
    esbuild = js_dir / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        raise BenchError(
            f"no js-libp2p packages in {js_dir} (no {esbuild}); install them outside the namespace with "
            f"`python bench/bench_browser.py --prepare-js {js_dir}` (npm registry needed)"
        )
    missing = [
        p for p in ("libp2p", "@libp2p/webrtc", "@libp2p/websockets") if not (js_dir / "node_modules" / p).is_dir()
    ]
    if missing:
        raise BenchError(f"{js_dir}/node_modules lacks {missing}; re-run --prepare-js {js_dir}")
    shutil.copyfile(JS_ENTRY, js_dir / "entry.mjs")  # esbuild resolves packages from the entry's folder
    cmd = [
        str(esbuild),
        "entry.mjs",
        "--bundle",
        "--format=iife",
        "--global-name=JsLibp2pBench",
        "--platform=browser",
        "--target=es2022",
        f"--outfile={JS_BUNDLE}",
        "--log-level=error",
    ]
    try:
        proc = subprocess.run(cmd, cwd=js_dir, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"esbuild failed to run: {exc}") from exc
    if proc.returncode != 0:
        raise BenchError(f"esbuild could not bundle js-libp2p for the browser: {proc.stderr.strip()[:800]}")
    return js_dir / JS_BUNDLE


def js_versions(js_dir: Path) -> dict[str, str]:
    out = {}
    for p in ("libp2p", "@libp2p/webrtc", "@chainsafe/libp2p-yamux", "@chainsafe/libp2p-noise"):
        with contextlib.suppress(Exception):
            out[p] = json.loads((js_dir / "node_modules" / p / "package.json").read_text())["version"]
    return out


# --------------------------------------------------------------------------- the dist and the site


def check_dist(dist: Path) -> None:
    need = ["darkswap.js", "js_glue/boot.js", "pyodide/pyodide.mjs", "pyodide/pyodide-lock.json"]
    missing = [f for f in need if not (dist / f).is_file()]
    if missing:
        raise BenchError(f"{dist} is incomplete ({missing} missing); build it: {BUILD_CMD}")
    for src in sorted((REPO_ROOT / "js_glue").glob("*.js")):
        copy = dist / "js_glue" / src.name
        if not copy.is_file() or copy.read_bytes() != src.read_bytes():
            raise BenchError(f"{copy} differs from js_glue/{src.name}; rebuild: {BUILD_CMD}")
    if (dist / "darkswap.js").read_bytes() != (REPO_ROOT / "js_glue" / "darkswap.js").read_bytes():
        raise BenchError(f"{dist}/darkswap.js differs from js_glue/darkswap.js; rebuild: {BUILD_CMD}")
    lock = json.loads((dist / "pyodide/pyodide-lock.json").read_text())["packages"]
    wheel = dist / "pyodide" / lock["darkswap-wasm"]["file_name"]
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if n.endswith(".py") and n.startswith("darkswap_wasm/")}
        for p in sorted((REPO_ROOT / "darkswap_wasm").rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            rel = p.relative_to(REPO_ROOT).as_posix()
            if rel not in names or zf.read(rel) != p.read_bytes():
                raise BenchError(f"the wheel in {dist}/pyodide is stale ({rel}); rebuild: {BUILD_CMD}")


BOOT_PAGE = """<!doctype html><meta charset=utf-8><title>boot bench</title>
<script src="/dist/darkswap.js"></script>
<script>
window.__boot = (async () => {
  const relay = new URLSearchParams(location.search).get("relay");
  const t0 = performance.now();
  const ds = await DarkSwapWasm.new_with_defaults("regtest", { relays: [relay] });
  const t1 = performance.now();
  window.ds = ds;
  const info = ds.info();
  let transfer = 0, fetched = 0, resources = 0;
  for (const e of performance.getEntriesByType("resource")) {
    resources++; transfer += e.transferSize || 0; if (e.transferSize > 0) fetched++;
  }
  return { callMs: t1 - t0, sinceNavMs: t1, scriptStartMs: t0, reservations: info.reservations,
           webrtc: info.webrtc, compression: info.compression, runtimeMs: info.runtime.totalMs,
           boot: info.runtime.boot, transfer, fetched, resources };
})().then((v) => ({ ok: true, value: v }),
          (e) => ({ ok: false, error: String((e && e.stack) || e), code: e && e.code }));
</script>
"""
JS_PAGE = """<!doctype html><meta charset=utf-8><title>js-libp2p bench</title>
<script src="/jsb/js-libp2p-bench.js"></script>
"""
BLANK = """<!doctype html><meta charset=utf-8><title>bench</title>"""


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child: SIGTERM when this script dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class Relay:
    def __init__(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "darkswap_wasm.relay",
            "--listen",
            "/ip4/127.0.0.1/tcp/0/ws",
            "--circuit-data",
            "0",
            "--circuit-duration",
            "0",
            "--log-level",
            "WARNING",
        ]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(REPO_ROOT),
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.stderr: list[str] = []
        lines: queue.Queue = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(x) for x in self.proc.stdout] + [lines.put(None)], daemon=True
        ).start()
        threading.Thread(target=lambda: [self.stderr.append(x.rstrip()) for x in self.proc.stderr], daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            line = None
        if not line or "/p2p/" not in line:
            self.stop()
            raise BenchError(f"the relay did not start ({line!r}); stderr: {' | '.join(self.stderr[-10:])}")
        self.addr = line.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_chromium(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser = os.environ.get("DARKSWAP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = os.environ.get("SE_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for what, p in (("Chromium", browser), ("chromedriver", driver_path)):
        if not (os.path.isfile(p) and os.access(p, os.X_OK)):
            raise BenchError(f"{what} not found at {p} (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(SCRIPT_TIMEOUT)
    driver.set_page_load_timeout(120)
    return driver


# --------------------------------------------------------------------------- pages

WRAP = """const done = arguments[arguments.length - 1];
const args = Array.from(arguments).slice(0, -1);
(async (...args) => { %s })(...args).then(
  (v) => done({ ok: true, value: v === undefined ? null : v }),
  (e) => done({ ok: false, error: String((e && e.stack) || e), code: e && e.code }));"""

# runs in the page: the raw RTCDataChannel path (offer/answer without trickle: SDP through selenium)
RAW_RTC_JS = r"""
window.rawRtc = (() => {
  const S = { pc: null, ch: null, count: 0, target: 0, opened: null, doneWaiter: null };
  const wait = (p, ms, what) => Promise.race(
    [p, new Promise((_, rej) => setTimeout(() => rej(new Error("timeout: " + what)), ms))]);
  const gathered = (pc) => new Promise((res) => {
    if (pc.iceGatheringState === "complete") return res();
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") res(); });
  });
  function wire(ch) {
    S.ch = ch; ch.binaryType = "arraybuffer";
    S.opened = new Promise((res) => {
      if (ch.readyState === "open") res(); else ch.addEventListener("open", () => res(), { once: true });
    });
    ch.addEventListener("message", (e) => {
      if (typeof e.data === "string") {
        if (e.data.startsWith("start:")) { S.target = Number(e.data.slice(6)); S.count = 0; }
        else if (e.data.startsWith("done:") && S.doneWaiter) {
          const w = S.doneWaiter; S.doneWaiter = null; w(Number(e.data.slice(5)));
        }
        return;
      }
      S.count += e.data.byteLength;
      if (S.target > 0 && S.count >= S.target) { ch.send("done:" + S.count); S.target = 0; }
    });
  }
  return {
    async offer() {
      S.pc = new RTCPeerConnection({ iceServers: [] });
      wire(S.pc.createDataChannel("bench", { ordered: true }));
      await S.pc.setLocalDescription(await S.pc.createOffer());
      await wait(gathered(S.pc), 15000, "ICE gathering (offer)");
      return S.pc.localDescription.sdp;
    },
    async answer(sdp) {
      S.pc = new RTCPeerConnection({ iceServers: [] });
      const got = new Promise((res) => S.pc.addEventListener("datachannel", (e) => { wire(e.channel); res(); }));
      await S.pc.setRemoteDescription({ type: "offer", sdp });
      await S.pc.setLocalDescription(await S.pc.createAnswer());
      await wait(gathered(S.pc), 15000, "ICE gathering (answer)");
      S.gotChannel = got;
      return S.pc.localDescription.sdp;
    },
    async accept(sdp) {
      await S.pc.setRemoteDescription({ type: "answer", sdp });
      await wait(S.opened, 20000, "data channel open");
      return S.pc.connectionState;
    },
    async waitOpen() {
      await wait(S.gotChannel, 20000, "datachannel event");
      await wait(S.opened, 20000, "data channel open");
      return S.pc.connectionState;
    },
    async send(size, msgSize, high, timeoutMs) {
      const ch = S.ch;
      const msg = new Uint8Array(msgSize);
      const n = Math.floor(size / msgSize);
      ch.bufferedAmountLowThreshold = high / 2;
      const done = new Promise((res) => { S.doneWaiter = res; });
      ch.send("start:" + n * msgSize);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        if (ch.bufferedAmount > high) {
          const low = new Promise((res) => ch.addEventListener("bufferedamountlow", res, { once: true }));
          await wait(low, timeoutMs, "bufferedamountlow");
        }
        ch.send(msg);
      }
      const count = await wait(done, timeoutMs, "receiver count");
      const ms = performance.now() - t0;
      if (count !== n * msgSize) throw new Error(`receiver counted ${count} of ${n * msgSize}`);
      return { bytes: count, ms, mib_per_s: count / 1048576 / (ms / 1000) };
    },
    close() { if (S.pc) S.pc.close(); S.pc = null; return true; },
  };
})();
"""

# runs in the page next to tests/browser/pages.py's dsw_page: the sink protocol and the bulk sender
BENCH_MODULE = r'''
import asyncio
import json
import time

import dsw_page

SINK = "/darkswap/sink/1.0.0"
recv = {}


async def _sink(stream):
    total = 0
    while data := await stream.read():
        total += len(data)
    await stream.write(total.to_bytes(8, "big"))
    await stream.close()


def install_sink():
    dsw_page.net.set_stream_handler(SINK, _sink)
    return json.dumps({"ok": True})


async def bulk(peer, size, chunk=64 * 1024, timeout=120.0):
    net = dsw_page.net
    t0 = time.perf_counter()
    s = await asyncio.wait_for(net.new_stream(peer, [SINK]), 30)
    t1 = time.perf_counter()
    buf = bytes(chunk)
    for off in range(0, size, chunk):
        n = min(chunk, size - off)
        await s.write(buf if n == chunk else buf[:n], timeout=timeout)
    await s.close()
    count = int.from_bytes(await s.readexactly(8, timeout=timeout), "big")
    t2 = time.perf_counter()
    if count != size:
        raise RuntimeError(f"sink counted {count} of {size} bytes")
    return json.dumps({"bytes": count, "ms": (t2 - t1) * 1000, "open_ms": (t1 - t0) * 1000,
                       "transport": s.conn.transport, "mib_per_s": count / 1048576 / (t2 - t1)})


def start_receiving(peer, n, timeout=120.0):
    old = recv.get("task")
    if old is not None and not old.done():
        old.cancel()

    async def run():
        total = 0
        for _ in range(n):
            total += len(await dsw_page.net.receive_webrtc_message(peer, timeout=timeout))
        recv["bytes"] = total
    recv.clear()
    recv["task"] = asyncio.ensure_future(run())
    return json.dumps({"ok": True})


async def finish_receiving(timeout=60.0):
    await asyncio.wait_for(recv["task"], timeout)
    return json.dumps({"bytes": recv["bytes"]})


def diag(peer):
    """What the page's messaging with ``peer`` is doing (logged when a messages run fails)."""
    import dataclasses
    from darkswap_wasm.identity import PeerId
    net = dsw_page.net
    p = net._messaging._peers.get(PeerId.coerce(peer))
    out = {"connections": [c.transport for c in net.connections(peer)]}
    if p is not None:
        sess = p.session
        st = p.stream
        out.update(
            state=str(sess.state), stats=dataclasses.asdict(sess.stats), unacked=sess.unacked_count,
            queued=sess.queued_count, acked_seq=p.acked_seq, received_seq=sess.received_seq,
            failed=repr(p.failed), inbox=len(p.inbox), inbox_bytes=p.inbox_bytes,
            stream=None if st is None else {
                "transport": st.conn.transport, "buffered": st._buffered, "eof": st._eof, "reset": st._reset,
                "channel": repr(getattr(st, "channel", None)),
                "buffered_amount": getattr(getattr(st, "channel", None), "buffered_amount", None),
            },
            redial=p.redial is not None, reader_done=p.reader is None or p.reader.done(),
        )
    return json.dumps(out, default=str)


_prof = {}


def profile_start():
    import cProfile
    _prof["p"] = cProfile.Profile()
    _prof["p"].enable()
    return json.dumps({"ok": True})


def profile_stop(top=25):
    import io
    import pstats
    prof = _prof.pop("p")
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return json.dumps({"text": out.getvalue()})


def framing_ceiling(size, chunk=64 * 1024):
    """The /webrtc framing machine alone in this page (no channel, no FFI): both ends' Python
    work per byte, timed separately."""
    from darkswap_wasm.protocols.webrtc import ChannelStream
    tx, rx = ChannelStream(), ChannelStream()
    buf = bytes(chunk)
    t0 = time.perf_counter()
    msgs = []
    for _ in range(size // chunk):
        msgs += tx.send(buf)
    t1 = time.perf_counter()
    got = 0
    for msg in msgs:
        for ev in rx.receive_message(msg):
            got += len(ev.data)
    t2 = time.perf_counter()
    assert got == size // chunk * chunk, got
    return json.dumps({"send_mib_s": got / 1048576 / (t1 - t0), "recv_mib_s": got / 1048576 / (t2 - t1),
                       "messages": len(msgs)})


async def send_messages(peer, n, size, timeout=120.0):
    net = dsw_page.net
    data = bytes(size)
    t0 = time.perf_counter()
    seq = None
    for _ in range(n):
        seq = await net.send_webrtc_message(peer, data)
    await net.wait_delivered(peer, seq, timeout=timeout)
    dt = time.perf_counter() - t0
    return json.dumps({"bytes": n * size, "ms": dt * 1000, "mib_per_s": n * size / 1048576 / dt,
                       "transport": dsw_page.messaging_transport(peer)})
'''


class Tab:
    """One top-level window of the session's Chromium (foreground, like tests/browser/pages.py)."""

    def __init__(self, driver, name: str, url: str) -> None:
        self.driver = driver
        self.name = name
        driver.switch_to.new_window("window")
        self.handle = driver.current_window_handle
        driver.get(url)

    def _focus(self) -> None:
        self.driver.switch_to.window(self.handle)

    def js(self, body: str, *args):
        self._focus()
        try:
            res = self.driver.execute_async_script(WRAP % body, *args)
        except Exception as exc:
            raise BenchError(
                f"[{self.name}] the page did not answer: {str(exc).splitlines()[0]}\n{self.console()}"
            ) from None
        if not isinstance(res, dict) or not res.get("ok"):
            err = res.get("error") if isinstance(res, dict) else repr(res)
            raise BenchError(f"[{self.name}] in the page: {err}\n{self.console()}")
        return res["value"]

    def py(self, code: str) -> dict:
        """Run ``code`` (its last expression a JSON str) with runPythonAsync; the JSON as a dict."""
        body = """const py = window.__dsw.pyodide; const ns = py.toPy({});
                  try { const out = await py.runPythonAsync(args[0], { globals: ns }); return String(out); }
                  finally { ns.destroy(); }"""
        return json.loads(self.js(body, code))

    def console(self) -> str:
        try:
            entries = self.driver.get_log("browser")[-25:]
            return "\n".join(f"  console {e.get('level')}: {e.get('message')[:300]}" for e in entries)
        except Exception as exc:
            return f"  (no browser log: {exc})"

    def close(self, home: str) -> None:
        with contextlib.suppress(Exception):
            self._focus()
            self.driver.close()
        with contextlib.suppress(Exception):
            self.driver.switch_to.window(home)


# --------------------------------------------------------------------------- CPU, per thread

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _thread_cpu_ns(pid: str, tid: str, stat_fields: list[str]) -> int:
    """CPU time of one thread in ns: schedstat (ns precision) where the kernel has it, else
    utime + stime from stat (clock ticks, 10 ms: too coarse for sub-second runs)."""
    try:
        return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return (int(stat_fields[11]) + int(stat_fields[12])) * 1_000_000_000 // CLK_TCK


def _chromium_threads() -> dict:
    """(pid, tid) -> (pid, process kind, thread name, CPU ns) for every Chromium thread."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            # Chromium's children rewrite their command line into one space-separated string
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
            if not argv or os.path.basename(argv[0]) != "chromium":
                continue
            kind = next((a.split("=", 1)[1] for a in argv if a.startswith("--type=")), "browser")
            if kind == "utility":
                sub = next((a.split("=", 1)[1] for a in argv if a.startswith("--utility-sub-type=")), "")
                kind = sub.split(".")[0] or "utility"
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                comm = "main" if tid == pid else stat[stat.index("(") + 1 : stat.rindex(")")]
                f = stat[stat.rindex(")") + 2 :].split()
                out[(pid, tid)] = (pid, kind, comm, _thread_cpu_ns(pid, tid, f))
        except (OSError, ValueError, IndexError, StopIteration):
            continue
    return out


def _machine_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies of the whole machine from /proc/stat."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0, 0
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    steal = f[7] if len(f) > 7 else 0
    total = sum(f[:8])
    return total - idle - steal, steal, total


class CpuMeter:
    """CPU% per Chromium thread while something runs; renderers named after their tab."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}  # renderer pid -> tab name
        self.acc: dict[str, dict] = {}  # path -> {"cpu": {(label, thread): CPU ns}, "wall": s, "machine": [...]}

    def label_tab(self, tab: Tab) -> None:
        """Busy-loop 400 ms in the tab: its renderer's main thread is the one that ran."""
        before = _chromium_threads()
        tab.js("const t = performance.now(); while (performance.now() - t < 400) {} return null;")
        after = _chromium_threads()
        best, pid = 0, None
        for key, (p, kind, comm, ticks) in after.items():
            if kind == "renderer" and comm == "main" and key in before:
                d = ticks - before[key][3]
                if d > best:
                    best, pid = d, p
        if pid is not None:
            self.labels[pid] = tab.name

    @contextlib.contextmanager
    def measure(self, path: str, nbytes: int):
        b, mb, t0 = _chromium_threads(), _machine_ticks(), time.perf_counter()
        yield
        a, ma, wall = _chromium_threads(), _machine_ticks(), time.perf_counter() - t0
        acc = self.acc.setdefault(path, {"cpu": {}, "wall": 0.0, "busy": 0, "steal": 0, "total": 0, "bytes": 0})
        acc["wall"] += wall
        acc["bytes"] += nbytes
        for i, k in enumerate(("busy", "steal", "total")):
            acc[k] += ma[i] - mb[i]
        for key, (pid, kind, comm, ticks) in a.items():
            d = ticks - b.get(key, (0, 0, 0, 0))[3]
            if d <= 0:
                continue
            who = self.labels.get(pid, kind if kind != "renderer" else f"renderer {pid}")
            name = (who, comm)
            acc["cpu"][name] = acc["cpu"].get(name, 0) + d

    def summary(self, path: str, min_pct: float = 8.0) -> str:
        acc = self.acc.get(path)
        if not acc or acc["wall"] <= 0:
            return "n/a"
        pct = lambda ns: 100.0 * ns / 1e9 / acc["wall"]  # noqa: E731
        per_proc: dict = {}
        for (who, _), t in acc["cpu"].items():
            per_proc[who] = per_proc.get(who, 0) + t
        mib = acc["bytes"] / MIB or 1
        per_mib = lambda ns: ns / 1e6 / mib  # noqa: E731
        threads = sorted(acc["cpu"].items(), key=lambda kv: -kv[1])
        top = ", ".join(
            f"{who}/{comm} {pct(t):.0f}% ({per_mib(t):.1f})" for (who, comm), t in threads if pct(t) >= min_pct
        )
        procs = ", ".join(
            f"{who} {pct(t):.0f}% ({per_mib(t):.1f})"
            for who, t in sorted(per_proc.items(), key=lambda kv: -kv[1])
            if pct(t) >= 3
        )
        total, ncpu = acc["total"] or 1, os.cpu_count() or 1
        busy = 100 * acc["busy"] / total * ncpu
        ours = pct(sum(acc["cpu"].values()))
        machine = (
            f"machine {busy:.0f}% of {100 * ncpu}% busy (this Chromium {ours:.0f}%, everything else "
            f"{max(0.0, busy - ours):.0f}%), steal {100 * acc['steal'] / total * ncpu:.0f}%"
        )
        return (
            f"**{self.cpu_ms_per_mib(path):.0f} ms of Chromium CPU per MiB**; threads ≥ {min_pct:.0f}% "
            f"(in brackets: ms per MiB): {top}; "
            f"processes: {procs}; {machine}"
        )

    def cpu_ms_per_mib(self, path: str) -> float:
        acc = self.acc.get(path)
        if not acc or not acc["bytes"]:
            return float("nan")
        return sum(acc["cpu"].values()) / 1e6 / (acc["bytes"] / MIB)


# --------------------------------------------------------------------------- measurements


def short_error(text: str) -> str:
    """The innermost useful line of a page error (a Python exception line, else the first line)."""
    lines = [ln.strip() for ln in text.splitlines()]
    picks = [
        ln for ln in lines if ("Error:" in ln or "Exception:" in ln or "errors." in ln) and not ln.startswith("at ")
    ]
    first = next(
        (ln for ln in picks if "darkswap_wasm.errors" in ln), picks[0] if picks else (lines[0] if lines else text)
    )
    return first[:300]


m = statistics.median


def fmt_runs(xs, f="{:.2f}") -> str:
    return ", ".join(f.format(x) for x in xs)


def bench_boot(driver, root: Path, relay: str, cold_runs: int, warm_runs: int, home: str) -> dict:
    """Cold and warm boots on fresh origins; two Cache-Control policies."""
    out: dict = {"cold": [], "warm": {"no-cache": [], "max-age=3600": []}, "details": []}
    policies = ["no-cache", "max-age=3600"]
    for i in range(cold_runs):
        policy = policies[i % 2] if cold_runs > 1 else "no-cache"
        server = StaticServer(root, cache_control=policy)
        tab = None
        try:
            url = server.base_url + "b/boot.html?relay=" + relay
            t0 = time.perf_counter()
            tab = Tab(driver, f"boot{i}", url)
            first = _await_boot(tab)
            first["wallS"] = time.perf_counter() - t0
            out["cold"].append(first)
            log(
                f"boot cold #{i} ({policy}{', fresh profile' if i == 0 else ''}): "
                f"ready {first['sinceNavMs'] / 1000:.2f} s after navigation (call {first['callMs'] / 1000:.2f} s, "
                f"{first['transfer'] / 1e6:.1f} MB over {first['fetched']}/{first['resources']} requests)"
            )
            for j in range(warm_runs):
                tab.js("if (window.ds) await window.ds.close(); return null;")
                tab._focus()
                driver.refresh()
                again = _await_boot(tab)
                out["warm"][policy].append(again)
                log(
                    f"boot warm #{i}.{j} ({policy}): ready {again['sinceNavMs'] / 1000:.2f} s after navigation "
                    f"(call {again['callMs'] / 1000:.2f} s; loadPyodide {again['boot']['loadPyodideMs']:.0f} ms, "
                    f"wheel {again['boot']['loadPackagesMs']:.0f} ms; {again['transfer'] / 1e3:.0f} kB over "
                    f"{again['fetched']}/{again['resources']} requests)"
                )
            with contextlib.suppress(Exception):
                tab.js("if (window.ds) await window.ds.close(); return null;")
        finally:
            if tab is not None:
                tab.close(home)
            server.close()
    return out


def _await_boot(tab: Tab) -> dict:
    res = tab.js("""const deadline = Date.now() + 120000;
        while (!window.__boot) {
          if (Date.now() > deadline) throw new Error("no __boot");
          await new Promise((r) => setTimeout(r, 20));
        }
        const late = new Promise((_, rej) => setTimeout(() => rej(new Error("boot timed out (120 s)")), 120000));
        return await Promise.race([window.__boot, late]);""")
    if not res.get("ok"):
        raise BenchError(
            f"[{tab.name}] new_with_defaults failed: {res.get('code')} {res.get('error')}\n{tab.console()}"
        )
    v = res["value"]
    if len(v.get("reservations") or []) != 1:
        raise BenchError(f"[{tab.name}] new_with_defaults resolved without the reservation: {v}")
    return v


def open_py_tab(driver, base_url: str, name: str) -> Tab:
    from tests.browser.conftest import BOOT_JS
    from tests.browser.pages import PAGE_DIR, PAGE_MODULE

    tab = Tab(driver, name, base_url + "b/blank.html")
    tab._focus()
    res = driver.execute_async_script(BOOT_JS, base_url + "dist/")
    if not res.get("ok"):
        raise BenchError(f"[{name}] boot failed: {res.get('error')}")
    write = """const FS = window.__dsw.pyodide.FS; FS.mkdirTree(args[0]);
               FS.writeFile(args[0] + "/dsw_page.py", args[1], { encoding: "utf8" });
               FS.writeFile(args[0] + "/dsw_bench.py", args[2], { encoding: "utf8" }); return null;"""
    tab.js(write, PAGE_DIR, PAGE_MODULE, BENCH_MODULE)
    tab.py(f"import sys, json\nsys.path.insert(0, {PAGE_DIR!r})\nimport dsw_page, dsw_bench\njson.dumps(1)")
    return tab


def bench_streams(
    driver, base_url: str, relay: str, size: int, runs: int, home: str, cpu: CpuMeter, profile: bool = False
) -> dict:
    """Ours vs raw RTCDataChannel, page → page, interleaved; plus DarkSwap messages.

    ``profile``: one more run of ours with cProfile on in both pages, the top functions logged."""
    out: dict = {"ours": [], "raw16": [], "raw64": [], "msgs": [], "info": {}}
    a = b = None
    try:
        a, b = open_py_tab(driver, base_url, "A"), open_py_tab(driver, base_url, "B")
        cpu.label_tab(a)
        cpu.label_tab(b)
        out["info"]["framing"] = a.py(f"import dsw_bench\ndsw_bench.framing_ceiling({size})")
        sb = b.py(f"import dsw_page\nawait dsw_page.start([{relay!r}])")
        sa = a.py(f"import dsw_page\nawait dsw_page.start([{relay!r}])")
        if not (sa["webrtc"] and sb["webrtc"]):
            raise BenchError(f"no WebRTC runtime in the pages: {sa} {sb}")
        peer_a, peer_b = sa["peer"], sb["peer"]
        b.py("import dsw_bench\ndsw_bench.install_sink()")
        up = a.py(f"import dsw_page\nawait dsw_page.upgrade({peer_b!r})")
        if up["transport"] != "webrtc":
            raise BenchError(f"the relayed connection was not upgraded to WebRTC: {up}")
        out["info"]["upgrade_ms"] = up["ms"]
        out["info"]["ready_ms"] = [sa["ready_ms"], sb["ready_ms"]]
        log(f"ours: reservations {sa['ready_ms']:.0f}/{sb['ready_ms']:.0f} ms, WebRTC upgrade {up['ms']:.0f} ms")

        # the raw channel between the same two pages
        for t in (a, b):
            t._focus()
            driver.execute_script(RAW_RTC_JS)
        offer = a.js("return await rawRtc.offer();")
        answer = b.js("return await rawRtc.answer(args[0]);", offer)
        a.js("return await rawRtc.accept(args[0]);", answer)
        b.js("return await rawRtc.waitOpen();")
        out["info"]["candidates"] = sorted(
            {ln.split()[4] for ln in offer.splitlines() if ln.startswith("a=candidate:")}
        )
        log(f"raw: data channel open (offer candidates {out['info']['candidates']})")

        def raw(msg_size: int, n: int) -> dict:
            return a.js("return await rawRtc.send(args[0], args[1], args[2], args[3]);", n, msg_size, MIB, 120000)

        def ours(n: int) -> dict:
            r = a.py(f"import dsw_bench\nawait dsw_bench.bulk({peer_b!r}, {n})")
            if r["transport"] != "webrtc":
                raise BenchError(f"our stream went over {r['transport']}, not webrtc")
            return r

        warm = min(size, 8 * MIB)  # warm-up: JIT, SCTP congestion window
        raw(16 * 1024, warm)
        raw(64 * 1024, warm)
        ours(warm)
        for i in range(runs):
            with cpu.measure("raw16", size // (16 * 1024) * 16 * 1024):
                r16 = raw(16 * 1024, size)
            with cpu.measure("raw64", size // (64 * 1024) * 64 * 1024):
                r64 = raw(64 * 1024, size)
            with cpu.measure("ours", size):
                o = ours(size)
            out.setdefault("pair", []).append(o["mib_per_s"] / r16["mib_per_s"])
            out["raw16"].append(r16["mib_per_s"])
            out["raw64"].append(r64["mib_per_s"])
            out["ours"].append(o["mib_per_s"])
            log(
                f"run {i}: raw 16 KiB {r16['mib_per_s']:.2f}, raw 64 KiB {r64['mib_per_s']:.2f}, "
                f"ours {o['mib_per_s']:.2f} MiB/s (stream open {o['open_ms']:.0f} ms)"
            )
        if profile:
            for t in (a, b):
                t.py("import dsw_bench\ndsw_bench.profile_start()")
            o = ours(size)
            log(f"profiled run (cProfile on in both pages): ours {o['mib_per_s']:.2f} MiB/s")
            for t, role in ((a, "sender"), (b, "receiver")):
                top = t.py("import dsw_bench\ndsw_bench.profile_stop()")["text"]
                log(f"page {t.name} ({role}), top functions by own time:\n{top}")
        with contextlib.suppress(Exception):
            a.js("return rawRtc.close();")
            b.js("return rawRtc.close();")

        # DarkSwap messages, 256 KiB each, until acknowledged; B drains them meanwhile. A failure
        # here is reported (and retried once per run) without losing the stream numbers above.
        n_msgs = max(1, size // (256 * 1024))
        out["msgs_errors"] = []
        for i in range(runs):
            for attempt in range(2):
                try:
                    b.py(f"import dsw_bench\ndsw_bench.start_receiving({peer_a!r}, {n_msgs})")
                    with cpu.measure("msgs", n_msgs * 256 * 1024):
                        r = a.py(
                            f"import dsw_bench\nawait dsw_bench.send_messages({peer_b!r}, {n_msgs}, {256 * 1024}, 60)"
                        )
                    got = b.py("import dsw_bench\nawait dsw_bench.finish_receiving()")
                    if got["bytes"] != r["bytes"]:
                        raise BenchError(f"messages: received {got['bytes']} of {r['bytes']} bytes")
                except BenchError as exc:
                    out["msgs_errors"].append(f"run {i} attempt {attempt}: {short_error(str(exc))}")
                    log(f"messages run {i} attempt {attempt} failed: {short_error(str(exc))}")
                    log(f"console of A:\n{a.console()}\nconsole of B:\n{b.console()}")
                    for t, peer in ((a, peer_b), (b, peer_a)):
                        with contextlib.suppress(Exception):
                            state = t.py(f"import dsw_bench\ndsw_bench.diag({peer!r})")
                            log(f"messaging state of {t.name}: {state}")
                    continue
                out["msgs"].append(r["mib_per_s"])
                out["info"]["msgs_transport"] = r["transport"]
                log(
                    f"messages run {i}: {n_msgs} x 256 KiB acknowledged at {r['mib_per_s']:.2f} MiB/s "
                    f"over {r['transport']}"
                )
                break
    finally:
        for t in (a, b):
            if t is not None:
                with contextlib.suppress(Exception):
                    t.py("import dsw_page\nawait dsw_page.stop()")
                t.close(home)
    return out


def bench_js_libp2p(driver, base_url: str, relay: str, size: int, runs: int, home: str, cpu: CpuMeter) -> dict:
    out: dict = {"js": []}
    a = b = None
    try:
        a = Tab(driver, "jsA", base_url + "b/jsl.html")
        b = Tab(driver, "jsB", base_url + "b/jsl.html")
        cpu.label_tab(a)
        cpu.label_tab(b)
        sb = b.js("return await JsLibp2pBench.start(args[0]);", relay)
        sa = a.js("return await JsLibp2pBench.start(args[0]);", relay)
        out["version"] = sa["version"]
        log(f"js-libp2p {sa['version']}: listening after {sa['ms']:.0f}/{sb['ms']:.0f} ms: {sb['addrs']}")
        up = a.js("return await JsLibp2pBench.dialWebRTC(args[0]);", sb["peer"])
        out["dial_ms"] = up["ms"]
        log(f"js-libp2p: WebRTC dial through our relay {up['ms']:.0f} ms -> {up['addr']}")
        a.js("return await JsLibp2pBench.sinkThroughput(args[0], args[1]);", sb["peer"], min(size, 8 * MIB))
        for i in range(runs):
            with cpu.measure("js", size):
                r = a.js("return await JsLibp2pBench.sinkThroughput(args[0], args[1]);", sb["peer"], size)
            out["js"].append(r["mib_per_s"])
            log(f"js-libp2p run {i}: {r['mib_per_s']:.2f} MiB/s over {r['conn']}")
    finally:
        for t in (a, b):
            if t is not None:
                with contextlib.suppress(Exception):
                    t.js("return await JsLibp2pBench.stop();")
                t.close(home)
    return out


# --------------------------------------------------------------------------- main


def non_loopback_ipv4() -> list[str]:
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.split()[3] for ln in out.splitlines() if len(ln.split()) > 3 and ln.split()[1] != "lo"]


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024 / 1024:.0f} GiB"
    return f"{os.cpu_count()} vCPU {cpu}, {mem}, Linux {platform.release()}, CPython {platform.python_version()}"


def run(args) -> int:
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    failed = False
    cleanup: list = []
    home = None
    try:
        dist = Path(args.dist).resolve()
        check_dist(dist)
        js_reason = None
        js_dir = Path(args.js_dir)
        try:
            bundle = bundle_js(js_dir)
        except BenchError as exc:
            bundle, js_reason = None, str(exc)

        site = Path(tempfile.mkdtemp(prefix="dsw-bench-site-"))
        cleanup.append(lambda: shutil.rmtree(site, ignore_errors=True))
        (site / "dist").symlink_to(dist)
        (site / "b").mkdir()
        (site / "b" / "boot.html").write_text(BOOT_PAGE)
        (site / "b" / "blank.html").write_text(BLANK)
        (site / "b" / "jsl.html").write_text(JS_PAGE)
        if bundle is not None:
            (site / "jsb").mkdir()
            shutil.copyfile(bundle, site / "jsb" / JS_BUNDLE)

        relay = Relay()
        cleanup.append(relay.stop)
        log(f"relay {relay.addr}")
        profile = Path(tempfile.mkdtemp(prefix="dsw-bench-chromium-"))
        cleanup.append(lambda: shutil.rmtree(profile, ignore_errors=True))
        t0 = time.perf_counter()
        driver = start_chromium(profile)
        cleanup.append(driver.quit)
        version = driver.capabilities.get("browserVersion", "?")
        log(f"chromium {version} started in {time.perf_counter() - t0:.2f} s (profile {profile})")
        home = driver.current_window_handle
        print(f"\nMachine: {machine()}; Chromium {version} (headless); date {datetime.date.today().isoformat()}")

        # 1. boot
        try:
            if args.cold_runs < 1:
                raise BenchError("skipped (--cold-runs 0)")
            boot = bench_boot(driver, site, relay.addr, args.cold_runs, args.warm_runs, home)
            cold = [x["sinceNavMs"] / 1000 for x in boot["cold"]]
            cold_call = [x["callMs"] / 1000 for x in boot["cold"]]
            rows.append(
                (
                    "boot → ready node, cold (new origin; #1 also a fresh profile)",
                    f"{m(cold):.2f} s",
                    "",
                    f"runs {fmt_runs(cold)} s after navigation; new_with_defaults alone {m(cold_call):.2f} s",
                )
            )
            for policy, label in (
                ("no-cache", "warm reload, `no-cache` (all 304)"),
                ("max-age=3600", "warm reload, `max-age` (no requests)"),
            ):
                xs = boot["warm"][policy]
                if not xs:
                    continue
                w = [x["sinceNavMs"] / 1000 for x in xs]
                call = [x["callMs"] / 1000 for x in xs]
                lp = m([x["boot"]["loadPyodideMs"] for x in xs])
                wh = m([x["boot"]["loadPackagesMs"] for x in xs])
                net_ms = m([x["callMs"] - x["runtimeMs"] for x in xs])
                rows.append(
                    (
                        f"boot → ready node, {label}",
                        f"**{m(w):.2f} s**",
                        "≤ 3 s " + ("✓" if m(w) <= 3 else "✗"),
                        f"runs {fmt_runs(w)} s; new_with_defaults {m(call):.2f} s = loadPyodide {lp:.0f} ms + "
                        f"wheels {wh:.0f} ms + … + network/reservation {net_ms:.0f} ms",
                    )
                )
            c0 = boot["cold"][0]
            notes.append(
                f"cold boot #1 transferred {c0['transfer'] / 1e6:.1f} MB in {c0['resources']} requests "
                f"(loadPyodide {c0['boot']['loadPyodideMs']:.0f} ms, wheels {c0['boot']['loadPackagesMs']:.0f} ms, "
                f"imports {c0['boot']['importsMs']:.0f} ms)"
            )
        except Exception as exc:
            skipped = str(exc).startswith("skipped")
            failed = failed or not skipped
            rows.append(("boot → ready node", "skipped" if skipped else "failed", "", short_error(str(exc))))
            log_exc(exc)

        # 2. + 3. WebRTC
        ifaces = non_loopback_ipv4()
        net = ipaddress.ip_network(args.net, strict=False)
        outside = [x for x in ifaces if ipaddress.ip_interface(x).ip not in net]
        if not ifaces or outside:
            reason = (
                f"this machine's outside addresses are visible ({', '.join(outside)}): WebRTC would use them"
                if outside
                else "no non-loopback IPv4 interface (Chromium gathers no ICE candidates on loopback only)"
            ) + f"; run inside the test namespace ({net}), see this script's docstring"
            failed = True
            rows.append(("WebRTC rows", "skipped", "", reason))
            log(reason)
        else:
            size = args.mib * MIB
            cpu = CpuMeter()
            try:
                s = bench_streams(
                    driver, site_url(site, cleanup), relay.addr, size, args.runs, home, cpu, profile=args.profile
                )
                raw16, raw64, ours = m(s["raw16"]), m(s["raw64"]), m(s["ours"])
                rows += [
                    (
                        f"raw `RTCDataChannel`, 16 KiB messages, page → page, {args.mib} MiB",
                        f"{raw16:.2f} MiB/s",
                        "",
                        f"{raw16 * MIB / 1e6:.1f} MB/s; runs {fmt_runs(s['raw16'])}; "
                        f"{cpu.cpu_ms_per_mib('raw16'):.0f} ms CPU/MiB",
                    ),
                    (
                        "raw `RTCDataChannel`, 64 KiB messages (reference)",
                        f"{raw64:.2f} MiB/s",
                        "",
                        f"{raw64 * MIB / 1e6:.1f} MB/s; runs {fmt_runs(s['raw64'])}; "
                        f"{cpu.cpu_ms_per_mib('raw64'):.0f} ms CPU/MiB",
                    ),
                    (
                        f"**ours**: libp2p stream `/darkswap/sink/1.0.0` over `/webrtc`, {args.mib} MiB",
                        f"**{ours:.2f} MiB/s**",
                        "",
                        f"{ours * MIB / 1e6:.1f} MB/s; runs {fmt_runs(s['ours'])}; "
                        f"{cpu.cpu_ms_per_mib('ours'):.0f} ms CPU/MiB; "
                        f"upgrade through the relay {s['info']['upgrade_ms']:.0f} ms",
                    ),
                    (
                        "**ratio ours / raw (16 KiB)**",
                        f"**{ours / raw16:.2f}**",
                        "≥ 0.8 " + ("✓" if ours / raw16 >= 0.8 else "✗"),
                        f"ratio of medians; median of the per-run (back-to-back) ratios {m(s['pair']):.2f}; "
                        f"vs raw 64 KiB {ours / raw64:.2f}",
                    ),
                ]
                if s["msgs"]:
                    rows.append(
                        (
                            f"ours: DarkSwap messages, 256 KiB each, until acked ({s['info'].get('msgs_transport')})",
                            f"{m(s['msgs']):.2f} MiB/s",
                            "",
                            f"runs {fmt_runs(s['msgs'])}; uncompressed; "
                            f"{cpu.cpu_ms_per_mib('msgs'):.0f} ms CPU/MiB"
                            + (f"; {len(s['msgs_errors'])} failed attempt(s), see notes" if s["msgs_errors"] else ""),
                        )
                    )
                else:
                    failed = True
                    rows.append(
                        ("ours: DarkSwap messages, 256 KiB each", "failed", "", "; ".join(s["msgs_errors"][:2]))
                    )
                notes.extend(f"messages {e}" for e in s["msgs_errors"])
                fr = s["info"]["framing"]
                notes.append(
                    f"our `/webrtc` framing machine alone in the page (Pyodide, no channel, no FFI; "
                    f"{fr['messages']} messages of 16 KiB): send {fr['send_mib_s']:.0f} MiB/s, "
                    f"receive {fr['recv_mib_s']:.0f} MiB/s"
                )
                for path, label in (
                    ("raw16", "raw 16 KiB"),
                    ("raw64", "raw 64 KiB"),
                    ("ours", "ours (stream)"),
                    ("msgs", "ours (messages)"),
                ):
                    notes.append(f"CPU during {label} (A sends, B receives; 100% = one core): {cpu.summary(path)}")
                notes.append(f"ICE host candidates in the raw offer: {s['info']['candidates']}")
            except Exception as exc:
                failed = True
                rows.append(("page ↔ page WebRTC throughput", "failed", "", short_error(str(exc))))
                log_exc(exc)
                ours = None

            if args.skip_js:
                rows.append(("js-libp2p page → page over WebRTC", "skipped", "", "--skip-js"))
            elif bundle is None:
                rows.append(("js-libp2p page → page over WebRTC", "skipped", "", js_reason))
            else:
                try:
                    j = bench_js_libp2p(driver, site_url(site, cleanup), relay.addr, size, args.runs, home, cpu)
                    js = m(j["js"])
                    v = js_versions(js_dir)
                    rows.append(
                        (
                            f"js-libp2p {v.get('libp2p', '?')} + @libp2p/webrtc {v.get('@libp2p/webrtc', '?')} "
                            f"(esbuild bundle): sink stream, {args.mib} MiB",
                            f"{js:.2f} MiB/s",
                            "",
                            f"runs {fmt_runs(j['js'])}; {cpu.cpu_ms_per_mib('js'):.0f} ms CPU/MiB; "
                            f"WebRTC dial through our relay {j['dial_ms']:.0f} ms",
                        )
                    )
                    if ours:
                        rows.append(("**ratio ours / js-libp2p**", f"**{ours / js:.2f}**", "", ""))
                    notes.append(f"CPU during js-libp2p (jsA sends, jsB receives): {cpu.summary('js')}")
                except Exception as exc:
                    rows.append(("js-libp2p page → page over WebRTC", "skipped (failed)", "", short_error(str(exc))))
                    log_exc(exc)
    except Exception as exc:
        failed = True
        log_exc(exc)
        rows.append(("setup", "failed", "", short_error(str(exc))))
    finally:
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:
                log(f"cleanup: {exc}")

    print(f"\n## Browser (`bench/bench_browser.py --mib {args.mib} --runs {args.runs}`)\n")
    print("| measure | result | target | details |")
    print("|---|---:|---|---|")
    for r in rows:
        print("| " + " | ".join(x.replace("|", "/") for x in r) + " |")
    if notes:
        print()
        for n in notes:
            print(f"- {n}")
    return 1 if failed else 0


_SITE_SERVER: dict = {}


def site_url(site: Path, cleanup: list) -> str:
    """One static server (no-cache) for the throughput pages."""
    if "s" not in _SITE_SERVER:
        s = StaticServer(site, cache_control="no-cache")
        _SITE_SERVER["s"] = s
        cleanup.append(s.close)
    return _SITE_SERVER["s"].base_url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=32, help="MiB per throughput run")
    ap.add_argument("--runs", type=int, default=5, help="throughput runs (median)")
    ap.add_argument("--cold-runs", type=int, default=3, help="cold boots (each on a new origin)")
    ap.add_argument("--warm-runs", type=int, default=3, help="reloads after each cold boot")
    ap.add_argument("--dist", default=str(REPO_ROOT / "dist"))
    ap.add_argument("--js-dir", default="/tmp/jsbundle", help="npm packages for the js-libp2p bundle")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds for the whole run (then clean up, exit)")
    ap.add_argument(
        "--net",
        default=os.environ.get("DARKSWAP_TEST_NETNS", "10.99.0.0/24"),
        help="the test namespace's network: WebRTC runs only when every non-loopback address is in it",
    )
    ap.add_argument("--skip-js", action="store_true", help="no js-libp2p row")
    ap.add_argument(
        "--profile", action="store_true", help="one more run of ours under cProfile in both pages; log the top"
    )
    ap.add_argument("--prepare-js", metavar="DIR", help="npm install the js-libp2p packages into DIR, bundle, exit")
    args = ap.parse_args()
    if args.prepare_js:
        return prepare_js(Path(args.prepare_js))

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGALRM, on_term)
    signal.alarm(args.timeout)  # the whole run; every wait inside has its own, shorter bound
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
