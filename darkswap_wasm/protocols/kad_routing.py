"""Kademlia routing table and random-walk keys (spec: libp2p/specs ``kad-dht/README.md``,
§"Kademlia routing table", §"Bootstrap process").

256 XOR buckets relative to our Kademlia ID (bucket ``i`` holds peers whose distance has its
highest set bit at ``255 - i``, i.e. a common prefix of ``i`` bits), each at most ``k`` entries
in LRU order (least recently seen first). A full bucket does not evict: :meth:`RoutingTable.add`
returns the oldest entry for the caller to ping, and the newcomer waits in the bucket's
replacement cache; :meth:`RoutingTable.mark_failed` (ping failed, request failed) replaces a dead
entry with the freshest replacement.

Only DHT servers belong in a table: :meth:`RoutingTable.add_if_server` admits a peer whose
identify lists ``/ipfs/kad/1.0.0`` (:func:`is_dht_server`); a peer in client mode that only
sends us requests never enters it.

Random walk: :class:`RefreshSchedule` says which buckets (common prefix length
``0..MAX_REFRESH_BUCKET``, js-libp2p walks up to 15) no lookup touched for
``KadConfig.refresh_interval`` (5 min, js ``TABLE_REFRESH_INTERVAL``);
:func:`random_key_for_bucket` makes a FIND_NODE key landing in a given bucket from an injected
random source (``rand(n) -> bytes``, e.g. ``random.Random(seed).randbytes`` in tests).

Deliberate deviations: buckets are a fixed array of 256 (not lazily split, same observable
content); peers reachable only through a relay (every address ``/p2p-circuit``, or no address)
are refused — they cannot serve others well and would send lookups through a relay. Sans-I/O:
no pings are sent here; the caller does it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

from ..identity import PeerId
from ..wire.multiaddr import Multiaddr
from .kad import DEFAULT_CONFIG, KEY_BITS, PROTOCOL_ID, KadConfig, KadPeer, distance, kad_id, peer_kad_id


def is_relay_only(addrs) -> bool:
    """True when there is no address, or every address goes through ``/p2p-circuit``."""
    addrs = tuple(addrs)
    return not addrs or all("p2p-circuit" in Multiaddr(a).protocols() for a in addrs)


def is_dht_server(protocols) -> bool:
    """Whether a peer's identify protocol list says it serves ``/ipfs/kad/1.0.0`` (server mode).
    Peers in client mode (pages, nodes behind NAT) do not list it and never enter a table."""
    return PROTOCOL_ID in tuple(protocols)


def bucket_index(self_id: bytes, other_id: bytes) -> int:
    """Common prefix length of two Kademlia IDs (0..255); 256 for the same ID."""
    d = distance(self_id, other_id)
    return KEY_BITS - d.bit_length()


@dataclass(frozen=True)
class AddResult:
    """What :meth:`RoutingTable.add` did. ``ping`` is the oldest entry to check when full."""

    added: bool
    updated: bool = False
    pending: bool = False  # newcomer parked in the replacement cache
    ping: PeerId | None = None
    refused: str | None = None


class _Bucket:
    __slots__ = ("entries", "replacements")

    def __init__(self) -> None:
        self.entries: OrderedDict[PeerId, KadPeer] = OrderedDict()  # oldest first
        self.replacements: OrderedDict[PeerId, KadPeer] = OrderedDict()  # freshest last


class RoutingTable:
    def __init__(self, local_peer: PeerId, config: KadConfig | None = None) -> None:
        self.local_peer = local_peer
        self.local_id = peer_kad_id(local_peer)
        self.config = config or DEFAULT_CONFIG
        self._buckets = [_Bucket() for _ in range(KEY_BITS)]
        self._ids: dict[PeerId, bytes] = {}

    def _index(self, peer: PeerId) -> tuple[int, bytes]:
        kid = self._ids.get(peer) or peer_kad_id(peer)
        return min(bucket_index(self.local_id, kid), KEY_BITS - 1), kid

    def add(self, peer: KadPeer) -> AddResult:
        """Insert or refresh ``peer`` (we just heard from it)."""
        pid = peer.peer_id
        if pid == self.local_peer:
            return AddResult(False, refused="self")
        if is_relay_only(peer.addrs):
            return AddResult(False, refused="relay-only")
        idx, kid = self._index(pid)
        bucket = self._buckets[idx]
        if pid in bucket.entries:
            bucket.entries[pid] = peer
            bucket.entries.move_to_end(pid)
            return AddResult(False, updated=True)
        if len(bucket.entries) < self.config.k:
            bucket.entries[pid] = peer
            self._ids[pid] = kid
            bucket.replacements.pop(pid, None)
            return AddResult(True)
        bucket.replacements[pid] = peer
        bucket.replacements.move_to_end(pid)
        while len(bucket.replacements) > self.config.replacement_cache_size:
            bucket.replacements.popitem(last=False)
        oldest = next(iter(bucket.entries))
        return AddResult(False, pending=True, ping=oldest)

    def add_if_server(self, peer: KadPeer, protocols) -> AddResult:
        """:meth:`add` for a peer identify told us about: only when it serves the DHT.

        This is the only way a remote peer should enter the table: a peer that merely sent us
        requests may be in client mode and would answer nobody's lookups."""
        if not is_dht_server(protocols):
            return AddResult(False, refused="client")
        return self.add(peer)

    def mark_alive(self, peer: PeerId) -> None:
        """The peer answered (e.g. the ping of a full bucket's oldest): move it to the back."""
        bucket = self._buckets[self._index(peer)[0]]
        if peer in bucket.entries:
            bucket.entries.move_to_end(peer)

    def mark_failed(self, peer: PeerId) -> PeerId | None:
        """Drop a dead entry; the freshest replacement takes its place (returned)."""
        idx, _ = self._index(peer)
        bucket = self._buckets[idx]
        bucket.replacements.pop(peer, None)
        if bucket.entries.pop(peer, None) is None:
            return None
        self._ids.pop(peer, None)
        if bucket.replacements:
            rid, rpeer = bucket.replacements.popitem(last=True)
            bucket.entries[rid] = rpeer
            self._ids[rid] = peer_kad_id(rid)
            return rid
        return None

    def remove(self, peer: PeerId) -> bool:
        bucket = self._buckets[self._index(peer)[0]]
        bucket.replacements.pop(peer, None)
        self._ids.pop(peer, None)
        return bucket.entries.pop(peer, None) is not None

    def get(self, peer: PeerId) -> KadPeer | None:
        return self._buckets[self._index(peer)[0]].entries.get(peer)

    def __contains__(self, peer: object) -> bool:
        return isinstance(peer, PeerId) and peer in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def peers(self) -> list[KadPeer]:
        return [p for b in self._buckets for p in b.entries.values()]

    def bucket(self, index: int) -> list[KadPeer]:
        """Entries of bucket ``index``, oldest first."""
        return list(self._buckets[index].entries.values())

    def replacements(self, index: int) -> list[KadPeer]:
        return list(self._buckets[index].replacements.values())

    def closest(self, key_id: bytes, n: int | None = None, exclude=()) -> list[KadPeer]:
        """The ``n`` (default ``k``) entries closest to the Kademlia ID ``key_id``, nearest first."""
        n = self.config.k if n is None else n
        skip = set(exclude)
        target = int.from_bytes(key_id, "big")
        ranked = sorted(
            (int.from_bytes(kid, "big") ^ target, pid) for pid, kid in self._ids.items() if pid not in skip
        )
        out = []
        for _, pid in ranked[:n]:
            entry = self.get(pid)
            if entry is not None:
                out.append(entry)
        return out

    def non_empty_buckets(self) -> list[int]:
        return [i for i, b in enumerate(self._buckets) if b.entries]


