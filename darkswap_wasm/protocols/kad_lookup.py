"""The iterative Kademlia lookup, one machine per query (spec: libp2p/specs
``kad-dht/README.md`` §"Peer routing", §"Content routing").

Sans-I/O: the machine emits :class:`SendRequest` actions (the caller opens a stream, writes the
message, reads one response) and is told what happened: :meth:`Lookup.on_response`,
:meth:`Lookup.on_failure`; time is an argument (:meth:`Lookup.next_deadline`,
:meth:`Lookup.handle_timeout`). At most ``alpha`` requests are in flight, every peer is asked
at most once, and the lookup ends when the ``k`` closest peers it knows (failed ones excluded)
have all answered, when nothing is left to ask, or — for GET_PROVIDERS with ``wanted`` set —
once that many distinct providers were found.

Deviations from the spec's text: the candidate set is seeded with up to ``k`` peers from the
routing table (not only ``alpha``; js-libp2p does the same), which only adds choices. A response
arriving after its request timed out is ignored (the peer already counts as failed). Closer
peers without a direct address (none, or only ``/p2p-circuit``) are not queried: DHT servers
are directly dialable (js-libp2p's server drops address-less peers from its answers too), and
no routing table holds relay-only peers. A response of the wrong message type
(:meth:`Lookup.on_message`) counts as a failure of that peer.

Publishing a provider record: a FIND_NODE lookup for the key, then ADD_PROVIDER to each peer of
:meth:`Lookup.result` (:func:`.kad_providers.add_provider_message`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import UsageError
from ..identity import PeerId
from .kad import DEFAULT_CONFIG, KadConfig, KadMessage, KadPeer, MessageType, kad_id, peer_kad_id
from .kad_routing import is_relay_only


@dataclass(frozen=True)
class SendRequest:
    """Action: send ``message`` to ``peer`` and report the outcome back to the lookup."""

    peer: KadPeer
    message: KadMessage


class PeerState(enum.Enum):
    CANDIDATE = "candidate"
    WAITING = "waiting"
    ANSWERED = "answered"
    FAILED = "failed"


@dataclass(frozen=True)
class LookupResult:
    closest: tuple[KadPeer, ...]  # up to k peers that answered, nearest first
    providers: tuple[KadPeer, ...]  # GET_PROVIDERS only, in the order found


class Lookup:
    def __init__(
        self,
        key: bytes,
        seeds,
        *,
        local_peer: PeerId | None = None,
        kind: MessageType = MessageType.FIND_NODE,
        wanted: int | None = None,
        target_id: bytes | None = None,
        config: KadConfig | None = None,
    ) -> None:
        if kind not in (MessageType.FIND_NODE, MessageType.GET_PROVIDERS):
            raise UsageError(f"kad lookup: unsupported kind {kind.name}")
        self.config = config or DEFAULT_CONFIG
        self.key = bytes(key)
        self.kind = kind
        self.wanted = wanted
        self.target = int.from_bytes(target_id if target_id is not None else kad_id(self.key), "big")
        self._local = local_peer
        self._peers: dict[PeerId, KadPeer] = {}
        self._dist: dict[PeerId, int] = {}
        self._state: dict[PeerId, PeerState] = {}
        self._deadline: dict[PeerId, float] = {}
        self._providers: dict[PeerId, KadPeer] = {}
        self._done = False
        self.requests_sent = 0
        for peer in seeds:
            self._learn(peer)

    # --- inputs -----------------------------------------------------------------------------

    def start(self, now: float) -> list[SendRequest]:
        return self._advance(now)

    def on_message(self, peer: PeerId, message: KadMessage, *, now: float) -> list[SendRequest]:
        """``peer`` answered with a decoded ``message``; one of another type counts as a failure."""
        if message.type is not self.kind:
            return self.on_failure(peer, now=now)
        return self.on_response(peer, message.closer_peers, message.provider_peers, now=now)

    def on_response(self, peer: PeerId, closer_peers=(), providers=(), *, now: float) -> list[SendRequest]:
        """``peer`` answered with ``closer_peers`` (and, for GET_PROVIDERS, ``providers``)."""
        if self._state.get(peer) is not PeerState.WAITING:
            return []  # late (timed out), unknown or duplicate: ignored
        self._state[peer] = PeerState.ANSWERED
        del self._deadline[peer]
        for p in closer_peers:
            if not is_relay_only(p.addrs):  # a peer we could only reach through a relay is no server
                self._learn(p)
        if self.kind is MessageType.GET_PROVIDERS:
            for p in providers:
                if p.peer_id not in self._providers:
                    self._providers[p.peer_id] = p
        return self._advance(now)

    def on_failure(self, peer: PeerId, *, now: float) -> list[SendRequest]:
        if self._state.get(peer) is not PeerState.WAITING:
            return []
        self._state[peer] = PeerState.FAILED
        del self._deadline[peer]
        return self._advance(now)

    def next_deadline(self) -> float | None:
        if self._done or not self._deadline:
            return None
        return min(self._deadline.values())

    def handle_timeout(self, now: float) -> list[SendRequest]:
        expired = [p for p, d in self._deadline.items() if d <= now]
        for p in expired:
            self._state[p] = PeerState.FAILED
            del self._deadline[p]
        return self._advance(now) if expired else []

    def cancel(self) -> None:
        self._done = True
        self._deadline.clear()

    # --- outputs ----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done

    @property
    def in_flight(self) -> int:
        return len(self._deadline)

    def failed(self) -> list[PeerId]:
        return [p for p, s in self._state.items() if s is PeerState.FAILED]

    def state_of(self, peer: PeerId) -> PeerState | None:
        return self._state.get(peer)

    def result(self) -> LookupResult:
        answered = [p for p in self._ranked() if self._state[p] is PeerState.ANSWERED]
        return LookupResult(
            tuple(self._peers[p] for p in answered[: self.config.k]),
            tuple(self._providers.values()),
        )

    # --- internals --------------------------------------------------------------------------

    def _learn(self, peer: KadPeer) -> None:
        pid = peer.peer_id
        if pid == self._local:
            return
        if pid in self._peers:
            if not self._peers[pid].addrs and peer.addrs:
                self._peers[pid] = peer
            return
        self._peers[pid] = peer
        self._dist[pid] = int.from_bytes(peer_kad_id(pid), "big") ^ self.target
        self._state[pid] = PeerState.CANDIDATE

    def _ranked(self) -> list[PeerId]:
        return sorted(self._peers, key=self._dist.__getitem__)

    def _advance(self, now: float) -> list[SendRequest]:
        if self._done:
            return []
        if self.wanted is not None and len(self._providers) >= self.wanted:
            self.cancel()
            return []
        out: list[SendRequest] = []
        live = [p for p in self._ranked() if self._state[p] is not PeerState.FAILED]
        closest = live[: self.config.k]
        if all(self._state[p] is PeerState.ANSWERED for p in closest):
            self.cancel()
            return []
        # ask the nearest not-yet-asked peers among the k closest, up to alpha in flight
        for pid in closest:
            if len(self._deadline) >= self.config.alpha:
                break
            if self._state[pid] is PeerState.CANDIDATE:
                self._state[pid] = PeerState.WAITING
                self._deadline[pid] = now + self.config.request_timeout
                self.requests_sent += 1
                out.append(SendRequest(self._peers[pid], KadMessage(self.kind, key=self.key)))
        if not out and not self._deadline:
            self.cancel()  # nothing in flight and nothing left to ask
        return out
