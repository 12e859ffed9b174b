"""The browser demo as a new user meets it (issue 10, item 6): ``scripts/demo.py`` is started as
a user starts it, the URL it prints is opened in two Chromium tabs, and with nothing copied
between them the tabs find each other in the URL's room (the relay's rendezvous service),
connect (relayed, then direct WebRTC), exchange an order each way and acknowledge it. The relay
is never shown as "the other tab"; a third tab in the room does not break the pair; screenshots
of both tabs (under the pytest tmp dir) are decoded and must show the page (text and colours
vary, the green "direct WebRTC" badge is there); what ``window.demo.state`` says agrees with
the DOM. Besides: a failed Connect leaves "Send order" disabled and says why, a page opened
without a room picks one and puts it into its address, the status line follows
``relay:lost`` -> ``relay:reserved``, and a tab the relay refuses a reservation says why.

Needs the test network namespace (WebRTC, ``./build.sh test``), Chromium and the dist; fails
(never skips) without them.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib
from pathlib import Path

import pytest

from scripts.demo import relay_command
from tests.integration.demo_proc import Demo, free_port

from .conftest import REPO_ROOT, report
from .test_js_api import site, tabs, test_net  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

LINK_TEXT = {"webrtc": "direct WebRTC", "relay": "relayed (circuit through the relay)", "none": "not connected"}
WEBRTC_BADGE = (0xDC, 0xFA, 0xE6)  # demo.css .badge.webrtc background

# in the page: wait until `cond` (a JS expression over s = window.demo.state and $ =
# getElementById) holds, then return a snapshot of the state and of what the page shows
WAIT = """
const [cond, ms] = [args[0], args[1]];
const $ = (id) => document.getElementById(id);
const test = new Function("s", "$", "return (" + cond + ");");
const snap = () => {
  const s = window.demo && window.demo.state;
  const text = (id) => $(id).textContent;
  return {
    state: s ? JSON.parse(JSON.stringify(s)) : null,
    href: location.href,
    dom: {
      status: text("status"), statusClass: $("status").className,
      peerId: text("peer-id"), copy: text("copy"),
      relayStatus: text("relay-status"), relayStatusClass: $("relay-status").className,
      circuit: text("circuit"), room: text("room"), roomStatus: text("room-status"),
      remote: text("remote-id"), link: text("link"), linkClass: $("link").className,
      linkStatus: text("link-status"), linkStatusClass: $("link-status").className,
      rtt: text("rtt"), sendDisabled: $("send").disabled, connectDisabled: $("connect").disabled,
      rows: Array.from(document.querySelectorAll("#messages tbody tr")).map((tr) =>
        ({ id: tr.dataset.id, dir: tr.dataset.dir, cells: Array.from(tr.children).map((td) => td.textContent) })),
      body: document.body.innerText,
    },
  };
};
const t0 = Date.now();
for (;;) {
  let ok = false;
  try { ok = !!(window.demo && window.demo.state && test(window.demo.state, $)); } catch (_e) { ok = false; }
  if (ok) return snap();
  if (Date.now() - t0 > ms) throw new Error("timed out waiting for " + cond + ": " + JSON.stringify(snap().dom));
  await new Promise((r) => setTimeout(r, 50));
}
"""

SEND = """document.getElementById("side").value = args[0]; document.getElementById("amount").value = args[1];
document.getElementById("price").value = args[2]; document.getElementById("send").click(); return null;"""


def wait(tab, cond: str, ms: int = 100_000) -> dict:
    """(selenium gives up on a script after 120 s: ms stays below that, so a timeout shows the page)"""
    return tab.js(WAIT, cond, ms)


def relay_peer_of(url: str) -> str:
    relay = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["relay"][0]
    return relay.rsplit("/p2p/", 1)[1]


def check_consistent(snap: dict) -> None:
    """What window.demo.state says is what the page shows."""
    s, d = snap["state"], snap["dom"]
    assert d["peerId"] == (s["peerId"] or "—")
    assert d["remote"] == (s["peer"] or s["target"] or "—")
    assert d["room"] == s["room"]
    connected = bool(s["peer"]) and s["linkState"] == "connected"
    assert d["sendDisabled"] == (not connected), (d, s)
    assert d["link"] == LINK_TEXT[s["link"] if connected else "none"], (d["link"], s["link"], s["linkState"])
    assert ("webrtc" in d["linkClass"]) == (connected and s["link"] == "webrtc")
    assert (d["rtt"] == "—") == (not s["peer"] or s["rttMs"] is None), (d["rtt"], s["rttMs"])
    assert len(d["rows"]) == len(s["sent"]) + len(s["received"])
    acked = {x["id"] for x in s["sent"] if x["acked"]}
    for row in d["rows"]:
        if row["dir"] == "out":
            assert (row["cells"][-1] == "acked ✓") == (row["id"] in acked), (row, acked)
    if s["relayState"] in ("lost", "failed"):
        assert "error" in d["relayStatusClass"], d
    else:
        assert "error" not in d["relayStatusClass"], d
    if s["linkState"] == "failed":
        assert "error" in d["linkStatusClass"] and s["linkError"] in d["linkStatus"], d
    assert (s["phase"] == "failed") == ("error" in d["statusClass"]), (s["phase"], d["statusClass"])


# --------------------------------------------------------------------------- PNG (stdlib decoder)


def png_rgb(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert ihdr is not None
    w, h, depth, color, _c, _f, interlace = ihdr
    assert depth == 8 and color in (2, 6) and interlace == 0, ihdr
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
    return w, h, rows


def check_screenshot(path: Path, webrtc: bool = True) -> dict:
    w, h, rows = png_rgb(path)
    colours: dict[tuple[int, int, int], int] = {}
    varied_rows = 0
    for row in rows[::2]:
        px = [tuple(row[i : i + 3]) for i in range(0, len(row), 6)]
        for p in px:
            colours[p] = colours.get(p, 0) + 1
        varied_rows += len(set(px)) > 1
    total = sum(colours.values())
    top = max(colours.values())
    facts = {
        "size": (w, h),
        "colours": len(colours),
        "varied_rows": varied_rows / len(rows[::2]),
        "top_share": top / total,
        "webrtc_badge": colours.get(WEBRTC_BADGE, 0),
        "dark_text": sum(n for (r, g, b), n in colours.items() if r + g + b < 200),
    }
    assert w >= 800 and h >= 600, facts
    assert facts["colours"] > 50, facts  # text, cards, badges: not one flat colour
    assert facts["top_share"] < 0.9, facts  # the background does not fill the picture
    assert facts["varied_rows"] > 0.3, facts  # text all down the page
    assert facts["dark_text"] > 500, facts
    if webrtc:
        assert facts["webrtc_badge"] > 50, facts  # the green "direct WebRTC" badge is painted
    else:
        assert facts["webrtc_badge"] == 0, facts
    return facts


def screenshot(tab, path: Path, webrtc: bool = True) -> dict:
    tab.driver.switch_to.window(tab.handle)
    tab.driver.set_window_size(1200, 1000)
    tab.js(
        "window.scrollTo(0, 0); await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 100))); return null;"
    )
    assert tab.driver.save_screenshot(str(path)), path
    facts = check_screenshot(path, webrtc)
    report(f"demo screenshot {path}: {facts}")
    return facts


# --------------------------------------------------------------------------- the demo, as a user runs it


@pytest.fixture
def demo(browser_dist: Path, tmp_path: Path):
    proc = Demo(tmp=tmp_path, dist=browser_dist)
    try:
        url = proc.url().strip()
        report(f"demo.py printed {url}")
        yield url
    finally:
        code, out, err = proc.stop("ctrl-c")
        proc.kill()
        assert code == 0 and "Traceback" not in err, (code, out, err)


def test_two_tabs_find_each_other_from_the_printed_url(demo, tabs, test_net, tmp_path):  # noqa: F811
    url = demo
    relay_peer = relay_peer_of(url)
    room = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["room"][0]
    a = tabs(url, "demo-a")
    b = tabs(url, "demo-b")
    pair = "s.peer && s.linkState === 'connected'"
    sa = wait(a, pair, 100_000)
    sb = wait(b, pair, 100_000)
    pa, pb = sa["state"]["peerId"], sb["state"]["peerId"]
    assert sa["state"]["peer"] == pb and sb["state"]["peer"] == pa, (sa["state"], sb["state"])
    for s in (sa, sb):
        assert s["state"]["room"] == room and s["href"] == url  # the printed URL, unchanged
        assert s["state"]["relayPeer"] == relay_peer and s["state"]["peer"] != relay_peer
        assert s["state"]["roomState"] == "paired"
        check_consistent(s)

    # an order each way, each acknowledged by the other tab
    a.js(SEND, "sell", "0.25", "101.5")
    b.js(SEND, "buy", "1.75", "99.125")
    got_b = wait(b, "s.received.length === 1 && s.sent.length === 1 && s.sent[0].acked")
    got_a = wait(a, "s.received.length === 1 && s.sent.length === 1 && s.sent[0].acked")
    assert got_b["state"]["received"][0]["amount"] == "0.25" and got_b["state"]["received"][0]["maker"] == pa
    assert got_a["state"]["received"][0]["amount"] == "1.75" and got_a["state"]["received"][0]["maker"] == pb

    # direct WebRTC in the test namespace, an RTT, both pages agree with their state
    sa = wait(a, "s.link === 'webrtc' && s.rttMs != null")
    sb = wait(b, "s.link === 'webrtc' && s.rttMs != null")
    for s, me, other in ((sa, pa, pb), (sb, pb, pa)):
        check_consistent(s)
        body = s["dom"]["body"]
        assert me in body and other in body and "direct WebRTC" in body, body
        assert relay_peer not in s["dom"]["remote"]
        assert "acked ✓" in body and " ms" in s["dom"]["rtt"], s["dom"]["rtt"]

    shots = {}
    for name, tab in (("a", a), ("b", b)):
        shots[name] = screenshot(tab, tmp_path / f"demo-{name}.png")
    text_a = wait(a, "true")["dom"]["body"]
    assert "0.25" in text_a and "101.5" in text_a and "1.75" in text_a and "99.125" in text_a

    # a third tab in the same room: it finds no one (the pair left the room) and breaks nothing
    c = tabs(url, "demo-c")
    sc = wait(c, "s.roomState === 'looking' && s.phase === 'ready'", 100_000)
    check_consistent(sc)
    sc = wait(c, f"s.lookRounds >= {sc['state']['lookRounds'] + 3}")  # a few discovery rounds later
    assert sc["state"]["peer"] is None and sc["state"]["target"] is None, sc["state"]
    assert sc["state"]["inRoom"] == [], sc["state"]  # a and b are not announced any more
    assert sc["dom"]["sendDisabled"] and sc["dom"]["remote"] == "—"
    check_consistent(sc)
    sa = wait(a, f"s.peer === {pb!r} && s.linkState === 'connected'")
    sb = wait(b, f"s.peer === {pa!r} && s.linkState === 'connected'")
    a.js(SEND, "buy", "3", "100")
    wait(b, "s.received.length === 2")
    wait(a, "s.sent.length === 2 && s.sent[1].acked")

    # b connects to the third tab by hand: a is told (bye), b pairs with c, and a, left alone in
    # the room, is found by nobody else: its Send is disabled while it looks again
    b.js("document.getElementById('peer').value = args[0]; document.getElementById('connect').click(); return null;",
         sc["state"]["peerId"])  # fmt: skip
    sb = wait(b, f"s.peer === {sc['state']['peerId']!r} && s.linkState === 'connected'")
    sc = wait(c, f"s.peer === {pb!r} && s.linkState === 'connected'")
    sa = wait(a, f"!s.peer && !s.target && s.roomState === 'looking' && s.lastPeer === {pb!r}")
    assert sa["dom"]["sendDisabled"] and sa["state"]["linkState"] == "disconnected", sa["state"]
    assert "went away" in sa["dom"]["linkStatus"] and "error" not in sa["dom"]["linkStatusClass"], sa["dom"]
    for s in (sa, sb, sc):
        check_consistent(s)
    screenshot(a, tmp_path / "demo-a-partner-left.png", webrtc=False)
    screenshot(c, tmp_path / "demo-c-paired-by-hand.png")

    # b leaves c for a peer ID that is nobody: the Connect fails, b's Send is disabled and says why;
    # then all three look in the room at once, and exactly one pair comes out of it
    from darkswap_wasm import Identity

    nobody = str(Identity.generate().peer_id)
    b.js("document.getElementById('peer').value = args[0]; document.getElementById('connect').click(); return null;",
         nobody)  # fmt: skip
    sb = wait(b, f"s.linkState === 'failed' && s.lastPeer === {nobody!r}")
    assert sb["state"]["peer"] is None and sb["dom"]["sendDisabled"] and "cannot reach" in sb["dom"]["linkStatus"]
    check_consistent(sb)
    three = {"a": a, "b": b, "c": c}
    ids = {"a": pa, "b": pb, "c": sc["state"]["peerId"]}
    deadline = time.monotonic() + 100
    while True:
        snaps = {k: wait(t, "true") for k, t in three.items()}
        by_id = {ids[k]: k for k in three}
        pairs = {
            frozenset((k, by_id[s["state"]["peer"]]))
            for k, s in snaps.items()
            if s["state"]["peer"] in by_id
            and s["state"]["linkState"] == "connected"
            and snaps[by_id[s["state"]["peer"]]]["state"]["peer"] == ids[k]
        }
        if pairs or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(pairs) == 1, {k: (s["state"]["peer"], s["state"]["linkState"]) for k, s in snaps.items()}
    (left,) = set(three) - set(next(iter(pairs)))
    sl = wait(three[left], f"!s.peer && s.lookRounds >= {snaps[left]['state']['lookRounds'] + 3}")
    assert sl["dom"]["sendDisabled"], sl["dom"]
    for k in set(three) - {left}:  # the pair is still whole after the odd one out looked a few times
        s = wait(three[k], "s.peer && s.linkState === 'connected'")
        assert s["state"]["peer"] in ids.values() and s["state"]["peer"] != ids[left], (k, s["state"])
        check_consistent(s)
    report(f"demo: three tabs looking at once: {sorted(next(iter(pairs)))} paired, {left} still looking")
    report(f"demo: {pa[:12]}… and {pb[:12]}… paired from the printed URL alone; screenshots {shots}")


def test_a_failed_connect_disables_send_and_says_why(demo, tabs, test_net, tmp_path):  # noqa: F811
    # opened without a room: the page picks one and writes it into its address
    url = demo.split("&room=")[0]
    relay_peer = relay_peer_of(url)
    t = tabs(url, "demo-alone")
    s = wait(t, "s.phase === 'ready' && s.roomState === 'looking'", 100_000)
    room = s["state"]["room"]
    assert s["href"] == f"{url}&room={room}" and len(room) == 8, (s["href"], room)
    check_consistent(s)
    assert s["dom"]["sendDisabled"] and s["dom"]["relayStatus"] == "reserved on the relay"

    # the copy button says what happened (a real click: the clipboard wants a user gesture)
    from selenium.webdriver.common.by import By

    t.driver.find_element(By.ID, "copy").click()
    s = wait(t, "$('copy').textContent !== 'copy'", 10_000)
    report(f"demo copy button: {s['dom']['copy']!r}")
    assert s["dom"]["copy"] == "copied ✓", s["dom"]["copy"]
    copied = t.js("return await navigator.clipboard.readText().catch((e) => 'cannot read: ' + e.message);")
    report(f"demo clipboard: {copied!r}")

    connect = (
        "document.getElementById('peer').value = args[0]; document.getElementById('connect').click(); return null;"
    )
    from darkswap_wasm import Identity

    nobody = str(Identity.generate().peer_id)
    t.js(connect, nobody)
    s = wait(t, f"s.linkState === 'failed' && s.lastPeer === {nobody!r}")
    assert s["dom"]["sendDisabled"] and s["state"]["peer"] is None, s
    assert "cannot reach" in s["dom"]["linkStatus"] and s["state"]["linkError"], s["dom"]
    check_consistent(s)

    t.js(connect, relay_peer)  # the relay is never "the other tab"
    s = wait(t, f"s.linkState === 'failed' && s.lastPeer === {relay_peer!r}")
    assert "relay's peer ID" in s["dom"]["linkStatus"] and s["dom"]["sendDisabled"], s["dom"]
    check_consistent(s)
    t.js(connect, "not-a-peer-id")
    s = wait(t, "s.linkState === 'failed' && s.lastPeer === 'not-a-peer-id'")
    assert "not a peer ID" in s["dom"]["linkStatus"] and s["dom"]["sendDisabled"]
    check_consistent(s)
    t.js(connect, nobody)
    wait(t, f"s.linkState === 'failed' && s.lastPeer === {nobody!r}")
    screenshot(t, tmp_path / "demo-failed-connect.png", webrtc=False)


# --------------------------------------------------------------------------- the relay's pieces, restarted


class DemoRelay:
    """The demo's relay (scripts/demo.py's own command line) on fixed ports, restartable."""

    def __init__(self, key: Path, per_peer: int = 64) -> None:
        self.cmd = relay_command(free_port(), free_port(), key, max_reservations_per_peer=per_peer, log_level="WARNING")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True, cwd=str(REPO_ROOT), env=env)
        self.addrs = [self.proc.stdout.readline().strip() for _ in range(2)]
        assert all("/p2p/" in a for a in self.addrs), self.addrs
        self.ws = next(a for a in self.addrs if "/ws/" in a)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def demo_relay(tmp_path):
    relays: list[DemoRelay] = []

    def make(per_peer: int = 64) -> DemoRelay:
        r = DemoRelay(tmp_path / f"relay{len(relays)}.key", per_peer)
        relays.append(r)
        return r

    yield make
    for r in relays:
        r.stop()


def test_the_status_follows_relay_lost_and_renewed(site, demo_relay, tabs, test_net, tmp_path):  # noqa: F811
    relay = demo_relay()
    t = tabs(f"{site.base_url}demo/index.html?relay={relay.ws}&room=restart", "demo-restart")
    s = wait(t, "s.phase === 'ready' && s.relayState === 'reserved' && s.roomState === 'looking'", 100_000)
    assert s["dom"]["relayStatus"] == "reserved on the relay" and "/p2p-circuit" in s["dom"]["circuit"]
    check_consistent(s)

    relay.stop()
    s = wait(t, "s.relayState === 'lost'")
    assert "lost the relay reservation" in s["dom"]["relayStatus"] and "error" in s["dom"]["relayStatusClass"]
    assert "no reservation" in s["dom"]["circuit"]
    assert "until the relay reservation is back" in s["dom"]["roomStatus"], s["dom"]["roomStatus"]
    check_consistent(s)
    screenshot(t, tmp_path / "demo-relay-lost.png", webrtc=False)

    relay.start()  # same key, same ports: the page's reservation manager gets it back
    s = wait(t, "s.relayState === 'renewed'")
    assert s["dom"]["relayStatus"].startswith("reservation renewed at"), s["dom"]
    assert "lost" not in s["dom"]["relayStatus"] and "error" not in s["dom"]["relayStatusClass"], s["dom"]
    assert "/p2p-circuit" in s["dom"]["circuit"]
    # nothing stale: no word of the lost reservation or of what failed while it was gone
    assert "reservation is back" not in s["dom"]["roomStatus"] and "failed" not in s["dom"]["roomStatus"], s["dom"]
    check_consistent(s)
    screenshot(t, tmp_path / "demo-relay-renewed.png", webrtc=False)
    # and the room registration came back with it: a new tab finds this one
    u = tabs(f"{site.base_url}demo/index.html?relay={relay.ws}&room=restart", "demo-restart-2")
    su = wait(u, "s.peer && s.linkState === 'connected'", 100_000)
    assert su["state"]["peer"] == s["state"]["peerId"], su["state"]


def test_a_tab_without_a_reservation_says_why(site, demo_relay, tabs, test_net, tmp_path):  # noqa: F811
    relay = demo_relay(per_peer=1)  # one reservation per IP: the second tab is refused
    url = f"{site.base_url}demo/index.html?relay={relay.ws}&room=full"
    first = tabs(url, "demo-first")
    wait(first, "s.phase === 'ready' && s.relayState === 'reserved'", 100_000)
    second = tabs(url, "demo-second")
    s = wait(second, "s.relayState === 'failed'", 100_000)
    report(f"demo without a reservation: {s['dom']['status']!r} / {s['dom']['relayStatus']!r}")
    assert s["dom"]["relayStatus"].startswith("no reservation: ") and len(s["dom"]["relayStatus"]) > 40, s["dom"]
    assert relay.ws.rsplit("/p2p/", 1)[0] in s["dom"]["relayStatus"], s["dom"]  # which relay, and why
    assert "no reservation" in s["dom"]["status"] and "error" in s["dom"]["statusClass"], s["dom"]
    assert "full for this IP address" in s["dom"]["status"], s["dom"]["status"]  # RESOURCE_LIMIT_EXCEEDED
    assert s["dom"]["remote"] == "—" and s["state"]["peer"] is None and s["dom"]["sendDisabled"]
    check_consistent(s)
    screenshot(second, tmp_path / "demo-no-reservation.png", webrtc=False)
    first_state = wait(first, "true")["state"]
    assert first_state["peer"] is None  # the refused tab never got anywhere, the relay is nobody's peer


if __name__ == "__main__":  # decode a screenshot by hand: python tests/browser/test_demo.py shot.png
    print(check_screenshot(Path(sys.argv[1])))
