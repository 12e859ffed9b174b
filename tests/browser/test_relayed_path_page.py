"""The relayed path loses nothing in the browser (issue 10, item 1), in Chromium.

Two pages boot ``dist/darkswap.js`` with a script tag and start
``DarkSwapWasm.new_with_defaults("regtest", {relays: [relay]})`` against a real relay process
(``darkswap-relay --circuit-duration 20``: every circuit ends after 20 s). WebRTC between them
cannot connect, for real: the relay, the static server, chromedriver and Chromium all run in a
network namespace of their own that has nothing but loopback. That is the issue's situation
("loopback only, so only the relayed path exists"): Chromium gathers no ICE candidate from a
loopback interface, so every offer/answer goes through and ICE never connects, exactly as
between browsers behind NATs without STUN/TURN. A Chromium flag such as
``--force-webrtc-ip-handling-policy=disable_non_proxied_udp`` would be a weaker stand-in: it
changes the browser's policy instead of its network, and the pages would still have a routable
interface (the suite's namespace has the veth ``10.99.0.1/24``, over which WebRTC does connect).
The test checks the premise first: a bare ``RTCPeerConnection`` in the page gathers no candidate.

The namespace is entered by the test's own thread (``unshare(CLONE_NEWNET)`` through libc, as
root, like ``./build.sh test`` does for the whole suite) and left again (``setns``) at the end;
every process and socket the test makes meanwhile (relay, static server, chromedriver, Chromium,
selenium's HTTP connection) lives in it.

Then page A asks for a data channel to B and B dials A's ``/p2p-circuit/webrtc/`` address (both
resolve with the relayed connection), and both pages send 40 messages each way with
``send_webrtc_message``, one every 1.6 s (over a minute: at least three circuits end under
them), never waiting for the other side; then 800 more each way, one every 30 ms (a steady
stream across at least one more circuit end, so that messages in flight when it ends have to be
resent). Every send resolves, every message arrives exactly once and in order (through the
``message`` event and through ``receive_webrtc_message``), no Python error is logged in a page,
no console error, no ``INTERNAL_ERROR``; afterwards ``connections()`` works and one more message
goes through each way. The circuits that ended are counted (``connection:close`` events in page
A, the relay's log) and so are the resends (the messaging log's "resumed (N resent)").
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from scripts.static_server import StaticServer

from .conftest import CHROMIUM_FLAGS, REPO_ROOT, SCRIPT_TIMEOUT, _find, report
from .pages import NativeProc

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

CIRCUIT_SECONDS = 20
MESSAGES = 40
GAP_MS = 1600  # 40 messages over 64 s: three 20 s circuits end under them at least
TICKS = 800
TICK_MS = 30  # then 800 more each way over 24 s or more: a circuit surely ends amid that stream
CLONE_NEWNET = 0x40000000

PAGE = """<!doctype html><meta charset=utf-8><title>relayed path</title><link rel=icon href="data:,">
<script>
window.consoleErrors = [];
const origError = console.error.bind(console);
console.error = (...a) => { window.consoleErrors.push(a.map(String).join(" ")); origError(...a); };
window.addEventListener("error", (e) => window.consoleErrors.push("uncaught: " + e.message));
window.addEventListener("unhandledrejection", (e) => window.consoleErrors.push("unhandled: " + String(e.reason)));
</script>
<script src="/dist/darkswap.js"></script>
"""

WRAP = """const done = arguments[arguments.length - 1];
const args = Array.from(arguments).slice(0, -1);
(async (...args) => { %s })(...args).then(
  (v) => done({ ok: true, value: v === undefined ? null : v }),
  (e) => done({ ok: false, error: String((e && e.stack) || e), code: e && e.code }));"""

# a bare RTCPeerConnection: the candidates this page can gather (none, in a loopback-only namespace)
GATHER = """
const pc = new RTCPeerConnection({ iceServers: [] });
pc.createDataChannel("probe");
const found = [];
const complete = new Promise((resolve) => {
  pc.onicecandidate = (e) => { if (e.candidate) found.push(e.candidate.candidate); else resolve(); };
});
await pc.setLocalDescription(await pc.createOffer());
await Promise.race([complete, new Promise((r) => setTimeout(r, 10000))]);
const state = pc.iceGatheringState;
pc.close();
return { found, state };
"""

START = """
const t0 = performance.now();
window.ds = await DarkSwapWasm.new_with_defaults("regtest", { relays: [args[0]] });
window.got = []; window.events = []; window.runs = {};
const dec = new TextDecoder();
window.gotAt = [];
ds.on("message", (peer, bytes) => { window.got.push([peer, dec.decode(bytes)]); window.gotAt.push(Date.now()); });
for (const ev of ["connection:open", "connection:close", "peer:connect", "peer:disconnect",
                  "relay:reserved", "relay:lost"])
  ds.on(ev, (...a) => window.events.push([performance.now(), ev, ...a]));
