"""The JavaScript API (``DarkSwapWasm``, js_glue/darkswap.js) in headless Chromium, page to page.

The seed's browser test 4.3 in JavaScript: two pages load ``dist/darkswap.js`` with a script tag,
start ``DarkSwapWasm.new_with_defaults("regtest", {relays: [relay]})``, one opens a WebRTC data
channel to the other and sends ``new Uint8Array([1, 2, 3])`` and 1 MiB; the other gets both, equal,
through ``receive_webrtc_message`` and through the ``message`` event; ``connections()`` reports
``webrtc``. Errors are ``Error`` objects with a stable ``code``. The same API as an ES module
(``dist/darkswap.mjs``); a page without ``RTCPeerConnection`` stays on the relayed path without
noticing. (The demo page, ``demo/index.html``, is tested in test_demo.py.)

The pages are served from one root holding ``dist/`` (the build) and ``demo/`` (the layout
scripts/demo.py serves). WebRTC needs the test network namespace (``DARKSWAP_TEST_NETNS``,
``./build.sh test`` makes it): these tests fail outside it, and fail (never skip) without
Chromium or the dist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.static_server import StaticServer

from .conftest import REPO_ROOT, report

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

BUILD_CMD = "python scripts/build_dist.py --out dist --with-tests --browser"

CLASSIC_PAGE = """<!doctype html><meta charset=utf-8><title>darkswap.js (classic)</title>
<script src="/dist/darkswap.js"></script>
"""
MODULE_PAGE = """<!doctype html><meta charset=utf-8><title>darkswap.mjs (module)</title>
<script type="module">
import { DarkSwapWasm, DarkSwapError } from "/dist/darkswap.mjs";
window.DSM = DarkSwapWasm; window.DSE = DarkSwapError; window.moduleLoaded = true;
</script>
"""
NO_RTC_PAGE = """<!doctype html><meta charset=utf-8><title>darkswap.js without WebRTC</title>
<script>
delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection; window.RTCPeerConnection = undefined;
</script>
<script src="/dist/darkswap.js"></script>
"""

# the JS helpers every page gets: a deterministic 1 MiB pattern and a SHA-256 hex digest
HELPERS = """
window.pattern = (n, seed) => { const a = new Uint8Array(n); let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; a[i] = x >>> 24; } return a; };
window.hex = async (u8) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", u8)))
  .map((b) => b.toString(16).padStart(2, "0")).join("");
"""

WRAP = """const done = arguments[arguments.length - 1];
const args = Array.from(arguments).slice(0, -1);
(async (...args) => { %s })(...args).then(
  (v) => done({ ok: true, value: v === undefined ? null : v }),
  (e) => done({ ok: false, error: String((e && e.stack) || e), code: e && e.code }));"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def test_net() -> str:
    net = os.environ.get("DARKSWAP_TEST_NETNS")
    if not net:
        pytest.fail("WebRTC tests must run in the test network namespace: use ./build.sh test [pytest args]")
    return net


@pytest.fixture(scope="module")
def site(browser_dist: Path, tmp_path_factory: pytest.TempPathFactory):
    """One root: /dist (the build), /demo (the demo), /t (test pages)."""
    for name in ("darkswap.js", "darkswap.mjs", "darkswap.d.ts"):
        built = browser_dist / name
        if not built.is_file() or built.read_bytes() != (REPO_ROOT / "js_glue" / name).read_bytes():
            pytest.fail(f"{built} is missing or differs from js_glue/{name}; rebuild: {BUILD_CMD}")
    for rel in ("vendor/webrtc-adapter/adapter.js", "js_glue/compat.js"):
        if not (browser_dist / rel).is_file():
            pytest.fail(f"{browser_dist}/{rel} missing; rebuild: {BUILD_CMD}")
    for rel in ("vendor/@bokuweb", "js_glue/zstd.js"):  # zstd is Pyodide's own compression.zstd now
        if (browser_dist / rel).exists():
            pytest.fail(f"{browser_dist}/{rel} is a leftover of the zstd wasm; rebuild: {BUILD_CMD}")
    root = tmp_path_factory.mktemp("site")
    (root / "dist").symlink_to(browser_dist)
    (root / "demo").symlink_to(REPO_ROOT / "demo")
    t = root / "t"
    t.mkdir()
    (t / "classic.html").write_text(CLASSIC_PAGE)
    (t / "module.html").write_text(MODULE_PAGE)
    (t / "nortc.html").write_text(NO_RTC_PAGE)
    server = StaticServer(root)
    yield server
    server.close()