# --- random walk ----------------------------------------------------------------------------


MAX_REFRESH_BUCKET = 16  # deeper buckets would need > 2**17 hashes on average


def random_key(rand=os.urandom) -> bytes:
    """A random FIND_NODE key anywhere in the space: a random sha2-256 multihash (a valid
    peer ID form, as js-libp2p's random walk sends a random peer ID)."""
    return b"\x12\x20" + rand(32)


def random_key_for_bucket(local_id: bytes, index: int, rand=os.urandom, max_tries: int = 1 << 20) -> bytes:
    """A random key whose Kademlia ID shares exactly ``index`` leading bits with ``local_id``.

    Kademlia IDs are sha256 of the key, so the key is found by trying random keys
    (about ``2 ** (index + 1)`` hashes); only buckets up to :data:`MAX_REFRESH_BUCKET` are
    offered. A FIND_NODE lookup for the key refreshes bucket ``index``.
    """
    if not 0 <= index <= MAX_REFRESH_BUCKET:
        raise ValueError(f"bucket index {index} outside 0..{MAX_REFRESH_BUCKET}")
    for _ in range(max_tries):
        key = random_key(rand)
        if bucket_index(local_id, kad_id(key)) == index:
            return key
    raise ValueError(f"no key for bucket {index} in {max_tries} tries")  # pragma: no cover


class RefreshSchedule:
    """When to random-walk which bucket (spec §"Bootstrap process"; js-libp2p's table refresh).

    Buckets ``0..min(deepest non-empty, MAX_REFRESH_BUCKET)`` are tracked; one is due when no
    lookup touched it for ``refresh_interval``. Report every finished lookup with
    :meth:`lookup_done` (any lookup for a key in a bucket refreshes it, not only walks). Clock-free:
    :meth:`next_deadline` / :meth:`handle_timeout` return the bucket indexes to walk, each once
    until it is reported done; :func:`random_key_for_bucket` gives the key.
    """

    def __init__(self, table: RoutingTable, now: float) -> None:
        self.table = table
        self.interval = table.config.refresh_interval
        self._last: list[float] = [now - self.interval] * (MAX_REFRESH_BUCKET + 1)  # due at start
        self._in_flight: set[int] = set()

    def _tracked(self) -> range:
        deepest = max(self.table.non_empty_buckets(), default=0)
        return range(min(deepest, MAX_REFRESH_BUCKET) + 1)

    def lookup_done(self, key_id: bytes, now: float) -> None:
        """A lookup for Kademlia ID ``key_id`` finished: its bucket counts as refreshed."""
        idx = bucket_index(self.table.local_id, key_id)
        if idx <= MAX_REFRESH_BUCKET:
            self._last[idx] = now
            self._in_flight.discard(idx)

    def walk_failed(self, index: int, now: float) -> None:
        """A walk for bucket ``index`` did not finish: try again one ``refresh_interval`` later
        (never in a loop, even when no peer answers)."""
        self._in_flight.discard(index)
        if 0 <= index <= MAX_REFRESH_BUCKET:
            self._last[index] = now

    def next_deadline(self) -> float | None:
        times = [self._last[i] + self.interval for i in self._tracked() if i not in self._in_flight]
        return min(times) if times else None

    def handle_timeout(self, now: float) -> list[int]:
        due = [i for i in self._tracked() if i not in self._in_flight and self._last[i] + self.interval <= now]
        self._in_flight.update(due)
        return due
