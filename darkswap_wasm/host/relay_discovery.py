"""The relay manager: find relays, measure them, hold reservations on the best few, fail over
(issue 13 §2-4). Decisions are :mod:`darkswap_wasm.policy.relay_selection`'s; this module does
the I/O and keeps the timers.

Sources, merged into one entry per relay (:data:`~..policy.relay_selection.SOURCES`):

* ``config``: ``NetworkConfig.relays`` (their configured address stays the one we reserve on);
* ``bootstrap``: a bootstrap peer whose identify lists the circuit v2 hop protocol;
* ``provider``: provider records for :func:`~..protocols.kad.relay_key` (a DHT lookup);
* ``identify``: any other connected peer whose identify lists the hop protocol (js-libp2p
  relays are found this way too).

Measurement (a *probe*): a direct connection (dialed if need be), yamux pings for the RTT
(:meth:`MuxedConnection.ping`), ``/darkswap/relay-info/1.0.0`` for the load; each bounded by
:attr:`RelayManagerConfig.probe_timeout`. A failed probe, a failed reservation and a lost
reservation are failures: the relay is backed off and never retried in a loop.

Holding: :attr:`RelayManagerConfig.reservations` relays; every ``evaluate_interval`` (and at
once after a lost reservation or a newly found relay) the held relays and the others are
probed, then :meth:`RelaySelector.replacements` moves off a dead or much worse relay — the new
reservation is made (and its circuit address advertised) *before* the old one is released —
and :meth:`RelaySelector.select` fills free slots (power of two choices among the near-best).
Configured relays are held even while backed off when nothing else fills the slots, so a node
with one configured relay keeps trying it (the reservation manager's own backoff paces that).

Discovery rounds (a GET_PROVIDERS for the relay key, a random walk, the bootstrap peers) are
paced by :class:`~..policy.relay_selection.DiscoverySchedule`: never stopping for good while
too few relays are usable. One :class:`~.driver.Driver` arms the single timer: the next
evaluation, the end of a backoff, the next round.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from .. import events
from ..errors import ConfigError, DarkSwapError, PeerUnreachable
from ..identity import PeerId
from ..policy.relay_selection import DiscoverySchedule, RelaySelector, Replace, SelectionConfig
from ..protocols.circuit_v2 import HOP_PROTOCOL_ID
from ..protocols.kad import relay_key
from ..protocols.kad_routing import random_key
from ..tasks import TaskSet
from ..wire.multiaddr import Multiaddr
from .dht import DhtService, direct_addrs
from .driver import Driver
from .host import Host
from .muxer import MuxedConnection
from .relay_client import ReservationManager
from .relay_info import query_relay_info
from .wakeup import Wakeup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayManagerConfig:
    reservations: int = 2  # relays to hold reservations on (NetworkConfig.relay_reservations)
    evaluate_interval: float = 5.0  # seconds between re-evaluations (probe, replace, fill)
    probe_timeout: float = 3.0  # dial / ping / relay-info of one probe
    pings_per_probe: int = 3  # RTT samples of a relay's first probe (later probes: one)
    reserve_timeout: float = 15.0  # a new reservation must be up within this, or it failed
    max_probes: int = 8  # relays probed per evaluation (held ones first)
    max_relays: int = 64  # relays known at once; more found are ignored until some go
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    seed: int | None = None  # the selector's random source (tests); None: os entropy

    def __post_init__(self) -> None:
        if self.reservations < 0:
            raise ConfigError("RelayManagerConfig.reservations must not be negative")
        for name, value in (("evaluate_interval", self.evaluate_interval), ("probe_timeout", self.probe_timeout),
                            ("reserve_timeout", self.reserve_timeout)):
            if not value > 0:
                raise ConfigError(f"RelayManagerConfig.{name} must be positive")
        for name, count in (("pings_per_probe", self.pings_per_probe), ("max_probes", self.max_probes),
                            ("max_relays", self.max_relays)):
            if count < 1:
                raise ConfigError(f"RelayManagerConfig.{name} must be at least 1")


@dataclass(frozen=True)
class RelayInfo:
    """One known relay, as ``net.relays()`` shows it."""

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...]  # full addresses (…/p2p/<relay>), the one reserved on first
    rtt: float | None  # smoothed RTT in seconds (None: not measured yet)
    load: float | None  # fuller of reservations/circuits over their limits (None: not reported)
    failures: float  # decayed failure count
    score: float  # lower is better (policy.relay_selection)
    reserved: bool  # we hold a live reservation on it
    sources: frozenset[str] = frozenset()


class RelayManager:
    def __init__(
        self,
        host: Host,
        reservations: ReservationManager,
        config: RelayManagerConfig | None = None,
        *,
        dht: DhtService | None = None,
        configured=(),
        bootstrap=(),
        discover: bool = True,
    ) -> None:
        self.host = host
        self.reservations = reservations
        self.config = config or RelayManagerConfig()
        self.dht = dht
        self.discovering = discover  # False: only the configured relays (no identify, no rounds)
        rng = random.Random(self.config.seed)
        self.selector = RelaySelector(self.config.selection, rng)
        now = time.monotonic()
        self.schedule = DiscoverySchedule(self.selector, self.config.reservations, now)
        self._addrs: dict[PeerId, list[Multiaddr]] = {}  # without /p2p, preferred first
        self._configured: set[PeerId] = set()
        self._bootstrap: dict[PeerId, Multiaddr] = {}
        self._probed: set[PeerId] = set()  # had a first (multi-sample) probe
        self._last_probe: dict[PeerId, float] = {}
        self._eval_at: float | None = now
        self._evaluating = False
        self._round_running = False
        self._lock = asyncio.Lock()
        self._changed = Wakeup()  # a reservation came or went
        self._tasks = TaskSet()
        self._closed = False
        self.evaluations = 0
        for addr in configured:
            addr = Multiaddr(addr)
            peer = _peer_of(addr)
            self._configured.add(peer)
            self._know(peer, [addr], "config")
        for addr in bootstrap:
            addr = Multiaddr(addr)
            self._bootstrap[_peer_of(addr)] = addr
        self._driver = Driver(
            next_deadline=self._next_deadline,
            handle_timeout=self._on_timer,
            after=_nothing,
            on_error=lambda exc: log.error("relay manager timer failed: %r", exc),
            what="relay manager",
        )
        host.on(events.PEER_IDENTIFY, self._on_identify)
        host.on(events.RELAY_LOST, self._on_lost)
        host.on(events.RELAY_RESERVED, lambda relay: self._changed.set())

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._driver.rearm()

    async def close(self) -> None:
        self._closed = True
        self._driver.close()
        await self._tasks.close()

    # -- what we know ----------------------------------------------------------------------------
    def _know(self, peer: PeerId, addrs, source: str) -> bool:
        """Add or merge a relay; True when it is new."""
        if peer == self.host.peer_id:
            return False
        new = peer not in self.selector
        if new and len(self.selector) >= self.config.max_relays:
            return False
        self.selector.add(peer, source)
        known = self._addrs.setdefault(peer, [])
        for a in addrs:
            a = Multiaddr(a).without_p2p()
            if a not in known and direct_addrs([a]):
                known.append(a)
        if new:
            log.info("relay %s found (%s)", peer, source)
        return new

    def relays(self) -> list[RelayInfo]:
        """Every known relay, best score first."""
        now = time.monotonic()
        held = {r.relay for r in self.reservations.reservations()}
        return [
            RelayInfo(s.peer, tuple(a.encapsulate(f"/p2p/{s.peer}") for a in self._addrs.get(s.peer, ())),
                      s.rtt, s.load, s.failures, s.score, s.peer in held, s.sources)
            for s in self.selector.snapshot(now)
        ]

    def held(self) -> list[PeerId]:
        """Relays handed to the reservation manager (reserved or being reserved)."""
        return self.reservations.relays()

    # -- events ----------------------------------------------------------------------------------
    def _on_identify(self, peer: PeerId, info) -> None:
        if self._closed or not self.discovering or HOP_PROTOCOL_ID not in info.protocols:
            return
        addrs = direct_addrs(info.listen_addrs)
        source = "bootstrap" if peer in self._bootstrap else "identify"
        if self._know(peer, addrs, source):
            self._soon()

    def _on_lost(self, relay: PeerId) -> None:
        if self._closed or relay not in self.held() or relay not in self.selector:
            return
        now = time.monotonic()
        self.selector.record_failure(relay, now)
        self.schedule.relays_changed(now)
        self._changed.set()
        self._soon()

    def _soon(self) -> None:
        """Re-evaluate at once (a relay was found or lost)."""
        now = time.monotonic()
        self._eval_at = now if self._eval_at is None else min(self._eval_at, now)
        self._driver.rearm()

    # -- the timer -------------------------------------------------------------------------------
    def _next_deadline(self) -> float | None:
        times = [t for t in (None if self._evaluating else self._eval_at, self.selector.next_deadline(),
                             None if self._round_running or not self.discovering else self.schedule.next_deadline())
                 if t is not None]
        return min(times) if times else None

    def _on_timer(self, now: float) -> None:
        if self._closed:
            return
        if self.selector.handle_timeout(now):  # backoffs ended: measure them again now
            self._eval_at = now if self._eval_at is None else min(self._eval_at, now)
        if self.discovering and not self._round_running and self.schedule.handle_timeout(now):
            self._round_running = True
            self._tasks.spawn(self._timed_round(), "relay discovery round")
        if not self._evaluating and self._eval_at is not None and self._eval_at <= now:
            self._evaluating = True
            self._tasks.spawn(self._timed_evaluation(), "relay evaluation")

    async def _timed_round(self) -> None:
        try:
            await self._round()
        finally:
            self._round_running = False
            self.schedule.round_done(time.monotonic())
            self._driver.rearm()

    async def _timed_evaluation(self) -> None:
        try:
            await self.evaluate()
        finally:
            self._evaluating = False
            self._driver.rearm()

    # -- discovery -------------------------------------------------------------------------------
    async def discover(self) -> list[RelayInfo]:
        """One discovery round and one evaluation now (``net.discover_relays()``)."""
        await self._round()
        await self.evaluate()
        return self.relays()

    async def _round(self) -> int:
        """Look for relays in every source; returns how many new ones were found."""
        found = 0
        for peer, addr in self._bootstrap.items():
            if peer != self.host.peer_id and not self._direct(peer):
                try:
                    await self.host.dial(addr)  # identify tells whether it is a relay
                except DarkSwapError as exc:
                    log.debug("bootstrap peer %s unreachable: %s", addr, exc)
        if self.dht is not None:
            try:
                for p in await self.dht.find_providers(relay_key()):
                    found += self._know(p.peer_id, p.addrs, "provider")
            except DarkSwapError as exc:
                log.info("looking up relay providers failed: %s", exc)
            try:
                await self.dht.find_node(random_key())  # the peers it meets identify themselves
            except DarkSwapError as exc:
                log.debug("relay discovery walk failed: %s", exc)
        if found:
            self._soon()
        return found

    # -- measurement -----------------------------------------------------------------------------
    def _direct(self, peer: PeerId) -> MuxedConnection | None:
        return next((c for c in self.host.connections(peer) if not c.relayed), None)

    async def _connect(self, peer: PeerId) -> MuxedConnection:
        conn = self._direct(peer)
        if conn is not None:
            return conn
        errors = []
        addrs = self._addrs.get(peer, [])
        for i, addr in enumerate(list(addrs)):
            try:
                conn = await self.host.dial(addr.encapsulate(f"/p2p/{peer}"))
            except DarkSwapError as exc:
                errors.append(str(exc))
                continue
            if i and peer not in self._configured:  # what worked goes first (the circuit address)
                addrs.remove(addr)
                addrs.insert(0, addr)
            return conn
        raise PeerUnreachable(f"relay {peer}: {'; '.join(errors) or 'no direct address'}")

    async def probe(self, peer: PeerId) -> bool:
        """Measure one relay: RTT and load. A failure is counted (and backs the relay off)."""
        cfg = self.config
        try:
            conn = await asyncio.wait_for(self._connect(peer), cfg.probe_timeout + self.host.config.dial_timeout)
            samples = 1 if peer in self._probed else cfg.pings_per_probe
            rtts = [await conn.ping(cfg.probe_timeout) for _ in range(samples)]
            info = await query_relay_info(self.host, conn, cfg.probe_timeout)
        except (DarkSwapError, TimeoutError) as exc:
            now = time.monotonic()
            if peer in self.selector:
                self.selector.record_failure(peer, now)
                self.schedule.relays_changed(now)
            log.info("relay %s failed its probe: %s", peer, exc or type(exc).__name__)
            return False
        now = time.monotonic()
        if peer not in self.selector:
            return False
        for rtt in sorted(rtts):
            self.selector.observe_rtt(peer, rtt)
        self.selector.observe_load(peer, info.load if info is not None else None, now)
        self.selector.record_success(peer, now)
        self._probed.add(peer)
        self._last_probe[peer] = now
        return True

    # -- decisions -------------------------------------------------------------------------------
    async def evaluate(self) -> None:
        """Probe, replace dead or much worse held relays, fill free slots."""
        async with self._lock:
            self._eval_at = None
            try:
                await self._evaluate()
            finally:
                self.evaluations += 1
                self._eval_at = time.monotonic() + self.config.evaluate_interval

    async def _evaluate(self) -> None:
        now = time.monotonic()
        held = self.held()
        usable = [s.peer for s in self.selector.snapshot(now) if s.retry_at is None]
        others = sorted((p for p in usable if p not in held), key=lambda p: self._last_probe.get(p, -1.0))
        targets = [p for p in held if p in usable] + others
        await asyncio.gather(*(self.probe(p) for p in targets[: self.config.max_probes]))
        if self._closed:
            return
        now = time.monotonic()
        for action in self.selector.replacements(self.held(), now):
            await self._replace(action)
        want = self.config.reservations
        for peer in self.selector.select(want, time.monotonic(), held=self.held()):
            if len(self.held()) >= want:
                break
            await self._hold(peer)
        for peer in self._configured:  # nothing better: keep trying the configured ones
            if len(self.held()) >= want:
                break
            if peer not in self.held():
                self.reservations.add_relay(self._reserve_addr(peer))

    def _reserve_addr(self, peer: PeerId) -> Multiaddr:
        addrs = self._addrs.get(peer) or []
        if not addrs:
            raise PeerUnreachable(f"relay {peer}: no direct address")
        return addrs[0].encapsulate(f"/p2p/{peer}")

    async def _hold(self, peer: PeerId) -> bool:
        """Reserve on ``peer`` and wait until it holds (or fails: then it is let go again)."""
        try:
            addr = self._reserve_addr(peer)
        except PeerUnreachable:
            return False
        self.reservations.add_relay(addr)
        if await self._wait_reserved(peer, self.config.reserve_timeout):
            self.selector.record_success(peer, time.monotonic())
            log.info("holding a reservation on relay %s", peer)
            return True
        now = time.monotonic()
        self.selector.record_failure(peer, now)
        self.schedule.relays_changed(now)
        if peer not in self._configured:
            await self.reservations.remove_relay(peer)
        log.info("reservation on relay %s did not come up within %gs", peer, self.config.reserve_timeout)
        return False

    async def _replace(self, action: Replace) -> None:
        """Reserve on the new relay first, then release the old one."""
        log.info("replacing relay %s (%s) with %s", action.release, action.reason, action.reserve)
        if not await self._hold(action.reserve):
            return
        await self.reservations.remove_relay(action.release)
        for conn in self.host.connections(action.release):  # the relay frees our slot at once
            self._tasks.spawn(conn.close(), "closing a released relay's connection")

    async def _wait_reserved(self, peer: PeerId, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if any(r.relay == peer for r in self.reservations.reservations()):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or peer not in self.held():
                return False
            self._changed.clear()
            await self._changed.wait(left)


def _peer_of(addr: Multiaddr) -> PeerId:
    text = addr.value_for("p2p") if addr.protocols()[-1:] == ["p2p"] else None
    if text is None:
        raise ConfigError(f"a relay or bootstrap address must end with /p2p/<peer id>: {addr}")
    return PeerId.from_string(text)


def _nothing() -> None:
    return None

