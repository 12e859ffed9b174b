"""The serving side of ``/ipfs/kad/1.0.0`` (spec: libp2p/specs ``kad-dht/README.md``
§"RPC messages", §"Content provider advertisement and discovery", §"Client and server mode").

Sans-I/O: :class:`KadServer` maps one decoded request from a peer to a :class:`ServerReply`
(a response message, or none, or a refusal); :class:`KadServerStream` does the same for the
bytes of one inbound stream (``receive_data(data, now)`` → replies, ``data_to_send()``). It
reads the routing table (:mod:`.kad_routing`) and the provider store (:mod:`.kad_providers`)
and never adds the requesting peer to the table: a peer enters the table only when identify
shows it serves the protocol (:meth:`.kad_routing.RoutingTable.add_if_server`), so a node in
client mode that queries us never becomes one of our servers.

What is answered (shapes as js-libp2p kad-dht 16's handlers write them):

* FIND_NODE: the ``k`` entries closest to ``sha256(key)``, never the requester, never us
  (except when the key is our own peer ID: then us, with our addresses), never a peer without
  a directly dialable address (relay-only peers are not in the table either).
  ``clusterLevel`` is echoed.
* GET_PROVIDERS: the key's unexpired providers (us first when we provide it) and the closer
  peers as for FIND_NODE; the key and ``clusterLevel`` are echoed. The key must be a multihash
  or CID (:func:`.kad.is_content_key`), as js requires.
* ADD_PROVIDER: no response (as in the spec and js). Each provider entry is stored only when its
  peer ID is the sending peer's and it carries at least one address; others are counted in
  :attr:`ServerReply.ignored`.
* PUT_VALUE, GET_VALUE, PING, a missing or malformed key, and every request in client mode:
  refused (:attr:`ServerReply.refused` says why; the caller resets the stream). Not a
  :class:`~darkswap_wasm.errors.ProtocolError`: the peer broke no rule, we only do not serve it.

Deliberate deviation: GET_PROVIDERS' closer peers also exclude the requester (js only does so
for FIND_NODE); a peer never learns about itself from us.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import LimitExceeded
from ..identity import PeerId
from ..wire.multiaddr import Multiaddr
from .kad import (
    DEFAULT_CONFIG,
    KadConfig,
    KadMessage,
    KadMessageReader,
    KadPeer,
    MessageType,
    is_content_key,
    kad_id,
)
from .kad_providers import ProviderStore
from .kad_routing import RoutingTable, is_relay_only

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerReply:
    response: KadMessage | None = None  # what to write back (None: nothing)
    refused: str | None = None  # set when the request is not served: reset the stream
    stored: int = 0  # ADD_PROVIDER: records stored or refreshed
    ignored: int = 0  # ADD_PROVIDER: entries not stored (other peer, no address, over a limit)


class KadServer:
    def __init__(
        self,
        local_peer: PeerId,
        routing: RoutingTable,
        providers: ProviderStore,
        config: KadConfig | None = None,
        local_addrs=(),
    ) -> None:
        self.local_peer = local_peer
        self.routing = routing
        self.providers = providers
        self.config = config or DEFAULT_CONFIG
        self.local_addrs: tuple[Multiaddr, ...] = tuple(Multiaddr(a) for a in local_addrs)

    def set_local_addrs(self, addrs) -> None:
        """Our current listen addresses (what GET_PROVIDERS says about us)."""
        self.local_addrs = tuple(Multiaddr(a) for a in addrs)

    def _local(self) -> KadPeer:
        return KadPeer(self.local_peer, tuple(a.without_p2p() for a in self.local_addrs))

    def handle_request(self, sender: PeerId, request: KadMessage, now: float) -> ServerReply:
        """Serve one request from ``sender`` (the authenticated remote peer of the stream)."""
        if self.config.client_mode:
            return ServerReply(refused="client mode: we do not serve the DHT")
        kind = request.type
        if kind is MessageType.FIND_NODE:
            if not request.key:
                return ServerReply(refused="FIND_NODE without a key")
            closer = self._closer(request.key, sender)
            if request.key == self.local_peer.to_bytes() and self.local_addrs:
                closer.append(self._local())
            return ServerReply(KadMessage(MessageType.FIND_NODE, closer_peers=tuple(closer),
                                          cluster_level=request.cluster_level))
        if kind is MessageType.GET_PROVIDERS:
            if not request.key or not is_content_key(request.key):
                return ServerReply(refused="GET_PROVIDERS key is not a multihash or CID")
            closer = self._closer(request.key, sender)
            room = max(0, self.config.max_peers_per_message - len(closer))
            providers: list[KadPeer] = []
            if self.providers.is_providing(request.key) and self.local_addrs:
                providers.append(self._local())
            for p in self.providers.get(request.key, now):
                if len(providers) >= room:
                    break
                if p.addrs and p.peer_id != self.local_peer:
                    providers.append(p)
            return ServerReply(KadMessage(MessageType.GET_PROVIDERS, key=request.key,
                                          closer_peers=tuple(closer), provider_peers=tuple(providers[:room]),
                                          cluster_level=request.cluster_level))
        if kind is MessageType.ADD_PROVIDER:
            if not request.key or not is_content_key(request.key):
                return ServerReply(refused="ADD_PROVIDER key is not a multihash or CID")
            stored = ignored = 0
            for p in request.provider_peers:
                if p.peer_id != sender or not p.addrs:
                    ignored += 1  # spec: only the sender may announce itself
                    continue
                if self.providers.add(request.key, KadPeer(p.peer_id, p.addrs), now).outcome.stored:
                    stored += 1
                else:
                    ignored += 1
            if ignored:
                log.debug("ADD_PROVIDER from %s: %d stored, %d ignored", sender, stored, ignored)
            return ServerReply(None, stored=stored, ignored=ignored)
        return ServerReply(refused=f"{kind.name} is not served (provider records and peer routing only)")

    def _closer(self, key: bytes, sender: PeerId) -> list[KadPeer]:
        peers = self.routing.closest(kad_id(key), self.config.k, exclude=(sender, self.local_peer))
        return [p for p in peers if p.addrs and not is_relay_only(p.addrs)]


class KadServerStream:
    """One inbound ``/ipfs/kad/1.0.0`` stream from ``sender``: bytes in, replies and bytes out.

    Several requests per stream are served in order (js-libp2p reuses streams), at most
    ``max_requests_per_stream``; more is a :class:`LimitExceeded`. A decode error propagates
    (a :class:`~darkswap_wasm.errors.ProtocolError`): the caller resets the stream. After a
    refusal the stream takes no more requests (:attr:`closed`).
    """

    def __init__(self, server: KadServer, sender: PeerId) -> None:
        self.server = server
        self.sender = sender
        self._reader = KadMessageReader(server.config)
        self._out = bytearray()
        self.requests = 0
        self.closed = False

    def receive_data(self, data: bytes, now: float) -> list[ServerReply]:
        if self.closed:
            return []
        replies = []
        for request in self._reader.receive_data(data):
            self.requests += 1
            if self.requests > self.server.config.max_requests_per_stream:
                raise LimitExceeded(
                    f"kad stream with more than {self.server.config.max_requests_per_stream} requests"
                )
            reply = self.server.handle_request(self.sender, request, now)
            replies.append(reply)
            if reply.response is not None:
                self._out += reply.response.encode(self.server.config)
            if reply.refused is not None:
                self.closed = True
                break
        return replies

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out
