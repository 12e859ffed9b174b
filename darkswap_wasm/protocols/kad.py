"""libp2p Kademlia DHT wire messages and keys (spec: libp2p/specs ``kad-dht/README.md``,
§"RPC messages", §"Distance"; protocol ``/ipfs/kad/1.0.0``).

Sans-I/O: messages in and out as bytes. Every RPC message is ``uvarint(len) || protobuf``
(multiformats unsigned-varint length prefix, as js-libp2p's ``pbStream`` writes it)::

    Message {type=1 (enum), clusterLevelRaw=10 (int32), key=2, record=3 (bytes),
             closerPeers=8 (repeated Peer), providerPeers=9 (repeated Peer)}
    Peer    {id=1 (bytes, peer ID multihash), addrs=2 (repeated bytes), connection=3 (enum)}

Keys: a Kademlia ID is ``sha256(key)`` (spec §"Distance"). The relay key
(:func:`relay_key`) is the sha2-256 multihash of the UTF-8 bytes ``/libp2p/relay/v2`` —
byte-for-byte what js-libp2p's circuit-relay-v2 ``namespaceToCid`` provides (a CIDv0's bytes
are the bare multihash) and what its kad-dht's ``CID.decode`` accepts; :func:`is_content_key`
mirrors that check (tests/interop/test_kad_vectors.py compares both with js).

Sibling modules: the routing table and random-walk schedule (:mod:`.kad_routing`), the iterative
lookup (:mod:`.kad_lookup`), the provider store and republish schedule (:mod:`.kad_providers`)
and the serving side (:mod:`.kad_server`). Client mode (``KadConfig.client_mode``): we query,
never serve, and the host must not list ``/ipfs/kad/1.0.0`` in identify.

Deliberate choices and deviations:

* Field order on encode follows js-libp2p kad-dht 16.x's protons code (type, clusterLevel,
  key, record, closer, providers) so our bytes equal theirs; ``type`` is omitted when it is 0
  (PUT_VALUE), as proto3 and js do; an absent ``type`` decodes as PUT_VALUE.
* ``record`` is kept as opaque bytes (we never store values); PUT_VALUE/GET_VALUE decode but
  the server refuses them; PING decodes and is refused (the spec notes it is never sent).
* A negative ``clusterLevelRaw`` (a 10-byte varint) is a :class:`DecodeError`: the project's
  varint reader stops at 63 bits and no implementation sets the field.
* A ``Peer`` whose ``id`` is not a valid peer ID multihash is skipped; so is an address we
  cannot parse. An unknown ``connection`` value reads as ``None``. An unknown ``type`` is a
  :class:`DecodeError`.
* Limits (:class:`KadConfig`) are checked while decoding; exceeding one raises
  :class:`LimitExceeded`. Every decode failure is a :class:`ProtocolError` subclass.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from ..errors import ConfigError, DarkSwapError, DecodeError, LimitExceeded, MessageTooLarge, UsageError
from ..identity import PeerId
from ..wire import varint
from ..wire.framing import FrameDecoder, encode_frame
from ..wire.multiaddr import Multiaddr

PROTOCOL_ID = "/ipfs/kad/1.0.0"
RELAY_NAMESPACE = "/libp2p/relay/v2"
KEY_BITS = 256


@dataclass(frozen=True)
class KadConfig:
    """Kademlia parameters and limits (defaults: spec / js-libp2p where they exist)."""

    k: int = 20  # replication parameter and bucket size (spec §"Replication parameter")
    alpha: int = 3  # concurrent requests per lookup (spec §"Alpha concurrency parameter")
    request_timeout: float = 10.0  # seconds per request (js READ_MESSAGE_TIMEOUT)
    replacement_cache_size: int = 20  # candidates kept per full bucket
    max_message_size: int = 1024 * 1024  # js/go read up to 4 MiB; k peers need far less
    max_peers_per_message: int = 100  # closerPeers + providerPeers together
    max_addrs_per_peer: int = 64  # same bound as identify's MAX_ADDRS
    max_key_length: int = 256  # keys are multihashes / CIDs / peer IDs (<= 128 bytes)
    provider_ttl: float = 48 * 3600.0  # spec r2 (libp2p/specs#451) and js PROVIDERS_VALIDITY
    republish_interval: float = 22 * 3600.0  # spec r2: re-provide our keys before others expire them
    republish_retry_interval: float = 600.0  # after a failed republish of one of our keys
    max_providers_per_key: int = 64  # over it the key's oldest record makes room
    max_provider_keys: int = 1024  # distinct keys with stored providers; a new key over it is refused
    max_provider_records: int = 10_000  # over all keys; a new record over it is refused
    max_records_per_provider: int = 64  # keys one peer may provide here
    max_requests_per_stream: int = 32  # served on one inbound stream before it is reset
    refresh_interval: float = 300.0  # js TABLE_REFRESH_INTERVAL: a bucket unrefreshed this long is walked
    client_mode: bool = False  # True: never answer, never advertise /ipfs/kad/1.0.0

    def __post_init__(self) -> None:
        for name in ("k", "alpha", "replacement_cache_size", "max_message_size",
                     "max_peers_per_message", "max_addrs_per_peer", "max_key_length",
                     "max_providers_per_key", "max_provider_keys", "max_provider_records",
                     "max_records_per_provider", "max_requests_per_stream"):
            if getattr(self, name) < 1:
                raise ConfigError(f"KadConfig.{name} must be at least 1")
        for name in ("request_timeout", "provider_ttl", "republish_interval", "republish_retry_interval",
                     "refresh_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"KadConfig.{name} must be positive")

    @property
    def server_mode(self) -> bool:
        """Whether we answer requests (and the host registers the protocol in identify)."""
        return not self.client_mode


class MessageType(enum.IntEnum):
    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


class ConnectionType(enum.IntEnum):
    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


# --- keys -----------------------------------------------------------------------------------


def sha256_multihash(data: bytes) -> bytes:
    """The sha2-256 multihash of ``data``: ``0x12 0x20 || sha256(data)`` (also a CIDv0)."""
    return b"\x12\x20" + hashlib.sha256(data).digest()


def relay_key() -> bytes:
    """The DHT key circuit relays provide: the sha2-256 multihash of ``/libp2p/relay/v2``.

    js-libp2p's relay discovery hashes the namespace and provides ``CID.createV0(hash)``;
    a CIDv0's bytes are exactly the multihash, so this key is what goes in ``Message.key``.
    """
    return sha256_multihash(RELAY_NAMESPACE.encode("utf-8"))


def is_content_key(key: bytes) -> bool:
    """Whether js-libp2p's GET_PROVIDERS/ADD_PROVIDER handlers accept ``key`` (multiformats'
    ``CID.decode``): a key starting with ``0x12`` is read whole as a multihash (a CIDv0's bytes);
    otherwise ``varint version (0 or 1) || varint codec || multihash``. The multihash's declared
    length must end exactly at the end of the key. Never raises.

    So an identity-multihash peer ID (``0x00 0x24 ...``) is *not* a provider key for js, while
    the relay key and every sha2-256 multihash are."""
    key = bytes(key)
    try:
        first, pos = varint.decode(key, 0)
        if first == 0x12:
            pos = 0
        elif first in (0, 1):
            _, pos = varint.decode(key, pos)  # codec
        else:
            return False
        _, pos = varint.decode(key, pos)  # multihash code
        length, pos = varint.decode(key, pos)
    except DecodeError:
        return False
    return pos + length == len(key)


def kad_id(key: bytes) -> bytes:
    """The Kademlia ID of a key: ``sha256(key)`` (spec §"Distance")."""
    return hashlib.sha256(bytes(key)).digest()


def peer_kad_id(peer: PeerId) -> bytes:
    """A peer's Kademlia ID: sha256 of its peer ID multihash bytes."""
    return kad_id(peer.to_bytes())


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two Kademlia IDs, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KadPeer:
    """``Message.Peer``: a peer ID, its addresses and (optionally) a connection hint."""

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...] = ()
    connection: ConnectionType | None = None

    def encode(self) -> bytes:
        out = bytearray()
        pid = self.peer_id.to_bytes()
        out += b"\x0a" + varint.encode(len(pid)) + pid
        for addr in self.addrs:
            raw = addr.to_bytes()
            out += b"\x12" + varint.encode(len(raw)) + raw
        if self.connection is not None:
            out += b"\x18" + varint.encode(int(self.connection))
        return bytes(out)


