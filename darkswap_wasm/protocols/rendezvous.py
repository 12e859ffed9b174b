"""libp2p rendezvous (libp2p/specs ``rendezvous/README.md``, protocol ``/rendezvous/1.0.0``).

Peers REGISTER themselves under a namespace at a rendezvous point (here: the relay) with a
signed peer record and a TTL, UNREGISTER, and DISCOVER the registrations of a namespace, paged
with an opaque cookie. Every message is a varint-length-prefixed ``Message`` (§Protobuf):
``type`` plus one of ``register`` (2), ``registerResponse`` (3), ``unregister`` (4),
``discover`` (5), ``discoverResponse`` (6).

Sans-I/O: :func:`decode_message` / the ``encode()`` methods are the codec, :class:`MessageReader`
frames a byte stream, and :class:`Registry` is the server's state — every method takes ``now``
(seconds, any monotonic clock), so expiry is driven by the caller (:meth:`Registry.expire`,
:meth:`Registry.next_expiry`).

Limits (:class:`RendezvousConfig`): namespace length ≤ 255 bytes (§Registration Lifetime and
Namespaces), TTL default 2 h and at most 72 h (§Registration Lifetime), and counts the spec
leaves to the implementation: namespaces, registrations per namespace, per peer, in total, and
registrations per DISCOVER answer. Refusals map to the spec's status codes:

* bad namespace → ``E_INVALID_NAMESPACE``; bad TTL → ``E_INVALID_TTL``; a record that does not
  decode, verify or name the registering peer → ``E_INVALID_SIGNED_PEER_RECORD``; a cookie we
  did not issue (or for another namespace) → ``E_INVALID_COOKIE``;
* the per-peer quota → ``E_NOT_AUTHORIZED`` (this peer may not register more);
* server capacity (namespaces, per namespace, total) → ``E_UNAVAILABLE``.

Deviations: the cookie is ``0x01 || u64 sequence || namespace`` (the spec leaves it opaque);
a DISCOVER with an empty namespace lists every namespace, as go-libp2p-rendezvous does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..errors import DecodeError, MessageTooLarge, ProtocolError
from ..identity import PeerId
from ..identity.envelope import EnvelopeError
from ..identity.peer_record import PeerRecord, open_peer_record
from ..wire import protobuf
from ..wire.framing import FrameDecoder, encode_frame

PROTOCOL_ID = "/rendezvous/1.0.0"
MAX_NAMESPACE_BYTES = 255
DEFAULT_TTL = 2 * 3600
MAX_TTL = 72 * 3600
MAX_MESSAGE = 256 * 1024  # a DISCOVER answer of the default limit fits with room to spare
MAX_STATUS_TEXT = 512
COOKIE_VERSION = 1


class MessageType(enum.IntEnum):
    REGISTER = 0
    REGISTER_RESPONSE = 1
    UNREGISTER = 2
    DISCOVER = 3
    DISCOVER_RESPONSE = 4


class Status(enum.IntEnum):
    OK = 0
    E_INVALID_NAMESPACE = 100
    E_INVALID_SIGNED_PEER_RECORD = 101
    E_INVALID_TTL = 102
    E_INVALID_COOKIE = 103
    E_NOT_AUTHORIZED = 200
    E_INTERNAL_ERROR = 300
    E_UNAVAILABLE = 400


class RendezvousError(ProtocolError):
    """The rendezvous point refused a request; ``status`` is its answer."""

    CODE = "RENDEZVOUS_FAILED"

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.status = status


REGISTER_SCHEMA = {
    1: ("ns", "string", False),
    2: ("signedPeerRecord", "bytes", False),
    3: ("ttl", "uint", False),
}
REGISTER_RESPONSE_SCHEMA = {
    1: ("status", "enum", False),
    2: ("statusText", "string", False),
    3: ("ttl", "uint", False),
}
UNREGISTER_SCHEMA = {1: ("ns", "string", False)}
DISCOVER_SCHEMA = {
    1: ("ns", "string", False),
    2: ("limit", "uint", False),
    3: ("cookie", "bytes", False),
}
DISCOVER_RESPONSE_SCHEMA = {
    1: ("registrations", REGISTER_SCHEMA, True),
    2: ("cookie", "bytes", False),
    3: ("status", "enum", False),
    4: ("statusText", "string", False),
}
MESSAGE_SCHEMA = {
    1: ("type", "enum", False),
    2: ("register", REGISTER_SCHEMA, False),
    3: ("registerResponse", REGISTER_RESPONSE_SCHEMA, False),
    4: ("unregister", UNREGISTER_SCHEMA, False),
    5: ("discover", DISCOVER_SCHEMA, False),
    6: ("discoverResponse", DISCOVER_RESPONSE_SCHEMA, False),
}
_BODY_FIELD = {
    MessageType.REGISTER: "register",
    MessageType.REGISTER_RESPONSE: "registerResponse",
    MessageType.UNREGISTER: "unregister",
    MessageType.DISCOVER: "discover",
    MessageType.DISCOVER_RESPONSE: "discoverResponse",
}


def _status(raw: int | None) -> Status:
    if raw is None:
        return Status.OK
    try:
        return Status(raw)
    except ValueError:
        raise DecodeError(f"rendezvous: unknown status {raw}") from None


# -- messages ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Register:
    ns: str
    signed_peer_record: bytes
    ttl: int | None = None  # seconds; None: the server's default

    def _body(self) -> dict:
        return {"ns": self.ns, "signedPeerRecord": self.signed_peer_record, "ttl": self.ttl}

    @classmethod
    def _from(cls, m: dict) -> Register:
        return cls(m.get("ns", ""), m.get("signedPeerRecord", b""), m.get("ttl"))


@dataclass(frozen=True)
class RegisterResponse:
    status: Status
    status_text: str = ""
    ttl: int | None = None

    def _body(self) -> dict:
        return {"status": int(self.status), "statusText": self.status_text or None, "ttl": self.ttl}

    @classmethod
    def _from(cls, m: dict) -> RegisterResponse:
        return cls(_status(m.get("status")), m.get("statusText", ""), m.get("ttl"))


@dataclass(frozen=True)
class Unregister:
    ns: str

    def _body(self) -> dict:
        return {"ns": self.ns}

    @classmethod
    def _from(cls, m: dict) -> Unregister:
        return cls(m.get("ns", ""))


@dataclass(frozen=True)
class Discover:
    ns: str = ""  # empty: every namespace
    limit: int | None = None
    cookie: bytes | None = None

    def _body(self) -> dict:
        return {"ns": self.ns or None, "limit": self.limit, "cookie": self.cookie}

    @classmethod
    def _from(cls, m: dict) -> Discover:
        return cls(m.get("ns", ""), m.get("limit"), m.get("cookie"))


@dataclass(frozen=True)
class DiscoverResponse:
    registrations: tuple[Register, ...] = ()
    cookie: bytes | None = None
    status: Status = Status.OK
    status_text: str = ""

    def _body(self) -> dict:
        return {
            "registrations": [r._body() for r in self.registrations],
            "cookie": self.cookie,
            "status": int(self.status),
            "statusText": self.status_text or None,
        }

    @classmethod
    def _from(cls, m: dict) -> DiscoverResponse:
        regs = tuple(Register._from(r) for r in m.get("registrations", []))
        return cls(regs, m.get("cookie"), _status(m.get("status")), m.get("statusText", ""))


Message = Register | RegisterResponse | Unregister | Discover | DiscoverResponse
_TYPE_OF = {
    Register: MessageType.REGISTER,
    RegisterResponse: MessageType.REGISTER_RESPONSE,
    Unregister: MessageType.UNREGISTER,
    Discover: MessageType.DISCOVER,
    DiscoverResponse: MessageType.DISCOVER_RESPONSE,
}
_CLASS_OF = {t: c for c, t in _TYPE_OF.items()}


def encode_body(msg: Message) -> bytes:
    """The ``Message`` protobuf (no length prefix)."""
    mtype = _TYPE_OF[type(msg)]
    return protobuf.encode(MESSAGE_SCHEMA, {"type": int(mtype), _BODY_FIELD[mtype]: msg._body()})


def encode_message(msg: Message) -> bytes:
    """The length-prefixed wire form. Raises :class:`MessageTooLarge` past :data:`MAX_MESSAGE`."""
    body = encode_body(msg)
    if len(body) > MAX_MESSAGE:
        raise MessageTooLarge(f"rendezvous message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    return encode_frame(body)


def decode_message(body: bytes) -> Message:
    """Parse one ``Message`` (no length prefix). Raises ``DecodeError`` on anything malformed:
    an unknown type, a missing body, a field of the wrong wire type, invalid UTF-8, an unknown
    status."""
    if len(body) > MAX_MESSAGE:
        raise DecodeError(f"rendezvous message of {len(body)} bytes exceeds {MAX_MESSAGE}")
    m = protobuf.decode(MESSAGE_SCHEMA, bytes(body))
    if "type" not in m:
        raise DecodeError("rendezvous message without a type")
    try:
        mtype = MessageType(m["type"])
    except ValueError:
        raise DecodeError(f"rendezvous: unknown message type {m['type']}") from None
    inner = m.get(_BODY_FIELD[mtype])
    if inner is None:
        raise DecodeError(f"rendezvous {mtype.name} without its body")
    return _CLASS_OF[mtype]._from(inner)


class MessageReader:
    """Frames a byte stream into rendezvous messages (bounded by :data:`MAX_MESSAGE`)."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._frames = FrameDecoder(max_message)

    def receive_data(self, data: bytes) -> list[Message]:
        """Feed bytes; every whole message now buffered. Raises ``ProtocolError``
        (``DecodeError`` / ``LimitExceeded``) on a bad message."""
        return [decode_message(f) for f in self._frames.feed(data)]

    @property
    def buffered(self) -> int:
        return self._frames.buffered


