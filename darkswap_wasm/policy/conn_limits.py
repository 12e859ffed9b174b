"""Inbound connection limits, a per-IP handshake rate limit and the idle rule, clock-free.

Issue 12, attack 3: 1,100 sockets that each sent 20 bytes (held for the 10 s handshake timeout)
or 1,024 idle authenticated connections from one peer ID locked every honest peer out of a relay;
random first handshake messages took it to 93 % CPU. The host asks :class:`ConnectionLimits`
before any Noise work and tells it when a connection is upgraded or closes; the machine keeps the
counts and answers with a refusal kind or with the connections to close. ``now`` (monotonic
seconds) is an argument, so tests drive it with plain calls and Pyodide runs it unchanged.

The rules (defaults in :class:`ConnLimitsConfig`; go-libp2p's resource manager and rust-libp2p's
``connection-limits`` have the same shape):

* **pending** (inbound, not yet authenticated) connections per remote IP: over the limit the new
  raw connection is refused at once. In total: the oldest pending one *of the IP that holds the
  most* is closed to make room, never the new one -- an honest peer holds one handshake for
  milliseconds, a flood holds its IP's share for the timeout; refusing the new one instead would
  lock everyone out while strangers hold every slot;
* **handshakes per remote IP**: a token bucket (``rate`` per second, ``burst`` at once); an
  empty bucket refuses the connection before the first byte is read;
* **established** inbound connections per remote IP (pending ones count too): refused at accept;
* **established connections per peer ID** (either direction): the new one is kept and the peer's
  oldest *idle* connection (else its oldest) is closed. Only the peer itself can prove that ID,
  so this never hurts anyone else, and a peer that reconnects before its old connection was
  noticed dead is never locked out.

Per-IP means per IPv4 address and per IPv6 /64 (one host gets a whole /64; IPv4-mapped IPv6 is
IPv4). Connections without an IP of their own (relayed ones: the address is the relay's) have no
IP scope. Networks in ``exempt`` (default: loopback -- the operator's own tools and proxies) skip
every per-IP rule and the pending total; the per-peer rule still holds for them. Behind a reverse
proxy every client has the proxy's address: clear ``exempt`` and rely on the proxy's limits.

:class:`IdleTimer` is the idle rule of one connection: idle once no stream was open for
``timeout`` seconds (see :class:`~darkswap_wasm.host.host.HostConfig`).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from ..errors import ConfigError

LOOPBACK = ("127.0.0.1/32", "::1/128")

# refusal kinds (fixed strings: metrics keys and log kinds, never text from a peer)
PENDING_PER_IP = "pending_per_ip"
CONNECTIONS_PER_IP = "connections_per_ip"
HANDSHAKE_RATE = "handshake_rate_per_ip"
PENDING_TOTAL = "pending_total"  # an eviction of the oldest pending, not a refusal of the new one
CONNECTIONS_PER_PEER = "connections_per_peer"  # likewise: the peer's oldest idle one goes


@dataclass(frozen=True)
class ConnLimitsConfig:
    """Connection limits of a host. ``0`` for a rate means unlimited.

    The defaults are for a public relay on a small machine and hold for any node: a browser or a
    node behind a NAT opens a handful of connections (a direct one, a relayed one, a WebRTC one),
    so 8 per peer ID is generous; 32 per IP leaves room for a NAT of several honest peers (and is
    above 8, so one peer reconnecting never meets the per-IP limit); 8 pending per IP is
    go-libp2p's per-IP connection default; 64 pending in total bounds the Noise work in flight
    (a handshake finishes in milliseconds, so 64 is many handshakes a second); 10 handshakes a
    second with a burst of 20 is far more than an honest peer reconnecting needs and makes a
    flood of first messages from one IP cost almost nothing.
    """

    max_pending_per_ip: int = 8
    max_pending: int = 64
    max_connections_per_ip: int = 32
    max_connections_per_peer: int = 8
    handshake_rate_per_ip: float = 10.0  # per second; 0 = unlimited
    handshake_burst_per_ip: int = 20
    exempt: tuple[str, ...] = LOOPBACK  # CIDR networks the per-IP rules and the pending total skip
    max_tracked_ips: int = 4096  # handshake buckets kept; full (refilled) ones are dropped first

    def __post_init__(self) -> None:
        for name in ("max_pending_per_ip", "max_pending", "max_connections_per_ip", "max_connections_per_peer",
                     "handshake_burst_per_ip", "max_tracked_ips"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ConnLimitsConfig.{name} must be >= 1")
        if self.handshake_rate_per_ip < 0:
            raise ConfigError("ConnLimitsConfig.handshake_rate_per_ip must be >= 0 (0 = unlimited)")
        for net in self.exempt:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"ConnLimitsConfig.exempt: {net!r} is not an IP network") from None


def ip_scope(ip: str) -> str:
    """The unit of the per-IP limits: the IPv4 address, or the IPv6 /64 (``2001:db8::/64``)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # a name, not an address: count it as itself
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` spends one if there is one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def full(self, now: float) -> bool:
        """Refilled to ``burst``: the same as a fresh bucket (safe to forget)."""
        self._refill(now)
        return self.tokens >= self.burst


@dataclass(frozen=True)
class Admission:
    """The answer to a new inbound connection: refused (``refused`` names the limit), or admitted,
    and then ``evict`` are the pending connections to close to make room for it."""

    refused: str | None = None
    evict: tuple[Hashable, ...] = ()

    @property
    def admitted(self) -> bool:
        return self.refused is None


class ConnectionLimits:
    """The counts behind the rules; keys are whatever the host uses for a connection (identity)."""

    def __init__(self, config: ConnLimitsConfig | None = None) -> None:
        self.config = config or ConnLimitsConfig()
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in self.config.exempt]
        self._pending: dict[Hashable, str | None] = {}  # key -> IP scope, oldest first
        self._pending_by_ip: Counter[str] = Counter()
        self._counted: dict[Hashable, None] = {}  # pending that count towards max_pending, oldest first
        self._established: dict[Hashable, tuple[Hashable, str | None]] = {}  # key -> (peer, IP scope)
        self._by_ip: Counter[str] = Counter()
        self._by_peer: dict[Hashable, list[Hashable]] = {}  # peer -> keys, oldest first
        self._buckets: dict[str, TokenBucket] = {}  # IP scope -> bucket, least recently used first
        self._classified: dict[str, str | None] = {}  # IP -> its scope (None: exempt); parsing is slow
        self.refused: Counter[str] = Counter()  # refusals and evictions per kind (for metrics)

    # -- views ---------------------------------------------------------------------------------
    def is_exempt(self, ip: str | None) -> bool:
        if ip is None:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._exempt)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_from(self, ip: str) -> int:
        return self._pending_by_ip.get(ip_scope(ip), 0)

    def connections_from(self, ip: str) -> int:
        """Established inbound connections from that IP (its /64 for IPv6)."""
        return self._by_ip.get(ip_scope(ip), 0)

    def connections_of(self, peer: Hashable) -> int:
        return len(self._by_peer.get(peer, ()))

    @property
    def tracked_ips(self) -> int:
        return len(self._buckets)

    # -- events --------------------------------------------------------------------------------
    def inbound(self, key: Hashable, ip: str | None, now: float) -> Admission:
        """A raw inbound connection from ``ip`` (``None``: it has no IP of its own) before any
        byte of it is read. Admitted ones are pending until :meth:`established` or :meth:`closed`."""
        cfg = self.config
        if ip is None:
            counted, scope = True, None
        else:
            scope = self._classify(ip)
            counted = scope is not None
        if scope is not None:
            held = self._pending_by_ip.get(scope, 0)
            if held >= cfg.max_pending_per_ip:
                return self._refuse(PENDING_PER_IP)
            if held + self._by_ip.get(scope, 0) >= cfg.max_connections_per_ip:
                return self._refuse(CONNECTIONS_PER_IP)
            if cfg.handshake_rate_per_ip and not self._bucket(scope, now).take(now):
                return self._refuse(HANDSHAKE_RATE)
        evict: list[Hashable] = []
        while counted and len(self._counted) >= cfg.max_pending:
            old = self._eviction_candidate()
            evict.append(old)
            self._drop_pending(old)
            self.refused[PENDING_TOTAL] += 1
        self._pending[key] = scope
        if scope is not None:
            self._pending_by_ip[scope] += 1
        if counted:
            self._counted[key] = None
        return Admission(evict=tuple(evict))

    def established(
        self,
        key: Hashable,
        peer: Hashable,
        *,
        pending_key: Hashable | None = None,
        idle: Callable[[Hashable], bool] = lambda _key: True,
    ) -> tuple[Hashable, ...]:
        """A connection to ``peer`` is authenticated (``pending_key``: what :meth:`inbound` was
        told, if it came in that way; outbound and WebRTC connections have none). Returns the
        peer's connections to close for it (its oldest idle, else its oldest, at the limit);
        they are forgotten here already."""
        scope = None
        if pending_key is not None and pending_key in self._pending:
            scope = self._pending[pending_key]
            self._drop_pending(pending_key)
        keys = self._by_peer.setdefault(peer, [])
        evict: list[Hashable] = []
        while len(keys) >= self.config.max_connections_per_peer:
            old = next((k for k in keys if idle(k)), keys[0])
            evict.append(old)
            self._drop_established(old)
            self.refused[CONNECTIONS_PER_PEER] += 1
            keys = self._by_peer.setdefault(peer, [])
        self._established[key] = (peer, scope)
        keys.append(key)
        if scope is not None:
            self._by_ip[scope] += 1
        return tuple(evict)

    def closed(self, key: Hashable) -> None:
        """A pending or established connection ended (unknown keys are ignored)."""
        if key in self._pending:
            self._drop_pending(key)
        if key in self._established:
            self._drop_established(key)

    # -- internals -----------------------------------------------------------------------------
    def _eviction_candidate(self) -> Hashable:
        """The oldest pending handshake of the source holding the most (relayed ones are one source):
        a flood's own, not the one handshake of an honest peer that a busy loop has not finished."""
        held: Counter[str | None] = Counter(self._pending[k] for k in self._counted)
        most = max(held.values())
        return next(k for k in self._counted if held[self._pending[k]] == most)

    def _classify(self, ip: str) -> str | None:
        """The IP's scope, or None when it is exempt (cached: an attacker repeats its address)."""
        try:
            return self._classified[ip]
        except KeyError:
            pass
        if len(self._classified) >= self.config.max_tracked_ips:
            self._classified.clear()  # bounded; refilled from the next connections
        scope = None if self.is_exempt(ip) else ip_scope(ip)
        self._classified[ip] = scope
        return scope

    def _refuse(self, kind: str) -> Admission:
        self.refused[kind] += 1
        return Admission(refused=kind)

    def _bucket(self, scope: str, now: float) -> TokenBucket:
        bucket = self._buckets.pop(scope, None)
        if bucket is None:
            if len(self._buckets) >= self.config.max_tracked_ips:
                self._prune_buckets(now)
            bucket = TokenBucket(self.config.handshake_rate_per_ip, self.config.handshake_burst_per_ip, now)
        self._buckets[scope] = bucket  # most recently used last
        return bucket

    def _prune_buckets(self, now: float) -> None:
        """Forget refilled buckets (no loss: a fresh one is the same); if none is, the least
        recently used one (that IP gets a fresh burst: the table stays bounded)."""
        for scope in [s for s, b in self._buckets.items() if b.full(now)]:
            del self._buckets[scope]
        while len(self._buckets) >= self.config.max_tracked_ips:
            del self._buckets[next(iter(self._buckets))]

    def _drop_pending(self, key: Hashable) -> None:
        scope = self._pending.pop(key)
        if scope is not None:
            left = self._pending_by_ip[scope] - 1
            if left:
                self._pending_by_ip[scope] = left
            else:
                del self._pending_by_ip[scope]
        self._counted.pop(key, None)

    def _drop_established(self, key: Hashable) -> None:
        peer, scope = self._established.pop(key)
        keys = self._by_peer[peer]
        keys.remove(key)
        if not keys:
            del self._by_peer[peer]
        if scope is not None:
            left = self._by_ip[scope] - 1
            if left:
                self._by_ip[scope] = left
            else:
                del self._by_ip[scope]


class IdleTimer:
    """The idle rule of one connection: closed once no stream was open for ``timeout`` seconds.

    The I/O layer calls :meth:`activity` when a stream opens or ends, sleeps until
    :attr:`deadline` (re-arming its one timer only when it fires early: activity just moves the
    deadline on) and then asks :meth:`expired` with whether the connection is busy (open streams,
    a reservation, a circuit). A busy connection gets another ``timeout``: one wake-up per
    ``timeout`` while it is busy, none per stream.
    """

    __slots__ = ("deadline", "timeout")

    def __init__(self, timeout: float, now: float) -> None:
        if not timeout > 0:
            raise ConfigError("idle timeout must be > 0")
        self.timeout = float(timeout)
        self.deadline = now + self.timeout

    def activity(self, now: float) -> None:
        self.deadline = max(self.deadline, now + self.timeout)

    def expired(self, now: float, busy: bool) -> bool:
        """True: close the connection now. False: sleep until :attr:`deadline` again."""
        if now < self.deadline:
            return False
        if busy:
            self.deadline = now + self.timeout
            return False
        return True
