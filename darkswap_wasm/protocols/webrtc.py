"""libp2p WebRTC stream framing: one ``RTCDataChannel`` as one libp2p stream (sans-I/O).

Spec: libp2p/specs ``webrtc/README.md`` ("Multiplexing", "Closing an RTCDataChannel").
Behaviour checked against js-libp2p ``@libp2p/webrtc`` 6.0.x: ``src/stream.ts``,
``src/constants.ts``, ``src/private-to-public/pb/message.proto`` and ``@libp2p/utils``
``abstract-stream.ts`` / ``abstract-message-stream.ts`` (the state rules they implement).

Wire: every message on a data channel is ``uvarint(len) || protobuf``::

    message Message {
      enum Flag { FIN = 0; STOP_SENDING = 1; RESET_STREAM = 2; FIN_ACK = 3; }  // js: RESET = 2
      optional Flag flag = 1;      // tag 0x08
      optional bytes message = 2;  // tag 0x12
    }

so FIN is ``02 08 00``, FIN_ACK ``02 08 03`` and the data message ``b"hello"`` is
``07 12 05 68 65 6c 6c 6f``. An encoded message including its length prefix MUST NOT exceed
16 KiB (:data:`MAX_MESSAGE_SIZE`). js reserves the worst-case overhead of a message carrying
both a flag and data (``PROTOBUF_OVERHEAD``, 7 bytes for 16 KiB: 2 prefix + 2 flag + 1 tag +
2 length), so at most :data:`MAX_PAYLOAD_SIZE` = 16377 payload bytes go in one message (rust
``MAX_DATA_LEN`` is the same number). A full data message is 16382 bytes on the wire.

Semantics (QUIC-like, as js implements them):

* ``FIN``: the sender will send no more data. The receiver answers ``FIN_ACK`` (every time, as
  js does). Our write half counts as closed once ``FIN_ACK`` arrives or after
  ``fin_ack_timeout`` (js ``DEFAULT_FIN_ACK_TIMEOUT`` = 10 s; js then proceeds as if acked).
* ``STOP_SENDING``: the sender will read no more; it discards data that still arrives but keeps
  acting on flags (so a later ``FIN`` is still answered with ``FIN_ACK``).
* ``RESET_STREAM``: both directions end at once; later messages are ignored.
* Within one message the data is handled before the flag (js order).
* The channel may be closed (``is_closed``) once our ``FIN`` was acked (or timed out) and the
  peer's ``FIN`` arrived, or after a reset either way. Then :class:`StreamClosedFully` is
  emitted (once) unless a local :meth:`ChannelStream.reset` caused it.

Receiving is byte-stream oriented: a data channel message may hold several frames or part of
one. That is not hypothetical: js-libp2p 3 (``@libp2p/webrtc`` 6, since Sept 2025) sends the
varint prefix and the protobuf as *two* ``RTCDataChannel.send`` calls (``_sendMessage``
iterates the ``Uint8ArrayList`` that ``it-length-prefixed``'s ``encode.single`` returns). We
always send one whole frame per channel message. Incoming frames longer than
``max_receive_message_size`` are a :class:`~darkswap_wasm.errors.LimitExceeded`, so a partial
frame never buffers more than that plus a 9-byte varint.

Deviations from js (all interoperable):

* Data that arrives after the peer's ``FIN``, after our ``STOP_SENDING`` or after a reset is
  dropped silently — as js does (yamux in this package fails loudly instead; here we follow js).
* A flag value outside the enum is ignored (the message's data still counts), as protobuf's
  proto2 closed-enum rule has it (an unknown value is kept as an unknown field). js's protons
  decoder throws "Invalid enum value" and stops processing the channel.
* After the peer's ``STOP_SENDING``, :meth:`ChannelStream.send` raises
  :class:`~darkswap_wasm.errors.StreamClosed` (js drops unsent buffered bytes but would still
  send later writes). :meth:`~ChannelStream.close_write` still sends ``FIN``.
* A malformed message (bad protobuf, oversize frame, text channel message) queues
  ``RESET_STREAM`` in :meth:`~ChannelStream.outgoing`, resets the machine and raises. js logs
  and stops reading the channel.
* When the ``RTCDataChannel`` closes underneath (:meth:`~ChannelStream.channel_closed`) the
  read side ends cleanly (:class:`RemoteClosedWrite`), as js's ``onclose`` handler does.
* ``close_write`` takes ``now`` (this machine reads no clock) to arm the FIN_ACK deadline.

No flow control: ``bufferedAmount`` back-pressure is the I/O layer's job (js pauses writers
above 2 MiB, ``MAX_BUFFERED_AMOUNT``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ConfigError, DecodeError, LimitExceeded, ProtocolError, StreamClosed, StreamReset
from ..wire import protobuf, varint
from ..wire.framing import FrameDecoder

MAX_MESSAGE_SIZE = 16 * 1024  # spec: an encoded message incl. its length prefix, at most
DEFAULT_FIN_ACK_TIMEOUT = 10.0  # seconds; js DEFAULT_FIN_ACK_TIMEOUT = 10_000 ms
MUXER_PROTOCOL = "/webrtc"  # what js reports as the negotiated muxer of a WebRTC connection


class Flag(enum.IntEnum):
    FIN = 0
    STOP_SENDING = 1
    RESET_STREAM = 2
    FIN_ACK = 3
    RESET = 2  # js-libp2p's name for RESET_STREAM (an alias: Flag.RESET is Flag.RESET_STREAM)


def _varint_len(value: int) -> int:
    return len(varint.encode(value))


MESSAGE_SCHEMA = {1: ("flag", "enum", False), 2: ("message", "bytes", False)}


def protobuf_overhead(max_message_size: int = MAX_MESSAGE_SIZE) -> int:
    """Worst-case non-payload bytes of one message (js ``calculateProtobufOverhead``).

    ``[prefix][flag tag][flag value][message tag][message length]``: the prefix is sized for a
    message of ``max_message_size``, the flag value for the largest flag, the length for the
    space that is left.
    """
    prefix = _varint_len(max_message_size - _varint_len(max_message_size))
    flag_field = 1 + _varint_len(max(Flag))  # tag + the largest flag value
    available = max_message_size - prefix - flag_field - 1
    return prefix + flag_field + 1 + _varint_len(available)


def max_payload_size(max_message_size: int = MAX_MESSAGE_SIZE) -> int:
    """Data bytes one message may carry (js: ``maxMessageSize - PROTOBUF_OVERHEAD``)."""
    return max_message_size - protobuf_overhead(max_message_size)


PROTOBUF_OVERHEAD = protobuf_overhead()  # 7
MAX_PAYLOAD_SIZE = max_payload_size()  # 16377


def encode_message(flag: Flag | None, payload: bytes | None, *, max_size: int | None = MAX_MESSAGE_SIZE) -> bytes:
    """One framed message: ``uvarint(len) || Message{flag, message}``.

    ``None`` leaves a field out; ``b""`` writes an empty ``message`` field. Raises
    :class:`~darkswap_wasm.errors.LimitExceeded` if the result is over ``max_size`` bytes
    (``None``: no check).
    """
    body = protobuf.encode(
        MESSAGE_SCHEMA,
        {"flag": None if flag is None else int(flag), "message": None if payload is None else bytes(payload)},
    )
    frame = varint.encode(len(body)) + body
    if max_size is not None and len(frame) > max_size:
        raise LimitExceeded(f"webrtc: a {len(frame)}-byte message exceeds {max_size} bytes")
    return frame


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One decoded message. ``flag`` is a :class:`Flag`, a plain ``int`` for a value outside the
    enum (ignored by :class:`ChannelStream`), or ``None``; ``payload`` is ``None`` if absent."""

    flag: Flag | int | None = None
    payload: bytes | None = None


