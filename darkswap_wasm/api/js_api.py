"""The Python side of the JavaScript API: ``DarkSwapWasm`` in ``js_glue/darkswap.js``.

Thin: it builds the page's :class:`~darkswap_wasm.api.network.Network` (browser WebSocket
transport, browser WebRTC runtime when the page has one, per-browser workarounds from
:mod:`.compat`), and turns every call into an *envelope* the JS side unwraps:
``{ok: true, value}`` or ``{ok: false, code, name, message}``. ``code`` is the Python exception's
``CODE`` (:mod:`darkswap_wasm.errors`), so JavaScript gets an ``Error`` with a stable ``code``
and never a Python traceback (tracebacks of unexpected errors go to the ``logging`` module only).

Bytes: ``Uint8Array`` in → ``.to_bytes()`` (one copy); ``bytes`` out → ``to_js`` (one copy).

Events reach JavaScript through one function handed in at creation, ``emit(event, ...args)``:
``peer:connect``/``peer:disconnect`` (peer id), ``connection:open``/``connection:close`` (peer
id, transport), ``relay:reserved``/``relay:lost`` (relay peer id), ``message`` (peer id,
``Uint8Array``). Received DarkSwap messages are pumped per peer: each one is emitted as a
``message`` event *and* kept for :meth:`JsDarkSwap.receive_webrtc_message`. The kept copies are
bounded (:data:`PULL_LIMIT` bytes per peer): without ``message`` listeners the pump stops
reading at the bound (backpressure reaches the sender); with listeners the oldest kept copies
are dropped (the listeners had them).

Arguments cross in one place, :meth:`JsDarkSwap.call` / :meth:`~JsDarkSwap.call_sync` (and
:func:`create`): ``to_py()``, then JS ``null`` (``pyodide.ffi.jsnull``, which Pyodide keeps apart
from ``None``) and ``undefined`` become ``None`` at every depth (:func:`_to_py`), so a method's
``None`` default means "omitted, null or undefined" from JavaScript. Durations are milliseconds on
this side as in JS (``ping``'s result, every ``timeout``, ``waitForReservations``); the Python API
(:class:`~darkswap_wasm.api.network.Network`) below it speaks seconds.

Like the browser adapters, nothing here imports ``js`` or ``pyodide`` at import time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .. import __version__, events
from ..errors import ConfigError, DarkSwapError, InvalidArgument, Timeout, UsageError
from ..identity import Identity, PeerId
from ..tasks import spawn
from ..wire.multiaddr import Multiaddr
from . import compat
from .network import Network, NetworkConfig

__all__ = ["NETWORKS", "JsDarkSwap", "NetworkDefaults", "create", "error_envelope"]

log = logging.getLogger(__name__)

PULL_LIMIT = 16 * 1024 * 1024  # bytes of received messages kept per peer for receive_webrtc_message
WAIT_DELIVERED_MS = 30_000.0  # default timeout of wait_delivered
WAIT_FOR_RESERVATIONS_MS = 10_000.0  # default of the waitForReservations option


@dataclass(frozen=True)
class NetworkDefaults:
    """What ``DarkSwapWasm.new_with_defaults(network)`` starts from; options override it."""

    relays: tuple[str, ...] = ()  # full relay multiaddrs (/…/ws/p2p/<relay>)
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs (none: no third-party servers unless asked)
    agent_suffix: str = ""


# DarkSwap's public relays are not known to this project: every network starts with none and the
# page passes `relays`. regtest is the local development network (scripts/demo.py starts a relay
# on 127.0.0.1 and puts its address into the demo URL).
NETWORKS: dict[str, NetworkDefaults] = {
    "regtest": NetworkDefaults(agent_suffix="regtest"),
    "testnet": NetworkDefaults(agent_suffix="testnet"),
    "mainnet": NetworkDefaults(agent_suffix="mainnet"),
}


def _to_py(value: Any, jsnull: Any = None) -> Any:
    """A JS value as plain Python: ``to_py()`` on a JsProxy, then every JS ``null`` (``jsnull``:
    the bridge's ``pyodide.ffi.jsnull``) or ``undefined`` (``None`` already) → ``None``, nested
    in lists and objects too (``{timeout: null}`` → ``{"timeout": None}``)."""
    if value is None or (jsnull is not None and value is jsnull):
        return None
    to_py = getattr(value, "to_py", None)
    if callable(to_py):
        value = to_py()
    return _nulls_to_none(value, jsnull)


def _nulls_to_none(value: Any, jsnull: Any) -> Any:
    if value is None or (jsnull is not None and value is jsnull):
        return None
    if isinstance(value, dict):
        return {k: _nulls_to_none(v, jsnull) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulls_to_none(v, jsnull) for v in value]
    return value


def _ms(value: Any, what: str, default: float | None) -> float | None:
    """A JS duration: ``None`` (omitted/null/undefined) → ``default``; else a finite number ≥ 0."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{what} must be a number of milliseconds >= 0, not {value!r}")
    return float(value)


