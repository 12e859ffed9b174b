"""Kademlia provider records: the store of other peers' records and the republish schedule of
our own (spec: libp2p/specs ``kad-dht/README.md`` §"Content provider advertisement and
discovery"; r2 of the spec, libp2p/specs#451: records expire after 48 h, providers republish
every 22 h — js-libp2p kad-dht 16's ``PROVIDERS_VALIDITY`` is the same 48 h).

Sans-I/O and clock-free: every method that depends on time takes ``now`` (monotonic seconds).
One timer for the whole store: :meth:`ProviderStore.next_deadline` is the earliest of "a stored
record expires" and "one of our keys is due for republishing"; :meth:`ProviderStore.handle_timeout`
drops expired records and returns the :class:`Republish` actions that are due (the caller runs a
lookup for the key's k closest peers and sends them :func:`add_provider_message`, then reports
back with :meth:`ProviderStore.republished` or :meth:`ProviderStore.republish_failed`).

Limits (:class:`~.kad.KadConfig`), checked after expired records are purged:

* ``max_providers_per_key``: a new provider for a full key evicts that key's oldest record
  (least recently (re)published — the one whose provider most likely went away). One key's
  flood never displaces another key's records.
* ``max_records_per_provider``: one peer announcing itself for many keys is refused past it
  (:attr:`AddOutcome.REFUSED_PROVIDER`), so a single peer cannot fill the store and lock the
  relay key out for 48 h.
* ``max_provider_keys`` / ``max_provider_records``: a record that would need a new key, or a
  record beyond the total, is refused (:attr:`AddOutcome.REFUSED_KEYS` /
  :attr:`AddOutcome.REFUSED_RECORDS`): a counted, ordinary outcome, never growth.

Our own records are not stored as records: :meth:`ProviderStore.is_providing` tells the server
to list us (with our current addresses) in GET_PROVIDERS answers.
"""

from __future__ import annotations

import enum
import heapq
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import UsageError
from ..identity import PeerId
from .kad import DEFAULT_CONFIG, KadConfig, KadMessage, KadPeer, MessageType


class AddOutcome(enum.Enum):
    ADDED = "added"
    REFRESHED = "refreshed"  # same key and provider: new expiry and addresses
    REFUSED_KEYS = "refused: too many keys"
    REFUSED_RECORDS = "refused: too many provider records"
    REFUSED_PROVIDER = "refused: this provider holds too many records"

    @property
    def stored(self) -> bool:
        return self in (AddOutcome.ADDED, AddOutcome.REFRESHED)


@dataclass(frozen=True)
class ProviderRecord:
    key: bytes
    provider: KadPeer  # peer ID and the addresses it sent with its ADD_PROVIDER
    received: float  # when it was last (re)published to us
    expires: float


@dataclass(frozen=True)
class AddResult:
    outcome: AddOutcome
    evicted: ProviderRecord | None = None  # the key's oldest record, when the key was full


@dataclass(frozen=True)
class Republish:
    """Action: (re)publish our provider record for ``key`` (lookup + ADD_PROVIDER to the k closest)."""

    key: bytes


def add_provider_message(key: bytes, local: KadPeer) -> KadMessage:
    """The ADD_PROVIDER request announcing ``local`` (our peer ID and direct addresses) for
    ``key``; servers store it only when the provider is the sending peer itself."""
    return KadMessage(MessageType.ADD_PROVIDER, key=bytes(key), provider_peers=(local,))