# -- server state --------------------------------------------------------------------------
@dataclass(frozen=True)
class RendezvousConfig:
    """The rendezvous point's limits. Defaults fit a small relay; the relay CLI exposes them."""

    max_namespaces: int = 1024
    max_registrations_per_namespace: int = 1000
    max_registrations_per_peer: int = 32  # across namespaces
    max_registrations: int = 20_000  # in total
    default_ttl: int = DEFAULT_TTL
    min_ttl: int = 1  # the spec names no minimum; a client re-registers before expiry anyway
    max_ttl: int = MAX_TTL
    default_discover_limit: int = 100
    max_discover_limit: int = 500
    max_namespace_bytes: int = MAX_NAMESPACE_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise ValueError("RendezvousConfig needs 1 <= min_ttl <= default_ttl <= max_ttl")
        if not 1 <= self.default_discover_limit <= self.max_discover_limit:
            raise ValueError("RendezvousConfig needs 1 <= default_discover_limit <= max_discover_limit")


@dataclass
class Registration:
    ns: str
    peer: PeerId
    signed_peer_record: bytes
    record: PeerRecord
    ttl: int
    expires_at: float
    seq: int = field(default=0)


def namespace_problem(ns: str, config: RendezvousConfig, *, allow_empty: bool = False) -> str | None:
    """Why ``ns`` is not a valid namespace, or ``None``."""
    if not ns and not allow_empty:
        return "the namespace is empty"
    if len(ns.encode("utf-8")) > config.max_namespace_bytes:
        return f"the namespace is longer than {config.max_namespace_bytes} bytes"
    return None