def error_envelope(exc: BaseException) -> dict:
    """``{ok: False, code, name, message}`` for any exception (no traceback in it)."""
    if isinstance(exc, DarkSwapError):
        code = exc.code
    elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        code = Timeout.CODE
    elif isinstance(exc, asyncio.CancelledError):
        code = "CANCELLED"
    elif isinstance(exc, (ValueError, TypeError, KeyError)):
        code = "INVALID_ARGUMENT"
    else:
        code = "INTERNAL_ERROR"
        log.error("unexpected error in the JS API", exc_info=exc)
    message = str(exc) or type(exc).__name__
    return {"ok": False, "code": code, "name": type(exc).__name__, "message": message}


class _Inbox:
    """Received messages of one peer kept for ``receive_webrtc_message``."""

    __slots__ = ("error", "items", "nbytes", "readable", "space", "task")

    def __init__(self) -> None:
        self.items: deque[bytes] = deque()
        self.nbytes = 0
        self.readable = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.task: asyncio.Task | None = None
        self.error: BaseException | None = None


class JsDarkSwap:
    """One ``DarkSwapWasm`` instance's Python half. JS calls :meth:`call` / :meth:`call_sync`."""

    def __init__(
        self,
        net: Network,
        network_name: str,
        emit: Callable[..., Any],
        bridge: Any,
        relay_peers: set[PeerId],
        plan: compat.Plan | None,
    ) -> None:
        self.net = net
        self.network_name = network_name
        self._emit_js = emit
        self._bridge = bridge
        self._relay_peers = relay_peers
        self.plan = plan
        self._inboxes: dict[PeerId, _Inbox] = {}
        self._listening = False
        self._closed = False
        self._dropped = 0
        self._jsnull = getattr(bridge, "jsnull", None)
        host = net.host
        host.on("peer:connect", self._on_peer_connect)
        host.on("peer:disconnect", lambda p: self._emit("peer:disconnect", str(p)))
        host.on("connection:open", self._on_connection_open)
        host.on("connection:close", lambda c: self._emit("connection:close", str(c.remote_peer), c.transport))
        host.on("relay:reserved", lambda r: self._emit("relay:reserved", str(r)))
        host.on("relay:lost", lambda r: self._emit("relay:lost", str(r)))
        host.on("relay:error", lambda r, reason: self._emit("relay:error", str(r), reason))

    # -- the JS bridge -----------------------------------------------------------------------
    def _envelope(self, value: Any) -> Any:
        return self._bridge.to_js_object({"ok": True, "value": value})

    def _emit(self, event: str, *args: Any) -> None:
        if event not in events.JS_EVENTS:
            raise UsageError(f"not a page event: {event!r}")
        if self._closed and event != "close":
            return
        try:
            self._emit_js(event, *args)
        except Exception:
            log.exception("JS listener for %s failed", event)

    async def call(self, name: str, args: Any = None) -> Any:
        """Run the async method ``name`` with ``args`` (a JS array); return an envelope."""
        try:
            method = getattr(self, "js_" + str(name), None)
            if method is None or not asyncio.iscoroutinefunction(method):
                raise ConfigError(f"DarkSwapWasm has no async method {name!r}")
            value = await method(*(_to_py(args, self._jsnull) or []))
            return self._envelope(value)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return self._bridge.to_js_object(error_envelope(exc))

    def call_sync(self, name: str, args: Any = None) -> Any:
        try:
            method = getattr(self, "js_" + str(name), None)
            if method is None or asyncio.iscoroutinefunction(method):
                raise ConfigError(f"DarkSwapWasm has no method {name!r}")
            return self._envelope(method(*(_to_py(args, self._jsnull) or [])))
        except Exception as exc:  # noqa: BLE001
            return self._bridge.to_js_object(error_envelope(exc))

    # -- events ------------------------------------------------------------------------------
    def _on_peer_connect(self, peer: PeerId) -> None:
        self._emit("peer:connect", str(peer))
        self._ensure_pump(peer)

    def _on_connection_open(self, conn) -> None:
        self._emit("connection:open", str(conn.remote_peer), conn.transport)
        self._ensure_pump(conn.remote_peer)

    def _ensure_pump(self, peer: PeerId) -> _Inbox | None:
        if peer is None or peer in self._relay_peers or self._closed:
            return None
        box = self._inboxes.get(peer)
        if box is None:
            box = self._inboxes[peer] = _Inbox()
        if box.task is None or box.task.done():
            box.error = None
            box.task = spawn(self._pump(peer, box), f"message pump for {peer}")
        return box

    async def _pump(self, peer: PeerId, box: _Inbox) -> None:
        try:
            while not self._closed:
                while box.nbytes > PULL_LIMIT and not self._listening:
                    box.space.clear()
                    await box.space.wait()
                data = await self.net.receive_message(peer)
                box.items.append(data)
                box.nbytes += len(data)
                while box.nbytes > PULL_LIMIT and self._listening and len(box.items) > 1:
                    box.nbytes -= len(box.items.popleft())
                    self._dropped += 1
                box.readable.set()
                self._emit("message", str(peer), self._bridge.to_js(data))
        except asyncio.CancelledError:
            return
        except DarkSwapError as exc:
            log.debug("message pump for %s ended: %s", peer, exc)
            box.error = exc
            box.readable.set()

    # -- sync methods (js_*) -------------------------------------------------------------------
    def js_local_peer_id(self) -> str:
        return str(self.net.local_peer_id())

    def js_listen_addrs(self) -> list:
        return self._bridge.to_js([str(a) for a in self.net.listen_addrs()])

    def js_set_listening(self, listening: bool) -> bool:
        self._listening = bool(listening)
        if self._listening:
            for box in self._inboxes.values():
                box.space.set()
        return self._listening

    def js_info(self) -> Any:
        from ..compression import available_backend

        backend = available_backend()
        return self._bridge.to_js_object(
            {
                "version": __version__,
                "network": self.network_name,
                "peerId": str(self.net.local_peer_id()),
                "webrtc": self.net.webrtc is not None,
                "compression": backend.name if backend is not None and self.net.config.messaging.compress else None,
                "reservations": [str(r.relay) for r in self.net.reservations()],
                "compat": self.plan.as_dict() if self.plan is not None else None,
                "droppedCopies": self._dropped,
            }
        )

    def js_connections_sync(self, peer: str | None = None) -> Any:
        return self._connections(peer)

    def _connections(self, peer: str | None) -> Any:
        out = [
            self._bridge.to_js_object(
                {
                    "transport": c.transport,
                    "peerId": str(c.remote_peer),
                    "remoteAddr": str(c.remote_addr),
                    "direction": "outbound" if c.is_initiator else "inbound",
                    "openedAt": int(c.opened_at * 1000),
                }
            )
            for c in self.net.connections(PeerId.coerce(peer) if peer else None)
        ]
        return self._bridge.to_js(out)

    # -- async methods -------------------------------------------------------------------------
    async def js_connections(self, peer: str | None = None) -> Any:
        return self._connections(peer)

    async def js_connect(self, addr: str) -> str:
        return str(await self.net.connect(addr))

    async def js_ping(self, peer: str) -> float:
        """Round trip time in milliseconds."""
        return await self.net.ping(PeerId.coerce(peer)) * 1000.0

    async def js_create_webrtc_data_channel(self, peer: str) -> Any:
        """A direct WebRTC connection to ``peer`` when possible; else the relayed one (no error:
        the caller's traffic simply stays on the relay). Waits at most
        ``WebRTCSettings.upgrade_wait`` for WebRTC; attempts go on in the background after that
        (``connection:open`` with ``webrtc`` says when it is up)."""
        pid = PeerId.coerce(peer)
        if pid == self.net.local_peer_id():
            raise ConfigError("cannot open a data channel to ourselves")
        if self.net.webrtc is not None:
            conn = await self.net.create_webrtc_data_channel(pid)
        else:
            conn = await self.net.host.connection_to(pid)  # PeerUnreachable when nothing reaches it
        self._ensure_pump(pid)
        return self._bridge.to_js_object({"transport": conn.transport, "remoteAddr": str(conn.remote_addr)})

    async def js_send_webrtc_message(self, peer: str, data: Any) -> int:
        """Queue ``data`` (a ``Uint8Array``) for ``peer`` (:meth:`Network.send_webrtc_message`:
        it never waits for WebRTC; an upgrade starts in the background, backed off after failed
        attempts, and the session moves onto it). Resolves with the sequence number once queued
        (DarkSwap messaging: batched, compressed, delivered exactly once in order)."""
        pid = PeerId.coerce(peer)
        payload = _bytes(data)
        self._ensure_pump(pid)
        return await self.net.send_webrtc_message(pid, payload)

    async def js_send_message(self, peer: str, data: Any) -> int:
        """Queue ``data`` for ``peer`` on whatever connection reaches it best (no WebRTC attempt)."""
        pid = PeerId.coerce(peer)
        self._ensure_pump(pid)
        return await self.net.send_message(pid, _bytes(data))

    async def js_wait_delivered(self, peer: str, seq: int, timeout_ms: float | None = None) -> bool:
        """Resolves once ``peer`` acknowledged ``seq``; ``timeout_ms`` default 30 000."""
        pid = PeerId.coerce(peer)
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise InvalidArgument(f"seq must be a sequence number (an integer >= 0), not {seq!r}")
        timeout = _ms(timeout_ms, "timeout", WAIT_DELIVERED_MS)
        await self.net.wait_delivered(pid, seq, timeout / 1000.0)
        return True

    async def js_receive_webrtc_message(self, peer: str, timeout_ms: float | None = None) -> Any:
        """The next message from ``peer`` (a ``Uint8Array``), in order; ``timeout_ms`` None: forever."""
        pid = PeerId.coerce(peer)
        timeout = _ms(timeout_ms, "timeout", None)
        box = self._ensure_pump(pid)
        if box is None:
            raise ConfigError(f"{pid} is a relay: it sends no DarkSwap messages")
        deadline = None if timeout is None else time.monotonic() + timeout / 1000.0
        while not box.items:
            if box.error is not None:  # the session failed or ended; a new connection restarts the pump
                raise box.error
            if self._closed:
                raise ConfigError("DarkSwapWasm is closed")
            box.readable.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Timeout(f"no message from {pid} within {timeout:g} ms")
            try:
                await asyncio.wait_for(box.readable.wait(), remaining)
            except TimeoutError:
                raise Timeout(f"no message from {pid} within {timeout:g} ms") from None
        data = box.items.popleft()
        box.nbytes -= len(data)
        if box.nbytes <= PULL_LIMIT:
            box.space.set()
        return self._bridge.to_js(data)

    async def js_register(self, namespace: str, ttl_ms: float | None = None) -> float:
        """Announce this page under ``namespace`` on the relays it holds a reservation on (see
        :meth:`Network.register`); resolves with the granted TTL in milliseconds."""
        ttl = _ms(ttl_ms, "ttl", None)
        return await self.net.register(_namespace(namespace), None if ttl is None else ttl / 1000.0) * 1000.0

    async def js_unregister(self, namespace: str) -> bool:
        await self.net.unregister(_namespace(namespace))
        return True

    async def js_discover(self, namespace: str, limit: int | None = None, timeout_ms: float | None = None) -> Any:
        """``[{peerId, addrs, ttl}]`` (ttl in ms) of the other peers registered under ``namespace``."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidArgument(f"limit must be a positive integer, not {limit!r}")
        timeout = _ms(timeout_ms, "timeout", None)
        found = await self.net.discover(_namespace(namespace), limit, None if timeout is None else timeout / 1000.0)
        rows = [{"peerId": str(p.peer), "addrs": [str(a) for a in p.addrs], "ttl": p.ttl * 1000} for p in found]
        return self._bridge.to_js([self._bridge.to_js_object(r) for r in rows])

    async def js_close(self) -> bool:
        if self._closed:
            return True
        self._closed = True
        for box in self._inboxes.values():
            if box.task is not None:
                box.task.cancel()
            box.readable.set()
            box.space.set()
        tasks = [b.task for b in self._inboxes.values() if b.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.net.close()
        return True


def _namespace(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"namespace must be a non-empty string, not {value!r}")
    return value


def _bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    to_bytes = getattr(data, "to_bytes", None)
    if callable(to_bytes):
        return to_bytes()
    raise TypeError("data must be a Uint8Array (or an ArrayBuffer / typed array)")


def _options(raw: Any, jsnull: Any = None) -> dict:
    opts = _to_py(raw, jsnull)
    if opts is None:
        return {}
    if not isinstance(opts, dict):
        raise InvalidArgument("options must be an object")
    return opts


async def create(network: str, options: Any = None, emit: Any = None, env: Any = None, *, bridge: Any = None) -> Any:
    """``DarkSwapWasm.new_with_defaults(network, options)``: an envelope whose value is a
    :class:`JsDarkSwap` (the JS side receives it as a PyProxy and destroys it on close).

    ``options`` (all optional): ``relays`` (multiaddrs, added to the network's defaults),
    ``identity`` (a 32-byte seed as ``Uint8Array``), ``listen`` (multiaddrs; a page usually has
    none), ``webrtc`` (``false`` to stay relayed; or ``{iceServers, allowedNetworks,
    iceUsername, iceCredential, rtcConfiguration}``), ``compression`` (``false`` to announce no
    zstd), ``waitForReservations`` (milliseconds to wait for the relay reservations; default
    10 000, 0 = do not wait; see :func:`_await_reservations` for what happens at the deadline).
    ``env``: what ``js_glue/compat.js`` collected (``userAgent``, ``uaData``, ``features``) and
    the constructors (``WebSocket``, ``RTCPeerConnection``).
    """
    if bridge is None:
        from ..transports.browser_ws import pyodide_bridge

        bridge = pyodide_bridge()
    try:
        jsnull = getattr(bridge, "jsnull", None)
        api = await _create(str(network), _options(options, jsnull), emit, _to_py_env(env, jsnull), bridge)
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return bridge.to_js_object(error_envelope(exc))
    from pyodide.ffi import create_proxy

    return bridge.to_js_object({"ok": True, "value": create_proxy(api)})


async def _create(network: str, opts: dict, emit: Any, env: Any, bridge: Any) -> JsDarkSwap:
    from ..host.host import HostConfig
    from ..host.webrtc import WebRTCSettings
    from ..protocols.darkswap_msg import MessagingConfig
    from ..transports.browser_webrtc import BrowserWebRTCRuntime
    from ..transports.browser_ws import BrowserWebSocketTransport
    from ..transports.webrtc_base import WebRTCConfig

    defaults = NETWORKS.get(network)
    if defaults is None:
        raise ConfigError(f"unknown network {network!r}: use one of {', '.join(NETWORKS)}")
    wait_ms = _ms(opts.get("waitForReservations"), "waitForReservations", WAIT_FOR_RESERVATIONS_MS)
    get = env.get
    ws_ctor = get("WebSocket")
    rtc_ctor = get("RTCPeerConnection")
    if ws_ctor is None:
        raise ConfigError("this page has no WebSocket: DarkSwapWasm cannot reach a relay")

    relays = list(dict.fromkeys([*defaults.relays, *[str(a) for a in opts.get("relays") or []]]))
    relay_addrs: dict[PeerId, str] = {}  # one address per relay: the last, as ReservationManager keeps
    for a in relays:
        m = Multiaddr(a)
        if m.value_for("p2p") is None:
            raise ConfigError(f"a relay address needs /p2p/<relay peer id>: {a}")
        relay_addrs[PeerId.from_string(m.value_for("p2p"))] = a
    relay_peers = set(relay_addrs)

    seed = opts.get("identity")
    identity = Identity.from_seed(_bytes(seed)) if seed is not None else Identity.generate()

    rtc_opt = opts.get("webrtc", True)
    want_webrtc = rtc_opt is not False and rtc_ctor is not None
    rtc_cfg = rtc_opt if isinstance(rtc_opt, dict) else {}
    ice = tuple(rtc_cfg.get("iceServers") or defaults.ice_servers)
    extra = {"rtc_configuration": dict(rtc_cfg["rtcConfiguration"])} if rtc_cfg.get("rtcConfiguration") else {}
    settings = WebRTCSettings(
        rtc=WebRTCConfig(
            ice_servers=tuple(str(s) for s in ice),
            ice_username=rtc_cfg.get("iceUsername"),
            ice_credential=rtc_cfg.get("iceCredential"),
            allowed_networks=tuple(rtc_cfg.get("allowedNetworks") or ()),
            extra=extra,
        )
    )
    features = get("features") or {}
    ua = str(get("userAgent") or "")
    ua_data = get("uaData") or None
    plan = compat.plan(ua, ua_data, features, settings, want_webrtc=want_webrtc)
    for note in plan.notes:
        log.info("compat: %s", note)

    messaging = MessagingConfig()
    if opts.get("compression") is False:
        messaging = replace(messaging, compress=False)
    agent = f"darkswap-wasm/{__version__} ({network}; {plan.browser.name} {plan.browser.version})"
    config = NetworkConfig(
        identity=identity,
        listen_addrs=[str(a) for a in opts.get("listen") or []],
        relays=relays,
        host=HostConfig(agent_version=agent),
        transports=[BrowserWebSocketTransport(ws_ctor)],
        webrtc=plan.webrtc,
        webrtc_runtime=BrowserWebRTCRuntime(rtc_ctor) if plan.webrtc is not None else None,
        messaging=messaging,
    )
    emit_fn = emit if emit is not None else (lambda *a: None)
    net = await Network.create(config)
    api = JsDarkSwap(net, network, emit_fn, bridge, relay_peers, plan)
    if relay_addrs and wait_ms > 0:
        try:
            await _await_reservations(api, relay_addrs, wait_ms)
        except BaseException:
            await api.js_close()
            raise
    return api


def _to_py_env(env: Any, jsnull: Any) -> dict:
    """The ``env`` object of :func:`create` as a dict: constructors kept as they are (JsProxies),
    ``null``/``undefined`` members → ``None``, ``features``/``uaData`` converted."""
    if env is None or (jsnull is not None and env is jsnull):
        return {}
    get = env.get if isinstance(env, dict) else (lambda k: getattr(env, k, None))
    out = {k: _to_py(get(k), jsnull) if k in ("features", "uaData") else get(k) for k in _ENV_KEYS}
    return {k: (None if jsnull is not None and v is jsnull else v) for k, v in out.items()}


_ENV_KEYS = ("userAgent", "uaData", "features", "WebSocket", "RTCPeerConnection")


async def _await_reservations(api: JsDarkSwap, relay_addrs: dict[PeerId, str], wait_ms: float) -> None:
    """Wait up to ``wait_ms`` for a reservation on every relay, woken by the host's
    ``relay:reserved`` events. At the deadline: no reservation at all →
    :class:`~darkswap_wasm.host.relay_client.ReservationFailed` (``RELAY_RESERVATION_FAILED``)
    naming each relay address once with its last error (``relay:error`` events); some but not
    all → a ``relay:warning`` event (relay peer ID, reason) per missing relay, and no error (the
    reservation manager keeps trying those in the background)."""
    from ..host.relay_client import ReservationFailed

    host = api.net.host
    missing = set(relay_addrs)
    errors: dict[PeerId, str] = {}
    all_reserved = asyncio.Event()
    waiting = True

    def on_reserved(relay: PeerId) -> None:
        if waiting:
            missing.discard(relay)
            if not missing:
                all_reserved.set()

    def on_error(relay: PeerId, reason: str) -> None:
        if waiting and relay in relay_addrs:
            errors[relay] = reason

    host.on("relay:reserved", on_reserved)  # the host has no off(): the callbacks go quiet instead
    host.on("relay:error", on_error)
    for r in api.net.reservations():
        on_reserved(r.relay)
    try:
        if missing:
            await asyncio.wait_for(all_reserved.wait(), wait_ms / 1000.0)
    except TimeoutError:
        pass
    finally:
        waiting = False
    live = {r.relay for r in api.net.reservations()}
    absent = [relay for relay in relay_addrs if relay not in live]
    if not absent:
        return

    def reason(relay: PeerId) -> str:
        return _without_addr(errors.get(relay) or "no reservation yet, no error either", relay_addrs[relay])

    if not live:
        raise ReservationFailed(
            f"no relay reservation within {wait_ms:g} ms (waitForReservations): "
            + "; ".join(f"{relay_addrs[r]}: {reason(r)}" for r in absent)
        )
    for relay in absent:
        why = f"no reservation on {relay_addrs[relay]} within {wait_ms:g} ms: {reason(relay)}"
        log.warning("%s", why)
        api._emit("relay:warning", str(relay), why)


def _without_addr(reason: str, addr: str) -> str:
    """``reason`` with the relay's address (full, or without its /p2p part) said as "the relay":
    the error message names each address once."""
    for form in (addr, addr.rsplit("/p2p/", 1)[0]):
        reason = reason.replace(form, "the relay")
    return reason