@dataclass(frozen=True)
class KadMessage:
    type: MessageType
    key: bytes | None = None
    record: bytes | None = None
    closer_peers: tuple[KadPeer, ...] = ()
    provider_peers: tuple[KadPeer, ...] = ()
    cluster_level: int | None = None

    def encode_body(self, config: KadConfig | None = None) -> bytes:
        """The protobuf body (field order as js-libp2p writes it)."""
        cfg = config or DEFAULT_CONFIG
        if self.key is not None and len(self.key) > cfg.max_key_length:
            raise MessageTooLarge(f"kad key of {len(self.key)} bytes exceeds {cfg.max_key_length}")
        if len(self.closer_peers) + len(self.provider_peers) > cfg.max_peers_per_message:
            raise MessageTooLarge(f"kad message with more than {cfg.max_peers_per_message} peers")
        out = bytearray()
        if self.type != MessageType.PUT_VALUE:
            out += b"\x08" + varint.encode(int(self.type))
        if self.cluster_level is not None:
            if self.cluster_level < 0:
                raise UsageError("kad clusterLevel must not be negative")
            out += b"\x50" + varint.encode(self.cluster_level)
        if self.key is not None:
            out += b"\x12" + varint.encode(len(self.key)) + bytes(self.key)
        if self.record is not None:
            out += b"\x1a" + varint.encode(len(self.record)) + bytes(self.record)
        for tag, peers in ((b"\x42", self.closer_peers), (b"\x4a", self.provider_peers)):
            for peer in peers:
                if len(peer.addrs) > cfg.max_addrs_per_peer:
                    raise MessageTooLarge(f"kad peer with more than {cfg.max_addrs_per_peer} addrs")
                raw = peer.encode()
                out += tag + varint.encode(len(raw)) + raw
        if len(out) > cfg.max_message_size:
            raise MessageTooLarge(f"kad message of {len(out)} bytes exceeds {cfg.max_message_size}")
        return bytes(out)

    def encode(self, config: KadConfig | None = None) -> bytes:
        """The length-prefixed wire message."""
        return encode_frame(self.encode_body(config))

    @classmethod
    def decode_body(cls, body: bytes, config: KadConfig | None = None) -> KadMessage:
        """Decode one protobuf body. Raises only :class:`ProtocolError` subclasses."""
        try:
            return _decode_message(bytes(body), config or DEFAULT_CONFIG)
        except DarkSwapError:
            raise
        except (ValueError, IndexError, TypeError) as exc:  # defensive: never leak other types
            raise DecodeError(f"kad message: {exc}") from exc


