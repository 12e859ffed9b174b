"""``/darkswap/relay-info/1.0.0``: a relay tells a client how loaded it is (DarkSwap's own
protocol, issue 13 §3; no libp2p spec).

The client opens a stream and negotiates the protocol; the relay writes one message and closes
its side. The message is ``uvarint(len) || protobuf`` (the same framing as identify and circuit
relay)::

    RelayInfo {
      uint32 version           = 1;  // RELAY_INFO_VERSION; required, >= 1
      uint32 reservations      = 2;  // reservations held now
      uint32 reservation_limit = 3;  // most it will hold (0: not reported)
      uint32 circuits          = 4;  // relayed connections open now
      uint32 circuit_limit     = 5;  // most it will carry (0: not reported)
    }

Versioning: fields are only ever added under new numbers, so a newer ``version`` decodes (its
unknown fields are skipped, as protobuf requires) and keeps the meaning of these five; an
incompatible change gets a new protocol ID. A missing or zero ``version`` is a
:class:`DecodeError`. Every count must fit in 32 bits. The body is bounded by
:attr:`RelayInfoConfig.max_message_size`; a longer frame is :class:`LimitExceeded` before it is
buffered. Sans-I/O: :class:`RelayInfoReader` takes stream bytes and yields the one message.

A relay that does not speak this protocol (a js-libp2p or go-libp2p relay) simply has no load
figure; :mod:`darkswap_wasm.policy.relay_selection` scores it on RTT and failures alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, DarkSwapError, DecodeError, LimitExceeded, MessageTooLarge
from ..wire import protobuf
from ..wire.framing import FrameDecoder, encode_frame

PROTOCOL_ID = "/darkswap/relay-info/1.0.0"
RELAY_INFO_VERSION = 1
_U32 = (1 << 32) - 1

_SCHEMA: protobuf.Schema = {
    1: ("version", "uint", False),
    2: ("reservations", "uint", False),
    3: ("reservation_limit", "uint", False),
    4: ("circuits", "uint", False),
    5: ("circuit_limit", "uint", False),
}


@dataclass(frozen=True)
class RelayInfoConfig:
    max_message_size: int = 256  # five uint32 fields need at most 30 bytes; room for additions

    def __post_init__(self) -> None:
        if self.max_message_size < 32:
            raise ConfigError("RelayInfoConfig.max_message_size must be at least 32")


DEFAULT_CONFIG = RelayInfoConfig()


@dataclass(frozen=True)
class RelayInfo:
    reservations: int = 0
    reservation_limit: int = 0
    circuits: int = 0
    circuit_limit: int = 0
    version: int = RELAY_INFO_VERSION

    def __post_init__(self) -> None:
        for name in ("reservations", "reservation_limit", "circuits", "circuit_limit", "version"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= _U32:
                raise MessageTooLarge(f"relay-info {name}={value!r} is not a uint32")
        if self.version < 1:
            raise MessageTooLarge("relay-info version must be at least 1")

    @property
    def load(self) -> float | None:
        """The fuller of the two uses, as a fraction of its limit (capped at 1.0); ``None`` when
        the relay reported no limit at all."""
        parts = [used / limit for used, limit in ((self.reservations, self.reservation_limit),
                                                   (self.circuits, self.circuit_limit)) if limit > 0]
        return min(1.0, max(parts)) if parts else None

    def encode_body(self) -> bytes:
        return protobuf.encode(_SCHEMA, {
            "version": self.version,
            "reservations": self.reservations or None,
            "reservation_limit": self.reservation_limit or None,
            "circuits": self.circuits or None,
            "circuit_limit": self.circuit_limit or None,
        })

    def encode(self) -> bytes:
        return encode_frame(self.encode_body())

    @classmethod
    def decode_body(cls, body: bytes, config: RelayInfoConfig | None = None) -> RelayInfo:
        """Decode one body; raises only :class:`~darkswap_wasm.errors.ProtocolError` subclasses."""
        cfg = config or DEFAULT_CONFIG
        body = bytes(body)
        if len(body) > cfg.max_message_size:
            raise LimitExceeded(f"relay-info message of {len(body)} bytes exceeds {cfg.max_message_size}")
        try:
            fields = protobuf.decode(_SCHEMA, body)
        except DarkSwapError:
            raise
        except (ValueError, IndexError, TypeError) as exc:  # defensive: never leak other types
            raise DecodeError(f"relay-info: {exc}") from exc
        version = fields.get("version", 0)
        if version < 1:
            raise DecodeError("relay-info: missing version")
        values = {name: fields.get(name, 0) for name in
                  ("reservations", "reservation_limit", "circuits", "circuit_limit")}
        for name, value in (("version", version), *values.items()):
            if value > _U32:
                raise DecodeError(f"relay-info: {name} {value} does not fit in 32 bits")
        return cls(version=version, **values)


class RelayInfoReader:
    """The client side of one stream: feed bytes, get the :class:`RelayInfo` once it is whole.
    Bytes after the message are a :class:`DecodeError` (the relay sends exactly one)."""

    def __init__(self, config: RelayInfoConfig | None = None) -> None:
        self.config = config or DEFAULT_CONFIG
        self._frames = FrameDecoder(self.config.max_message_size)
        self.result: RelayInfo | None = None

    def receive_data(self, data: bytes) -> RelayInfo | None:
        """The message when this input completes it, else ``None``."""
        if self.result is not None:
            if data:
                raise DecodeError("relay-info: bytes after the message")
            return None
        self._frames.push(data)
        frame = self._frames.next_frame()
        if frame is None:
            return None
        if self._frames.buffered:
            raise DecodeError("relay-info: bytes after the message")
        self.result = RelayInfo.decode_body(frame, self.config)
        return self.result
