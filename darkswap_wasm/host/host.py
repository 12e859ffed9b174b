"""The host: transports in, upgraded connections out; streams routed to protocol handlers.

Also runs the two services every libp2p node runs: ping (``/ipfs/ping/1.0.0``) and identify
(``/ipfs/id/1.0.0`` and its push variant).

Inbound connections are admitted by :class:`~..policy.conn_limits.ConnectionLimits` before any
byte is read (pending per IP and in total, established per IP and per peer, handshakes per IP);
with ``HostConfig.idle_timeout`` an established connection without open streams (and that no
keep-alive source claims, see :meth:`Host.add_keep_alive`) is closed after that long.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from .. import __version__, events
from ..errors import (
    ConfigError,
    DarkSwapError,
    LimitExceeded,
    ListenError,
    NegotiationError,
    PeerUnreachable,
    ProtocolError,
    ResourceLimitExceeded,
    Timeout,
    UsageError,
)
from ..identity import Identity, PeerId
from ..policy.conn_limits import ConnectionLimits, ConnLimitsConfig, IdleTimer
from ..protocols import identify, multistream, ping
from ..tasks import spawn
from ..transports.base import Listener, RawConnection, Transport
from ..wire.multiaddr import Multiaddr
from .connection import Connection, ConnectionConfig
from .identify import IdentifyService, remember
from .muxer import MuxedConnection, rank
from .ratelog import RefusalLog
from .stream import Stream

log = logging.getLogger(__name__)
refusals = RefusalLog(log)  # inbound streams refused over the handler budgets
conn_refusals = RefusalLog(log, level=logging.INFO)  # inbound connections refused or closed at a limit

StreamHandler = Callable[[Stream], Awaitable[None]]
AGENT_VERSION = f"darkswap-wasm/{__version__}"


@dataclass(frozen=True)
class HostConfig:
    dial_timeout: float = 10.0  # transport dial + upgrade
    negotiate_timeout: float = 10.0  # multistream-select on a new stream
    ping_timeout: float = 10.0
    identify_timeout: float = 10.0
    max_connections: int = 256  # live connections, all peers; inbound over it are refused
    max_inbound_stream_handlers: int = 1024  # handler tasks running at once on this host
    max_inbound_stream_handlers_per_peer: int = 128  # ... of which one peer may hold (one peer
    # cannot take the host's: idle ping streams from 3 peers used to lock everyone out)
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    agent_version: str = AGENT_VERSION
    limits: ConnLimitsConfig = field(default_factory=ConnLimitsConfig)  # per IP / peer, pending, handshakes
    idle_timeout: float | None = None  # seconds an established connection may go without an open
    # stream (or a keep-alive source's claim) before it is closed; None: never. Off for nodes (their
    # connections are their own choice); the relay CLI sets 120 s (its connections are strangers')

    def __post_init__(self) -> None:
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise ConfigError("HostConfig.idle_timeout must be > 0 seconds (or None: never)")


def remote_ip(addr: Multiaddr) -> str | None:
    """The IP a connection comes from, for the per-IP limits; ``None`` for a relayed connection
    (its address is the relay's, shared by every peer behind it)."""
    if "p2p-circuit" in addr.protocols():
        return None
    return addr.value_for("ip4") or addr.value_for("ip6")


class _Idle:
    """One established connection's idle rule and its one timer."""

    __slots__ = ("rule", "timer")

    def __init__(self, rule: IdleTimer) -> None:
        self.rule = rule
        self.timer: asyncio.TimerHandle | None = None


def _known(event: str) -> None:
    if event not in events.HOST_EVENTS:
        raise UsageError(f"unknown host event {event!r}; one of {', '.join(sorted(events.HOST_EVENTS))}")


class Host:
    def __init__(self, identity: Identity, transports: Iterable[Transport], config: HostConfig) -> None:
        self.identity = identity
        self.peer_id = identity.peer_id
        self.config = config
        self._transports = list(transports)
        self._listeners: list[Listener] = []
        self._handlers: dict[str, StreamHandler] = {}
        self._conns: dict[PeerId, list[Connection]] = {}
        self._pending: dict[RawConnection, Connection] = {}  # upgrades in progress, both directions
        self._limits = ConnectionLimits(config.limits)
        self._idle: dict[object, _Idle] = {}  # established connection -> its idle rule and timer
        self._keep_alive: list[Callable[[Connection], bool]] = []
        self.idle_closed = 0  # connections closed by the idle timeout (for metrics)
        self._tasks: set[asyncio.Task] = set()
        self._listeners_cb: dict[str, list[Callable]] = {}
        self._addr_sources: list[Callable[[], list[Multiaddr]]] = []
        self._route_sources: list[Callable[[PeerId], list[Multiaddr]]] = []
        self._dialed: dict[PeerId, Multiaddr] = {}  # the address each peer was last reached at
        self._closed = False
        self._handler_slots = asyncio.Semaphore(config.max_inbound_stream_handlers)
        self._handlers_held: dict[PeerId, int] = {}  # running inbound handlers per peer
        self.set_stream_handler(ping.PROTOCOL_ID, self._handle_ping)
        self._identify = IdentifyService(self, timeout=config.identify_timeout, cap=self._memory)

    # -- events ------------------------------------------------------------------------------
    def on(self, event: str, callback: Callable) -> None:
        """Subscribe to a host event: ``peer:connect`` / ``peer:disconnect`` / ``peer:identify``,
        ``connection:open`` / ``connection:close``, and those of the services (``relay:*``,
        ``peer:unreachable``); :data:`~darkswap_wasm.events.HOST_EVENTS` lists them all, and any
        other name is a :class:`UsageError` (a misspelt event would never fire)."""
        _known(event)
        self._listeners_cb.setdefault(event, []).append(callback)

    def emit(self, event: str, *args) -> None:
        """Tell every listener of ``event``; a failing callback is logged, the others still run.
        Services built on the host (relay client, monitor, rendezvous) emit their events here."""
        _known(event)
        for cb in self._listeners_cb.get(event, ()):
            try:
                cb(*args)
            except Exception:
                log.exception("%s callback failed", event)

    # -- listening ---------------------------------------------------------------------------
    async def listen(self, addrs: Iterable[str | Multiaddr]) -> None:
        for a in addrs:
            addr = Multiaddr(a)
            transport = next((t for t in self._transports if t.can_listen(addr)), None)
            if transport is None:
                raise ConfigError(f"no transport can listen on {addr}")
            try:
                self._listeners.append(await transport.listen(addr, self._on_inbound))
            except OSError as exc:  # one place for every transport: the address and the reason
                raise ListenError.from_os_error(addr, exc) from exc

    def listen_addrs(self) -> list[Multiaddr]:
        """Full multiaddrs (ending in ``/p2p/<us>``): bound listeners, then circuit addresses."""
        suffix = Multiaddr(f"/p2p/{self.peer_id}")
        addrs = [a.encapsulate(suffix) for lst in self._listeners for a in lst.multiaddrs]
        for source in self._addr_sources:
            addrs.extend(source())
        return addrs

    def add_listen_addr_source(self, source: Callable[[], list[Multiaddr]]) -> None:
        """``source()`` gives more full addresses we are reachable at (e.g. relay reservations)."""
        self._addr_sources.append(source)

    def add_route_source(self, source: Callable[[PeerId], list[Multiaddr]]) -> None:
        """``source(peer)`` gives addresses to try for a peer we know no address of."""
        self._route_sources.append(source)

    def add_transport(self, transport: Transport) -> None:
        self._transports.append(transport)

    async def _on_inbound(self, raw: RawConnection) -> None:
        try:
            await self.upgrade_inbound(raw)
        except DarkSwapError as exc:
            log.debug("inbound connection from %s failed: %s", raw.remote_addr, exc)

    async def upgrade_inbound(self, raw: RawConnection, expected_peer: PeerId | None = None) -> Connection:
        """Secure and mux a connection someone opened to us (a listener's, or a relayed one).

        Admitted by the connection limits first: over one, the raw connection is closed at once,
        before any byte is read or any Noise work is done."""
        if self._closed:
            await raw.close()
            raise PeerUnreachable("host is closed")
        if self._count_connections() >= self.config.max_connections:
            conn_refusals.refused("host:max_connections", "inbound connection from %s refused: %d connections "
                                  "(HostConfig.max_connections)", raw.remote_addr, self.config.max_connections)
            await raw.close()
            raise PeerUnreachable("connection limit reached")
        ip = remote_ip(raw.remote_addr)
        verdict = self._limits.inbound(raw, ip, time.monotonic())
        if not verdict.admitted:
            conn_refusals.refused(f"host:{verdict.refused}", "inbound connection from %s refused before the "
                                  "handshake: over the %s limit (RESOURCE_LIMIT_EXCEEDED)", ip, verdict.refused)
            await raw.close()
            raise ResourceLimitExceeded(f"inbound connection from {ip} refused: {verdict.refused} limit")
        for old in verdict.evict:
            conn_refusals.refused("host:pending_total", "%d handshakes in progress (the pending limit): closed "
                                  "the oldest for a new one", self.config.limits.max_pending)
            pending = self._pending.get(old)
            self._spawn(pending.close() if pending is not None else old.close())
        return await self._upgrade(raw, is_initiator=False, expected_peer=expected_peer, pending_key=raw)

    # -- connections -----------------------------------------------------------------------------
    def _count_connections(self) -> int:
        return sum(len(v) for v in self._conns.values()) + len(self._pending)

    async def _upgrade(
        self, raw: RawConnection, *, is_initiator: bool, expected_peer: PeerId | None, pending_key=None
    ) -> Connection:
        try:
            conn = Connection(
                raw,
                self.identity,
                is_initiator=is_initiator,
                expected_peer=expected_peer,
                config=self.config.connection,
                on_stream=self.accept_stream,
                on_closed=self.connection_closed,
            )
            self._pending[raw] = conn
            try:
                await conn.start()
            finally:
                self._pending.pop(raw, None)
            assert conn.remote_peer is not None
            if conn.closed:
                raise PeerUnreachable(f"connection to {conn.remote_peer} closed during upgrade")
        except BaseException:
            if pending_key is not None:
                self._limits.closed(pending_key)
            raise
        self._register(conn, pending_key)
        return conn

    def add_connection(self, conn) -> None:
        """Register an established connection (upgraded here, or a WebRTC one) and identify its peer."""
        self._register(conn, None)

    def _register(self, conn, pending_key) -> None:
        peer = conn.remote_peer
        evict = self._limits.established(conn, peer, pending_key=pending_key, idle=self._is_idle)
        first = not self._conns.get(peer)
        self._conns.setdefault(peer, []).append(conn)
        if self.config.idle_timeout is not None:
            idle = self._idle[conn] = _Idle(IdleTimer(self.config.idle_timeout, time.monotonic()))
            idle.timer = asyncio.get_running_loop().call_later(self.config.idle_timeout, self._idle_check, conn)
        if first:
            self.emit("peer:connect", peer)
        self.emit("connection:open", conn)
        for old in evict:  # the peer's oldest idle connection makes room (its old one, before a reconnect)
            conn_refusals.refused("host:connections_per_peer", "%s has %d connections (the per-peer limit): "
                                  "closing its oldest idle one for the new one", peer,
                                  self.config.limits.max_connections_per_peer)
            self._spawn(old.close())
        self._spawn(self._identify.exchange(conn))

    @property
    def connection_limits(self) -> ConnectionLimits:
        """The inbound connection limits' counts (``pending``, ``connections_from(ip)``,
        ``connections_of(peer)``) and ``refused`` per kind, for metrics. Read only."""
        return self._limits

    # -- idle connections ---------------------------------------------------------------------------
    def add_keep_alive(self, busy: Callable[[Connection], bool]) -> None:
        """``busy(conn)`` True: that connection is not idle although no stream is open on it (a
        relay's reservation lives on a connection without streams). Asked only when an idle
        timer runs out, so it should be cheap but need not be instant."""
        self._keep_alive.append(busy)

    def _is_idle(self, conn) -> bool:
        if conn.num_streams:
            return False
        for busy in self._keep_alive:
            try:
                if busy(conn):
                    return False
            except Exception:
                log.exception("keep-alive source failed")
        return True

    def _idle_check(self, conn) -> None:
        """The connection's one idle timer ran out: close it if no stream was open for the whole
        timeout (the connection says when its last stream ended), else sleep until it could be."""
        idle = self._idle.get(conn)
        if idle is None or conn.closed or self._closed:
            return
        since = conn.idle_since
        if since is not None:
            idle.rule.activity(since)  # its last stream ended then: the timeout counts from there
        now = time.monotonic()
        if idle.rule.expired(now, busy=not self._is_idle(conn)):
            idle.timer = None
            self.idle_closed += 1
            log.debug("closing %r: no open stream for %gs (HostConfig.idle_timeout)", conn, idle.rule.timeout)
            self._spawn(conn.close())
            return
        delay = max(0.0, idle.rule.deadline - now)
        idle.timer = asyncio.get_running_loop().call_later(delay, self._idle_check, conn)

    def connection_closed(self, conn: Connection) -> None:
        """A connection registered with :meth:`add_connection` ended (its ``on_closed``)."""
        self._limits.closed(conn)
        idle = self._idle.pop(conn, None)
        if idle is not None and idle.timer is not None:
            idle.timer.cancel()
        peer = conn.remote_peer
        if peer is None:
            return
        conns = self._conns.get(peer)
        if conns and conn in conns:
            conns.remove(conn)
            self.emit("connection:close", conn)
            if not conns:
                del self._conns[peer]
                self.emit("peer:disconnect", peer)

    def connections(self, peer: PeerId | str | None = None) -> list[MuxedConnection]:
        """Live connections, best first: direct (WebRTC, TCP, WS) before relayed."""
        if peer is None:
            conns = [c for cs in self._conns.values() for c in cs if not c.closed]
        else:
            conns = [c for c in self._conns.get(PeerId.coerce(peer), []) if not c.closed]
        return sorted(conns, key=rank)

    def peers(self) -> list[PeerId]:
        return [p for p, cs in self._conns.items() if cs]

    async def dial(self, addr: str | Multiaddr) -> Connection:
        maddr = Multiaddr(addr)
        peer_text = maddr.value_for("p2p") if maddr.protocols()[-1:] == ["p2p"] else None
        expected = PeerId.from_string(peer_text) if peer_text else None
        if expected == self.peer_id:
            raise ConfigError("refusing to dial ourselves")
        if expected is not None:
            for c in self.connections(expected):
                if c.remote_addr == maddr.without_p2p():
                    return c
        transport = next((t for t in self._transports if t.can_dial(maddr)), None)
        if transport is None:
            raise PeerUnreachable(f"no transport can dial {maddr}")
        if self._count_connections() >= self.config.max_connections:
            raise LimitExceeded(f"connection budget of {self.config.max_connections} reached (HostConfig)")
        try:
            raw = await asyncio.wait_for(transport.dial(maddr), self.config.dial_timeout)
        except TimeoutError:
            raise Timeout(f"dialing {maddr} timed out after {self.config.dial_timeout:g}s") from None
        except DarkSwapError as exc:
            raise PeerUnreachable(f"cannot reach {maddr}: {exc}") from exc
        conn = await self._upgrade(raw, is_initiator=True, expected_peer=expected)
        peer = conn.remote_peer
        reached = maddr if expected is not None else maddr.encapsulate(f"/p2p/{peer}")
        remember(self._dialed, peer, reached, self._memory())
        return conn

    def _memory(self) -> int:
        """How many peers' answers and addresses to remember (oldest out first)."""
        return 4 * self.config.max_connections

    async def connection_to(self, peer: PeerId | str) -> Connection:
        peer = PeerId.coerce(peer)
        conns = self.connections(peer)
        if conns:
            return conns[0]
        info = self._identify.known(peer)
        candidates = [self._dialed[peer]] if peer in self._dialed else []  # what worked last, first
        candidates += [a.encapsulate(f"/p2p/{peer}") for a in (info.listen_addrs if info else ())]
        for source in self._route_sources:
            candidates.extend(source(peer))
        errors = []
        for addr in dict.fromkeys(candidates):  # each address once, in order of preference
            try:
                return await self.dial(addr)
            except DarkSwapError as exc:
                text = str(exc)  # dial's errors name the address already; others get it here
                errors.append(text if str(addr.without_p2p()) in text else f"{addr}: {text}")
        detail = "; ".join(errors) if errors else "no known address"
        raise PeerUnreachable(f"not connected to {peer} and no address reaches it ({detail})")

    # -- streams -------------------------------------------------------------------------------
    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve inbound streams of ``protocol`` with ``handler(stream)``.

        When the handler returns, the host tidies up what it left: a stream whose writing half it
        closed is closed for reading too (nothing more is buffered or credited, the muxer forgets
        it); a stream it never used at all is reset. A handler that hands the stream to a task
        and returns keeps it open by using it first or by calling ``stream.claim()``.
        """
        self._handlers[protocol] = handler

    def remove_stream_handler(self, protocol: str) -> None:
        self._handlers.pop(protocol, None)

    def protocols(self) -> list[str]:
        return list(self._handlers)

    async def new_stream(self, peer: PeerId | str, protocols: Iterable[str]) -> Stream:
        conn = await self.connection_to(peer)
        return await self.new_stream_on(conn, protocols)

    async def new_stream_on(self, conn: Connection, protocols: Iterable[str]) -> Stream:
        stream = await conn.open_stream()
        dialer = multistream.Dialer(protocols)
        try:
            await asyncio.wait_for(self._negotiate(stream, dialer), self.config.negotiate_timeout)
        except TimeoutError:
            await stream.reset()
            raise Timeout("protocol negotiation timed out") from None
        except DarkSwapError:
            await stream.reset()
            raise
        return stream

    async def _negotiate(self, stream: Stream, machine: multistream.Dialer | multistream.Listener) -> None:
        out = machine.data_to_send()
        if out:
            await stream.write(out)
        while not machine.done:
            data = await stream.read()
            if not data:
                raise NegotiationError("stream ended during protocol negotiation")
            machine.receive_data(data)
            out = machine.data_to_send()
            if out:
                await stream.write(out)
        stream.protocol = machine.protocol
        stream.unread(machine.leftover())

    def accept_stream(self, stream: Stream) -> None:
        """An inbound stream of one of our connections (its ``on_stream``): negotiate its
        protocol and run the handler, within the host's handler budget."""
        self._spawn(self._serve_stream(stream))

    async def _serve_stream(self, stream: Stream) -> None:
        peer = stream.conn.remote_peer
        held = self._handlers_held.get(peer, 0)
        if self._handler_slots.locked() or held >= self.config.max_inbound_stream_handlers_per_peer:
            kind = "host:handlers" if self._handler_slots.locked() else "host:handlers_per_peer"
            refusals.refused(kind, "inbound stream refused: %s handlers busy (RESOURCE_LIMIT_EXCEEDED)",
                             "all the host's" if kind == "host:handlers" else f"{peer}'s")
            await stream.reset()
            return
        self._handlers_held[peer] = held + 1
        try:
            await self._run_handler(stream)
        finally:
            left = self._handlers_held[peer] - 1
            if left:
                self._handlers_held[peer] = left
            else:
                del self._handlers_held[peer]

    async def _run_handler(self, stream: Stream) -> None:
        async with self._handler_slots:
            listener = multistream.Listener(lambda p: p in self._handlers)
            listener.set_listing(self.protocols)
            try:
                await asyncio.wait_for(self._negotiate(stream, listener), self.config.negotiate_timeout)
            except (TimeoutError, DarkSwapError) as exc:
                log.debug("inbound stream negotiation failed: %r", exc)
                await stream.reset()
                return
            handler = self._handlers.get(stream.protocol or "")
            if handler is None:
                await stream.reset()
                return
            uses = stream.uses
            try:
                await handler(stream)
                if stream.write_closed:  # done with it: drop what the peer still sends
                    await stream.close_read()
                elif stream.uses == uses:  # never touched: nobody will read it
                    log.debug("handler for %s left its stream unused: reset", stream.protocol)
                    await stream.reset()
            except DarkSwapError as exc:
                log.debug("handler for %s ended with %r", stream.protocol, exc)
                await stream.reset()
            except Exception:
                log.exception("handler for %s failed", stream.protocol)
                await stream.reset()

    def _spawn(self, coro) -> None:
        task = spawn(coro, "host task")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- ping ---------------------------------------------------------------------------------
    async def _handle_ping(self, stream: Stream) -> None:
        responder = ping.PingResponder()
        while True:
            data = await stream.read(timeout=self.config.connection.io_timeout)
            if not data:
                await stream.close()
                return
            out = responder.receive_data(data)
            if out:
                await stream.write(out)

    async def ping(self, peer: PeerId | str) -> float:
        """Round trip of one ``/ipfs/ping/1.0.0`` exchange, in seconds."""
        return await self.ping_on(await self.connection_to(peer))

    async def ping_on(self, conn: Connection) -> float:
        """Round trip of one ``/ipfs/ping/1.0.0`` exchange on that connection."""
        stream = await self.new_stream_on(conn, [ping.PROTOCOL_ID])
        try:
            dialer = ping.PingDialer(os.urandom(ping.PING_LENGTH))
            start = time.monotonic()
            await stream.write(dialer.payload)
            while True:
                data = await stream.read(timeout=self.config.ping_timeout)
                if not data:
                    raise ProtocolError("ping stream ended before the echo")
                if dialer.receive_data(data):
                    rtt = time.monotonic() - start
                    break
            await stream.close()
            return rtt
        except BaseException:
            await stream.reset()
            raise

    # -- identify ---------------------------------------------------------------------------------
    async def identify(self, peer: PeerId | str, timeout: float | None = None) -> identify.IdentifyInfo:
        """What identify told us about ``peer`` (waits for the exchange on a new connection)."""
        return await self._identify.identify(PeerId.coerce(peer), timeout)

    # -- shutdown ------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for lst in self._listeners:
            await lst.close()
        self._listeners.clear()
        for idle in self._idle.values():
            if idle.timer is not None:
                idle.timer.cancel()
        for conn in list(self._pending.values()) + self.connections():
            await conn.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