def decode_message(body: bytes) -> ChannelMessage:
    """Decode a protobuf body (no length prefix). Raises ``DecodeError`` on malformed input."""
    msg = protobuf.decode(MESSAGE_SCHEMA, bytes(body))
    flag = msg.get("flag")
    if flag is not None:
        try:
            flag = Flag(flag)
        except ValueError:
            pass  # a flag this version does not know: kept as the number
    return ChannelMessage(flag, msg.get("message"))


def _plain_payload(body: memoryview) -> memoryview | None:
    """The payload of the common frame (a payload and no flag: ``0x12 uvarint(n) data``), or
    ``None`` for anything else (decode that with :func:`decode_message`)."""
    if len(body) > 1 and body[0] == 0x12:
        parsed = varint.try_decode(body, 1)
        if parsed is not None and parsed[1] + parsed[0] == len(body):
            return body[parsed[1] :]
    return None


class MessageDecoder:
    """Feed data channel messages (any split), get :class:`ChannelMessage` s out.

    Frames may span channel messages and a channel message may hold several frames. A frame
    whose protobuf is longer than ``max_message_size`` raises ``LimitExceeded`` as soon as its
    length prefix is read; nothing more than one partial frame is ever buffered.
    """

    __slots__ = ("_frames",)

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        if not isinstance(max_message_size, int) or max_message_size < 1:
            raise ConfigError(f"max_message_size must be a positive int, got {max_message_size!r}")
        self._frames = FrameDecoder(max_message_size)

    def feed(self, data: bytes) -> list[ChannelMessage]:
        frames = self._frames
        if frames.buffered:  # the rest of a frame split across messages (js sends prefix and body apart)
            data = frames.take_rest() + data
        # decode straight from the input (one channel message, or a batch of them joined); the
        # payloads of consecutive plain data frames come out as one message (one copy for all
        # of them); only a trailing partial frame is buffered
        view = memoryview(data).cast("B")
        out: list[ChannelMessage] = []
        run: list[memoryview] = []
        pos, end = 0, len(view)
        while pos < end:
            header = varint.try_decode(view, pos)
            if header is None:
                break
            length, start = header
            if length > frames.max_frame:
                raise LimitExceeded(f"frame of {length} bytes exceeds the limit of {frames.max_frame}")
            if end - start < length:
                break
            body = view[start : start + length]
            payload = _plain_payload(body)
            if payload is not None:
                run.append(payload)
            else:
                if run:
                    out.append(ChannelMessage(None, b"".join(run)))
                    run = []
                out.append(decode_message(body))
            pos = start + length
        if run:
            out.append(ChannelMessage(None, b"".join(run)))
        if pos < end:
            frames.push(bytes(view[pos:]))
        return out

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return self._frames.buffered


