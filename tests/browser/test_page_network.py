"""The real ``Network`` in headless Chromium over the browser adapters
(:mod:`darkswap_wasm.transports.browser_ws`, :mod:`darkswap_wasm.transports.browser_webrtc`):

a. page → native node over WebSocket: connect, ping, identify, 1 MiB echo, no proxy left behind;
b. page ↔ page through our relay, upgraded to direct WebRTC, DarkSwap messages both ways;
c. page → native aiortc node: ``<relay>/p2p-circuit/webrtc/p2p/<node>``, echo over WebRTC;
d. a page without ``RTCPeerConnection`` still exchanges messages through the relay;

and, without a browser, the adapters' own logic against fakes of the page objects.

The WebRTC tests need the test network namespace (``./build.sh test`` runs the suite in one:
loopback plus a veth test host; ICE gathers nothing with loopback only) and fail outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from .conftest import REPO_ROOT, report
from .pages import Tab, node_process, relay_process

MiB = 1024 * 1024


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def test_net() -> str:
    net = os.environ.get("DARKSWAP_TEST_NETNS")
    if not net:
        pytest.fail("WebRTC tests must run in the test network namespace: use ./build.sh test [pytest args]")
    return net


@pytest.fixture
def open_tab(dist_server, chromium):
    """``open_tab(name, before=js)`` → a booted :class:`Tab` in a new window; all closed after."""
    home = chromium.current_window_handle
    tabs: list[Tab] = []

    def opener(name: str, before: str = "") -> Tab:
        tab = Tab(chromium, dist_server, name)
        tabs.append(tab)
        info = tab.boot(before)
        report(f"tab {name}: boot {info['totalMs'] / 1000:.2f} s (loadPyodide {info['loadPyodideMs']:.0f} ms)")
        return tab

    yield opener
    for tab in reversed(tabs):
        with contextlib.suppress(BaseException):  # closing the window regardless
            tab.py("await dsw_page.stop()")
        tab.close(home)
    chromium.switch_to.window(home)


@pytest.fixture
def relay():
    proc = relay_process()
    yield proc
    proc.stop()


@pytest.mark.browser
def test_page_dials_a_native_node_over_websocket(open_tab) -> None:
    node = node_process("--listen", "/ip4/127.0.0.1/tcp/0/ws")
    try:
        tab = open_tab("ws")
        started = tab.py("await dsw_page.start()")
        assert started["proxies"] == 0 and started["addrs"] == []  # a page listens nowhere

        got = tab.py(f"await dsw_page.connect_and_ping({node.addrs[0]!r})")
        assert got["peer"] == node.peer_id and got["key_peer"] == node.peer_id
        assert got["transports"] == ["ws"]
        assert "/darkswap/echo/1.0.0" in got["protocols"] and "/ipfs/ping/1.0.0" in got["protocols"]
        assert got["agent"] and got["proxies"] == 4  # open, message, error, close of one WebSocket

        echo = tab.py(f"await dsw_page.echo({node.peer_id!r}, {MiB})")
        assert echo["ok"] and echo["got"] == MiB and echo["transport"] == "ws", echo
        report(
            f"page → native over WS: connect {got['connect_ms']:.0f} ms, ping {got['rtt_ms']:.2f} ms, "
            f"1 MiB echo {echo['ms']:.0f} ms ({echo['mb_per_s']} MB/s both ways)"
        )

        # a dial that fails leaves no proxy behind either
        bad = tab.py(
            "from darkswap_wasm.errors import DarkSwapError\n"
            "try:\n"
            f"    await dsw_page.net.connect('/ip4/127.0.0.1/tcp/{_closed_port()}/ws/p2p/{node.peer_id}')\n"
            "    r = 'connected?!'\n"
            "except DarkSwapError as exc:\n"
            "    r = type(exc).__name__\n"
            "dsw_page.out(error=r, proxies=dsw_page.live_proxies())"
        )
        assert bad == {"error": "PeerUnreachable", "proxies": 4}

        # the node goes away: the page sees the close, and the WebSocket's proxies go with it
        node.stop()
        gone = tab.py(
            "import asyncio\n"
            "for _ in range(100):\n"
            "    if not dsw_page.connections() and dsw_page.live_proxies() == 0:\n"
            "        break\n"
            "    await asyncio.sleep(0.05)\n"
            "dsw_page.out(t=dsw_page.connections(), proxies=dsw_page.live_proxies())"
        )
        assert gone == {"t": [], "proxies": 0}
        assert tab.py("await dsw_page.stop()") == {"proxies": 0}
    finally:
        node.stop()


@pytest.mark.browser
def test_page_to_page_through_the_relay_upgrades_to_webrtc(open_tab, relay, test_net) -> None:
    relay_ws = relay.addrs[0]
    a, b = open_tab("A"), open_tab("B")
    # B notices a dead peer within seconds (a heartbeat every second, dead after two missed)
    sb = b.py(f"await dsw_page.start([{relay_ws!r}], monitor={{'interval': 1.0, 'min_timeout': 2.0}})")
    sa = a.py(f"await dsw_page.start([{relay_ws!r}])")
    assert sa["webrtc"] and sb["webrtc"]
    assert any("/p2p-circuit/" in x for x in sb["addrs"]), sb
    peer_a, peer_b = sa["peer"], sb["peer"]
    assert a.py(f"dsw_page.out(t=dsw_page.connections({peer_b!r}))") == {"t": []}  # they share only the relay

    up = a.py(f"await dsw_page.upgrade({peer_b!r})")
    assert up["transport"] == "webrtc", up
    assert up["transports"] == ["webrtc", "relay"]
    sizes = [80, 1000, MiB, 5, 3 * MiB // 2 + 7]
    sent = a.py(f"await dsw_page.send_messages({peer_b!r}, {sizes!r})")
    got = b.py(f"await dsw_page.receive_messages({peer_a!r}, {sizes!r})")
    assert got["ok"] == [True] * len(sizes), got
    assert got["transports"][0] == "webrtc"
    b.py(f"await dsw_page.send_messages({peer_a!r}, {sizes!r}, seed=2)")
    back = a.py(f"await dsw_page.receive_messages({peer_b!r}, {sizes!r}, seed=2)")
    assert back["ok"] == [True] * len(sizes), back
    assert a.py(f"dsw_page.out(t=dsw_page.messaging_transport({peer_b!r}))") == {"t": "webrtc"}
    assert b.py(f"dsw_page.out(t=dsw_page.messaging_transport({peer_a!r}))") == {"t": "webrtc"}
    echo = a.py(f"await dsw_page.echo({peer_b!r}, {MiB})")
    assert echo["ok"] and echo["transport"] == "webrtc", echo
    report(
        f"page ↔ page: reservation {sa['ready_ms']:.0f} ms, WebRTC upgrade through the relay {up['ms']:.0f} ms, "
        f"messages ({sum(sizes) / MiB:.1f} MiB) acknowledged in {sent['ms']:.0f} ms, "
        f"1 MiB echo over WebRTC {echo['ms']:.0f} ms ({echo['mb_per_s']} MB/s both ways)"
    )

    # A goes away: B drops the dead WebRTC connection and every proxy of it (its relay WebSocket stays)
    assert a.py("await dsw_page.stop()") == {"proxies": 0}
    gone = b.py(
        "import asyncio, time\n"
        "t0 = time.perf_counter()\n"
        "while time.perf_counter() - t0 < 30:\n"
        f"    if 'webrtc' not in dsw_page.connections({peer_a!r}) and dsw_page.live_proxies() == 4:\n"
        "        break\n"
        "    await asyncio.sleep(0.1)\n"
        f"dsw_page.out(t=dsw_page.connections({peer_a!r}), proxies=dsw_page.live_proxies(), ms=dsw_page.ms(t0))"
    )
    assert "webrtc" not in gone["t"] and gone["proxies"] == 4, gone
    report(f"page ↔ page: the closed peer's WebRTC connection dropped after {gone['ms']:.0f} ms, proxies freed")
    assert b.py("await dsw_page.stop()") == {"proxies": 0}


@pytest.mark.browser
def test_page_dials_a_native_aiortc_node_over_webrtc(open_tab, relay, test_net) -> None:
    relay_ws = relay.addrs[0]
    node = node_process(
        "--relay", relay_ws, "--webrtc-network", test_net, until=lambda a: any("/webrtc/" in x for x in a)
    )
    try:
        target = next(x for x in node.addrs if "/p2p-circuit/webrtc/" in x)
        tab = open_tab("rtc")
        tab.py(f"await dsw_page.start([{relay_ws!r}])")
        got = tab.py(f"await dsw_page.connect_and_ping({target!r})")
        assert got["peer"] == node.peer_id
        assert got["transports"][0] == "webrtc", got
        echo = tab.py(f"await dsw_page.echo({node.peer_id!r}, {MiB})")
        assert echo["ok"] and echo["transport"] == "webrtc", echo
        report(
            f"page → aiortc: connect through the relay + WebRTC upgrade {got['connect_ms']:.0f} ms, "
            f"ping {got['rtt_ms']:.2f} ms, 1 MiB echo {echo['ms']:.0f} ms ({echo['mb_per_s']} MB/s both ways)"
        )
        assert tab.py("await dsw_page.stop()") == {"proxies": 0}
    finally:
        node.stop()


@pytest.fixture
def unlimited_relay():
    """A relay without per-circuit limits (the default allows 128 KiB per circuit and direction,
    too little for messaging that stays relayed)."""
    proc = relay_process("--circuit-data", "0", "--circuit-duration", "0")
    yield proc
    proc.stop()


@pytest.mark.browser
def test_page_without_rtcpeerconnection_falls_back_to_the_relay(open_tab, unlimited_relay) -> None:
    relay_ws = unlimited_relay.addrs[0]
    plain = open_tab("no-rtc", before="delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;")
    other = open_tab("other")
    sp = plain.py(f"await dsw_page.start([{relay_ws!r}])")
    assert not sp["has_rtc"] and not sp["webrtc"]
    so = other.py(f"await dsw_page.start([{relay_ws!r}])")
    sizes = [100, 20000, MiB]
    plain.py(f"await dsw_page.send_messages({so['peer']!r}, {sizes!r}, webrtc=False)")
    got = other.py(f"await dsw_page.receive_messages({sp['peer']!r}, {sizes!r}, webrtc=False)")
    assert got["ok"] == [True] * len(sizes) and got["transports"] == ["relay"], got
    other.py(f"await dsw_page.send_messages({sp['peer']!r}, {sizes!r}, webrtc=False, seed=3)")
    back = plain.py(f"await dsw_page.receive_messages({so['peer']!r}, {sizes!r}, webrtc=False, seed=3)")
    assert back["ok"] == [True] * len(sizes) and back["transports"] == ["relay"], back
    assert plain.py("await dsw_page.stop()") == {"proxies": 0}
    assert other.py("await dsw_page.stop()") == {"proxies": 0}


# --------------------------------------------------------------------------- without a browser
# The adapters' own logic against fakes of the page objects (same events, same calls), natively.


class FakeJsError(Exception):
    """Stands for pyodide.ffi.JsException."""


JSNULL = object()  # stands for pyodide.ffi.jsnull


class Buf:
    """Stands for a Uint8Array / ArrayBuffer proxy."""

    def __init__(self, b: bytes) -> None:
        self.b = b

    def to_bytes(self) -> bytes:
        return self.b


class FakeProxy:
    def __init__(self, fn) -> None:
        self.fn = fn
        self.destroyed = False

    def __call__(self, *args):
        assert not self.destroyed, "JS called a destroyed proxy"
        return self.fn(*args)

    def destroy(self) -> None:
        assert not self.destroyed, "proxy destroyed twice"
        self.destroyed = True


class FakeTarget:
    def __init__(self) -> None:
        self.listeners: dict[str, list[FakeProxy]] = {}

    def addEventListener(self, kind: str, proxy: FakeProxy) -> None:  # noqa: N802 - the JS name
        assert isinstance(proxy, FakeProxy), "a handler must be a proxy"
        self.listeners.setdefault(kind, []).append(proxy)

    def removeEventListener(self, kind: str, proxy: FakeProxy) -> None:  # noqa: N802
        self.listeners[kind].remove(proxy)

    def fire(self, kind: str, **fields) -> None:
        for p in list(self.listeners.get(kind, ())):
            p(SimpleNamespace(**fields))

    def n_listeners(self) -> int:
        return sum(len(v) for v in self.listeners.values())


def fake_bridge():
    from darkswap_wasm.transports.browser_ws import JsBridge

    def to_js(buf):
        return Buf(memoryview(buf).tobytes())

    return JsBridge(to_js=to_js, to_js_object=dict, create_proxy=FakeProxy, js_error=FakeJsError, jsnull=JSNULL)


def fake_ws_ctor():
    class FakeWebSocket(FakeTarget):
        made: list = []

        def __init__(self, url: str) -> None:
            super().__init__()
            self.url = url
            self.readyState = 0
            self.binaryType = "blob"
            self.bufferedAmount = 0
            self.sent: list[bytes] = []
            self.close_calls: list = []

        @classmethod
        def new(cls, url: str):
            if "bad" in url:
                raise FakeJsError("SyntaxError: invalid URL")
            ws = cls(url)
            cls.made.append(ws)
            return ws

        def send(self, data) -> None:
            assert isinstance(data, Buf), "bytes must cross as a Uint8Array"
            self.sent.append(data.b)

        def close(self, code=None, reason=None) -> None:
            self.close_calls.append(code)
            if self.readyState < 2:
                self.readyState = 2
                asyncio.get_running_loop().call_soon(self.remote_close, code or 1005)

        def open(self) -> None:
            self.readyState = 1
            self.fire("open")

        def remote_close(self, code: int = 1000) -> None:
            if self.readyState != 3:
                self.readyState = 3
                self.fire("close", code=code, reason="")

    return FakeWebSocket


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_ws_urls_and_what_can_be_dialed() -> None:
    from darkswap_wasm.transports.browser_ws import BrowserWebSocketTransport, ws_url
    from darkswap_wasm.wire.multiaddr import Multiaddr

    peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    cases = {
        "/ip4/127.0.0.1/tcp/4001/ws": "ws://127.0.0.1:4001/",
        f"/ip4/127.0.0.1/tcp/4001/ws/p2p/{peer}": "ws://127.0.0.1:4001/",
        "/ip6/::1/tcp/443/wss": "wss://[::1]:443/",
        "/dns4/relay.example.com/tcp/443/wss": "wss://relay.example.com:443/",
        "/dns6/relay.example.com/tcp/443/tls/ws": "wss://relay.example.com:443/",
        "/dns/relay.example.com/tcp/80/ws": "ws://relay.example.com:80/",
        "/ip4/127.0.0.1/tcp/4001": None,
        "/ip4/127.0.0.1/udp/4001/webrtc-direct": None,
        f"/ip4/127.0.0.1/tcp/4001/ws/p2p/{peer}/p2p-circuit/p2p/{peer}": None,
        f"/ip4/127.0.0.1/tcp/4001/ws/p2p/{peer}/p2p-circuit/webrtc/p2p/{peer}": None,
    }
    t = BrowserWebSocketTransport(object(), bridge=fake_bridge())
    for addr, url in cases.items():
        assert ws_url(Multiaddr(addr)) == url, addr
        assert t.can_dial(Multiaddr(addr)) == (url is not None), addr
        assert not t.can_listen(Multiaddr(addr))


def test_ws_connection_reads_writes_drains_and_frees_its_proxies() -> None:
    from darkswap_wasm.errors import ConnectionClosed
    from darkswap_wasm.transports import browser_ws as bws
    from darkswap_wasm.wire.multiaddr import Multiaddr

    async def main() -> None:
        ctor = fake_ws_ctor()
        base = bws.live_proxies()
        t = bws.BrowserWebSocketTransport(ctor, bridge=fake_bridge(), max_message=1000, high_water=5000)
        dial = asyncio.ensure_future(t.dial(Multiaddr("/ip4/10.0.0.1/tcp/4001/ws")))
        await _settle()
        (ws,) = ctor.made
        assert ws.url == "ws://10.0.0.1:4001/" and ws.binaryType == "arraybuffer"
        assert bws.live_proxies() == base + 4 and ws.n_listeners() == 4
        ws.open()
        conn = await dial
        assert conn.transport == "ws" and str(conn.remote_addr) == "/ip4/10.0.0.1/tcp/4001/ws"

        conn.write(memoryview(bytes(range(256)) * 10))  # 2560 bytes: messages of at most 1000
        assert [len(m) for m in ws.sent] == [1000, 1000, 560] and b"".join(ws.sent) == bytes(range(256)) * 10
        for chunk in (b"ab", b"", b"cd"):  # an empty binary message is not EOF
            ws.fire("message", data=Buf(chunk))
        assert await conn.read() == b"abcd"

        ws.bufferedAmount = 6000  # above high water: drain waits until the browser sent it
        drain = asyncio.ensure_future(conn.drain())
        await asyncio.sleep(0.01)
        assert not drain.done()
        ws.bufferedAmount = 100
        await asyncio.wait_for(drain, 1)

        ws.remote_close(1001)
        assert await conn.read() == b"" and conn.closed
        await _settle()
        assert bws.live_proxies() == base and ws.n_listeners() == 0
        with pytest.raises(ConnectionClosed):
            conn.write(b"late")
        await conn.close()
        assert bws.live_proxies() == base

    asyncio.run(main())


def test_ws_text_frame_is_a_protocol_error_and_local_close_frees_proxies() -> None:
    from darkswap_wasm.errors import ProtocolError
    from darkswap_wasm.transports import browser_ws as bws
    from darkswap_wasm.wire.multiaddr import Multiaddr

    async def main() -> None:
        ctor = fake_ws_ctor()
        base = bws.live_proxies()
        t = bws.BrowserWebSocketTransport(ctor, bridge=fake_bridge())
        dial = asyncio.ensure_future(t.dial(Multiaddr("/ip4/10.0.0.1/tcp/4001/ws")))
        await _settle()
        ctor.made[0].open()
        conn = await dial
        ctor.made[0].fire("message", data="text")
        with pytest.raises(ProtocolError):
            await conn.read()
        await conn.close()
        assert bws.live_proxies() == base and 1002 in ctor.made[0].close_calls

        dial = asyncio.ensure_future(t.dial(Multiaddr("/ip4/10.0.0.1/tcp/4001/ws")))
        await _settle()
        ctor.made[1].open()
        conn = await dial
        await conn.close()  # local close: the close event arrives, proxies go
        assert conn.closed and bws.live_proxies() == base and ctor.made[1].close_calls == [1000]

    asyncio.run(main())


def test_ws_failed_timed_out_and_cancelled_dials_leave_no_proxy() -> None:
    from darkswap_wasm.errors import ConnectionClosed, DarkSwapError
    from darkswap_wasm.transports import browser_ws as bws
    from darkswap_wasm.wire.multiaddr import Multiaddr

    async def main() -> None:
        ctor = fake_ws_ctor()
        base = bws.live_proxies()
        t = bws.BrowserWebSocketTransport(ctor, bridge=fake_bridge(), open_timeout=0.05)
        addr = Multiaddr("/ip4/10.0.0.1/tcp/4001/ws")

        dial = asyncio.ensure_future(t.dial(addr))  # refused: error, then close
        await _settle()
        ctor.made[0].fire("error")
        ctor.made[0].remote_close(1006)
        with pytest.raises(ConnectionClosed):
            await dial
        assert bws.live_proxies() == base

        with pytest.raises(DarkSwapError):  # no answer within open_timeout
            await t.dial(addr)
        assert bws.live_proxies() == base and ctor.made[1].close_calls

        dial = asyncio.ensure_future(t.dial(addr))  # the host's dial timeout cancels it
        await _settle()
        dial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dial
        assert bws.live_proxies() == base and ctor.made[2].close_calls

        with pytest.raises(ConnectionClosed):  # the constructor throws
            await t.dial(Multiaddr("/dns4/bad/tcp/1/ws"))
        assert bws.live_proxies() == base

    asyncio.run(main())


class FakeChannel(FakeTarget):
    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.readyState = "connecting"
        self.binaryType = "blob"
        self.bufferedAmount = 0
        self.bufferedAmountLowThreshold = 0
        self.sent: list[bytes] = []

    def send(self, data) -> None:
        assert isinstance(data, Buf), "bytes must cross as a Uint8Array"
        if self.readyState != "open":
            raise FakeJsError("InvalidStateError: RTCDataChannel.readyState is not 'open'")
        self.sent.append(data.b)

    def close(self) -> None:
        if self.readyState in ("connecting", "open"):
            self.readyState = "closing"
            asyncio.get_running_loop().call_soon(self.closed)

    def opened(self) -> None:
        self.readyState = "open"
        self.fire("open")

    def closed(self) -> None:
        if self.readyState != "closed":
            self.readyState = "closed"
            self.fire("close")


class FakeCandidate:
    def __init__(self, text: str) -> None:
        self.candidate = text

    def toJSON(self):  # noqa: N802
        return SimpleNamespace(to_py=lambda: {"candidate": self.candidate, "sdpMid": "0", "sdpMLineIndex": 0})


def fake_pc_ctor():
    class FakePeerConnection(FakeTarget):
        made: list = []

        def __init__(self, config) -> None:
            super().__init__()
            self.config = config
            self.connectionState = "new"
            self.iceGatheringState = "new"
            self.channels: list[FakeChannel] = []
            self.remote = []
            self.localDescription = None

        @classmethod
        def new(cls, config):
            pc = cls(config)
            cls.made.append(pc)
            return pc

        def createDataChannel(self, label, options):  # noqa: N802
            assert options == {"ordered": True}
            ch = FakeChannel(label)
            self.channels.append(ch)
            return ch

        async def createOffer(self):  # noqa: N802
            return SimpleNamespace(type="offer", sdp="v=0 offer")

        async def setLocalDescription(self, desc):  # noqa: N802
            self.localDescription = SimpleNamespace(type=desc.type, sdp=desc.sdp + " a=candidate:...")
            self.iceGatheringState = "gathering"
            loop = asyncio.get_running_loop()
            for i, text in enumerate(
                ("candidate:1 1 udp 1 x.local 1 typ host", "candidate:2 1 udp 1 10.0.0.1 2 typ host", "")
            ):
                loop.call_later(0.01 * (i + 1), self._candidate, FakeCandidate(text))
            loop.call_later(0.03, self._complete)

        def _candidate(self, candidate) -> None:
            self.fire("icecandidate", candidate=candidate)

        def _complete(self) -> None:
            self.iceGatheringState = "complete"
            self.fire("icegatheringstatechange")
            self.fire("icecandidate", candidate=JSNULL)

        async def addIceCandidate(self, candidate=None):  # noqa: N802
            self.remote.append(candidate)

        def close(self) -> None:  # like the browser: no event at all
            self.connectionState = "closed"
            for ch in self.channels:
                ch.readyState = "closed"

    return FakePeerConnection


def test_rtc_configuration() -> None:
    from darkswap_wasm.transports.browser_webrtc import rtc_configuration
    from darkswap_wasm.transports.webrtc_base import WebRTCConfig

    assert rtc_configuration(WebRTCConfig()) == {"iceServers": []}
    cfg = WebRTCConfig(
        ice_servers=("stun:stun.example:3478", "turn:turn.example:3478"),
        ice_username="u",
        ice_credential="p",
        extra={"rtc_configuration": {"iceTransportPolicy": "relay"}},
    )
    assert rtc_configuration(cfg) == {
        "iceServers": [
            {"urls": "stun:stun.example:3478", "username": "u", "credential": "p"},
            {"urls": "turn:turn.example:3478", "username": "u", "credential": "p"},
        ],
        "iceTransportPolicy": "relay",
    }


@pytest.mark.parametrize("signal_end", [False, True])
def test_rtc_offer_waits_for_gathering_and_candidates_trickle(signal_end: bool) -> None:
    from darkswap_wasm.transports import browser_webrtc as brtc
    from darkswap_wasm.transports.webrtc_base import WebRTCConfig

    async def main() -> None:
        ctor = fake_pc_ctor()
        base = brtc.live_proxies()
        rt = brtc.BrowserWebRTCRuntime(
            ctor, bridge=fake_bridge(), signal_end_of_candidates=signal_end, wait_for_gathering=True
        )
        pc = rt.create_peer_connection(WebRTCConfig(ice_servers=("stun:s:1",)))
        (js_pc,) = ctor.made
        assert js_pc.config == {"iceServers": [{"urls": "stun:s:1"}]}
        seen: list = []
        pc.on_ice_candidate = seen.append
        ch = pc.create_data_channel("init")
        assert js_pc.channels[0].binaryType == "arraybuffer"
        sdp = await pc.create_offer()
        assert sdp == "v=0 offer"  # the candidates trickle, they are not in the SDP we send
        want = [
            {"candidate": "candidate:1 1 udp 1 x.local 1 typ host", "sdpMid": "0", "sdpMLineIndex": 0},
            {"candidate": "candidate:2 1 udp 1 10.0.0.1 2 typ host", "sdpMid": "0", "sdpMLineIndex": 0},
        ]
        assert seen == (want + [None] if signal_end else want)  # already there when the offer returns
        await pc.add_ice_candidate(
            {
                "candidate": "candidate:9 1 udp 1 10.0.0.2 9 typ host",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
                "usernameFragment": None,
            }
        )
        await pc.add_ice_candidate(None)
        assert js_pc.remote == [
            {"candidate": "candidate:9 1 udp 1 10.0.0.2 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0},
            None,
        ]
        assert brtc.live_proxies() == base + 5 + 5
        states: list = []
        closes: list = []
        pc.on_connection_state_change = states.append
        ch.on_close = lambda: closes.append("init")
        await pc.close()
        await pc.close()
        await _settle()
        assert states == ["closed"] and closes == ["init"] and pc.connection_state == "closed"
        assert brtc.live_proxies() == base and js_pc.n_listeners() == 0

    asyncio.run(main())


def test_rtc_inbound_channel_keeps_early_messages_and_its_close_in_order() -> None:
    from darkswap_wasm.errors import ConnectionClosed
    from darkswap_wasm.transports import browser_webrtc as brtc
    from darkswap_wasm.transports.webrtc_base import WebRTCConfig

    async def main() -> None:
        ctor = fake_pc_ctor()
        base = brtc.live_proxies()
        pc = brtc.BrowserWebRTCRuntime(ctor, bridge=fake_bridge()).create_peer_connection(WebRTCConfig())
        js_pc = ctor.made[0]
        got: list = []
        channels: list = []
        pc.on_data_channel = channels.append
        js_ch = FakeChannel("")
        js_pc.fire("datachannel", channel=js_ch)
        (ch,) = channels
        assert js_ch.binaryType == "arraybuffer" and ch.label == "" and ch.ready_state == "connecting"
        js_ch.opened()
        for m in (b"1", b"2"):  # before the host installed its callbacks
            js_ch.fire("message", data=Buf(m))
        js_ch.fire("message", data="3")  # a text message arrives as its UTF-8 bytes
        ch.on_message = got.append
        js_ch.fire("message", data=Buf(b"4"))  # queued behind the early ones
        ch.on_close = lambda: got.append("closed")
        await _settle()
        assert got == [b"1", b"2", b"3", b"4"]

        ch.set_buffered_amount_low_threshold(1234)
        assert js_ch.bufferedAmountLowThreshold == 1234
        low: list = []
        ch.on_buffered_amount_low = lambda: low.append(1)
        js_ch.fire("bufferedamountlow")
        assert low == [1]
        ch.send(memoryview(b"out"))
        assert js_ch.sent == [b"out"]

        js_ch.closed()  # the remote closed it: reported once, proxies gone
        await _settle()
        assert got[-1] == "closed" and got.count("closed") == 1
        assert brtc.live_proxies() == base + 5 and js_ch.n_listeners() == 0
        with pytest.raises(ConnectionClosed):
            ch.send(b"late")
        await pc.close()
        assert got.count("closed") == 1 and brtc.live_proxies() == base

    asyncio.run(main())


def test_the_browser_modules_import_neither_js_nor_pyodide() -> None:
    code = (
        "import sys, darkswap_wasm.transports.browser_ws, darkswap_wasm.transports.browser_webrtc\n"
        "bad = [m for m in sys.modules if m == 'js' or m.split('.')[0] in ('pyodide', 'aiortc', 'websockets')]\n"
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    from darkswap_wasm.errors import ConfigError
    from darkswap_wasm.transports.browser_webrtc import BrowserWebRTCRuntime
    from darkswap_wasm.transports.browser_ws import BrowserWebSocketTransport, pyodide_bridge

    with pytest.raises(ConfigError):
        pyodide_bridge()  # natively there is no Pyodide
    with pytest.raises(ConfigError):
        BrowserWebRTCRuntime(None)  # a page without RTCPeerConnection: no runtime
    with pytest.raises(ConfigError):
        BrowserWebSocketTransport(None)


def test_rtc_connection_state_falls_back_to_the_ice_state() -> None:
    from darkswap_wasm.transports import browser_webrtc as brtc
    from darkswap_wasm.transports.webrtc_base import WebRTCConfig

    async def main() -> None:
        ctor = fake_pc_ctor()
        pc = brtc.BrowserWebRTCRuntime(ctor, bridge=fake_bridge()).create_peer_connection(WebRTCConfig())
        js_pc = ctor.made[0]
        states: list = []
        pc.on_connection_state_change = states.append
        js_pc.connectionState = "connecting"
        js_pc.fire("connectionstatechange")
        js_pc.fire("iceconnectionstatechange")  # the same state twice is reported once
        del js_pc.connectionState  # a browser without it (Firefox < 113)
        for ice in ("checking", "connected", "completed", "disconnected", "failed"):
            js_pc.iceConnectionState = ice
            js_pc.fire("iceconnectionstatechange")
        assert states == ["connecting", "connected", "disconnected", "failed"]
        assert pc.connection_state == "failed"
        await pc.close()
        assert states[-1] == "closed" and pc.connection_state == "closed"

    asyncio.run(main())
