"""Rendezvous (``/rendezvous/1.0.0``) over the host: the point's server and a node's client.

The relay runs :class:`RendezvousServer`: peers that hold a reservation on it register their
(relayed) addresses under a namespace — a DarkSwap room, a market — and others discover them
there, so two browser tabs find each other from a shared name alone. The registry itself is the
sans-I/O :class:`~..protocols.rendezvous.Registry`; here is only the stream handling. A peer's
registrations end with its last connection to the point (its ``/p2p-circuit`` addresses through
this relay end with its reservation anyway), or when their TTL runs out.

A node uses :class:`RendezvousClient` through ``Network.register`` / ``unregister`` /
``discover``: it registers on every rendezvous point it is given (the relays it holds a
reservation on), refreshes each registration at ¾ of its TTL and again whenever a reservation
comes (back) — our addresses changed, or the relay restarted and forgot us — and remembers the
addresses it discovered (bounded) as a route, so ``connect(peer_id)`` reaches a discovered peer
through a relay we do not share with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ConfigError, DarkSwapError, DecodeError, ProtocolError
from ..identity import PeerId
from ..identity.envelope import EnvelopeError
from ..identity.peer_record import MAX_RECORD_ADDRS, seal_peer_record
from ..protocols.rendezvous import (
    PROTOCOL_ID,
    Discover,
    DiscoverResponse,
    MessageReader,
    Register,
    RegisterResponse,
    Registry,
    RendezvousConfig,
    RendezvousError,
    Status,
    Unregister,
    encode_message,
    registration_peer,
)
from ..tasks import spawn
from ..wire.multiaddr import Multiaddr
from .host import Host
from .stream import Stream
from .wakeup import Wakeup

log = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_AT = 0.75  # of the granted TTL
RETRY_AFTER = 10.0  # s, after a failed refresh
MAX_REQUESTS_PER_STREAM = 64  # a client opens a stream per request; a few pipelined are fine


class RendezvousServer:
    """Answers ``/rendezvous/1.0.0`` requests from ``registry`` (the relay runs one)."""

    def __init__(self, host: Host, config: RendezvousConfig | None = None, *, request_timeout: float = 10.0) -> None:
        self.host = host
        self.registry = Registry(config)
        self.request_timeout = request_timeout
        host.set_stream_handler(PROTOCOL_ID, self._handle)
        host.on("peer:disconnect", self._on_disconnect)

    def _on_disconnect(self, peer: PeerId) -> None:
        gone = self.registry.unregister_peer(peer)
        if gone:
            log.debug("dropped %d rendezvous registrations of %s (disconnected)", gone, peer)

    async def _handle(self, stream: Stream) -> None:
        """Requests until the client closes its side; an idle, malformed or oversized request
        ends the stream (the host resets it for the DarkSwapError)."""
        peer = stream.remote_peer
        reader = MessageReader()
        served = 0
        while served < MAX_REQUESTS_PER_STREAM:
            data = await stream.read(timeout=self.request_timeout)
            if not data:
                break
            for msg in reader.receive_data(data):
                if served >= MAX_REQUESTS_PER_STREAM:  # one read may carry many: the cap holds per request
                    break
                reply = self.registry.handle(peer, msg, time.monotonic())
                served += 1
                if reply is not None:
                    await stream.write(encode_message(reply))
        await stream.close()


@dataclass(frozen=True)
class DiscoveredPeer:
    """A registration found by ``discover``: the peer, its addresses (full, ending in
    ``/p2p/<peer>``; for a browser peer its ``/p2p-circuit`` ones) and the TTL left (s)."""

    peer: PeerId
    addrs: tuple[Multiaddr, ...]
    ttl: int


class RendezvousClient:
    """Register, refresh, unregister and discover on the points ``points()`` names."""

    def __init__(
        self,
        host: Host,
        points: Callable[[], list[PeerId]],
        *,
        request_timeout: float = 10.0,
        max_remembered: int = 1024,
    ) -> None:
        self.host = host
        self._points = points
        self.request_timeout = request_timeout
        self.max_remembered = max_remembered
        self._registered: dict[str, int | None] = {}  # namespace -> the TTL asked for (None: default)
        self._due: dict[tuple[str, PeerId], float] = {}  # (namespace, point) -> refresh at (monotonic)
        self._known: dict[PeerId, tuple[Multiaddr, ...]] = {}  # discovered addresses, oldest first
        self._seq = 0
        self._wakeup = Wakeup()
        self._task: asyncio.Task | None = None
        self._closed = False
        host.add_route_source(self._routes)
        host.on("relay:reserved", self._on_reserved)

    # -- public -----------------------------------------------------------------------
    def registered(self) -> list[str]:
        return list(self._registered)

    async def register(self, ns: str, ttl: int | None = None) -> int:
        """Register under ``ns`` on every point; the smallest TTL granted (s). Refreshed until
        :meth:`unregister`. Raises :class:`RendezvousError` when no point accepted."""
        granted = await self._on_every_point(lambda p: self._register_at(p, ns, ttl), f"accepted {ns!r}")
        self._registered[ns] = ttl
        self._ensure_task()
        return min(granted)

    async def unregister(self, ns: str) -> None:
        """Stop refreshing ``ns`` and tell every point (best effort: a point that cannot be
        told drops the registration at its TTL or when we disconnect)."""
        self._registered.pop(ns, None)
        for key in [k for k in self._due if k[0] == ns]:
            del self._due[key]
        await asyncio.gather(*(self._unregister_at(p, ns) for p in self._points()), return_exceptions=True)

    async def discover(self, ns: str, limit: int | None = None) -> list[DiscoveredPeer]:
        """Other peers registered under ``ns`` on the points (never ourselves), merged by peer.
        Raises :class:`RendezvousError` when no point answered."""
        answers = await self._on_every_point(lambda p: self._discover_at(p, ns, limit), f"answered for {ns!r}")
        found: dict[PeerId, DiscoveredPeer] = {}
        for answer in answers:
            for reg in answer.registrations:
                try:
                    record = registration_peer(reg)
                except (DecodeError, EnvelopeError, ValueError) as exc:
                    log.debug("skipping a registration whose record does not check out: %s", exc)
                    continue
                if record.peer_id == self.host.peer_id:
                    continue
                addrs = tuple(a.encapsulate(f"/p2p/{record.peer_id}") for a in record.addrs)
                prev = found.get(record.peer_id)
                if prev is not None:
                    addrs = tuple(dict.fromkeys(prev.addrs + addrs))
                ttl = max(reg.ttl or 0, prev.ttl if prev else 0)
                found[record.peer_id] = DiscoveredPeer(record.peer_id, addrs, ttl)
        out = list(found.values())
        if limit:
            out = out[:limit]
        for p in out:
            self._remember(p.peer, p.addrs)
        return out

    async def close(self) -> None:
        self._closed = True
        self._registered.clear()
        self._due.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- requests ---------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("the rendezvous client is closed")

    async def _on_every_point(self, ask: Callable[[PeerId], Awaitable[T]], what: str) -> list[T]:
        """``ask`` every point at once; the answers of those that gave one. Raises
        :class:`RendezvousError` naming each point's failure when none did (with a point's
        refusal status, if one refused)."""
        self._check_open()
        points = self._points()
        if not points:
            raise RendezvousError("no rendezvous point (no relay reservation yet)")
        results = await asyncio.gather(*(ask(p) for p in points), return_exceptions=True)
        failures = [(p, r) for p, r in zip(points, results, strict=True) if isinstance(r, BaseException)]
        for _p, r in failures:
            if not isinstance(r, DarkSwapError):
                raise r  # a bug (or a cancellation), not a point's answer
        if len(failures) == len(points):
            refused = [r for _p, r in failures if isinstance(r, RendezvousError) and r.status is not None]
            detail = "; ".join(f"{p}: {r}" for p, r in failures)
            status = refused[0].status if refused else None
            raise RendezvousError(f"no rendezvous point {what}: {detail}", status) from failures[0][1]
        return [r for r in results if not isinstance(r, BaseException)]

    async def _request(self, point: PeerId, msg, expect: type | None):
        stream = await self.host.new_stream(point, [PROTOCOL_ID])
        try:
            await stream.write(encode_message(msg))
            if expect is None:
                await stream.close()
                return None
            reader = MessageReader()
            while True:
                data = await stream.read(timeout=self.request_timeout)
                if not data:
                    raise ProtocolError(f"rendezvous point {point} closed the stream without an answer")
                got = reader.receive_data(data)
                if got:
                    break
            answer = got[0]
            if not isinstance(answer, expect):
                raise ProtocolError(f"rendezvous point {point} answered {type(answer).__name__}")
            await stream.close()
            return answer
        except BaseException:
            await stream.reset()
            raise

    def _record(self) -> bytes:
        addrs = [a for a in self.host.listen_addrs() if a.protocols()[-1:] == ["p2p"]][:MAX_RECORD_ADDRS]
        self._seq = max(self._seq + 1, time.time_ns() // 1000)  # grows across restarts too
        return seal_peer_record(self.host.identity, addrs, self._seq)

    async def _register_at(self, point: PeerId, ns: str, ttl: int | None) -> int:
        answer: RegisterResponse = await self._request(point, Register(ns, self._record(), ttl), RegisterResponse)
        if answer.status is not Status.OK:
            raise RendezvousError(
                f"rendezvous point {point} refused {ns!r}: {answer.status.name} {answer.status_text}".rstrip(),
                answer.status,
            )
        granted = int(answer.ttl or ttl or 0)
        if granted <= 0:
            raise ProtocolError(f"rendezvous point {point} accepted {ns!r} without a TTL")
        self._due[(ns, point)] = time.monotonic() + max(1.0, granted * REFRESH_AT)
        self._wakeup.set()
        return granted

    async def _unregister_at(self, point: PeerId, ns: str) -> None:
        try:
            await self._request(point, Unregister(ns), None)
        except DarkSwapError as exc:
            log.debug("could not unregister %r on %s: %s", ns, point, exc)

    async def _discover_at(self, point: PeerId, ns: str, limit: int | None) -> DiscoverResponse:
        answer: DiscoverResponse = await self._request(point, Discover(ns, limit), DiscoverResponse)
        if answer.status is not Status.OK:
            raise RendezvousError(
                f"rendezvous point {point} refused to list {ns!r}: {answer.status.name} {answer.status_text}".rstrip(),
                answer.status,
            )
        return answer

    # -- refresh ----------------------------------------------------------------------
    def _on_reserved(self, relay: PeerId) -> None:
        """A reservation came (back): our circuit addresses changed, or a restarted relay forgot
        us. Re-register every namespace on every point now."""
        if not self._registered or self._closed:
            return
        now = time.monotonic()
        for ns in self._registered:
            for point in {relay, *self._points()}:
                self._due[(ns, point)] = now
        self._ensure_task()
        self._wakeup.set()

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = spawn(self._refresh_loop(), "rendezvous refresh")

    async def _refresh_loop(self) -> None:
        while self._registered:
            now = time.monotonic()
            points = set(self._points())
            for key in [k for k in self._due if k[1] not in points or k[0] not in self._registered]:
                del self._due[key]  # a point we no longer hold a reservation on: _on_reserved brings it back
            for ns, point in [k for k, at in self._due.items() if at <= now]:
                try:
                    await self._register_at(point, ns, self._registered.get(ns))
                except DarkSwapError as exc:
                    log.info("refreshing rendezvous registration %r on %s failed: %s", ns, point, exc)
                    self._due[(ns, point)] = time.monotonic() + RETRY_AFTER
            self._wakeup.clear()
            nxt = min(self._due.values(), default=None)
            await self._wakeup.wait(None if nxt is None else max(0.0, nxt - time.monotonic()))

    # -- routes -----------------------------------------------------------------------
    def _remember(self, peer: PeerId, addrs: tuple[Multiaddr, ...]) -> None:
        self._known.pop(peer, None)
        self._known[peer] = addrs
        while len(self._known) > self.max_remembered:
            self._known.pop(next(iter(self._known)))

    def _routes(self, peer: PeerId) -> list[Multiaddr]:
        return list(self._known.get(peer, ()))