class Relay:
    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "darkswap_wasm.relay",
                "--listen",
                "/ip4/127.0.0.1/tcp/0/ws",
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO_ROOT),
            env=env,
        )
        line = self.proc.stdout.readline().strip()
        if "/p2p/" not in line:
            self.stop()
            pytest.fail(f"the relay did not start (printed {line!r})")
        self.addr = line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def relay():
    r = Relay()
    yield r
    r.stop()


class Tab:
    """A top-level window of the session's Chromium showing one page of the site."""

    def __init__(self, driver, url: str, name: str) -> None:
        self.driver = driver
        self.name = name
        driver.switch_to.new_window("window")
        self.handle = driver.current_window_handle
        driver.get(url)
        driver.execute_script(HELPERS)

    def js(self, body: str, *args, expect_ok: bool = True):
        self.driver.switch_to.window(self.handle)
        try:
            res = self.driver.execute_async_script(WRAP % body, *args)
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"[{self.name}] the page did not answer: {exc}\n{self.log()}")
        if expect_ok and not res.get("ok"):
            pytest.fail(f"[{self.name}] in the page: {res.get('error')}\n{self.log()}")
        return res["value"] if expect_ok else res

    def log(self) -> str:
        try:
            return "\n".join(
                f"console {e.get('level')}: {e.get('message')}" for e in self.driver.get_log("browser")[-40:]
            )
        except Exception as exc:  # noqa: BLE001
            return f"(no browser log: {exc})"


@pytest.fixture
def tabs(chromium):
    home = chromium.current_window_handle
    opened: list[Tab] = []

    def open_tab(url: str, name: str) -> Tab:
        tab = Tab(chromium, url, name)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in reversed(opened):
        try:
            tab.js("if (window.ds) await window.ds.close(); return null;", expect_ok=False)
        except BaseException as exc:  # noqa: BLE001 - closing the window regardless
            print(f"[{tab.name}] close: {exc}")
        try:
            chromium.switch_to.window(tab.handle)
            chromium.close()
        except Exception as exc:  # noqa: BLE001
            print(f"[{tab.name}] closing the window: {exc}")
    chromium.switch_to.window(home)


START = """
const t0 = performance.now();
const DS = args[1] === "module" ? window.DSM : window.DarkSwapWasm;
const opts = Object.assign({ relays: [args[0]] }, args[2] || {});
if (opts.identity) opts.identity = new Uint8Array(opts.identity);
window.ds = await DS.new_with_defaults("regtest", opts);
window.got = []; window.events = [];
ds.on("message", (peer, bytes) => window.got.push({ peer, n: bytes.length, isU8: bytes instanceof Uint8Array, bytes }));
for (const ev of ["peer:connect", "peer:disconnect", "connection:open", "connection:close",
                  "relay:reserved", "relay:lost"])
  ds.on(ev, (...a) => window.events.push([ev, ...a]));
const info = ds.info();
return { peer: ds.local_peer_id(), ms: performance.now() - t0, reservations: info.reservations,
         compression: info.compression, webrtc: info.webrtc, boot: info.runtime.boot.totalMs };
"""


def _start(tab: Tab, relay_addr: str, kind: str = "classic", options: dict | None = None) -> dict:
    info = tab.js(START, relay_addr, kind, options or {})
    report(
        f"{tab.name}: DarkSwapWasm.new_with_defaults {info['ms'] / 1000:.2f} s (boot {info['boot'] / 1000:.2f} s), "
        f"compression {info['compression']}, webrtc {info['webrtc']}"
    )
    assert info["peer"].startswith("12D3KooW")
    assert len(info["reservations"]) == 1, info
    return info


# --------------------------------------------------------------------------- the seed's 4.3 in JS