// Python's log records at WARNING and above, kept in the page (test introspection only)
const rt = await Object.values(window.__darkswapRuntimes)[0];
rt.pyodide.runPython(`
import logging
class _Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []
    def emit(self, record):
        if len(self.records) < 1000:
            self.records.append([record.levelname, record.name, self.format(record)])
class _Resends(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.resent = []
    def emit(self, record):
        if record.getMessage().endswith(" resent)"):
            self.resent.append(int(record.args[-1]))
_keep = _Keep()
logging.getLogger().addHandler(_keep)
_resends = _Resends()
logging.getLogger("darkswap_wasm.host.messaging").addHandler(_resends)
logging.getLogger("darkswap_wasm.host.messaging").setLevel(logging.DEBUG)
import builtins
builtins._dsw_test_log = _keep
builtins._dsw_test_resends = _resends
`);
const info = ds.info();
return { peer: ds.local_peer_id(), ms: performance.now() - t0, reservations: info.reservations, webrtc: info.webrtc };
"""

PY_LOG = """
const rt = await Object.values(window.__darkswapRuntimes)[0];
return JSON.parse(rt.pyodide.runPython("import builtins, json; json.dumps(builtins._dsw_test_log.records)"));
"""

RESENDS = """
const rt = await Object.values(window.__darkswapRuntimes)[0];
return JSON.parse(rt.pyodide.runPython("import builtins, json; json.dumps(builtins._dsw_test_resends.resent)"));
"""

# fire and forget: one send every `gap` ms (each awaited: it only queues), a pull loop alongside
RUN = """
const [peer, side, n, gap, kind] = args;
const text = (i) => kind === "order" ? window.order(side, i) : `${kind} ${side}#${i}`;
const enc = new TextEncoder(), dec = new TextDecoder();
const run = window.runs[kind] = { seqs: [], sentAt: [], rejected: [], slowestMs: 0, sendsDone: false, pulled: [],
                           pullErrors: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    run.sentAt.push(Date.now());
    try {
      run.seqs.push(await ds.send_webrtc_message(peer, enc.encode(text(i))));
    } catch (e) {
      run.rejected.push({ i, code: e && e.code, message: String((e && e.message) || e) });
    }
    run.slowestMs = Math.max(run.slowestMs, performance.now() - t0);
    await sleep(gap);
  }
})().finally(() => { run.sendsDone = true; });
(async () => {
  while (run.pulled.length < n) {
    try {
      run.pulled.push(dec.decode(await ds.receive_webrtc_message(peer, { timeout: 150000 })));
    } catch (e) {
      run.pullErrors.push({ code: e && e.code, message: String((e && e.message) || e) });
      return;
    }
  }
})();
return null;
"""

ORDER_JS = """window.order = (side, i) =>
  `order ${side}#${i} sats=${(i + 1) * 1000} price=${1000 + i} ` + "x".repeat(64);"""


def order(side: str, i: int) -> str:
    return f"order {side}#{i} sats={(i + 1) * 1000} price={1000 + i} " + "x" * 64


STATUS = """
const r = window.runs[args[0]];
return { sent: r.seqs.length, lastSeq: r.seqs.length ? r.seqs[r.seqs.length - 1] : null, rejected: r.rejected,
         slowestMs: r.slowestMs, sendsDone: r.sendsDone, pulled: r.pulled.length, pullErrors: r.pullErrors,
         got: window.got.length, consoleErrors: window.consoleErrors.length };