DEFAULT_CONFIG = KadConfig()


def _fields(data: bytes):
    """Yield ``(field, wire_type, value)``; value is an int (varint) or bytes (length-delimited)."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = varint.decode(data, pos)
        field, wt = key >> 3, key & 7
        if field == 0:
            raise DecodeError("kad: protobuf field number 0")
        if wt == 0:
            value, pos = varint.decode(data, pos)
        elif wt == 2:
            length, pos = varint.decode(data, pos)
            if pos + length > end:
                raise DecodeError("kad: length-delimited field runs past the end")
            value = data[pos : pos + length]
            pos += length
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            if pos + size > end:
                raise DecodeError("kad: truncated fixed-width field")
            value = int.from_bytes(data[pos : pos + size], "little")
            pos += size
        else:
            raise DecodeError(f"kad: unsupported protobuf wire type {wt}")
        yield field, wt, value


def _expect(wt: int, want: int, name: str) -> None:
    if wt != want:
        raise DecodeError(f"kad: field {name} has wire type {wt}, expected {want}")


def _decode_peer(data: bytes, cfg: KadConfig) -> KadPeer | None:
    raw_id: bytes = b""
    addrs: list[Multiaddr] = []
    n_addrs = 0
    connection: ConnectionType | None = None
    for field, wt, value in _fields(data):
        if field == 1:
            _expect(wt, 2, "Peer.id")
            raw_id = bytes(value)
        elif field == 2:
            _expect(wt, 2, "Peer.addrs")
            n_addrs += 1
            if n_addrs > cfg.max_addrs_per_peer:
                raise LimitExceeded(f"kad peer with more than {cfg.max_addrs_per_peer} addrs")
            try:
                addrs.append(Multiaddr.from_bytes(bytes(value)))
            except DecodeError:
                continue  # an address we cannot read is skipped, not fatal
        elif field == 3:
            _expect(wt, 0, "Peer.connection")
            connection = ConnectionType(value) if value in _CONNECTION_VALUES else None
    try:
        peer_id = PeerId(raw_id)
    except DecodeError:
        return None  # a peer we cannot identify is skipped
    return KadPeer(peer_id, tuple(addrs), connection)


_CONNECTION_VALUES = frozenset(int(c) for c in ConnectionType)
_TYPE_VALUES = frozenset(int(t) for t in MessageType)


def _decode_message(data: bytes, cfg: KadConfig) -> KadMessage:
    if len(data) > cfg.max_message_size:
        raise LimitExceeded(f"kad message of {len(data)} bytes exceeds {cfg.max_message_size}")
    mtype = MessageType.PUT_VALUE
    key = record = None
    cluster = None
    closer: list[KadPeer] = []
    providers: list[KadPeer] = []
    n_peers = 0
    for field, wt, value in _fields(data):
        if field == 1:
            _expect(wt, 0, "type")
            if value not in _TYPE_VALUES:
                raise DecodeError(f"kad: unknown message type {value}")
            mtype = MessageType(value)
        elif field == 10:
            _expect(wt, 0, "clusterLevelRaw")
            if value >= 1 << 31:
                raise DecodeError("kad: clusterLevelRaw out of int32 range")
            cluster = value
        elif field == 2:
            _expect(wt, 2, "key")
            if len(value) > cfg.max_key_length:
                raise LimitExceeded(f"kad key of {len(value)} bytes exceeds {cfg.max_key_length}")
            key = bytes(value)
        elif field == 3:
            _expect(wt, 2, "record")
            record = bytes(value)
        elif field in (8, 9):
            _expect(wt, 2, "closerPeers" if field == 8 else "providerPeers")
            n_peers += 1
            if n_peers > cfg.max_peers_per_message:
                raise LimitExceeded(f"kad message with more than {cfg.max_peers_per_message} peers")
            peer = _decode_peer(bytes(value), cfg)
            if peer is not None:
                (closer if field == 8 else providers).append(peer)
    return KadMessage(mtype, key, record, tuple(closer), tuple(providers), cluster)


class KadMessageReader:
    """Feed stream bytes, get whole :class:`KadMessage` objects out (several per stream allowed)."""

    def __init__(self, config: KadConfig | None = None) -> None:
        self._config = config or DEFAULT_CONFIG
        self._decoder = FrameDecoder(self._config.max_message_size)

    def receive_data(self, data: bytes) -> list[KadMessage]:
        return [KadMessage.decode_body(f, self._config) for f in self._decoder.feed(data)]

    @property
    def buffered(self) -> int:
        return self._decoder.buffered