# ---------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ChannelStreamConfig:
    """Limits and timeouts of one data channel stream. Defaults follow js-libp2p."""

    max_message_size: int = MAX_MESSAGE_SIZE  # outgoing: whole framed message, prefix included
    max_receive_message_size: int = MAX_MESSAGE_SIZE  # incoming: protobuf length (prefix excluded)
    fin_ack_timeout: float = DEFAULT_FIN_ACK_TIMEOUT  # seconds to wait for FIN_ACK after our FIN

    def __post_init__(self) -> None:
        if not isinstance(self.max_message_size, int) or self.max_message_size < 16:
            raise ConfigError(
                f"ChannelStreamConfig.max_message_size must be an int >= 16, got {self.max_message_size!r}"
            )
        if not isinstance(self.max_receive_message_size, int) or self.max_receive_message_size < 16:
            raise ConfigError(
                "ChannelStreamConfig.max_receive_message_size must be an int >= 16, "
                f"got {self.max_receive_message_size!r}"
            )
        if not self.fin_ack_timeout > 0:
            raise ConfigError(f"ChannelStreamConfig.fin_ack_timeout must be > 0, got {self.fin_ack_timeout!r}")


# ---------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Payload of one data message (never empty)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class RemoteClosedWrite:
    """The peer sent FIN (we answered FIN_ACK), or the channel closed: no more data arrives."""


@dataclass(frozen=True, slots=True)
class RemoteStoppedReading:
    """The peer sent STOP_SENDING: it discards whatever we still send."""


@dataclass(frozen=True, slots=True)
class StreamResetByPeer:
    """The peer sent RESET_STREAM: both directions are gone."""


@dataclass(frozen=True, slots=True)
class FinAcked:
    """The peer acknowledged our FIN: everything we sent before it was received."""


@dataclass(frozen=True, slots=True)
class FinAckTimedOut:
    """No FIN_ACK within ``fin_ack_timeout``: our write half counts as closed anyway."""


@dataclass(frozen=True, slots=True)
class StreamClosedFully:
    """Both halves are done (or the peer reset): the I/O layer may close the RTCDataChannel."""


ChannelEvent = (
    DataReceived
    | RemoteClosedWrite
    | RemoteStoppedReading
    | StreamResetByPeer
    | FinAcked
    | FinAckTimedOut
    | StreamClosedFully
)


class WriteState(enum.Enum):
    OPEN = "open"
    STOPPED = "stopped"  # the peer sent STOP_SENDING; only FIN (close_write) or reset remain
    FIN_SENT = "fin_sent"  # waiting for FIN_ACK
    CLOSED = "closed"  # FIN_ACK received, or timed out, or the channel closed
    RESET = "reset"


class ReadState(enum.Enum):
    OPEN = "open"
    STOPPED = "stopped"  # we sent STOP_SENDING; data is dropped, flags still count
    CLOSED = "closed"  # the peer's FIN arrived (or the channel closed)
    RESET = "reset"


# ---------------------------------------------------------------------------------- machine


_FIN_ACK_FRAME = encode_message(Flag.FIN_ACK, None)
_FIN_FRAME = encode_message(Flag.FIN, None)
_STOP_SENDING_FRAME = encode_message(Flag.STOP_SENDING, None)
_RESET_FRAME = encode_message(Flag.RESET_STREAM, None)