def test_two_pages_exchange_over_webrtc_through_the_js_api(site, relay, tabs, test_net):
    a = tabs(site.base_url + "t/classic.html", "alice")
    b = tabs(site.base_url + "t/classic.html", "bob")
    ia = _start(a, relay.addr)
    ib = _start(b, relay.addr)
    assert ia["compression"] == "zstd" and ia["webrtc"] is True  # Pyodide's compression.zstd

    up = a.js(
        """const t0 = performance.now(); const c = await ds.create_webrtc_data_channel(args[0]);
                 return { c, ms: performance.now() - t0, conns: await ds.connections(args[0]) };""",
        ib["peer"],
    )
    report(f"create_webrtc_data_channel: {up['ms']:.0f} ms -> {up['c']['transport']}")
    assert up["c"]["transport"] == "webrtc", up
    assert "webrtc" in [c["transport"] for c in up["conns"]]

    sent = a.js(
        """const small = new Uint8Array([1, 2, 3]); const big = pattern(1 << 20, 42);
        const t0 = performance.now();
        const s1 = await ds.send_webrtc_message(args[0], small);
        const s2 = await ds.send_webrtc_message(args[0], big);
        await ds.wait_delivered(args[0], s2, { timeout: 60000 });
        return { s1, s2, ms: performance.now() - t0, big: await hex(big) };""",
        ib["peer"],
    )
    got = b.js(
        """const m1 = await ds.receive_webrtc_message(args[0], { timeout: 30000 });
        const m2 = await ds.receive_webrtc_message(args[0], { timeout: 60000 });
        const ev = window.got;
        return { m1: Array.from(m1), isU8: m1 instanceof Uint8Array && m2 instanceof Uint8Array, n2: m2.length,
                 big: await hex(m2), events: ev.map((e) => [e.peer, e.n, e.isU8]),
                 ev0: ev.length ? Array.from(ev[0].bytes) : null, evBig: ev.length > 1 ? await hex(ev[1].bytes) : null,
                 conns: (await ds.connections(args[0])).map((c) => c.transport) };""",
        ia["peer"],
    )
    report(f"[1,2,3] + 1 MiB over WebRTC, queued to acknowledged: {sent['ms']:.0f} ms")
    assert sent["s2"] == sent["s1"] + 1
    assert got["m1"] == [1, 2, 3] and got["isU8"]
    assert got["n2"] == 1 << 20 and got["big"] == sent["big"]
    assert got["events"] == [[ia["peer"], 3, True], [ia["peer"], 1 << 20, True]]
    assert got["ev0"] == [1, 2, 3] and got["evBig"] == sent["big"]
    assert "webrtc" in got["conns"]

    # and back: bob -> alice, on the same direct connection
    back = b.js(
        """const s = await ds.send_webrtc_message(args[0], new TextEncoder().encode("ack"));
                   return { s, conns: (await ds.connections(args[0])).map((c) => c.transport) };""",
        ia["peer"],
    )
    text = a.js(
        """const m = await ds.receive_webrtc_message(args[0], { timeout: 30000 });
                   return new TextDecoder().decode(m);""",
        ib["peer"],
    )
    assert text == "ack" and back["conns"][0] == "webrtc"

    events = b.js("return window.events.map((e) => e[0]);")
    assert "connection:open" in events and "peer:connect" in events

    # errors: JS Errors with a stable code, no Python traceback
    err = a.js(
        """const out = {};
        try { await ds.create_webrtc_data_channel("12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"); }
        catch (e) { out.unknown = { code: e.code, isError: e instanceof Error, name: e.name, message: e.message }; }
        try { await ds.send_webrtc_message("not-a-peer-id", new Uint8Array(1)); }
        catch (e) { out.badPeer = { code: e.code, isError: e instanceof Error, message: e.message }; }
        try { await ds.send_webrtc_message(args[0], "text"); }
        catch (e) { out.badData = { code: e.code, isError: e instanceof Error }; }
        try { await ds.receive_webrtc_message(args[0], { timeout: 200 }); }
        catch (e) { out.timeout = { code: e.code, isError: e instanceof Error }; }
        try { await ds.send_webrtc_message(args[0], new Uint8Array(4 * 1024 * 1024 + 1)); }
        catch (e) { out.tooBig = { code: e.code }; }
        try { ds.on("nope", () => {}); } catch (e) { out.badEvent = { code: e.code }; }
        return out;""",
        ib["peer"],
    )
    assert err["unknown"]["code"] == "PEER_UNREACHABLE" and err["unknown"]["isError"], err
    assert err["unknown"]["name"] == "DarkSwapError"
    for case in err.values():
        assert "Traceback" not in json.dumps(case), case
    assert err["badPeer"]["code"] in ("INVALID_ARGUMENT", "DECODE_ERROR"), err
    assert err["badData"]["code"] == "INVALID_ARGUMENT"
    assert err["timeout"]["code"] == "TIMEOUT"
    assert err["tooBig"]["code"] == "MESSAGE_TOO_LARGE"
    assert err["badEvent"]["code"] == "INVALID_ARGUMENT"

    closed = a.js("""let fired = false; ds.on("close", () => { fired = true; }); await ds.close();
        let after; try { ds.local_peer_id(); } catch (e) { after = e.code; }
        return { fired, after };""")
    assert closed == {"fired": True, "after": "CLOSED"}


