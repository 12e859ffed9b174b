"""``Network``: DarkSwap's Python API over the host.

    net = await Network.create(NetworkConfig(identity=Identity.from_seed(seed),
                                             listen_addrs=["/ip4/127.0.0.1/tcp/0/ws"]))
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ..errors import ConfigError, DarkSwapError, Timeout
from ..host.connection import Connection
from ..host.dht import MODES as DHT_MODES
from ..host.dht import DhtConfig, DhtService
from ..host.host import Host, HostConfig, StreamHandler
from ..host.messaging import MessagingService
from ..host.monitor import ConnectionMonitor, MonitorConfig, Reconnector
from ..host.muxer import WEBRTC
from ..host.relay_client import RelayTransport, ReservationInfo, ReservationManager
from ..host.relay_discovery import RelayInfo, RelayManager, RelayManagerConfig
from ..host.rendezvous import DiscoveredPeer, RendezvousClient
from ..host.stream import Stream
from ..host.webrtc import WebRTCService, WebRTCSettings
from ..identity import Identity, PeerId
from ..protocols.darkswap_msg import MessagingConfig
from ..protocols.identify import IdentifyInfo
from ..transports.base import Transport
from ..transports.webrtc_base import WebRTCRuntime
from ..wire.multiaddr import Multiaddr

log = logging.getLogger(__name__)


@dataclass
class NetworkConfig:
    identity: Identity | None = None  # a fresh key when omitted
    listen_addrs: list[str] = field(default_factory=list)
    relays: list[str] = field(default_factory=list)  # full relay multiaddrs (…/p2p/<relay>) to reserve on
    host: HostConfig = field(default_factory=HostConfig)
    transports: list[Transport] | None = None  # default: what this runtime has
    webrtc: WebRTCSettings | None = field(default_factory=WebRTCSettings)  # None: no WebRTC
    webrtc_runtime: WebRTCRuntime | None = None  # default: aiortc natively; js_glue in a page
    monitor: MonitorConfig | None = field(default_factory=MonitorConfig)  # None: no heartbeats
    keep_alive: list[str] = field(default_factory=list)  # full multiaddrs of peers to keep connected
    messaging: MessagingConfig | None = field(default_factory=MessagingConfig)  # None: no DarkSwap messaging
    # relay discovery (issue 13): full multiaddrs (…/p2p/<peer>) of DHT / bootstrap peers
    bootstrap: list[str] = field(default_factory=list)
    dht: str | None = None  # "client" (query only) | "server" (also answer, listed in identify) |
    # None: off, except that bootstrap peers imply "client"
    relay_reservations: int = 2  # relays to hold reservations on (chosen by RTT, load, failures)
    relay_manager: RelayManagerConfig = field(default_factory=RelayManagerConfig)  # re-evaluation
    # period, probe timeout, selection policy (its .reservations is relay_reservations)
    dht_config: DhtConfig | None = None  # Kademlia parameters (DhtConfig(); mode from `dht`)
    dht_provide: list[bytes] = field(default_factory=list)  # keys we provide (the relay CLI: relay_key())

    def __post_init__(self) -> None:
        for a in [*self.listen_addrs, *self.relays, *self.bootstrap]:
            Multiaddr(a)  # fail early on a malformed address
        if self.dht not in (None, *DHT_MODES):
            raise ConfigError(f"NetworkConfig.dht must be one of {DHT_MODES} or None, not {self.dht!r}")
        if self.relay_reservations < 0:
            raise ConfigError("NetworkConfig.relay_reservations must not be negative")

    @property
    def dht_mode(self) -> str | None:
        """The DHT mode this config runs: ``dht``, or ``"client"`` when only bootstrap peers
        are given."""
        if self.dht is not None:
            return self.dht
        return "client" if self.bootstrap else None


class WebRTCUnavailable(DarkSwapError):
    """Native WebRTC was asked for, but aiortc (the ``webrtc`` extra) is not installed."""

    CODE = "RUNTIME_UNAVAILABLE"


WEBRTC_EXTRA_HINT = "pip install darkswap-wasm[webrtc]"


def default_webrtc_runtime() -> WebRTCRuntime:
    """aiortc natively; :class:`WebRTCUnavailable` without the ``webrtc`` extra."""
    if sys.platform == "emscripten":
        raise ConfigError("in a page, the WebRTC runtime comes from js_glue (pass NetworkConfig.webrtc_runtime)")
    try:
        from ..transports.webrtc_aiortc import AiortcRuntime
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing in ("", __name__.partition(".")[0]):
            raise  # a module of ours is missing: a broken install, not a missing extra
        raise WebRTCUnavailable(
            f"native WebRTC needs aiortc, which is not installed (no module named {missing!r}): {WEBRTC_EXTRA_HINT}"
        ) from None
    return AiortcRuntime()


def default_transports() -> list[Transport]:
    if sys.platform == "emscripten":
        raise ConfigError("in a page, transports come from js_glue (pass NetworkConfig.transports)")
    from ..transports.tcp import TcpTransport
    from ..transports.websocket import WebSocketTransport

    return [TcpTransport(), WebSocketTransport()]


class Network:
    _webrtc_unavailable: str | None = None  # why WebRTC is off although the config asked for it

    def __init__(
        self,
        host: Host,
        config: NetworkConfig,
        reservations: ReservationManager | None,
        webrtc: WebRTCService | None,
        dht: DhtService | None = None,
        relay_manager: RelayManager | None = None,
    ) -> None:
        self._host = host
        self.config = config
        self._reservations = reservations
        self._dht = dht
        self._relay_manager = relay_manager
        self._webrtc = webrtc
        mon = config.monitor or MonitorConfig()
        self._monitor = ConnectionMonitor(host, mon) if config.monitor is not None else None
        self._reconnector = Reconnector(host, mon)
        self._messaging = MessagingService(host, config.messaging) if config.messaging is not None else None
        self._rendezvous = RendezvousClient(host, lambda: [r.relay for r in self.reservations()])
        for addr in config.keep_alive:
            self.keep_alive(addr)

    @classmethod
    async def create(cls, config: NetworkConfig | None = None) -> Network:
        config = config or NetworkConfig()
        if sys.platform == "emscripten":
            from ..transports import webloop

            webloop.install()  # Pyodide's loop refuses call_at in the past: asyncio timeouts race into it
        identity = config.identity or Identity.generate()
        transports = config.transports if config.transports is not None else default_transports()
        host = Host(identity, transports, config.host)
        relay_transport = RelayTransport(host)
        host.add_transport(relay_transport)
        reservations = None
        webrtc = None
        dht: DhtService | None = None
        manager: RelayManager | None = None
        unavailable: WebRTCUnavailable | None = None
        try:
            if config.webrtc is not None:
                try:
                    runtime = config.webrtc_runtime or default_webrtc_runtime()
                except WebRTCUnavailable as exc:
                    unavailable = exc
                    # the CLI's startup line; NetworkConfig(webrtc=None) asks for no WebRTC, and no warning
                    log.warning("WebRTC is unavailable (TCP, WebSocket and relayed connections only): %s", exc)
                else:
                    webrtc = WebRTCService(host, runtime, config.webrtc)
            await host.listen(config.listen_addrs)
            mode = config.dht_mode
            if mode is not None:
                dht_cfg = replace(config.dht_config or DhtConfig(), mode=mode)
                dht = DhtService(host, dht_cfg, bootstrap=config.bootstrap, provide=config.dht_provide)
                dht.start()
            if (config.relays or config.bootstrap or dht is not None) and config.relay_reservations > 0:
                # the manager chooses which relays to hold; the reservation manager holds them
                reservations = ReservationManager(host, relay_transport, [], webrtc=webrtc is not None)
                reservations.start()
                manager = RelayManager(
                    host, reservations, replace(config.relay_manager, reservations=config.relay_reservations),
                    dht=dht, configured=[Multiaddr(a) for a in config.relays], bootstrap=config.bootstrap,
                    discover=bool(config.bootstrap) or dht is not None,
                )
                manager.start()
        except BaseException:
            if manager is not None:
                await manager.close()
            if dht is not None:
                await dht.close()
            await host.close()
            raise
        net = cls(host, config, reservations, webrtc, dht, manager)
        net._webrtc_unavailable = str(unavailable) if unavailable is not None else None
        return net

    @property
    def host(self) -> Host:
        return self._host

    @property
    def webrtc(self) -> WebRTCService | None:
        """The WebRTC service (``None`` when WebRTC is off in this config or this page)."""
        return self._webrtc

    def local_peer_id(self) -> PeerId:
        return self._host.peer_id

    def listen_addrs(self) -> list[Multiaddr]:
        """Full multiaddrs we are reachable at, including ``/p2p-circuit`` ones while reserved."""
        return self._host.listen_addrs()

    def reservations(self) -> list[ReservationInfo]:
        """Live relay reservations (relay peer ID, relay address, expiry)."""
        return self._reservations.reservations() if self._reservations else []

    @property
    def dht(self) -> DhtService | None:
        """The Kademlia service (``None`` when the DHT is off in this config)."""
        return self._dht

    def relays(self) -> list[RelayInfo]:
        """Every relay we know of, best first: ``RelayInfo(peer_id, addrs, rtt, load, failures,
        score, reserved)``; empty without relays, bootstrap peers or a DHT."""
        return self._relay_manager.relays() if self._relay_manager is not None else []

    async def discover_relays(self) -> list[RelayInfo]:
        """Look for relays now (the configured and bootstrap peers, provider records of the
        relay key, a random walk), measure them and hold the best; returns :meth:`relays`."""
        if self._relay_manager is None:
            raise ConfigError("relay discovery needs relays, bootstrap peers or a DHT in the NetworkConfig "
                              "(and relay_reservations > 0)")
        return await self._relay_manager.discover()

    async def connect(self, addr: str | Multiaddr) -> PeerId:
        """Dial ``addr``; returns the peer's authenticated ID.

        ``<relay>/p2p-circuit/webrtc/p2p/<peer>`` dials through the relay, then upgrades to a
        direct WebRTC connection as :meth:`create_webrtc_data_channel` does: waiting at most
        ``WebRTCSettings.upgrade_wait`` (not at all while the peer is backed off), the attempts
        going on in the background; the relayed connection serves meanwhile, or for good.
        """
        maddr = Multiaddr(addr)
        protos = maddr.protocols()
        if "webrtc" in protos and self._webrtc_unavailable is not None:
            raise WebRTCUnavailable(self._webrtc_unavailable)  # a /webrtc address asks for WebRTC
        if "webrtc" in protos and "p2p-circuit" in protos and self._webrtc is not None:
            relayed = Multiaddr(str(maddr).replace("/p2p-circuit/webrtc/", "/p2p-circuit/"))
            conn = await self._host.dial(relayed)
            await self._webrtc.upgrade_within(conn.remote_peer)
            return conn.remote_peer
        conn = await self._host.dial(maddr)
        assert conn.remote_peer is not None
        return conn.remote_peer

    def keep_alive(self, peer_or_addr: PeerId | str | Multiaddr) -> None:
        """Keep this peer connected: redial it (jittered backoff) whenever it disconnects."""
        if isinstance(peer_or_addr, PeerId) or not str(peer_or_addr).startswith("/"):
            self._reconnector.keep_alive(PeerId.coerce(peer_or_addr))
            return
        maddr = Multiaddr(peer_or_addr)
        peer_text = maddr.value_for("p2p")
        if peer_text is None:
            raise ConfigError(f"a keep-alive address needs /p2p/<peer>: {maddr}")
        self._reconnector.keep_alive(PeerId.from_string(peer_text), [maddr])

    async def create_webrtc_data_channel(self, peer: PeerId | str, wait: float | None = None) -> Connection:
        """Make sure a direct WebRTC connection to ``peer`` is being made: reach it (through a
        shared relay if need be), then upgrade, waiting at most ``wait`` seconds
        (``WebRTCSettings.upgrade_wait``; attempts go on in the background after that; a peer
        whose attempts failed is retried only after ``WebRTCSettings.retry_after``). Returns the
        best connection to it afterwards: the WebRTC one, or the relayed one meanwhile (the
        session moves to WebRTC by itself once it is up)."""
        if self._webrtc is None:
            if self._webrtc_unavailable is not None:
                raise WebRTCUnavailable(self._webrtc_unavailable)
            raise ConfigError("WebRTC is disabled in this NetworkConfig")
        peer = PeerId.coerce(peer)
        await self._host.connection_to(peer)
        conn = await self._webrtc.upgrade_within(peer, wait)
        return conn if conn is not None else await self._host.connection_to(peer)  # the circuit may have ended

    async def ping(self, peer: PeerId | str) -> float:
        return await self._host.ping(peer)

    async def identify(self, peer: PeerId | str, timeout: float | None = None) -> IdentifyInfo:
        return await self._host.identify(peer, timeout)

    def connections(self, peer: PeerId | str | None = None) -> list[Connection]:
        return self._host.connections(peer)

    def peers(self) -> list[PeerId]:
        return self._host.peers()

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        self._host.set_stream_handler(protocol, handler)

    async def new_stream(self, peer: PeerId | str, protocols: Iterable[str] | str) -> Stream:
        if isinstance(protocols, str):
            protocols = [protocols]
        return await self._host.new_stream(peer, protocols)

    def on(self, event: str, callback: Callable) -> None:
        self._host.on(event, callback)

    # -- DarkSwap messaging ---------------------------------------------------------------------
    def _messaging_service(self) -> MessagingService:
        if self._messaging is None:
            raise ConfigError("DarkSwap messaging is off in this NetworkConfig (messaging=None)")
        return self._messaging

    async def send_message(self, peer: PeerId | str, data: bytes, timeout: float | None = None) -> int:
        """Queue ``data`` for ``peer`` on its messaging session (batched, compressed, resent after
        reconnects: delivered exactly once, in order). Returns once queued; waits while the
        bounded send buffer is full. Returns the message's sequence number."""
        return await self._messaging_service().send(peer, data, timeout)

    async def receive_message(self, peer: PeerId | str, timeout: float | None = None) -> bytes:
        """The next message from ``peer``, in order."""
        return await self._messaging_service().receive(peer, timeout)

    async def wait_delivered(self, peer: PeerId | str, seq: int, timeout: float = 30.0) -> None:
        """Wait until ``peer`` acknowledged every message up to ``seq``."""
        await self._messaging_service().wait_acked(peer, seq, timeout)

    async def send_webrtc_message(self, peer: PeerId | str, data: bytes, timeout: float | None = None) -> int:
        """:meth:`send_message`, and make the path direct: an upgrade to WebRTC starts in the
        background when there is none (and the peer is not backed off); the message never waits
        for it. The session carries on over the relayed path and moves once WebRTC is up."""
        peer = PeerId.coerce(peer)
        seq = await self.send_message(peer, data, timeout)  # reaches the peer first (one dial)
        if self._webrtc is not None:
            self._webrtc.upgrade_in_background(peer)
        return seq

    async def receive_webrtc_message(self, peer: PeerId | str, timeout: float | None = None) -> bytes:
        return await self.receive_message(peer, timeout)

    # -- rendezvous: find peers by a shared name ------------------------------------------------
    async def register(self, namespace: str, ttl: float | None = None, timeout: float | None = None) -> float:
        """Announce this node under ``namespace`` (a room, a market) on every relay we hold a
        reservation on (their rendezvous service, ``/rendezvous/1.0.0``), with our addresses
        (the ``/p2p-circuit`` ones included). Kept registered — refreshed before the TTL ends and
        whenever a reservation comes back — until :meth:`unregister`. Returns the TTL granted
        (s). Raises ``RendezvousError`` when no relay accepted (none reserved yet, refused)."""
        ttl_s = None if ttl is None else max(1, round(ttl))
        return float(await self._bounded(self._rendezvous.register(namespace, ttl_s), timeout))

    async def unregister(self, namespace: str, timeout: float | None = None) -> None:
        await self._bounded(self._rendezvous.unregister(namespace), timeout)

    async def discover(
        self, namespace: str, limit: int | None = None, timeout: float | None = None
    ) -> list[DiscoveredPeer]:
        """The other peers registered under ``namespace`` on our relays (never ourselves):
        ``DiscoveredPeer(peer, addrs, ttl)``. Their addresses are remembered, so
        ``connect``/``send_message`` by peer ID reach them afterwards."""
        return await self._bounded(self._rendezvous.discover(namespace, limit), timeout)

    async def _bounded(self, coro, timeout: float | None):
        limit = self._host.config.dial_timeout * 2 if timeout is None else timeout
        try:
            return await asyncio.wait_for(coro, limit)
        except TimeoutError:
            raise Timeout(f"the rendezvous request did not finish within {limit:g}s") from None

    async def close(self) -> None:
        await self._rendezvous.close()
        if self._messaging is not None:
            await self._messaging.close()
        await self._reconnector.close()
        if self._monitor is not None:
            await self._monitor.close()
        if self._webrtc is not None:
            await self._webrtc.close()
            for c in [c for c in self._host.connections() if c.transport == WEBRTC]:
                await c.close()
        if self._relay_manager is not None:
            await self._relay_manager.close()
        if self._dht is not None:
            await self._dht.close()
        if self._reservations is not None:
            await self._reservations.close()
        await self._host.close()

    async def __aenter__(self) -> Network:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