class ProviderStore:
    def __init__(self, config: KadConfig | None = None) -> None:
        self.config = config or DEFAULT_CONFIG
        # key -> provider -> record, oldest (least recently published) first
        self._records: dict[bytes, OrderedDict[PeerId, ProviderRecord]] = {}
        self._count = 0
        self._per_provider: dict[PeerId, int] = {}  # records each provider holds here
        self._expiry_heap: list[tuple[float, int, bytes, PeerId]] = []  # lazy: may hold stale entries
        self._seq = 0
        self._own: dict[bytes, float] = {}  # our keys -> next republish time
        self._own_in_flight: set[bytes] = set()
        self.refused = 0  # records refused over a limit, since creation
        self.evicted = 0  # records evicted to make room
        self.expired = 0  # records dropped at expiry

    # --- other peers' records ---------------------------------------------------------------

    def add(self, key: bytes, provider: KadPeer, now: float) -> AddResult:
        """Store (or refresh) ``provider`` for ``key``, valid for ``provider_ttl`` from ``now``."""
        key = bytes(key)
        if len(key) > self.config.max_key_length:
            raise UsageError(f"provider key of {len(key)} bytes exceeds {self.config.max_key_length}")
        self._purge(now)
        cfg = self.config
        record = ProviderRecord(key, provider, now, now + cfg.provider_ttl)
        providers = self._records.get(key)
        if providers is not None and provider.peer_id in providers:
            providers[provider.peer_id] = record
            providers.move_to_end(provider.peer_id)
            self._push_expiry(record)
            return AddResult(AddOutcome.REFRESHED)
        pid = provider.peer_id
        if self._per_provider.get(pid, 0) >= cfg.max_records_per_provider:
            self.refused += 1
            return AddResult(AddOutcome.REFUSED_PROVIDER)
        if providers is None and len(self._records) >= cfg.max_provider_keys:
            self.refused += 1
            return AddResult(AddOutcome.REFUSED_KEYS)
        evicted = None
        if providers is not None and len(providers) >= cfg.max_providers_per_key:
            evicted = next(iter(providers.values()))
            self.remove(key, evicted.provider.peer_id)
            self.evicted += 1
            providers = self._records.get(key)
        elif self._count >= cfg.max_provider_records:
            self.refused += 1
            return AddResult(AddOutcome.REFUSED_RECORDS)
        if providers is None:
            providers = self._records[key] = OrderedDict()
        providers[pid] = record
        self._count += 1
        self._per_provider[pid] = self._per_provider.get(pid, 0) + 1
        self._push_expiry(record)
        return AddResult(AddOutcome.ADDED, evicted)

    def get(self, key: bytes, now: float, limit: int | None = None) -> list[KadPeer]:
        """Unexpired providers of ``key``, most recently published first (at most ``limit``)."""
        providers = self._records.get(bytes(key))
        if not providers:
            return []
        out = []
        for record in reversed(providers.values()):
            if record.expires > now:
                out.append(record.provider)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def records(self, key: bytes) -> list[ProviderRecord]:
        """Every stored record of ``key`` (expired ones not yet purged included), oldest first."""
        return list(self._records.get(bytes(key), {}).values())

    def remove(self, key: bytes, provider: PeerId) -> bool:
        providers = self._records.get(bytes(key))
        if not providers or providers.pop(provider, None) is None:
            return False
        self._count -= 1
        left = self._per_provider.pop(provider) - 1
        if left:
            self._per_provider[provider] = left
        if not providers:
            del self._records[bytes(key)]
        return True

    def __len__(self) -> int:
        """Stored records over all keys."""
        return self._count

    @property
    def key_count(self) -> int:
        return len(self._records)

    # --- our own records --------------------------------------------------------------------

    def provide(self, key: bytes, now: float) -> list[Republish]:
        """Start providing ``key``: publish now, then every ``republish_interval``."""
        key = bytes(key)
        if len(key) > self.config.max_key_length:
            raise UsageError(f"provider key of {len(key)} bytes exceeds {self.config.max_key_length}")
        if key in self._own:
            return []
        self._own[key] = now + self.config.republish_interval
        self._own_in_flight.add(key)
        return [Republish(key)]

    def stop_providing(self, key: bytes) -> bool:
        self._own_in_flight.discard(bytes(key))
        return self._own.pop(bytes(key), None) is not None

    def is_providing(self, key: bytes) -> bool:
        return bytes(key) in self._own

    def providing(self) -> list[bytes]:
        return list(self._own)

    def republished(self, key: bytes, now: float) -> None:
        """A publish of ``key`` reached the network: the next one is ``republish_interval`` away."""
        key = bytes(key)
        if key in self._own:
            self._own_in_flight.discard(key)
            self._own[key] = now + self.config.republish_interval

    def republish_failed(self, key: bytes, now: float) -> None:
        """A publish of ``key`` failed: try again after ``republish_retry_interval``."""
        key = bytes(key)
        if key in self._own:
            self._own_in_flight.discard(key)
            self._own[key] = now + min(self.config.republish_retry_interval, self.config.republish_interval)

    # --- the timer --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Earliest of: a stored record's expiry, one of our keys' republish time."""
        self._drop_stale_heap_top()
        times = [t for k, t in self._own.items() if k not in self._own_in_flight]
        if self._expiry_heap:
            times.append(self._expiry_heap[0][0])
        return min(times) if times else None

    def handle_timeout(self, now: float) -> list[Republish]:
        """Drop records expired at ``now``; return our keys due for republishing (each once until
        :meth:`republished` / :meth:`republish_failed` is called for it)."""
        self._purge(now)
        due = [k for k, t in self._own.items() if t <= now and k not in self._own_in_flight]
        self._own_in_flight.update(due)
        return [Republish(k) for k in due]

    # --- internals --------------------------------------------------------------------------

    def _push_expiry(self, record: ProviderRecord) -> None:
        self._seq += 1
        heapq.heappush(self._expiry_heap, (record.expires, self._seq, record.key, record.provider.peer_id))
        if len(self._expiry_heap) > 2 * self._count + 64:  # refreshes leave stale entries: compact
            fresh = []
            for providers in self._records.values():
                for r in providers.values():
                    self._seq += 1
                    fresh.append((r.expires, self._seq, r.key, r.provider.peer_id))
            heapq.heapify(fresh)
            self._expiry_heap = fresh

    def _is_current(self, entry: tuple[float, int, bytes, PeerId]) -> bool:
        expires, _, key, pid = entry
        record = self._records.get(key, {}).get(pid)
        return record is not None and record.expires == expires

    def _drop_stale_heap_top(self) -> None:
        while self._expiry_heap and not self._is_current(self._expiry_heap[0]):
            heapq.heappop(self._expiry_heap)

    def _purge(self, now: float) -> None:
        while self._expiry_heap and self._expiry_heap[0][0] <= now:
            entry = heapq.heappop(self._expiry_heap)
            if self._is_current(entry):
                self.remove(entry[2], entry[3])
                self.expired += 1