"""


# --------------------------------------------------------------------------- the namespace


class LoopbackOnlyNetns:
    """This thread in a new network namespace with only ``lo`` (up), until :meth:`leave`."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        if self._libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            os.close(self._home)
            pytest.fail(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)} (run as root, as ./build.sh test does)")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True, timeout=10)
            links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            self.leave()
            pytest.fail(f"cannot set up the loopback-only namespace: {exc}")
        names = [line.split(":")[1].strip() for line in links.stdout.splitlines() if ":" in line]
        if names != ["lo"]:
            self.leave()
            pytest.fail(f"the new namespace has more than loopback: {names}")

    def leave(self) -> None:
        if self._home >= 0:
            if self._libc.setns(self._home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test namespace failed")
            os.close(self._home)
            self._home = -1


class Tab:
    def __init__(self, driver, url: str, name: str) -> None:
        self.driver = driver
        self.name = name
        driver.switch_to.new_window("window")
        self.handle = driver.current_window_handle
        driver.get(url)
        driver.execute_script(ORDER_JS)

    def js(self, body: str, *args):
        self.driver.switch_to.window(self.handle)
        try:
            res = self.driver.execute_async_script(WRAP % body, *args)
        except Exception as exc:
            pytest.fail(f"[{self.name}] the page did not answer: {exc}")
        if not res.get("ok"):
            pytest.fail(f"[{self.name}] in the page: {res.get('error')} (code {res.get('code')})")
        return res["value"]


@pytest.fixture
def isolated(browser_dist: Path, tmp_path: Path):
    """Relay, static server and Chromium (two windows) inside a loopback-only namespace."""
    install = "apt-get install -y chromium chromium-driver"
    browser = _find("DARKSWAP_CHROMIUM", ["chromium", "chromium-browser", "google-chrome"], "Chromium", install)
    driver_path = _find("SE_CHROMEDRIVER", ["chromedriver"], "chromedriver", install)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for name in ("darkswap.js",):
        if (browser_dist / name).read_bytes() != (REPO_ROOT / "js_glue" / name).read_bytes():
            pytest.fail(f"{browser_dist / name} differs from js_glue/{name}; rebuild the dist")
    root = tmp_path / "site"
    root.mkdir()
    (root / "dist").symlink_to(browser_dist)
    (root / "page.html").write_text(PAGE)

    ns = LoopbackOnlyNetns()
    relay = server = driver = None
    try:
        relay = NativeProc(
            "darkswap_wasm.relay",
            "--listen", "/ip4/127.0.0.1/tcp/0/ws",
            "--circuit-duration", str(CIRCUIT_SECONDS),
            "--log-level", "INFO",
        )  # fmt: skip
        relay.read_addrs(lambda a: len(a) >= 1)
        server = StaticServer(root)
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        except Exception as exc:
            pytest.fail(f"cannot start Chromium ({browser}) through {driver_path}: {exc}")
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        yield relay, server, driver
    finally:
        if driver is not None:
            for handle in driver.window_handles:
                try:
                    driver.switch_to.window(handle)
                    driver.execute_async_script(WRAP % "if (window.ds) await window.ds.close(); return null;")
                except Exception as exc:
                    print(f"closing a page: {exc}")
            driver.quit()
        if server is not None:
            server.close()
        if relay is not None:
            relay.stop()
        ns.leave()


# --------------------------------------------------------------------------- the test


def test_forty_messages_each_way_across_20s_circuits_without_webrtc_arrive_exactly_once_in_order(isolated):
    relay, server, driver = isolated
    relay_addr = relay.addrs[0]
    a = Tab(driver, server.base_url + "page.html", "A")
    b = Tab(driver, server.base_url + "page.html", "B")

    probe = a.js(GATHER)
    report(f"loopback-only namespace: ICE gathering {probe['state']}, candidates {probe['found']}")
    assert probe["found"] == [], probe  # the premise: nothing for WebRTC to connect over

    ia = a.js(START, relay_addr)
    ib = b.js(START, relay_addr)
    assert ia["webrtc"] is True and ib["webrtc"] is True  # the pages have WebRTC; it just cannot connect
    assert len(ia["reservations"]) == 1 and len(ib["reservations"]) == 1, (ia, ib)
    pa, pb = ia["peer"], ib["peer"]

    up = a.js(
        """const t0 = performance.now(); const c = await ds.create_webrtc_data_channel(args[0]);
        return { c, ms: performance.now() - t0, conns: (await ds.connections(args[0])).map((x) => x.transport) };""",
        pb,
    )
    report(f"create_webrtc_data_channel without a route for WebRTC: {up['ms']:.0f} ms -> {up['c']['transport']}")
    assert up["c"]["transport"] == "relay", up
    assert up["conns"] == ["relay"], up

    # B dials A's /p2p-circuit/webrtc/ address: it resolves with the relayed connection
    addr_a = next(x for x in a.js("return ds.listen_addrs();") if "/p2p-circuit/webrtc/" in x)
    dialed = b.js(
        """const t0 = performance.now(); const p = await ds.connect(args[0]);
        return { p, ms: performance.now() - t0, conns: (await ds.connections(p)).map((x) => x.transport) };""",
        addr_a,
    )
    report(f"connect(<relay>/p2p-circuit/webrtc/p2p/A) without a route for WebRTC: {dialed['ms']:.0f} ms")
    # (A's circuit, 20 s old by now, may just have ended: no connection is left until one is needed)
    assert dialed["p"] == pa and set(dialed["conns"]) <= {"relay"}, dialed

    def evidence() -> str:
        logs = {t.name: t.js(PY_LOG) for t in (a, b)}
        events = {t.name: t.js("return window.events;") for t in (a, b)}
        runs = {
            t.name: t.js("return Object.keys(window.runs).map((k) => [k, window.runs[k].rejected]);") for t in (a, b)
        }
        return (
            f"runs {runs}\npython log: {json.dumps(logs)[:6000]}\nevents: {json.dumps(events)[:4000]}\n"
            f"relay log:\n" + "\n".join(relay.stderr[-40:])
        )

    def exchange(kind: str, n: int, gap_ms: int, texts) -> int:
        """Both pages send ``n`` messages ``gap_ms`` apart; each gets the other's exactly once, in
        order. Returns how many connections of A to B closed meanwhile (circuits that ended)."""
        before = {t.name: t.js("return window.got.length;") for t in (a, b)}
        t0 = time.monotonic()
        page_t0 = a.js("return performance.now();")
        a.js(RUN, pb, "A", n, gap_ms, kind)
        b.js(RUN, pa, "B", n, gap_ms, kind)
        deadline = time.monotonic() + n * gap_ms / 1000 + 150
        while True:
            sa, sb = a.js(STATUS, kind), b.js(STATUS, kind)
            done = all(
                s["sendsDone"] and s["pulled"] >= n and s["got"] >= before[t.name] + n for t, s in ((a, sa), (b, sb))
            )
            if done or sa["pullErrors"] or sb["pullErrors"] or time.monotonic() > deadline:
                break
            time.sleep(2)
        report(
            f"{kind}: {n} messages each way in {time.monotonic() - t0:.0f} s; slowest send A {sa['slowestMs']:.0f} ms, "
            f"B {sb['slowestMs']:.0f} ms"
        )
        assert sa["rejected"] == [] and sb["rejected"] == [], evidence()  # no send rejected
        assert sa["pullErrors"] == [] and sb["pullErrors"] == [], evidence()
        assert sa["sent"] == n and sb["sent"] == n, evidence()
        for me, other, side in ((a, pb, "B"), (b, pa, "A")):
            want = [texts(side, i) for i in range(n)]
            # exactly once, in order: through receive_webrtc_message and through the message event
            assert me.js(f"return window.runs[{kind!r}].pulled;") == want, evidence()
            got = me.js("return window.got.slice(args[0]);", before[me.name])
            assert got == [[other, m] for m in want], evidence()
        # how long messages took one way (send called -> message event on the other page; one clock)
        lag = [
            (got - sent) / 1000
            for x, y in ((a, b), (b, a))
            for sent, got in zip(
                x.js(f"return window.runs[{kind!r}].sentAt;"),
                y.js("return window.gotAt.slice(args[0]);", before[y.name]),
                strict=True,
            )
        ]
        page_t1 = a.js("return performance.now();")
        report(
            f"{kind}: one way, send called to message event: median {sorted(lag)[len(lag) // 2]:.2f} s, "
            f"max {max(lag):.2f} s"
        )
        # and acknowledged
        a.js("await ds.wait_delivered(args[0], args[1], { timeout: 90000 }); return null;", pb, sa["lastSeq"])
        b.js("await ds.wait_delivered(args[0], args[1], { timeout: 90000 }); return null;", pa, sb["lastSeq"])
        events = a.js("return window.events;")
        return sum(1 for e in events if e[1] == "connection:close" and e[2] == pb and page_t0 <= e[0] <= page_t1)

    assert a.js("return window.order('A', 7);") == order("A", 7)  # the two order() agree
    ended_under_orders = exchange("order", MESSAGES, GAP_MS, order)
    ended_under_ticks = exchange("tick", TICKS, TICK_MS, lambda side, i: f"tick {side}#{i}")
    report(f"connections of A to B that closed under the orders: {ended_under_orders}, the ticks: {ended_under_ticks}")
    assert ended_under_orders >= 3 and ended_under_ticks >= 1, evidence()  # circuits ended under the traffic
    resent = {t.name: t.js(RESENDS) for t in (a, b)}
    report(f"sessions resumed on a new circuit, messages resent each time: {resent}")

    # the circuits really ended under the traffic, and were replaced
    events_a = a.js("return window.events;")
    closed = [e for e in events_a if e[1] == "connection:close" and e[2] == pb]
    opened = [e for e in events_a if e[1] == "connection:open" and e[2] == pb]
    relay_closed = [line for line in relay.stderr if "circuit duration limit reached" in line]
    relay_full = [line for line in relay.stderr if "circuit data limit reached" in line]
    report(
        f"page A: {len(opened)} connections to B opened, {len(closed)} closed "
        f"({sorted({e[3] for e in closed + opened})}); relay: {len(relay_closed)} circuits ended by the 20 s limit, "
        f"{len(relay_full)} by the data limit"
    )
    assert len(closed) >= 4, evidence()
    assert {e[3] for e in opened + closed} == {"relay"}, evidence()  # never WebRTC: there is no route for it
    assert len(relay_closed) + len(relay_full) >= 4, evidence()

    # afterwards: connections() works, one more message each way
    for me, peer, side in ((a, pb, "A"), (b, pa, "B")):
        conns = me.js("return (await ds.connections(args[0])).map((c) => c.transport);", peer)
        assert set(conns) <= {"relay"}, conns
        me.js(
            "const s = await ds.send_webrtc_message(args[0], new TextEncoder().encode(args[1]));"
            "await ds.wait_delivered(args[0], s, { timeout: 90000 }); return null;",
            peer,
            f"final from {side}",
        )
    receive = "return new TextDecoder().decode(await ds.receive_webrtc_message(args[0], { timeout: 60000 }));"
    assert a.js(receive, pb) == "final from B"
    assert b.js(receive, pa) == "final from A"

    # no error reached a page: no Python record at ERROR, no console error, no INTERNAL_ERROR
    for t in (a, b):
        records = t.js(PY_LOG)
        warnings = [r for r in records if r[0] == "WARNING"]
        if warnings:
            report(f"page {t.name}: {len(warnings)} Python warnings, e.g. {warnings[0][2][:200]}")
        assert [r for r in records if r[0] not in ("WARNING",)] == [], records
        console = t.js("return window.consoleErrors;")
        assert console == [], console
        assert not [r for r in records if "INTERNAL_ERROR" in r[2] or "IndexError" in r[2]], records
    browser_log = driver.get_log("browser")
    severe = [e for e in browser_log if e.get("level") == "SEVERE"]
    assert severe == [], severe
    assert not [e for e in browser_log if "INTERNAL_ERROR" in e.get("message", "")], browser_log