def test_es_module_build_works_too(site, relay, tabs, test_net):
    a = tabs(site.base_url + "t/classic.html", "classic")
    m = tabs(site.base_url + "t/module.html", "module")
    assert m.js(
        "for (let i = 0; i < 100 && !window.moduleLoaded; i++) await new Promise((r) => setTimeout(r, 50));"
        "return !!window.moduleLoaded;"
    )
    assert m.js("return typeof window.DarkSwapWasm;") == "undefined"  # the module defines no global
    ia = _start(a, relay.addr)
    seed = bytes(range(32))
    im = _start(m, relay.addr, kind="module", options={"identity": list(seed), "compression": False})
    from darkswap_wasm import Identity

    assert im["peer"] == str(Identity.from_seed(seed).peer_id)  # the same key natively and in the page
    assert im["compression"] is None
    base = m.js("return window.DSM.baseUrl;")
    assert base == site.base_url + "dist/"
    out = m.js(
        """const c = await ds.create_webrtc_data_channel(args[0]);
        await ds.send_webrtc_message(args[0], new Uint8Array([7, 8, 9]));
        let code;
        try { await ds.ping("12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"); } catch (e) { code = e.code; }
        return { t: c.transport, code, isDSE: true };""",
        ia["peer"],
    )
    got = a.js("return Array.from(await ds.receive_webrtc_message(args[0], { timeout: 30000 }));", im["peer"])
    assert out["t"] == "webrtc" and got == [7, 8, 9]
    assert out["code"] == "PEER_UNREACHABLE"


def test_without_rtcpeerconnection_traffic_stays_relayed(site, relay, tabs, test_net):
    """Fallback: a page without WebRTC uses the same calls; everything goes through the relay."""
    a = tabs(site.base_url + "t/classic.html", "with-rtc")
    n = tabs(site.base_url + "t/nortc.html", "no-rtc")
    ia = _start(a, relay.addr)
    inn = _start(n, relay.addr)
    assert inn["webrtc"] is False
    plan = n.js("return ds.info().compat;")
    assert "RTCPeerConnection" in plan["missing"] and plan["webrtc"] is False
    out = n.js(
        """const c = await ds.create_webrtc_data_channel(args[0]);
        const s = await ds.send_webrtc_message(args[0], pattern(100000, 7));
        await ds.wait_delivered(args[0], s, { timeout: 30000 });
        return { t: c.transport, conns: (await ds.connections(args[0])).map((c) => c.transport),
                 h: await hex(pattern(100000, 7)) };""",
        ia["peer"],
    )
    assert out["t"] == "relay" and out["conns"] == ["relay"]
    got = a.js("return await hex(await ds.receive_webrtc_message(args[0], { timeout: 30000 }));", inn["peer"])
    assert got == out["h"]
    # and the other way: the page with WebRTC tries, fails over to the relay, the caller does not notice
    a.js("await ds.send_webrtc_message(args[0], new Uint8Array([4, 2])); return null;", inn["peer"])
    assert n.js("return Array.from(await ds.receive_webrtc_message(args[0], { timeout: 60000 }));", ia["peer"]) == [4, 2]


# --------------------------------------------------------------------------- edge cases (issue 10, item 5)

