"""multistream-select 1.0 (spec: libp2p/specs ``connections/README.md`` §Protocol Negotiation,
and multiformats/multistream-select).

Messages are ``uvarint(len) || utf8 || "\\n"``. Both sides send ``/multistream/1.0.0``; the
dialer proposes protocols one at a time; the listener echoes a supported one or answers ``na``.
The dialer pipelines its header with its first proposal (as go/js/rust do). ``ls`` is answered
with the listener's protocol list. Bytes that follow the agreement (the negotiated protocol's
own data, possibly pipelined) are handed over through :meth:`leftover`.

Deviation: none. Limits: a message is at most :data:`MAX_MESSAGE` bytes; a listener refuses more
than ``max_attempts`` proposals (a dialer that never stops trying is cut off).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import DecodeError, NegotiationError, ProtocolError
from ..wire import varint
from ..wire.framing import FrameDecoder

PROTOCOL_ID = "/multistream/1.0.0"
NA = "na"
LS = "ls"
MAX_MESSAGE = 1024
DEFAULT_MAX_ATTEMPTS = 32


def encode_message(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\n"
    if len(raw) > MAX_MESSAGE:
        raise ValueError(f"multistream message longer than {MAX_MESSAGE} bytes")
    return varint.encode(len(raw)) + raw


def _decode_message(frame: bytes) -> str:
    if not frame.endswith(b"\n"):
        raise DecodeError("multistream message does not end with a newline")
    try:
        return frame[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("multistream message is not UTF-8") from None


class State(enum.Enum):
    AWAIT_HEADER = "await-header"
    NEGOTIATING = "negotiating"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ProtocolAgreed:
    protocol: str


class _Base:
    def __init__(self) -> None:
        self.state = State.AWAIT_HEADER
        self.protocol: str | None = None
        self._decoder = FrameDecoder(MAX_MESSAGE)
        self._out: list[bytes] = []
        self._leftover = b""

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def leftover(self) -> bytes:
        """Bytes received after the agreement: the negotiated protocol's first data."""
        rest, self._leftover = self._leftover, b""
        return rest

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def receive_data(self, data: bytes) -> ProtocolAgreed | None:
        """Feed bytes. Returns :class:`ProtocolAgreed` once, when negotiation completes."""
        if self.state is State.DONE:
            self._leftover += data
            return None
        if self.state is State.FAILED:
            raise ProtocolError("multistream-select: data after a failed negotiation")
        try:
            # one message at a time: what follows the agreement is the protocol's own data
            # (pipelined by "lazy" dialers) and must not be parsed as multistream messages
            self._decoder.push(data)
            while (frame := self._decoder.next_frame()) is not None:
                result = self._on_message(_decode_message(frame))
                if result is not None:
                    self._leftover = self._decoder.take_rest()
                    return result
        except ProtocolError:
            self.state = State.FAILED
            raise
        return None

    def _on_message(self, text: str) -> ProtocolAgreed | None:  # pragma: no cover - abstract
        raise NotImplementedError


class Dialer(_Base):
    """The side that proposes. ``Dialer(["/yamux/1.0.0"])``; its first bytes are ready at once."""

    def __init__(self, protocols: Iterable[str]) -> None:
        super().__init__()
        self._candidates = list(protocols)
        if not self._candidates:
            raise ValueError("multistream dialer needs at least one protocol")
        self._proposed = self._candidates.pop(0)
        self._out.append(encode_message(PROTOCOL_ID) + encode_message(self._proposed))

    def _on_message(self, text: str) -> ProtocolAgreed | None:
        if self.state is State.AWAIT_HEADER:
            if text != PROTOCOL_ID:
                raise NegotiationError(f"expected {PROTOCOL_ID!r} header, got {text[:64]!r}")
            self.state = State.NEGOTIATING
            return None
        if text == self._proposed:
            self.state = State.DONE
            self.protocol = text
            return ProtocolAgreed(text)
        if text == NA:
            if not self._candidates:
                self.state = State.FAILED
                raise NegotiationError("the peer supports none of the proposed protocols")
            self._proposed = self._candidates.pop(0)
            self._out.append(encode_message(self._proposed))
            return None
        raise NegotiationError(f"unexpected multistream answer {text[:64]!r} to {self._proposed!r}")


class Listener(_Base):
    """The side that answers. ``supported`` is a container or a predicate over protocol ids."""

    def __init__(
        self,
        supported: Iterable[str] | Callable[[str], bool],
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        if callable(supported):
            self._supports = supported
            self._listing: Callable[[], list[str]] = list
        else:
            names = list(supported)
            self._supports = set(names).__contains__
            self._listing = lambda: names
        self._attempts = 0
        self._max_attempts = max_attempts
        self._out.append(encode_message(PROTOCOL_ID))

    def set_listing(self, listing: Callable[[], list[str]]) -> None:
        """What ``ls`` answers when ``supported`` is a predicate."""
        self._listing = listing

    def _on_message(self, text: str) -> ProtocolAgreed | None:
        if self.state is State.AWAIT_HEADER:
            if text != PROTOCOL_ID:
                raise NegotiationError(f"expected {PROTOCOL_ID!r} header, got {text[:64]!r}")
            self.state = State.NEGOTIATING
            return None
        self._attempts += 1
        if self._attempts > self._max_attempts:
            raise NegotiationError(f"more than {self._max_attempts} protocol proposals")
        if text == LS:
            body = b"".join(encode_message(p) for p in self._listing()) + b"\n"
            self._out.append(varint.encode(len(body)) + body)
            return None
        if text != NA and self._supports(text):
            self.state = State.DONE
            self.protocol = text
            self._out.append(encode_message(text))
            return ProtocolAgreed(text)
        self._out.append(encode_message(NA))
        return None