class ChannelStream:
    """One ``RTCDataChannel`` as a libp2p stream (sans-I/O).

    Every method that produces bytes returns a list of channel messages: pass each to one
    ``RTCDataChannel.send``. Replies the machine makes by itself (FIN_ACK, the RESET_STREAM
    after a protocol error) wait in :meth:`outgoing`; drain it after each
    :meth:`receive_message`.
    """

    def __init__(self, config: ChannelStreamConfig | None = None) -> None:
        self.config = config or ChannelStreamConfig()
        self._payload = max_payload_size(self.config.max_message_size)
        self._full_head = self._data_head(self._payload)  # the prefix of every full data message
        self._decoder = MessageDecoder(self.config.max_receive_message_size)
        self.write_state = WriteState.OPEN
        self.read_state = ReadState.OPEN
        self.remote_stopped_reading = False
        self.reset_by_peer = False
        self._out: list[bytes] = []
        self._fin_ack_deadline: float | None = None
        self._closed_reported = False

    # ------------------------------------------------------------------------- properties

    @property
    def is_reset(self) -> bool:
        return self.write_state is WriteState.RESET

    @property
    def is_closed(self) -> bool:
        """True once the RTCDataChannel may be closed (both halves done, or reset)."""
        return self.write_state is WriteState.RESET or (
            self.write_state is WriteState.CLOSED and self.read_state is ReadState.CLOSED
        )

    @property
    def can_send(self) -> bool:
        return self.write_state is WriteState.OPEN

    @property
    def max_payload(self) -> int:
        """Payload bytes per outgoing data message."""
        return self._payload

    # ------------------------------------------------------------------------- output

    def outgoing(self) -> list[bytes]:
        """Drain the channel messages the machine queued by itself (FIN_ACK, RESET_STREAM)."""
        out, self._out = self._out, []
        return out

    def send(self, data: bytes) -> list[bytes]:
        """Data messages for ``data``, each at most ``max_message_size`` bytes (``[]`` for ``b""``).

        Raises :class:`~darkswap_wasm.errors.StreamReset` after a reset and
        :class:`~darkswap_wasm.errors.StreamClosed` after our FIN or the peer's STOP_SENDING.
        """
        state = self.write_state
        if state is not WriteState.OPEN:
            if state is WriteState.RESET:
                raise StreamReset("webrtc: the stream was reset")
            if state is WriteState.STOPPED:
                raise StreamClosed("webrtc: the peer stopped reading (STOP_SENDING)")
            raise StreamClosed("webrtc: the write side is closed")
        return [head + chunk for head, chunk in self._frames(data)]

    def send_packed(self, data: bytes) -> tuple[bytes, list[int]]:
        """Like :meth:`send`, but every message laid out back to back in one buffer, with their
        sizes: the I/O layer can hand the buffer across a runtime boundary once and send views
        of it (one copy per write instead of several per 16 KiB message). Every message but the
        last has the size of the first."""
        parts: list = []
        sizes: list[int] = []
        for head, chunk in self._frames(data):
            parts += (head, chunk)
            sizes.append(len(head) + len(chunk))
        return b"".join(parts), sizes

    def _frames(self, data: bytes) -> list[tuple[bytes, memoryview]]:
        """``(uvarint(len(body)) || 0x12 || uvarint(n), chunk)`` per data message of ``data``."""
        state = self.write_state
        if state is not WriteState.OPEN:
            if state is WriteState.RESET:
                raise StreamReset("webrtc: the stream was reset")
            if state is WriteState.STOPPED:
                raise StreamClosed("webrtc: the peer stopped reading (STOP_SENDING)")
            raise StreamClosed("webrtc: the write side is closed")
        view = memoryview(data).cast("B")
        step = self._payload
        total = len(view)
        out = []
        for off in range(0, total, step):
            chunk = view[off : off + step]
            n = len(chunk)
            out.append((self._full_head if n == step else self._data_head(n), chunk))
        return out

    def _data_head(self, n: int) -> bytes:
        body_head = b"\x12" + varint.encode(n)
        head = varint.encode(len(body_head) + n) + body_head
        size = self.config.max_message_size
        if len(head) + n > size:
            raise LimitExceeded(f"webrtc: a {len(head) + n}-byte message exceeds {size} bytes")
        return head

    def close_write(self, now: float) -> list[bytes]:
        """Send FIN and start waiting for FIN_ACK (deadline ``now + fin_ack_timeout``).

        Idempotent: ``[]`` if FIN was already sent or the stream is reset/closed.
        """
        if self.write_state not in (WriteState.OPEN, WriteState.STOPPED):
            return []
        self.write_state = WriteState.FIN_SENT
        self._fin_ack_deadline = now + self.config.fin_ack_timeout
        return [_FIN_FRAME]

    def close_read(self) -> list[bytes]:
        """Send STOP_SENDING: data that still arrives is dropped (flags still count).

        ``[]`` if the read side is already closed (FIN received, as js does), stopped or reset.
        """
        if self.read_state is not ReadState.OPEN:
            return []
        self.read_state = ReadState.STOPPED
        return [_STOP_SENDING_FRAME]

    def reset(self) -> list[bytes]:
        """Abort both directions with RESET_STREAM. ``[]`` if already reset or fully closed."""
        if self.is_closed:
            return []
        self._to_reset()
        self._closed_reported = True  # a local reset: the caller knows, no event
        return [_RESET_FRAME]

    # ------------------------------------------------------------------------- input

    def receive_message(self, msg: bytes) -> list[ChannelEvent]:
        """Feed one RTCDataChannel message. Raises ``ProtocolError`` subclasses on bad input
        (after queueing RESET_STREAM in :meth:`outgoing` and resetting the machine)."""
        if isinstance(msg, str):
            self._fail()
            raise DecodeError("webrtc: text message on a libp2p data channel (binary expected)")
        if not msg or self.is_closed:
            return []
        try:
            messages = self._decoder.feed(msg)
        except ProtocolError:
            self._fail()
            raise
        events: list[ChannelEvent] = []
        for m in messages:
            self._handle(m, events)
            if self.is_closed:
                break
        return events

    def channel_closed(self) -> list[ChannelEvent]:
        """The RTCDataChannel closed underneath: both halves end (reading ends cleanly)."""
        events: list[ChannelEvent] = []
        if self.write_state is WriteState.RESET:
            return events
        if self.read_state is not ReadState.CLOSED:
            events.append(RemoteClosedWrite())
        self.read_state = ReadState.CLOSED
        self.write_state = WriteState.CLOSED
        self._fin_ack_deadline = None
        self._check_closed(events)
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must be called next (the FIN_ACK wait), or None."""
        return self._fin_ack_deadline

    def handle_timeout(self, now: float) -> list[ChannelEvent]:
        """Give up waiting for FIN_ACK once its deadline passed (js: 10 s)."""
        events: list[ChannelEvent] = []
        deadline = self._fin_ack_deadline
        if deadline is None or now < deadline or self.write_state is not WriteState.FIN_SENT:
            return events
        self._fin_ack_deadline = None
        self.write_state = WriteState.CLOSED
        events.append(FinAckTimedOut())
        self._check_closed(events)
        return events

    # ------------------------------------------------------------------------- internals

    def _handle(self, m: ChannelMessage, events: list[ChannelEvent]) -> None:
        if m.payload and self.read_state is ReadState.OPEN:
            events.append(DataReceived(m.payload))
        flag = m.flag
        if flag is Flag.FIN:
            if self.read_state is not ReadState.RESET:
                self._out.append(_FIN_ACK_FRAME)
                if self.read_state is not ReadState.CLOSED:  # the first FIN (also after STOP_SENDING)
                    events.append(RemoteClosedWrite())
                self.read_state = ReadState.CLOSED
                self._check_closed(events)
        elif flag is Flag.RESET_STREAM:
            self._to_reset()
            self.reset_by_peer = True
            events.append(StreamResetByPeer())
            self._check_closed(events)
        elif flag is Flag.STOP_SENDING:
            if not self.remote_stopped_reading:
                self.remote_stopped_reading = True
                events.append(RemoteStoppedReading())
            if self.write_state is WriteState.OPEN:
                self.write_state = WriteState.STOPPED
        elif flag is Flag.FIN_ACK:
            if self.write_state is WriteState.FIN_SENT:
                self.write_state = WriteState.CLOSED
                self._fin_ack_deadline = None
                events.append(FinAcked())
                self._check_closed(events)
        # None or a value outside the enum: nothing to do

    def _check_closed(self, events: list[ChannelEvent]) -> None:
        if self.is_closed and not self._closed_reported:
            self._closed_reported = True
            events.append(StreamClosedFully())

    def _to_reset(self) -> None:
        self.write_state = WriteState.RESET
        self.read_state = ReadState.RESET
        self._fin_ack_deadline = None

    def _fail(self) -> None:
        if self.write_state is not WriteState.RESET:
            self._out.append(_RESET_FRAME)
            self._to_reset()
        self._closed_reported = True