BAD_CALLS = """
const peer = args[0];
const cases = {
  pingUndefined: () => ds.ping(),
  pingNumber: () => ds.ping(42),
  pingHello: () => ds.ping("hello"),
  connectNumber: () => ds.connect(5),
  channelNull: () => ds.create_webrtc_data_channel(null),
  sendRtcNumber: () => ds.send_webrtc_message(42, new Uint8Array(1)),
  sendText: () => ds.send_message(peer, "text"),
  sendHello: () => ds.send_message("hello", new Uint8Array([1])),
  waitNoSeq: () => ds.wait_delivered(peer),
  waitNumberPeer: () => ds.wait_delivered(123, 1),
  waitNegativeSeq: () => ds.wait_delivered(peer, -1),
  waitBadTimeout: () => ds.wait_delivered(peer, 0, { timeout: -1 }),
  receiveNull: () => ds.receive_webrtc_message(null),
  receiveBadOptions: () => ds.receive_webrtc_message(peer, 5),
  receiveBadTimeout: () => ds.receive_webrtc_message(peer, { timeout: "soon" }),
  connectionsNumber: () => ds.connections(5),
  newNumber: () => DarkSwapWasm.new_with_defaults(5),
  newBadOptions: () => DarkSwapWasm.new_with_defaults("regtest", 5),
  newBadWait: () => DarkSwapWasm.new_with_defaults("regtest", { waitForReservations: -1 }),
  preloadBad: () => DarkSwapWasm.preload("x"),
};
const out = {};
for (const [name, fn] of Object.entries(cases)) {
  let p;
  try { p = fn(); } catch (e) { out[name] = { threw: true, code: e && e.code, message: String(e && e.message) }; continue; }
  if (!(p instanceof Promise)) { out[name] = { notPromise: true }; continue; }
  try { await p; out[name] = { resolved: true }; }
  catch (e) { out[name] = { code: e && e.code, isError: e instanceof Error, message: String(e && e.message) }; }
}
return out;
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_js_api_edge_cases(site, relay, tabs, test_net):
    a = tabs(site.base_url + "t/classic.html", "edge-a")
    b = tabs(site.base_url + "t/classic.html", "edge-b")
    ia = _start(a, relay.addr)
    ib = _start(b, relay.addr)

    # receive without options, with null options, with undefined / null timeouts
    b.js(
        """for (const n of [1, 2, 3, 4, 5]) await ds.send_message(args[0], new Uint8Array([n]));
        return null;""",
        ia["peer"],
    )
    got = a.js(
        """const p = args[0];
        const r = [await ds.receive_webrtc_message(p), await ds.receive_webrtc_message(p, null),
                   await ds.receive_webrtc_message(p, undefined), await ds.receive_webrtc_message(p, { timeout: null }),
                   await ds.receive_webrtc_message(p, { timeout: undefined })];
        return r.map((m) => Array.from(m));""",
        ib["peer"],
    )
    assert got == [[1], [2], [3], [4], [5]]

    # ping: a number of milliseconds
    rtt = a.js("return await ds.ping(args[0]);", ib["peer"])
    report(f"ping through the relay: {rtt:.2f} ms")
    assert isinstance(rtt, (int, float)) and 0.05 < rtt < 30_000, rtt

    # every async method: bad arguments reject (never throw) with INVALID_ARGUMENT
    bad = a.js(BAD_CALLS, ib["peer"])
    for name, res in bad.items():
        assert not res.get("threw") and not res.get("notPromise"), (name, res)
        assert res.get("code") == "INVALID_ARGUMENT" and res.get("isError"), (name, res)
        assert "Traceback" not in res["message"] and "float()" not in res["message"], (name, res)
    assert "peer ID" in bad["sendHello"]["message"] and "multibase" not in bad["sendHello"]["message"], bad["sendHello"]
    assert "hello" in bad["pingHello"]["message"], bad["pingHello"]

    # an unreachable relay (a free port, a valid peer ID): rejects once the wait is over
    from darkswap_wasm import Identity

    dead = f"/ip4/127.0.0.1/tcp/{_free_port()}/ws/p2p/{Identity.generate().peer_id}"
    res = a.js(
        """const t0 = performance.now();
        try { const d = await DarkSwapWasm.new_with_defaults("regtest", { relays: [args[0]], waitForReservations: 1500 });
              await d.close(); return { resolved: true, ms: performance.now() - t0 }; }
        catch (e) { return { code: e.code, message: e.message, ms: performance.now() - t0 }; }""",
        dead,
    )
    report(f"unreachable relay: rejected after {res['ms']:.0f} ms: {res.get('message')}")
    assert res.get("code") == "RELAY_RESERVATION_FAILED", res
    assert 1400 <= res["ms"] < 1500 + 3000, res
    assert res["message"].count(dead) == 1 and res["message"].count(dead.rsplit("/p2p/", 1)[0]) == 1, res