def make_cookie(seq: int, ns: str) -> bytes:
    return bytes([COOKIE_VERSION]) + seq.to_bytes(8, "big") + ns.encode("utf-8")


def parse_cookie(cookie: bytes) -> tuple[int, str]:
    """``(sequence, namespace)`` of a cookie we issued. Raises ``DecodeError`` otherwise."""
    if len(cookie) < 9 or cookie[0] != COOKIE_VERSION:
        raise DecodeError("not a cookie of this rendezvous point")
    try:
        ns = cookie[9:].decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("cookie namespace is not UTF-8") from None
    return int.from_bytes(cookie[1:9], "big"), ns


class Registry:
    """The rendezvous point's registrations. Time is an argument (``now``, seconds)."""

    def __init__(self, config: RendezvousConfig | None = None) -> None:
        self.config = config or RendezvousConfig()
        self._by_ns: dict[str, dict[PeerId, Registration]] = {}
        self._per_peer: dict[PeerId, int] = {}
        self._count = 0
        self._seq = 0

    # -- queries ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def namespaces(self) -> list[str]:
        return list(self._by_ns)

    def registrations_of(self, peer: PeerId) -> int:
        return self._per_peer.get(peer, 0)

    def next_expiry(self) -> float | None:
        """When the next registration expires (call :meth:`expire` then), or ``None``."""
        return min((r.expires_at for regs in self._by_ns.values() for r in regs.values()), default=None)

    # -- updates ----------------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Drop registrations whose TTL ran out; how many went."""
        gone = [r for regs in self._by_ns.values() for r in regs.values() if r.expires_at <= now]
        for r in gone:
            self._remove(r.ns, r.peer)
        return len(gone)

    def _remove(self, ns: str, peer: PeerId) -> bool:
        regs = self._by_ns.get(ns)
        if not regs or peer not in regs:
            return False
        del regs[peer]
        if not regs:
            del self._by_ns[ns]
        self._count -= 1
        left = self._per_peer[peer] - 1
        if left:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]
        return True

    def register(self, peer: PeerId, msg: Register, now: float) -> RegisterResponse:
        """Handle a REGISTER from the authenticated ``peer``."""
        self.expire(now)
        cfg = self.config
        problem = namespace_problem(msg.ns, cfg)
        if problem:
            return RegisterResponse(Status.E_INVALID_NAMESPACE, problem)
        ttl = cfg.default_ttl if not msg.ttl else msg.ttl
        if not cfg.min_ttl <= ttl <= cfg.max_ttl:
            return RegisterResponse(Status.E_INVALID_TTL, f"ttl {ttl}s is outside {cfg.min_ttl}..{cfg.max_ttl}s")
        try:
            record = open_peer_record(msg.signed_peer_record)
        except (DecodeError, EnvelopeError) as exc:
            return RegisterResponse(Status.E_INVALID_SIGNED_PEER_RECORD, f"signed peer record: {exc}")
        except ValueError as exc:  # a key type the crypto backend cannot verify
            return RegisterResponse(Status.E_INVALID_SIGNED_PEER_RECORD, f"signed peer record: {exc}")
        if record.peer_id != peer:
            return RegisterResponse(
                Status.E_INVALID_SIGNED_PEER_RECORD, f"the record names {record.peer_id}, not the registering peer"
            )
        regs = self._by_ns.get(msg.ns)
        existing = regs.get(peer) if regs else None
        if existing is None:
            if self._per_peer.get(peer, 0) >= cfg.max_registrations_per_peer:
                return RegisterResponse(
                    Status.E_NOT_AUTHORIZED, f"at most {cfg.max_registrations_per_peer} registrations per peer"
                )
            if regs is None and len(self._by_ns) >= cfg.max_namespaces:
                return RegisterResponse(Status.E_UNAVAILABLE, f"at most {cfg.max_namespaces} namespaces")
            if regs is not None and len(regs) >= cfg.max_registrations_per_namespace:
                return RegisterResponse(
                    Status.E_UNAVAILABLE, f"at most {cfg.max_registrations_per_namespace} registrations per namespace"
                )
            if self._count >= cfg.max_registrations:
                return RegisterResponse(Status.E_UNAVAILABLE, f"at most {cfg.max_registrations} registrations")
        elif record.seq < existing.record.seq:
            return RegisterResponse(Status.E_INVALID_SIGNED_PEER_RECORD, "the record is older than the registered one")
        self._seq += 1
        reg = Registration(msg.ns, peer, msg.signed_peer_record, record, ttl, now + ttl, self._seq)
        if existing is None:
            self._by_ns.setdefault(msg.ns, {})[peer] = reg
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            self._count += 1
        else:  # a refresh: newest last, so that a cookie holder sees it again
            del self._by_ns[msg.ns][peer]
            self._by_ns[msg.ns][peer] = reg
        return RegisterResponse(Status.OK, ttl=ttl)

    def unregister(self, peer: PeerId, msg: Unregister, now: float) -> bool:
        """Handle an UNREGISTER (no answer on the wire). True when something was removed."""
        self.expire(now)
        return self._remove(msg.ns, peer)

    def unregister_peer(self, peer: PeerId) -> int:
        """Drop every registration of ``peer`` (e.g. when its connection ends)."""
        gone = [ns for ns, regs in self._by_ns.items() if peer in regs]
        for ns in gone:
            self._remove(ns, peer)
        return len(gone)

    def discover(self, msg: Discover, now: float) -> DiscoverResponse:
        """Handle a DISCOVER: registrations newer than the cookie, oldest first, at most the
        limit; the answer's cookie continues from the last one returned."""
        self.expire(now)
        cfg = self.config
        problem = namespace_problem(msg.ns, cfg, allow_empty=True)
        if problem:
            return DiscoverResponse(status=Status.E_INVALID_NAMESPACE, status_text=problem)
        after = 0
        if msg.cookie:
            try:
                after, cookie_ns = parse_cookie(msg.cookie)
            except DecodeError as exc:
                return DiscoverResponse(status=Status.E_INVALID_COOKIE, status_text=str(exc))
            if cookie_ns != msg.ns:
                return DiscoverResponse(
                    status=Status.E_INVALID_COOKIE, status_text="the cookie is for another namespace"
                )
            if after > self._seq:
                return DiscoverResponse(status=Status.E_INVALID_COOKIE, status_text="the cookie is from the future")
        limit = min(msg.limit or cfg.default_discover_limit, cfg.max_discover_limit)
        if msg.ns:
            pool = list(self._by_ns.get(msg.ns, {}).values())
        else:
            pool = [r for regs in self._by_ns.values() for r in regs.values()]
        found = []
        size = 64  # the answer's own fields
        for r in sorted((r for r in pool if r.seq > after), key=lambda r: r.seq)[:limit]:
            size += len(r.signed_peer_record) + len(r.ns.encode("utf-8")) + 32
            if size > MAX_MESSAGE:
                break  # the rest on the next page (the cookie continues from here)
            found.append(r)
        last = found[-1].seq if found else max(after, self._seq)
        regs = tuple(
            Register(r.ns, r.signed_peer_record, max(1, int(r.expires_at - now))) for r in found
        )
        return DiscoverResponse(regs, make_cookie(last, msg.ns))

    def handle(self, peer: PeerId, msg: Message, now: float) -> Message | None:
        """Answer one request from ``peer``: the response to send, or ``None`` (UNREGISTER).
        A response type sent to the server is a protocol violation."""
        if isinstance(msg, Register):
            return self.register(peer, msg, now)
        if isinstance(msg, Unregister):
            self.unregister(peer, msg, now)
            return None
        if isinstance(msg, Discover):
            return self.discover(msg, now)
        raise ProtocolError(f"rendezvous: a client sent {type(msg).__name__}, which only a server sends")


def registration_peer(reg: Register) -> PeerRecord:
    """The verified peer record of a discovered registration (client side).
    Raises ``DecodeError`` / ``EnvelopeError`` for one that does not check out."""
    return open_peer_record(reg.signed_peer_record)
