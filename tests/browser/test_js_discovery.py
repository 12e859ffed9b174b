"""The JS API in Chromium: two pages on our relay find each other by a namespace (``register`` /
``discover`` / ``unregister``) and talk by the peer ID they found; ``relay:error`` says why a
relay cannot be reached."""

from __future__ import annotations

import socket

import pytest

from darkswap_wasm.identity import Identity

from .test_js_api import _start, relay, site, tabs, test_net  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser]


def test_two_pages_find_each_other_by_namespace(site, relay, tabs, test_net):  # noqa: F811
    a = tabs(site.base_url + "t/classic.html", "a")
    b = tabs(site.base_url + "t/classic.html", "b")
    pa = _start(a, relay.addr)["peer"]
    pb = _start(b, relay.addr)["peer"]

    assert a.js("return await ds.register('room-7', { ttl: 60000 });") == 60000
    assert b.js("return await ds.register('room-7');") == 2 * 3600 * 1000  # the relay's default, in ms
    found = b.js("return await ds.discover('room-7', { timeout: 10000 });")
    assert [f["peerId"] for f in found] == [pa], found  # never itself
    circuit = f"{relay.addr}/p2p-circuit"  # a page is reachable through the relay only (and WebRTC after it)
    assert sorted(found[0]["addrs"]) == [f"{circuit}/p2p/{pa}", f"{circuit}/webrtc/p2p/{pa}"]
    assert 0 < found[0]["ttl"] <= 60000
    assert [f["peerId"] for f in a.js("return await ds.discover('room-7');")] == [pb]
    assert a.js("return await ds.discover('another-room');") == []

    # what was found is enough to reach it
    b.js("await ds.send_webrtc_message(args[0], new TextEncoder().encode('hello from b')); return null;", pa)
    got = a.js(
        "const m = await ds.receive_webrtc_message(args[0], { timeout: 20000 }); return new TextDecoder().decode(m);",
        pb,
    )
    assert got == "hello from b"

    assert a.js("return await ds.unregister('room-7');") is True
    assert b.js("return await ds.discover('room-7');") == []

    bad = b.js("return await ds.register('');", expect_ok=False)
    assert not bad["ok"] and bad["code"] == "INVALID_ARGUMENT"
    bad = b.js("return await ds.discover('room-7', { limit: 0 });", expect_ok=False)
    assert not bad["ok"] and bad["code"] == "INVALID_ARGUMENT"
    bad = b.js("return await ds.register('x'.repeat(300));", expect_ok=False)
    assert not bad["ok"] and bad["code"] == "RENDEZVOUS_FAILED" and "255 bytes" in bad["error"], bad


def test_relay_error_events_say_why_a_relay_cannot_be_reached(site, tabs, test_net):  # noqa: F811
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    relay_id = str(Identity.generate().peer_id)
    dead = f"/ip4/127.0.0.1/tcp/{port}/ws/p2p/{relay_id}"
    tab = tabs(site.base_url + "t/classic.html", "lonely")
    got = tab.js(
        """window.ds = await DarkSwapWasm.new_with_defaults("regtest", { relays: [args[0]], waitForReservations: 0 });
        return await new Promise((resolve) => ds.on("relay:error", (relay, reason) => resolve({ relay, reason })));""",
        dead,
    )
    assert got["relay"] == relay_id, got
    assert got["reason"] and "Traceback" not in got["reason"], got
