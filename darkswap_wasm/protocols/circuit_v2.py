"""libp2p circuit relay v2 (spec: libp2p/specs ``relay/circuit-v2.md``): hop and stop messages,
a reader that hands over the relayed bytes, and the relay server's resource accounting.

Sans-I/O: nothing here reads a clock. ``now`` is a monotonic time in seconds; ``now_unix`` is
wall-clock unix seconds and is used only for the ``expire`` the relay tells its clients.

Wire: every message is ``uvarint(len) || protobuf``, at most :data:`MAX_MESSAGE` bytes
(go-libp2p ``maxMessageSize = 4096``; js-libp2p reads up to 4 MiB, so go's bound is the one
that matters). Field numbers and tags (checked against go ``circuitv2/pb/circuit.proto`` and
the protons code js-libp2p 4.2.13 generates from ``src/pb/index.proto``)::

    HopMessage  {type=1 (0x08), peer=2 (0x12), reservation=3 (0x1a), limit=4 (0x22), status=5 (0x28)}
    StopMessage {type=1 (0x08), peer=2 (0x12), limit=3 (0x1a), status=4 (0x20)}
    Peer        {id=1 (0x0a), addrs=2 (0x12, repeated)}
    Reservation {expire=1 (0x08, uint64 unix s), addrs=2 (0x12, repeated), voucher=3 (0x1a, envelope)}
    Limit       {duration=1 (0x08, uint32 s), data=2 (0x10, uint64 bytes per direction)}

Interop notes:

* ``type`` is always written, even when it is 0 (``RESERVE``/stop ``CONNECT``): js-libp2p
  answers a message without ``type`` with ``MALFORMED_MESSAGE``. When reading, an absent
  ``type`` means 0, as go's ``GetType()`` does (old go versions omitted it).
* Enum values outside the spec (``type`` or ``status``) are a ``DecodeError`` (js-libp2p's
  decoder rejects them as well); ``Status.UNUSED`` (0) is the proto3 placeholder go and js
  declare, never sent on purpose.
* js-libp2p relays (4.2.x) put their duration limit on the wire in *milliseconds* (120000 for
  their 2-minute default) although the spec and every client read seconds; a client therefore
  sees a far longer limit than such a relay enforces. We send seconds.
* A missing required field (CONNECT without ``peer``, STATUS without ``status``, a ``Peer``
  without ``id``) raises :class:`MalformedMessage`; a relay answers both it and
  ``DecodeError`` with ``MALFORMED_MESSAGE`` (:func:`status_for_error`).
* Addresses inside ``Peer``/``Reservation`` that we cannot parse are skipped, not fatal.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import ConfigError, DarkSwapError, DecodeError, LimitExceeded, MessageTooLarge, ProtocolError
from ..identity import PeerId
from ..wire import protobuf, varint
from ..wire.framing import encode_frame
from ..wire.multiaddr import Multiaddr

HOP_PROTOCOL_ID = "/libp2p/circuit/relay/0.2.0/hop"
STOP_PROTOCOL_ID = "/libp2p/circuit/relay/0.2.0/stop"
MAX_MESSAGE = 4096
MAX_ADDRS = 64
MAX_UINT32 = (1 << 32) - 1


class MalformedMessage(ProtocolError):
    """A relay message decoded but lacks a field its type requires (answer: MALFORMED_MESSAGE)."""

    CODE = "MALFORMED_MESSAGE"


class Status(enum.IntEnum):
    UNUSED = 0  # proto3 placeholder in go/js; not a spec code
    OK = 100
    RESERVATION_REFUSED = 200
    RESOURCE_LIMIT_EXCEEDED = 201
    PERMISSION_DENIED = 202
    CONNECTION_FAILED = 203
    NO_RESERVATION = 204
    MALFORMED_MESSAGE = 400
    UNEXPECTED_MESSAGE = 401


class HopType(enum.IntEnum):
    RESERVE = 0
    CONNECT = 1
    STATUS = 2


class StopType(enum.IntEnum):
    CONNECT = 0
    STATUS = 1


def status_for_error(exc: DarkSwapError) -> Status:
    """The status a relay (or stop handler) answers a request that failed to decode with."""
    if isinstance(exc, ProtocolError):
        return Status.MALFORMED_MESSAGE
    return Status.CONNECTION_FAILED


# --------------------------------------------------------------------------- schemas

PEER_SCHEMA = {1: ("id", "bytes", False), 2: ("addrs", "bytes", True)}
RESERVATION_SCHEMA = {
    1: ("expire", "uint", False),
    2: ("addrs", "bytes", True),
    3: ("voucher", "bytes", False),
}
LIMIT_SCHEMA = {1: ("duration", "uint", False), 2: ("data", "uint", False)}
HOP_SCHEMA = {
    1: ("type", "enum", False),
    2: ("peer", "bytes", False),
    3: ("reservation", "bytes", False),
    4: ("limit", "bytes", False),
    5: ("status", "enum", False),
}
STOP_SCHEMA = {
    1: ("type", "enum", False),
    2: ("peer", "bytes", False),
    3: ("limit", "bytes", False),
    4: ("status", "enum", False),
}


def _addrs_from_wire(raw_addrs: list[bytes]) -> tuple[Multiaddr, ...]:
    if len(raw_addrs) > MAX_ADDRS:
        raise DecodeError(f"circuit relay: more than {MAX_ADDRS} addresses")
    addrs = []
    for raw in raw_addrs:
        try:
            addr = Multiaddr.from_bytes(raw)
        except DecodeError:
            continue  # an address we cannot read is skipped, not fatal
        if len(addr):  # an empty multiaddr is skipped too (go refuses to parse one)
            addrs.append(addr)
    return tuple(addrs)


def _enum(cls, value: int, what: str):
    try:
        return cls(value)
    except ValueError:
        raise DecodeError(f"circuit relay: unknown {what} {value}") from None


# --------------------------------------------------------------------------- sub-messages


@dataclass(frozen=True)
class Peer:
    id: PeerId
    addrs: tuple[Multiaddr, ...] = ()

    def to_protobuf(self) -> bytes:
        return protobuf.encode(
            PEER_SCHEMA, {"id": self.id.to_bytes(), "addrs": [a.to_bytes() for a in self.addrs]}
        )

    @classmethod
    def from_protobuf(cls, data: bytes) -> Peer:
        msg = protobuf.decode(PEER_SCHEMA, data)
        if not msg.get("id"):
            raise MalformedMessage("circuit relay: Peer without id")
        return cls(PeerId(msg["id"]), _addrs_from_wire(msg["addrs"]))


@dataclass(frozen=True)
class Reservation:
    expire: int  # unix seconds (UTC), as the relay's clock sees it
    addrs: tuple[Multiaddr, ...] = ()
    voucher: bytes | None = None  # an encoded signed envelope (identity.envelope.open_voucher)

    def to_protobuf(self) -> bytes:
        return protobuf.encode(
            RESERVATION_SCHEMA,
            {
                "expire": self.expire,
                "addrs": [a.to_bytes() for a in self.addrs],
                "voucher": self.voucher,
            },
        )

    @classmethod
    def from_protobuf(cls, data: bytes) -> Reservation:
        msg = protobuf.decode(RESERVATION_SCHEMA, data)
        return cls(msg.get("expire", 0), _addrs_from_wire(msg["addrs"]), msg.get("voucher"))


@dataclass(frozen=True)
class Limit:
    """Limits of one relayed connection. ``None`` = absent on the wire; 0 also means unlimited."""

    duration: int | None = None  # seconds
    data: int | None = None  # bytes, in each direction

    def __post_init__(self) -> None:
        if self.duration is not None and not 0 <= self.duration <= MAX_UINT32:
            raise ValueError(f"limit duration out of uint32 range: {self.duration}")
        if self.data is not None and not 0 <= self.data < 1 << 63:
            raise ValueError(f"limit data out of range: {self.data}")

    @property
    def duration_limit(self) -> int | None:
        """The duration in seconds, ``None`` when unlimited (absent or 0)."""
        return self.duration or None

    @property
    def data_limit(self) -> int | None:
        """Bytes per direction, ``None`` when unlimited (absent or 0)."""
        return self.data or None

    @property
    def unlimited(self) -> bool:
        """True when neither limit applies (send no ``limit`` field at all then)."""
        return self.duration_limit is None and self.data_limit is None

    def to_protobuf(self) -> bytes:
        return protobuf.encode(LIMIT_SCHEMA, {"duration": self.duration, "data": self.data})

    @classmethod
    def from_protobuf(cls, data: bytes) -> Limit:
        msg = protobuf.decode(LIMIT_SCHEMA, data)
        duration = msg.get("duration")
        if duration is not None and duration > MAX_UINT32:
            raise DecodeError(f"circuit relay: limit duration {duration} exceeds uint32")
        return cls(duration, msg.get("data"))


# --------------------------------------------------------------------------- messages


def _frame(body: bytes, what: str) -> bytes:
    if len(body) > MAX_MESSAGE:
        raise MessageTooLarge(f"{what} of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return encode_frame(body)


def _one_frame(data: bytes, what: str) -> bytes:
    data = bytes(data)
    header = varint.try_decode(data)
    if header is None:
        raise DecodeError(f"{what}: truncated length prefix")
    length, start = header
    if length > MAX_MESSAGE:
        raise LimitExceeded(f"{what} of {length} bytes exceeds {MAX_MESSAGE}")
    if len(data) - start != length:
        raise DecodeError(f"{what}: length prefix says {length} bytes, {len(data) - start} follow")
    return data[start:]


@dataclass(frozen=True)
class HopMessage:
    type: HopType
    peer: Peer | None = None
    reservation: Reservation | None = None
    limit: Limit | None = None
    status: Status | None = None

    def encode_body(self) -> bytes:
        return protobuf.encode(
            HOP_SCHEMA,
            {
                "type": int(self.type),
                "peer": self.peer.to_protobuf() if self.peer else None,
                "reservation": self.reservation.to_protobuf() if self.reservation else None,
                "limit": self.limit.to_protobuf() if self.limit else None,
                "status": int(self.status) if self.status is not None else None,
            },
        )

    def encode(self) -> bytes:
        """The length-prefixed wire message. Does not check required fields (tests send bad ones)."""
        return _frame(self.encode_body(), "hop message")

    @classmethod
    def decode_body(cls, body: bytes) -> HopMessage:
        if len(body) > MAX_MESSAGE:
            raise LimitExceeded(f"hop message of {len(body)} bytes exceeds {MAX_MESSAGE}")
        msg = protobuf.decode(HOP_SCHEMA, bytes(body))
        mtype = _enum(HopType, msg.get("type", 0), "hop message type")
        status = _enum(Status, msg["status"], "status") if "status" in msg else None
        peer = Peer.from_protobuf(msg["peer"]) if "peer" in msg else None
        reservation = Reservation.from_protobuf(msg["reservation"]) if "reservation" in msg else None
        limit = Limit.from_protobuf(msg["limit"]) if "limit" in msg else None
        if mtype is HopType.CONNECT and peer is None:
            raise MalformedMessage("circuit relay: hop CONNECT without peer")
        if mtype is HopType.STATUS and status is None:
            raise MalformedMessage("circuit relay: hop STATUS without status")
        return cls(mtype, peer, reservation, limit, status)

    @classmethod
    def decode(cls, data: bytes) -> HopMessage:
        """Decode exactly one length-prefixed message (nothing may follow it)."""
        return cls.decode_body(_one_frame(data, "hop message"))


@dataclass(frozen=True)
class StopMessage:
    type: StopType
    peer: Peer | None = None
    limit: Limit | None = None
    status: Status | None = None

    def encode_body(self) -> bytes:
        return protobuf.encode(
            STOP_SCHEMA,
            {
                "type": int(self.type),
                "peer": self.peer.to_protobuf() if self.peer else None,
                "limit": self.limit.to_protobuf() if self.limit else None,
                "status": int(self.status) if self.status is not None else None,
            },
        )

    def encode(self) -> bytes:
        """The length-prefixed wire message. Does not check required fields."""
        return _frame(self.encode_body(), "stop message")

    @classmethod
    def decode_body(cls, body: bytes) -> StopMessage:
        if len(body) > MAX_MESSAGE:
            raise LimitExceeded(f"stop message of {len(body)} bytes exceeds {MAX_MESSAGE}")
        msg = protobuf.decode(STOP_SCHEMA, bytes(body))
        mtype = _enum(StopType, msg.get("type", 0), "stop message type")
        status = _enum(Status, msg["status"], "status") if "status" in msg else None
        peer = Peer.from_protobuf(msg["peer"]) if "peer" in msg else None
        limit = Limit.from_protobuf(msg["limit"]) if "limit" in msg else None
        if mtype is StopType.CONNECT and peer is None:
            raise MalformedMessage("circuit relay: stop CONNECT without peer")
        if mtype is StopType.STATUS and status is None:
            raise MalformedMessage("circuit relay: stop STATUS without status")
        return cls(mtype, peer, limit, status)

    @classmethod
    def decode(cls, data: bytes) -> StopMessage:
        """Decode exactly one length-prefixed message (nothing may follow it)."""
        return cls.decode_body(_one_frame(data, "stop message"))


M = TypeVar("M", HopMessage, StopMessage)


class MessageReader(Generic[M]):
    """Reads one length-prefixed hop or stop message off a stream and hands over what follows.

    ``MessageReader(HopMessage)``; :meth:`feed` returns ``None`` until a whole message arrived,
    then ``(message, leftover)`` once, where ``leftover`` is every byte received after the
    message, untouched (after a CONNECT/STATUS OK those are relayed bytes). It buffers at most
    ``max_message`` + 9 bytes. Feeding after the message was returned is a ``ProtocolError``.
    """

    def __init__(self, kind: type[M], max_message: int = MAX_MESSAGE) -> None:
        if kind not in (HopMessage, StopMessage):
            raise TypeError("MessageReader reads HopMessage or StopMessage")
        self._kind = kind
        self._max = max_message
        self._buf = bytearray()
        self._failed = False
        self.message: M | None = None

    @property
    def done(self) -> bool:
        return self.message is not None

    def feed(self, data: bytes) -> tuple[M, bytes] | None:
        if self.message is not None:
            raise ProtocolError("circuit relay: message already read; the rest of the stream is relayed data")
        if self._failed:
            raise ProtocolError("circuit relay: data after a malformed message")
        try:
            return self._feed(data)
        except ProtocolError:
            self._failed = True
            self._buf.clear()
            raise

    def _feed(self, data: bytes) -> tuple[M, bytes] | None:
        self._buf += data
        header = varint.try_decode(self._buf)
        if header is None:
            return None
        length, start = header
        if length > self._max:
            raise LimitExceeded(f"circuit relay message of {length} bytes exceeds {self._max}")
        if len(self._buf) - start < length:
            return None
        body = bytes(self._buf[start : start + length])
        leftover = bytes(self._buf[start + length :])
        self._buf.clear()
        message = self._kind.decode_body(body)
        self.message = message
        return message, leftover

    def end_of_stream(self) -> None:
        """The stream ended: an error unless the message was already read."""
        if self.message is None:
            raise DecodeError("circuit relay: stream ended before a whole message arrived")


# --------------------------------------------------------------------------- relay resources


@dataclass(frozen=True)
class RelayConfig:
    """Relay server limits (defaults as rust-libp2p's ``relay::Config``; go's are alike).

    ``max_reservations_per_peer`` caps reservations per *source* (e.g. remote IP) — each peer
    ID holds at most one reservation, refreshed in place.

    Circuits are counted by who opens them, so strangers cannot use up a destination: at most
    ``max_circuits_per_peer`` from one source peer ID and ``max_circuits_per_ip`` from one source
    address (throwaway peer IDs share their IP's), at most ``max_circuits_to_peer`` to one
    destination of which one source address may hold ``max_circuits_to_peer_per_ip`` (a stranger
    takes a share of a peer's circuits, never all of them), ``max_circuits`` in all.
    ``circuit_duration`` (s) and
    ``circuit_data`` (bytes per direction) are the per-circuit limits; 0 means unlimited.
    ``max_reservation_rate_per_peer`` / ``max_reservation_rate_per_ip``: if set, at most that
    many RESERVE requests (new or refresh) per peer ID / per source in any
    ``reservation_rate_interval`` seconds (token buckets: that burst, refilled evenly over the
    interval; as rust-libp2p's rate limiters). An honest client renews at ¾ of the TTL.
    """

    max_reservations: int = 128
    max_reservations_per_peer: int = 4
    max_circuits: int = 256
    max_circuits_per_peer: int = 4  # opened by one source peer ID
    max_circuits_per_ip: int = 16  # opened from one source address
    max_circuits_to_peer: int = 16  # to one destination (go-libp2p's per-peer relayed connections)
    max_circuits_to_peer_per_ip: int = 4  # to one destination from one source address
    reservation_ttl: float = 3600.0
    circuit_duration: float = 120.0
    circuit_data: int = 128 * 1024
    max_reservation_rate_per_peer: int | None = 10
    max_reservation_rate_per_ip: int | None = 120
    reservation_rate_interval: float = 60.0

    def __post_init__(self) -> None:
        counts = (
            "max_reservations",
            "max_reservations_per_peer",
            "max_circuits",
            "max_circuits_per_peer",
            "max_circuits_per_ip",
            "max_circuits_to_peer",
            "max_circuits_to_peer_per_ip",
        )
        for name in counts:
            if getattr(self, name) < 0:
                raise ConfigError(f"RelayConfig.{name} must be >= 0")
        if not self.reservation_ttl > 0:
            raise ConfigError("RelayConfig.reservation_ttl must be > 0")
        if self.circuit_duration < 0 or math.ceil(self.circuit_duration) > MAX_UINT32:
            raise ConfigError("RelayConfig.circuit_duration must be in [0, 2**32) seconds")
        if not 0 <= self.circuit_data < 1 << 63:
            raise ConfigError("RelayConfig.circuit_data must be in [0, 2**63)")
        for name in ("max_reservation_rate_per_peer", "max_reservation_rate_per_ip"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"RelayConfig.{name} must be >= 1 (or None)")
        if not self.reservation_rate_interval > 0:
            raise ConfigError("RelayConfig.reservation_rate_interval must be > 0")


@dataclass
class _Rsvp:
    expires_at: float  # monotonic
    expire_unix: int
    source: str | None


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RelayResources:
    """Reservation and circuit bookkeeping of a relay server. Sans-I/O; times are arguments.

    The I/O layer calls :meth:`reserve` for each RESERVE (answer with the returned status and
    ``expire``), :meth:`unreserve` when the reserving peer's last connection closes (a
    reservation lives only as long as that connection), :meth:`open_circuit` /
    :meth:`close_circuit` around each relayed connection, and :meth:`expire` at
    :meth:`next_deadline`.
    """

    def __init__(self, config: RelayConfig | None = None) -> None:
        self.config = config or RelayConfig()
        self._rsvps: dict[PeerId, _Rsvp] = {}
        self._per_source: dict[str, int] = {}
        self._circuits: dict[int, tuple[tuple, ...]] = {}  # circuit id -> the counters it holds
        # ("src", peer) / ("ip", addr) / ("dst", peer) / ("dst-ip", peer, addr) -> open circuits
        self._circuit_counts: dict[tuple, int] = {}
        self._next_circuit = 1
        self._buckets: dict[object, _Bucket] = {}

    # -- reservations ----------------------------------------------------------------------
    def reserve(
        self, peer: PeerId, now: float, now_unix: float, source: str | None = None
    ) -> tuple[Status, int | None]:
        """Accept or refuse a RESERVE from ``peer`` (``source``: e.g. its IP).

        Returns ``(Status.OK, expire_unix)`` or ``(Status.RESOURCE_LIMIT_EXCEEDED, None)``
        (over the global, per-source or rate cap, as rust-libp2p answers; go and js answer
        RESERVATION_REFUSED — clients treat every non-OK status alike). A refresh keeps the
        peer's slot and moves its expiry.
        """
        cfg = self.config
        current = self._rsvps.get(peer)
        if current is not None and now >= current.expires_at:
            self._drop(peer)
            current = None
        if current is None and len(self._rsvps) >= cfg.max_reservations:
            return Status.RESOURCE_LIMIT_EXCEEDED, None
        if source is not None and (current is None or current.source != source):
            if self._per_source.get(source, 0) >= cfg.max_reservations_per_peer:
                return Status.RESOURCE_LIMIT_EXCEEDED, None
        if not self._rate_ok(peer, source, now):
            return Status.RESOURCE_LIMIT_EXCEEDED, None
        if current is not None and current.source != source:
            self._dec_source(current.source)
            current = None
            del self._rsvps[peer]
        if current is None and source is not None:
            self._per_source[source] = self._per_source.get(source, 0) + 1
        expire_unix = int(now_unix + cfg.reservation_ttl)
        self._rsvps[peer] = _Rsvp(now + cfg.reservation_ttl, expire_unix, source)
        return Status.OK, expire_unix

    def has_reservation(self, peer: PeerId, now: float) -> bool:
        r = self._rsvps.get(peer)
        return r is not None and now < r.expires_at

    def reservation_expiry_unix(self, peer: PeerId) -> int | None:
        r = self._rsvps.get(peer)
        return r.expire_unix if r is not None else None

    def unreserve(self, peer: PeerId) -> bool:
        """Drop ``peer``'s reservation (its connection closed). True if it had one."""
        if peer not in self._rsvps:
            return False
        self._drop(peer)
        return True

    def expire(self, now: float) -> list[PeerId]:
        """Drop reservations past their expiry; returns their peers. Also forgets full rate buckets."""
        gone = [p for p, r in self._rsvps.items() if now >= r.expires_at]
        for p in gone:
            self._drop(p)
        if self._buckets:
            self._forget_full_buckets(now)
        return gone

    def next_deadline(self) -> float | None:
        """When the next reservation expires (monotonic), ``None`` when there is none."""
        return min((r.expires_at for r in self._rsvps.values()), default=None)

    def _drop(self, peer: PeerId) -> None:
        r = self._rsvps.pop(peer)
        self._dec_source(r.source)

    def _dec_source(self, source: str | None) -> None:
        if source is None:
            return
        left = self._per_source.get(source, 0) - 1
        if left > 0:
            self._per_source[source] = left
        else:
            self._per_source.pop(source, None)

    def _burst(self, key: tuple) -> int:
        cfg = self.config
        burst = cfg.max_reservation_rate_per_peer if key[0] == "peer" else cfg.max_reservation_rate_per_ip
        return burst or 0

    def _refill(self, key: tuple, bucket: _Bucket, now: float) -> float:
        burst = self._burst(key)
        rate = burst / self.config.reservation_rate_interval
        if now > bucket.at:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        return bucket.tokens

    def _forget_full_buckets(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if self._refill(k, b, now) >= self._burst(k)]:
            del self._buckets[key]

    def _rate_ok(self, peer: PeerId, source: str | None, now: float) -> bool:
        cfg = self.config
        keys: list[tuple] = []
        if cfg.max_reservation_rate_per_peer is not None:
            keys.append(("peer", peer))
        if source is not None and cfg.max_reservation_rate_per_ip is not None:
            keys.append(("source", source))
        if not keys:
            return True
        if len(self._buckets) > 4 * max(cfg.max_reservations, 64):
            self._forget_full_buckets(now)
        buckets = []
        for key in keys:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(self._burst(key)), now)
            buckets.append((key, b))
        if any(self._refill(k, b, now) < 1.0 for k, b in buckets):
            return False
        for _k, b in buckets:
            b.tokens -= 1.0
        return True

    # -- circuits --------------------------------------------------------------------------
    def open_circuit(
        self, src: PeerId, dst: PeerId, now: float, source: str | None = None
    ) -> tuple[Status, int | None]:
        """Admit a circuit ``src`` → ``dst`` opened from ``source`` (e.g. the source IP):
        ``(Status.OK, circuit_id)``, or NO_RESERVATION when ``dst`` has none, or
        RESOURCE_LIMIT_EXCEEDED over one of the caps (see :class:`RelayConfig`)."""
        cfg = self.config
        if not self.has_reservation(dst, now):
            return Status.NO_RESERVATION, None
        if len(self._circuits) >= cfg.max_circuits:
            return Status.RESOURCE_LIMIT_EXCEEDED, None
        caps: list[tuple[tuple, int]] = [
            (("src", src), cfg.max_circuits_per_peer),
            (("dst", dst), cfg.max_circuits_to_peer),
        ]
        if source is not None:
            caps.append((("ip", source), cfg.max_circuits_per_ip))
            caps.append((("dst-ip", dst, source), cfg.max_circuits_to_peer_per_ip))
        for key, cap in caps:
            if self._circuit_counts.get(key, 0) >= cap:
                return Status.RESOURCE_LIMIT_EXCEEDED, None
        cid = self._next_circuit
        self._next_circuit += 1
        keys = tuple(key for key, _cap in caps)
        self._circuits[cid] = keys
        for key in keys:
            self._circuit_counts[key] = self._circuit_counts.get(key, 0) + 1
        return Status.OK, cid

    def close_circuit(self, circuit_id: int) -> bool:
        """Release a circuit (idempotent). True if it was open."""
        keys = self._circuits.pop(circuit_id, None)
        if keys is None:
            return False
        for key in keys:
            left = self._circuit_counts.get(key, 0) - 1
            if left > 0:
                self._circuit_counts[key] = left
            else:
                self._circuit_counts.pop(key, None)
        return True

    def limit(self) -> Limit:
        """The per-circuit limit to announce (``None`` fields when unlimited; send no ``limit``
        field at all when :attr:`Limit.unlimited`)."""
        cfg = self.config
        duration = math.ceil(cfg.circuit_duration) if cfg.circuit_duration > 0 else None
        return Limit(duration, cfg.circuit_data or None)

    # -- metrics ---------------------------------------------------------------------------
    @property
    def reservation_count(self) -> int:
        return len(self._rsvps)

    @property
    def circuit_count(self) -> int:
        return len(self._circuits)

    def circuits_of(self, peer: PeerId) -> int:
        """Circuits ``peer`` opened."""
        return self._circuit_counts.get(("src", peer), 0)

    def circuits_to(self, peer: PeerId) -> int:
        """Circuits to ``peer``."""
        return self._circuit_counts.get(("dst", peer), 0)

    def circuits_from(self, source: str) -> int:
        """Circuits opened from ``source`` (an address)."""
        return self._circuit_counts.get(("ip", source), 0)

    def reservations_from(self, source: str) -> int:
        return self._per_source.get(source, 0)


class CircuitMeter:
    """Per-circuit accounting for the relay's splice loop.

    Data is counted per direction (spec: "bytes allowed to be transmitted in each direction",
    as go does); ``reverse=False`` is the initiator → target direction. When :meth:`on_data`
    returns False the limit is exceeded: forward at most :meth:`remaining` of that chunk (or
    nothing) and reset both halves. :meth:`expired` tells when the duration limit ran out.
    """

    def __init__(self, limit: Limit | None, now: float) -> None:
        self.limit = limit or Limit()
        duration = self.limit.duration_limit
        self.deadline: float | None = now + duration if duration is not None else None
        self._max = self.limit.data_limit
        self.forward_bytes = 0
        self.reverse_bytes = 0

    def on_data(self, n: int, *, reverse: bool = False) -> bool:
        if n < 0:
            raise ValueError("negative byte count")
        if reverse:
            self.reverse_bytes += n
            total = self.reverse_bytes
        else:
            self.forward_bytes += n
            total = self.forward_bytes
        return self._max is None or total <= self._max

    def remaining(self, *, reverse: bool = False) -> int | None:
        """Bytes still allowed in that direction (``None``: unlimited)."""
        if self._max is None:
            return None
        return max(0, self._max - (self.reverse_bytes if reverse else self.forward_bytes))

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline
