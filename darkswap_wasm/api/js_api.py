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

Like the browser adapters, nothing here imports ``js`` or ``pyodide`` at import time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .. import __version__
from ..errors import ConfigError, DarkSwapError, PeerUnreachable, Timeout
from ..identity import Identity, PeerId
from ..tasks import spawn
from ..wire.multiaddr import Multiaddr
from . import compat
from .network import Network, NetworkConfig

__all__ = ["NETWORKS", "JsDarkSwap", "NetworkDefaults", "create", "error_envelope"]

log = logging.getLogger(__name__)

PULL_LIMIT = 16 * 1024 * 1024  # bytes of received messages kept per peer for receive_webrtc_message
WEBRTC_RETRY_AFTER = 60.0  # s: after a failed upgrade, sends go relayed without retrying until then


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


def _to_py(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value


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
        self._rtc_failed: dict[PeerId, float] = {}
        self._dropped = 0
        host = net.host
        host.on("peer:connect", self._on_peer_connect)
        host.on("peer:disconnect", lambda p: self._emit("peer:disconnect", str(p)))
        host.on("connection:open", self._on_connection_open)
        host.on("connection:close", lambda c: self._emit("connection:close", str(c.remote_peer), c.transport))
        host.on("relay:reserved", lambda r: self._emit("relay:reserved", str(r)))
        host.on("relay:lost", lambda r: self._emit("relay:lost", str(r)))

    # -- the JS bridge -----------------------------------------------------------------------
    def _envelope(self, value: Any) -> Any:
        return self._bridge.to_js_object({"ok": True, "value": value})

    def _emit(self, event: str, *args: Any) -> None:
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
            value = await method(*list(_to_py(args) or []))
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
            return self._envelope(method(*list(_to_py(args) or [])))
        except Exception as exc:  # noqa: BLE001
            return self._bridge.to_js_object(error_envelope(exc))

    # -- events ------------------------------------------------------------------------------
    def _on_peer_connect(self, peer: PeerId) -> None:
        self._emit("peer:connect", str(peer))
        self._ensure_pump(peer)

    def _on_connection_open(self, conn) -> None:
        self._emit("connection:open", str(conn.remote_peer), conn.transport)
        if conn.transport == "webrtc":
            self._rtc_failed.pop(conn.remote_peer, None)
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
                "webrtc": self.net._webrtc is not None,
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
                    "direction": "outbound" if getattr(c, "is_initiator", False) else "inbound",
                    "openedAt": int(getattr(c, "opened_at", 0) * 1000),
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
        return await self.net.ping(PeerId.coerce(peer)) * 1000.0

    async def js_create_webrtc_data_channel(self, peer: str) -> Any:
        """A direct WebRTC connection to ``peer`` when possible; else the relayed one (no error:
        the caller's traffic simply stays on the relay)."""
        pid = PeerId.coerce(peer)
        if pid == self.net.local_peer_id():
            raise ConfigError("cannot open a data channel to ourselves")
        await self.net.host.connection_to(pid)  # PeerUnreachable when nothing reaches it
        if self.net._webrtc is not None:
            conn = await self.net.create_webrtc_data_channel(pid)
            if conn.transport != "webrtc":
                self._rtc_failed[pid] = time.monotonic()
        self._ensure_pump(pid)
        conns = self.net.connections(pid)
        if not conns:
            raise PeerUnreachable(f"the connection to {pid} closed")
        return self._bridge.to_js_object({"transport": conns[0].transport, "remoteAddr": str(conns[0].remote_addr)})

    async def js_send_webrtc_message(self, peer: str, data: Any) -> int:
        """Queue ``data`` (a ``Uint8Array``) for ``peer``: over the direct WebRTC connection,
        made first when there is none; over the relayed path when WebRTC is unavailable or failed
        (then retried only after :data:`WEBRTC_RETRY_AFTER`). Resolves with the sequence number
        once queued (DarkSwap messaging: batched, compressed, delivered exactly once in order)."""
        pid = PeerId.coerce(peer)
        payload = _bytes(data)
        webrtc = self.net._webrtc
        if webrtc is not None and webrtc.webrtc_connection(pid) is None:
            failed = self._rtc_failed.get(pid)
            if failed is None or time.monotonic() - failed > WEBRTC_RETRY_AFTER:
                await self.js_create_webrtc_data_channel(str(pid))
        self._ensure_pump(pid)
        return await self.net.send_message(pid, payload)

    async def js_send_message(self, peer: str, data: Any) -> int:
        """Queue ``data`` for ``peer`` on whatever connection reaches it best (no WebRTC attempt)."""
        pid = PeerId.coerce(peer)
        self._ensure_pump(pid)
        return await self.net.send_message(pid, _bytes(data))

    async def js_wait_delivered(self, peer: str, seq: int, timeout: float = 30.0) -> bool:
        await self.net.wait_delivered(PeerId.coerce(peer), int(seq), float(timeout))
        return True

    async def js_receive_webrtc_message(self, peer: str, timeout: float | None = None) -> Any:
        """The next message from ``peer`` (a ``Uint8Array``), in order; ``timeout`` in seconds."""
        pid = PeerId.coerce(peer)
        box = self._ensure_pump(pid)
        if box is None:
            raise ConfigError(f"{pid} is a relay: it sends no DarkSwap messages")
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while not box.items:
            if box.error is not None:  # the session failed or ended; a new connection restarts the pump
                raise box.error
            if self._closed:
                raise ConfigError("DarkSwapWasm is closed")
            box.readable.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Timeout(f"no message from {pid} within {timeout:g} s")
            try:
                await asyncio.wait_for(box.readable.wait(), remaining)
            except TimeoutError:
                raise Timeout(f"no message from {pid} within {timeout:g} s") from None
        data = box.items.popleft()
        box.nbytes -= len(data)
        if box.nbytes <= PULL_LIMIT:
            box.space.set()
        return self._bridge.to_js(data)

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


def _bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    to_bytes = getattr(data, "to_bytes", None)
    if callable(to_bytes):
        return to_bytes()
    raise TypeError("data must be a Uint8Array (or an ArrayBuffer / typed array)")


def _options(raw: Any) -> dict:
    opts = _to_py(raw) if raw is not None else {}
    if opts is None:
        return {}
    if not isinstance(opts, dict):
        raise ConfigError("options must be an object")
    return opts


async def create(network: str, options: Any = None, emit: Any = None, env: Any = None, *, bridge: Any = None) -> Any:
    """``DarkSwapWasm.new_with_defaults(network, options)``: an envelope whose value is a
    :class:`JsDarkSwap` (the JS side receives it as a PyProxy and destroys it on close).

    ``options`` (all optional): ``relays`` (multiaddrs, added to the network's defaults),
    ``identity`` (a 32-byte seed as ``Uint8Array``), ``listen`` (multiaddrs; a page usually has
    none), ``webrtc`` (``false`` to stay relayed; or ``{iceServers, allowedNetworks,
    iceUsername, iceCredential, rtcConfiguration}``), ``compression`` (``false`` to announce no
    zstd), ``waitForReservations`` (seconds to wait for every relay reservation; default 10, 0 =
    do not wait). ``env``: what ``js_glue/compat.js`` collected (``userAgent``, ``uaData``,
    ``features``) and the constructors (``WebSocket``, ``RTCPeerConnection``).
    """
    if bridge is None:
        from ..transports.browser_ws import pyodide_bridge

        bridge = pyodide_bridge()
    try:
        api = await _create(str(network), _options(options), emit, env, bridge)
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
    env_d = env if env is not None else {}
    get = (lambda k: getattr(env_d, k, None)) if not isinstance(env_d, dict) else env_d.get
    ws_ctor = get("WebSocket")
    rtc_ctor = get("RTCPeerConnection")
    if ws_ctor is None:
        raise ConfigError("this page has no WebSocket: DarkSwapWasm cannot reach a relay")

    relays = list(dict.fromkeys([*defaults.relays, *[str(a) for a in opts.get("relays") or []]]))
    relay_peers = set()
    for a in relays:
        m = Multiaddr(a)
        if m.value_for("p2p") is None:
            raise ConfigError(f"a relay address needs /p2p/<relay peer id>: {a}")
        relay_peers.add(PeerId.from_string(m.value_for("p2p")))

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
    features = _to_py(get("features")) or {}
    ua = str(get("userAgent") or "")
    ua_data = _to_py(get("uaData")) or None
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
    wait = float(opts.get("waitForReservations", 10.0) or 0.0)
    if relays and wait > 0:
        deadline = time.monotonic() + wait
        while len(net.reservations()) < len(relays) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    return api
