"""The JS API's Python half (darkswap_wasm/api/js_api.py) natively: how arguments cross from
JavaScript (``null``/``undefined`` → ``None`` at every depth, durations in milliseconds), the
peer ID error a JS caller sees, and what ``new_with_defaults`` does at the reservation deadline.
The browser side of the same is tests/browser/test_js_api.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from darkswap_wasm.api import js_api
from darkswap_wasm.api.js_api import JsDarkSwap, _ms, _to_py, error_envelope
from darkswap_wasm.errors import DecodeError, InvalidArgument, InvalidPeerId
from darkswap_wasm.host.relay_client import ReservationFailed
from darkswap_wasm.identity import Identity, PeerId

# signing needs a crypto backend: in a page that is libsodium.js (these run in Chromium, not in bare Pyodide)
pytestmark = pytest.mark.native_crypto


class JsNull:
    """Stands in for ``pyodide.ffi.jsnull`` (JS ``null``, not ``None``)."""


JSNULL = JsNull()


class FakeProxy:
    """A JsProxy: ``to_py()`` converts the JS value (``null`` stays the jsnull object)."""

    def __init__(self, value):
        self.value = value

    def to_py(self):
        return self.value


class Bridge:
    jsnull = JSNULL

    def to_js_object(self, d):
        return d

    def to_js(self, v):
        return v


def _unreached(*args):
    raise AssertionError(f"the network was reached with {args}: the arguments should have been refused")


class Echo(JsDarkSwap):
    def __init__(self) -> None:  # no network: only the argument path is under test
        self._bridge = Bridge()
        self._jsnull = JSNULL
        self._closed = False
        self.net = SimpleNamespace(ping=_unreached, send_message=_unreached, wait_delivered=_unreached)

    async def js_echo(self, *args):
        return list(args)

    def js_echo_sync(self, a=None, b="default"):
        return [a, b]


def test_nulls_become_none_at_every_depth() -> None:
    raw = FakeProxy(["peer", JSNULL, {"timeout": JSNULL, "list": [1, JSNULL], "inner": {"x": JSNULL}}, None])
    assert _to_py(raw, JSNULL) == ["peer", None, {"timeout": None, "list": [1, None], "inner": {"x": None}}, None]
    assert _to_py(JSNULL, JSNULL) is None
    assert _to_py(None, JSNULL) is None
    assert _to_py(FakeProxy(JSNULL), JSNULL) is None
    assert _to_py({"a": 1}, None) == {"a": 1}  # no jsnull (old Pyodide, or natively): unchanged


def test_call_hands_none_for_js_null_and_undefined() -> None:
    api = Echo()
    out = asyncio.run(api.call("echo", FakeProxy(["p", JSNULL, {"timeout": JSNULL}, None])))
    assert out == {"ok": True, "value": ["p", None, {"timeout": None}, None]}
    assert api.call_sync("echo_sync", FakeProxy([JSNULL])) == {"ok": True, "value": [None, "default"]}
    assert api.call_sync("echo_sync", JSNULL) == {"ok": True, "value": [None, "default"]}


def test_receive_with_a_null_timeout_is_not_a_float_error() -> None:
    api = Echo()
    api._ensure_pump = lambda pid: None  # a relay: the method fails after the arguments were read
    out = asyncio.run(api.call("receive_webrtc_message", FakeProxy([str(Identity.generate().peer_id), JSNULL])))
    assert out["ok"] is False and out["code"] == "CONFIG_ERROR" and "relay" in out["message"], out


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "10", True, [1]])
def test_durations_are_finite_milliseconds(bad) -> None:
    with pytest.raises(InvalidArgument, match="milliseconds"):
        _ms(bad, "timeout", None)
    assert _ms(None, "timeout", 30_000.0) == 30_000.0
    assert _ms(250, "timeout", None) == 250.0


def test_bad_arguments_are_invalid_argument_envelopes() -> None:
    api = Echo()
    peer = str(Identity.generate().peer_id)
    for name, args in [
        ("wait_delivered", [peer, -1, None]),
        ("wait_delivered", [peer, 1.5, None]),
        ("wait_delivered", [peer, 1, -5]),
        ("receive_webrtc_message", [peer, "soon"]),
        ("ping", ["hello"]),
        ("ping", [None]),
        ("send_message", ["hello", b"x"]),
    ]:
        out = asyncio.run(api.call(name, FakeProxy(args)))
        assert out["ok"] is False and out["code"] == "INVALID_ARGUMENT", (name, args, out)


@pytest.mark.parametrize("text", ["hello", "not-a-peer-id", "", "12D3KooWxyz", "Qm" + "z" * 300])
def test_a_bad_peer_id_says_so(text: str) -> None:
    with pytest.raises(InvalidPeerId) as info:
        PeerId.coerce(text)
    msg = str(info.value)
    assert msg.startswith(f"invalid peer ID {text[:77]!r}"[: len("invalid peer ID ") + 10]), msg
    assert "not a base58btc peer ID (12D3KooW… / Qm…) or a CIDv1" in msg
    assert "multibase prefix" not in msg
    assert isinstance(info.value, DecodeError)  # still one for callers that catch DecodeError
    env = error_envelope(info.value)
    assert env["code"] == "INVALID_ARGUMENT" and "peer ID" in env["message"]


def test_coerce_rejects_non_strings_as_invalid_peer_ids() -> None:
    for value in (None, 5, 1.0):
        with pytest.raises(InvalidPeerId, match="must be a string"):
            PeerId.coerce(value)


# --------------------------------------------------------------------------- the reservation deadline


class FakeHost:
    def __init__(self) -> None:
        self.cbs: dict[str, list] = {}

    def on(self, event, cb) -> None:
        self.cbs.setdefault(event, []).append(cb)

    def emit(self, event, *args) -> None:
        for cb in self.cbs.get(event, ()):
            cb(*args)


def _fake_api(live: set):
    host = FakeHost()
    emitted: list = []
    net = SimpleNamespace(host=host, reservations=lambda: [SimpleNamespace(relay=r) for r in live])
    return SimpleNamespace(net=net, _emit=lambda *a: emitted.append(a)), host, emitted


def _relays(n: int) -> dict:
    out = {}
    for i in range(n):
        pid = Identity.generate().peer_id
        out[pid] = f"/ip4/127.0.0.1/tcp/{40000 + i}/ws/p2p/{pid}"
    return out


def test_no_reservation_by_the_deadline_rejects_naming_each_relay_once() -> None:
    relays = _relays(2)
    api, host, _ = _fake_api(set())

    async def run():
        task = asyncio.ensure_future(js_api._await_reservations(api, relays, 200))
        await asyncio.sleep(0.05)
        for pid, addr in relays.items():
            tcp = addr.rsplit("/p2p/", 1)[0]
            host.emit("relay:error", pid, f"cannot reach {addr}: WebSocket to {tcp} failed to open")
        return await task

    with pytest.raises(ReservationFailed) as info:
        asyncio.run(run())
    msg = str(info.value)
    assert info.value.code == "RELAY_RESERVATION_FAILED"
    for addr in relays.values():
        assert msg.count(addr) == 1 and msg.count(addr.rsplit("/p2p/", 1)[0]) == 1, msg
    assert "failed to open" in msg and "200 ms" in msg


def test_some_reservations_resolve_with_a_warning_per_missing_relay() -> None:
    relays = _relays(2)
    first, second = list(relays)
    live: set = set()
    api, host, emitted = _fake_api(live)

    async def run():
        task = asyncio.ensure_future(js_api._await_reservations(api, relays, 300))
        await asyncio.sleep(0.05)
        live.add(first)
        host.emit("relay:reserved", first)
        host.emit("relay:error", second, "relay refused the reservation: RESERVATION_REFUSED")
        await task

    asyncio.run(run())
    assert [(e[0], e[1]) for e in emitted] == [("relay:warning", str(second))]
    assert "RESERVATION_REFUSED" in emitted[0][2] and relays[second] in emitted[0][2]


def test_every_reservation_ends_the_wait_at_once() -> None:
    relays = _relays(1)
    (only,) = relays
    live: set = set()
    api, host, emitted = _fake_api(live)

    async def run():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        task = asyncio.ensure_future(js_api._await_reservations(api, relays, 10_000))
        await asyncio.sleep(0.02)
        live.add(only)
        host.emit("relay:reserved", only)
        await task
        return loop.time() - t0

    assert asyncio.run(run()) < 1.0 and emitted == []
