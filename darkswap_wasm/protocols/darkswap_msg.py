"""DarkSwap messaging ``/darkswap/msg/1.0.0``: reliable, batched, compressed messages between two peers.

One :class:`MessageSession` per remote peer (the I/O layer keys them by peer id). A session
survives its transports: the I/O layer attaches any libp2p stream that reaches the peer (TCP,
WebSocket, relayed, WebRTC), detaches it when it breaks, attaches the next one, and every message
is still delivered exactly once and in order. Sans-I/O like every machine here: bytes and time in
(``now``, monotonic seconds, always an argument), bytes (:meth:`~MessageSession.data_to_send`) and
frozen-dataclass events (:meth:`~MessageSession.events_received`) out, timers through
:meth:`~MessageSession.next_deadline` / :meth:`~MessageSession.handle_timeout`.

Wire format
===========

A stream carries frames: ``uvarint(n) || kind:u8 || fields``, where ``n`` counts ``kind`` and the
fields (``1 <= n <= max_frame_size``). ``kind = type << 4 | flags``; an unknown type, or a flag
not defined for the type, is a :class:`~darkswap_wasm.errors.DecodeError`. Integers are unsigned
varints (multiformats ``unsigned-varint``: minimal, at most 9 bytes). Messages are numbered per
direction from 1 (``seq``); 0 means "none yet". ::

    type 1 HELLO   flags 0x1 ZSTD (I decompress zstd), 0x2 CLOSING (I have closed)
        version         uvarint   = 1
        session_id      16 bytes  the sender's session id: random, never all zero
        peer_session_id 16 bytes  the receiver's session id as the sender knows it; zeros = unknown
        send_base       uvarint   oldest seq the sender still holds = its highest acked seq + 1
        recv_next       uvarint   next seq the sender expects from the receiver = last delivered + 1
        [final_seq      uvarint]  CLOSING only: the sender's last seq; no message follows it
        [max_window_log uvarint]  ZSTD only: the largest zstd window it accepts, 2**17..2**27 bytes
        n_dicts         uvarint   <= 32
        dict_id         uvarint x n_dicts: dictionaries it holds, strictly increasing, 1..2**32-1
        (anything after is ignored: room for compatible extensions)
    type 2 DATA    flags 0x3 encoding: 0 PLAIN, 1 ZSTD, 2 STORED (3 invalid); 0x4 ACK
        [ack_delta      uvarint >= 1]  ACK flag only: a piggybacked ACK (below)
        body            the rest of the frame
    type 3 ACK     no flags
        ack_delta       uvarint >= 1   the sender delivered ack_delta more of the receiver's messages
    type 4 CLOSE   flags 0x1 ABORT
        final_seq       uvarint   graceful: the sender's last seq (ABORT: no fields)

DATA ``payload`` is the body itself (PLAIN, STORED) or the decompression of the body through the
direction's zstd context (ZSTD). A payload is one or more entries ``uvarint(len) || message``;
entries carry consecutive seqs, continuing from the previous DATA frame of the transport — seqs
are implicit. Acks are cumulative and sent as deltas: a side's highest acked seq starts at the
value fixed by the handshake (below) and grows by every ``ack_delta`` it receives.

Examples (hex): HELLO of a fresh session without zstd ``25 10 01 <16-byte id> <16 zero bytes>
01 01 00``; DATA with messages ``hi`` and ``there`` ``0a 20 02 6869 05 7468657265``; the same
kind of frame acking 2 messages and carrying ``ok`` ``05 24 02 02 6f6b``; ACK of 1 message
``02 30 01``; CLOSE after seq 2 ``02 40 02``; CLOSE+ABORT ``01 41``.

Handshake and resend
--------------------

On every new transport both sides send HELLO at once and send nothing else until the peer's
HELLO arrived. Each direction is then resumed on its own, from one fact both ends agree on: did
the receiver's HELLO name the sender's current ``session_id``?

* yes — the receiver still has its state: the sender drops every message below the receiver's
  ``recv_next`` (delivered: acked by the HELLO) and resends from ``recv_next``; a ``recv_next``
  below the sender's ``send_base`` or beyond its last seq is a ``ProtocolError``;
* no (first contact, or the receiver restarted: it knows no or an older id) — the receiver adopts
  the sender's ``send_base`` as its ``recv_next``; the sender resends from ``send_base``.

So the first DATA message of a transport carries exactly the receiver's ``recv_next``, nothing is
skipped and nothing is delivered twice; the receiver's ack baseline is ``recv_next - 1``. There
is no initiator role: both sides choose their own id, both sides may dial, and a peer that
restarts (new id) is resumed against — its unacked messages are resent to it, which is exactly
once within a session and at least once across a crash (see ``peer_restarted``).

Compression
-----------

A side announces ZSTD (and its dictionaries) only when it has a compression backend and
``compress`` is on. Each direction compresses iff its receiver announced ZSTD and its sender can.
The dictionary is the highest id both listed (both compute the same), or none. Every transport
starts fresh contexts, one per direction; the sender's window is ``min(window_log, peer's
max_window_log)``. Each ZSTD frame body is one flush (``ZSTD_e_flush``) of a single open zstd
frame (no checksum, no dictionary id, no content size), so later frames reference earlier ones.
Payloads under ``min_compress_size`` go PLAIN and are not part of the context.

Frames that do not shrink: every payload of at least ``min_compress_size`` bytes is fed to the
context. When the flush is not smaller than the payload and consists of raw blocks only (what
zstd emits for incompressible input), the frame goes STORED: the body is the payload itself, and
the receiver appends it to its context as synthetic raw blocks (at most 128 KiB each; hence
windows of at least 2**17), which leaves its decoder in exactly the state the real blocks would
(raw blocks carry no entropy tables and no repeat offsets; their boundaries do not matter). The
first flush of a context (it carries the zstd frame header) and a mixed flush that did not shrink
go ZSTD anyway, costing a few bytes. The alternatives lose: zstd cannot roll back bytes it has
seen, so "send raw and do not feed" is impossible once the compressor tried, and "send raw and
reset both contexts" would throw away the history the next frames compress against.

Closing
-------

``close()`` stops new sends, flushes what is queued and sends CLOSE(final_seq) (a HELLO on a later
transport carries CLOSING and final_seq instead). A side receiving CLOSE closes too. A side
finishes (:class:`SessionEnded`) once it sent CLOSE, delivered the peer's messages up to the
peer's ``final_seq`` and got all its own messages acked; it then sends its last ACK. CLOSE+ABORT
ends both sides at once with :class:`SessionFailed`.

Limits
------

Frames above ``max_frame_size`` are refused from their length prefix; a payload is at most
``max_decompressed_frame`` bytes (for ZSTD a hard cap while decompressing, in 64 KiB output
steps: a bomb is refused before it is inflated); a message above ``max_message_size`` is
``LimitExceeded``, at :meth:`~MessageSession.send` and on receipt; the zstd window is bounded by
``max_window_log``. Decompressed bytes are also bounded *per read*: ``receive_data(data, now,
max_payload)`` decodes DATA frames only while the payload bytes it delivered stay below
``max_payload`` (the room left in the application's inbox; at most one frame more), and keeps
the rest undecoded and unacknowledged (:attr:`~MessageSession.receive_blocked`) until it is
called again with room. 30 KB of frames that each inflate to 4 MiB thus cost one inbox, not
gigabytes, and the sender, whose messages are not acked, is back-pressured and resends nothing
it has not been told was delivered. ``inbox_bytes_per_peer`` / ``inbox_bytes_total`` are the I/O
layer's inbox budgets it derives ``max_payload`` from. Any bad input raises a
:class:`~darkswap_wasm.errors.ProtocolError` subclass from :meth:`~MessageSession.receive_data`;
before raising, the session queues CLOSE+ABORT and fails (:class:`SessionFailed`). Both ends must
use the same message and frame limits.

I/O adapter (what ``Network`` does)
-----------------------------------

* keep one session per peer: ``MessageSession(config, now=now)``;
* on every stream of this protocol to or from the peer (either side dials): ``attach(now)``; on
  its error or EOF: ``detach(now)``. If two streams are live at once, both ends keep the one opened
  by the peer with the smaller peer id and reset the other, so both use the same stream;
* read loop: ``receive_data(chunk, now, room)`` with ``room`` the inbox budget left (per peer and
  in total), then write ``data_to_send()`` and dispatch events; while ``receive_blocked``, read
  nothing more: wait for room and call ``receive_data(b"", now, room)``. Stream backpressure
  then reaches the sender, whose buffer fills, whose ``send`` raises :class:`BufferFull`;
* ``send_message(peer, data)``: ``seq = session.send(data, now)``; on :class:`BufferFull` wait for
  :class:`BufferSpace`, :class:`SessionClosing` or a terminal event and retry; once nothing more is
  queued (e.g. ``loop.call_soon``) call ``flush(now)`` and write ``data_to_send()``. A message is
  delivered once :class:`Acked` covers its seq, lost if :class:`SessionFailed` lists it;
* one timer: sleep until ``next_deadline()``, then ``handle_timeout(now)`` and write;
* after :class:`SessionEnded` / :class:`SessionFailed` write the remaining ``data_to_send()``,
  close the stream and forget the session.
"""

from __future__ import annotations

import enum
import math
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..compression import (
    COMPRESSED,
    MAX_WINDOW_LOG,
    MIN_WINDOW_LOG,
    CompressionBackend,
    StreamDecoder,
    StreamEncoder,
    available_backend,
    compress_bound,
)
from ..errors import (
    ConfigError,
    DarkSwapError,
    DecodeError,
    LimitExceeded,
    MessageTooLarge,
    PeerUnreachable,
    ProtocolError,
    Timeout,
)
from ..wire import varint
from ..wire.framing import FrameDecoder

PROTOCOL_ID = "/darkswap/msg/1.0.0"
VERSION = 1
SESSION_ID_LENGTH = 16
NO_SESSION = bytes(SESSION_ID_LENGTH)

TYPE_HELLO = 1
TYPE_DATA = 2
TYPE_ACK = 3
TYPE_CLOSE = 4

HELLO_ZSTD = 0x1
HELLO_CLOSING = 0x2
DATA_ENCODING = 0x3
DATA_ACK = 0x4
CLOSE_ABORT = 0x1

ENC_PLAIN = 0
ENC_ZSTD = 1
ENC_STORED = 2

MAX_DICT_IDS = 32
MAX_DICT_ID = (1 << 32) - 1

KIB = 1024
MIB = 1024 * 1024

_SMALL = [bytes((i,)) for i in range(128)]
_encode_varint = varint.encode
_decode_varint = varint.decode


def _uv(value: int) -> bytes:
    return _SMALL[value] if value < 128 else _encode_varint(value)


# ------------------------------------------------------------------------------------------ errors


class BufferFull(DarkSwapError):
    """The send buffer (bytes or messages) is full: wait for :class:`BufferSpace`, then retry.

    Not a ``ProtocolError``: nothing broke, it is the backpressure signal (``EWOULDBLOCK``).
    """

    CODE = "BUFFER_FULL"


class SessionClosed(DarkSwapError):
    """The session is closing, closed or failed: it accepts no more messages."""

    CODE = "SESSION_CLOSED"


# ------------------------------------------------------------------------------------------ config


@dataclass(frozen=True)
class MessagingConfig:
    """Limits, batching, acks and compression of a session. Both ends should share the limits."""

    max_message_size: int = 4 * MIB  # larger -> LimitExceeded (send and receipt)
    max_frame_size: int = 4 * MIB + 64 * KIB  # one frame on the wire; >= zstd bound of the next + 64
    max_decompressed_frame: int = 4 * MIB + 4 * KIB  # a DATA payload, hard cap while decompressing
    batch_max_bytes: int = 64 * KIB  # a frame is emitted once this much is queued (payload bytes)
    batch_delay: float = 0.005  # s; queued messages wait at most this long (0: a frame per send)
    send_buffer_bytes: int = 8 * MIB  # queued + unacked message bytes; beyond -> BufferFull
    send_buffer_messages: int = 10_000  # queued + unacked messages; beyond -> BufferFull
    ack_delay: float = 0.02  # s; a standalone ACK goes at most this long after a delivery...
    ack_every: int = 64  # ...or at once when this many deliveries are unacked
    compress: bool = True  # compress (and announce zstd) when a compression backend is available
    compression_level: int = 3  # zstd level
    min_compress_size: int = 64  # smaller payloads go PLAIN, outside the zstd context
    window_log: int = 19  # our compressor's window: 2**19 = 512 KiB of history (lowered to the peer's max)
    # the largest window we decompress: 2**20 = 1 MiB of decoder memory per session a stranger can
    # make us allocate (our compressors use 2**19 anyway, lowered to the peer's max)
    max_window_log: int = 20
    dictionaries: Mapping[int, bytes] = field(default_factory=dict, hash=False)  # id -> zstd dict/raw
    give_up_after: float = 300.0  # s without a working transport -> SessionFailed
    close_timeout: float = 30.0  # s a graceful close may take
    # received messages the application has not taken yet (decompressed bytes). At the budget
    # the I/O layer stops decoding and reading: nothing more is acked, the sender waits.
    inbox_bytes_per_peer: int = 16 * MIB  # per peer (overshot by at most one frame)
    inbox_bytes_total: int = 64 * MIB  # all peers together (overshot by at most one frame)

    def __post_init__(self) -> None:
        for name in (
            "inbox_bytes_per_peer",
            "inbox_bytes_total",
            "max_message_size",
            "max_frame_size",
            "max_decompressed_frame",
            "batch_max_bytes",
            "send_buffer_bytes",
            "send_buffer_messages",
            "ack_every",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"MessagingConfig.{name} must be a positive int, got {value!r}")
        for name in ("batch_delay", "ack_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ConfigError(f"MessagingConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("give_up_after", "close_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"MessagingConfig.{name} must be > 0 (inf allowed), got {value!r}")
        if self.max_decompressed_frame < self.max_message_size + 9:
            raise ConfigError("MessagingConfig.max_decompressed_frame must be >= max_message_size + 9")
        if self.batch_max_bytes > self.max_decompressed_frame:
            raise ConfigError("MessagingConfig.batch_max_bytes must be <= max_decompressed_frame")
        if self.max_frame_size < compress_bound(self.max_decompressed_frame) + 64:
            raise ConfigError(
                "MessagingConfig.max_frame_size must be >= compress_bound(max_decompressed_frame) + 64 "
                f"= {compress_bound(self.max_decompressed_frame) + 64}"
            )
        if self.send_buffer_bytes < self.max_message_size:
            raise ConfigError("MessagingConfig.send_buffer_bytes must be >= max_message_size")
        if not isinstance(self.min_compress_size, int) or self.min_compress_size < 0:
            raise ConfigError(f"MessagingConfig.min_compress_size must be >= 0, got {self.min_compress_size!r}")
        if not isinstance(self.compression_level, int) or not -(1 << 17) <= self.compression_level <= 22:
            raise ConfigError(f"MessagingConfig.compression_level must be a zstd level, got {self.compression_level!r}")
        for name in ("window_log", "max_window_log"):
            value = getattr(self, name)
            if not isinstance(value, int) or not MIN_WINDOW_LOG <= value <= MAX_WINDOW_LOG:
                raise ConfigError(
                    f"MessagingConfig.{name} must be in {MIN_WINDOW_LOG}..{MAX_WINDOW_LOG}, got {value!r}"
                )
        dicts = dict(self.dictionaries)
        if len(dicts) > MAX_DICT_IDS:
            raise ConfigError(f"MessagingConfig.dictionaries: at most {MAX_DICT_IDS}")
        for key, value in dicts.items():
            if not isinstance(key, int) or not 1 <= key <= MAX_DICT_ID:
                raise ConfigError(f"MessagingConfig.dictionaries: id must be in 1..2**32-1, got {key!r}")
            if not isinstance(value, bytes | bytearray) or not value:
                raise ConfigError(f"MessagingConfig.dictionaries[{key}] must be non-empty bytes")
        object.__setattr__(self, "dictionaries", MappingProxyType({k: bytes(v) for k, v in dicts.items()}))


# ------------------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """The peer's message ``seq`` (each seq exactly once, in order)."""

    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Acked:
    """The peer delivered every message of ours up to and including ``up_to_seq``."""

    up_to_seq: int


@dataclass(frozen=True, slots=True)
class BufferSpace:
    """After a :class:`BufferFull`, acks freed space: retry ``send``."""


@dataclass(frozen=True, slots=True)
class SessionResumed:
    """A transport completed the handshake: messages flow (``resent`` of ours go again).

    ``peer_restarted``: the peer presents a new session id after an older one (it lost its
    state); its unacked messages will arrive again from its ``send_base``. ``compressing``: our
    direction is zstd; ``dictionary_id``: the agreed dictionary (or ``None``).
    """

    peer_session_id: bytes
    resent: int
    peer_restarted: bool
    compressing: bool
    dictionary_id: int | None


@dataclass(frozen=True, slots=True)
class SessionClosing:
    """The session began closing (``close()`` here, or CLOSE from the peer): ``send`` now raises
    :class:`SessionClosed`; queued messages still go out."""

    by_peer: bool


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """Terminal, clean: both sides closed and every message of ours was delivered."""

    by_peer: bool


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """Terminal: the session is over; the messages in ``undelivered`` (seqs) were not acked."""

    reason: str
    error: DarkSwapError
    undelivered: range


MessagingEvent = MessageReceived | Acked | BufferSpace | SessionResumed | SessionClosing | SessionEnded | SessionFailed


class SessionState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # no new sends; draining, CLOSE exchange under way
    CLOSED = "closed"  # terminal, clean
    FAILED = "failed"  # terminal, see SessionFailed


@dataclass(frozen=True, slots=True)
class SessionStats:
    """Counters since the session began (resends counted again)."""

    messages_out: int = 0  # messages framed
    payload_bytes_out: int = 0  # their bytes
    wire_bytes_out: int = 0  # bytes handed out by data_to_send (every frame type)
    frames_out: int = 0  # DATA frames
    compressed_frames_out: int = 0  # ... of which ZSTD
    stored_frames_out: int = 0  # ... of which STORED
    resent_messages: int = 0  # messages framed again after a handshake
    messages_in: int = 0
    payload_bytes_in: int = 0
    wire_bytes_in: int = 0
    frames_in: int = 0  # DATA frames
    handshakes: int = 0


_AUTO = object()
_TERMINAL = (SessionState.CLOSED, SessionState.FAILED)


# ----------------------------------------------------------------------------------------- session


class MessageSession:
    """The messaging session with one peer (sans-I/O).

    ``now``: monotonic seconds (the give-up clock starts here). ``session_id``: 16 random bytes by
    default. ``backend``: the compression backend; by default the process's
    (:func:`darkswap_wasm.compression.available_backend`), ``None`` for none. With
    ``config.compress`` off no backend is used at all.
    """

    def __init__(
        self,
        config: MessagingConfig | None = None,
        *,
        now: float,
        session_id: bytes | None = None,
        backend: CompressionBackend | object | None = _AUTO,
    ) -> None:
        self.config = config = config if config is not None else MessagingConfig()
        if session_id is None:
            session_id = secrets.token_bytes(SESSION_ID_LENGTH)
        if len(session_id) != SESSION_ID_LENGTH or session_id == NO_SESSION:
            raise ConfigError("session_id must be 16 bytes, not all zero")
        self._session_id = bytes(session_id)
        if not config.compress:
            backend = None
        elif backend is _AUTO:
            backend = available_backend()
        self._backend: CompressionBackend | None = backend  # type: ignore[assignment]
        self._dict_ids = sorted(config.dictionaries) if backend is not None else []
        self._state = SessionState.OPEN
        self._events: list = []
        self._out: list[bytes] = []
        # sending: seqs acked+1 .. acked+len(inflight) are framed on this transport (unacked);
        # the next len(queued) seqs are not framed yet; next_seq is the next to assign
        self._next_seq = 1
        self._acked = 0
        self._inflight: deque[bytes] = deque()
        self._queued: deque[bytes] = deque()
        self._queued_bytes = 0
        self._buffer_bytes = 0
        self._resend_left = 0  # messages at the head of queued that were framed before
        self._batch_deadline: float | None = None
        self._blocked = False
        # receiving
        self._peer_id: bytes | None = None
        self._recv_next = 1
        self._ack_sent = 0  # highest delivered seq the peer knows about (on this transport)
        self._ack_due: float | None = None
        self._peer_final: int | None = None
        # transport
        self._attached = False
        self._connected = False  # attached and the peer's HELLO arrived
        self._frames: FrameDecoder | None = None
        self._held: bytes | None = None  # a DATA frame not decoded for want of max_payload
        self._encoder: StreamEncoder | None = None
        self._decoder: StreamDecoder | None = None
        self._dict_id: int | None = None
        self._offline_since: float | None = now  # give-up clock; None while connected
        # closing
        self._close_deadline: float | None = None
        self._close_sent = False
        self._closed_by_peer = False
        # stats
        self._st = dict.fromkeys(SessionStats.__dataclass_fields__, 0)

    # ------------------------------------------------------------------------------ properties

    @property
    def session_id(self) -> bytes:
        return self._session_id

    @property
    def peer_session_id(self) -> bytes | None:
        return self._peer_id

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def is_attached(self) -> bool:
        return self._attached

    @property
    def is_connected(self) -> bool:
        """Attached and handshaken: messages flow."""
        return self._connected

    @property
    def unacked_count(self) -> int:
        """Messages held (queued or sent, not acked yet)."""
        return len(self._inflight) + len(self._queued)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of the messages held (queued or sent, not acked yet)."""
        return self._buffer_bytes

    @property
    def queued_count(self) -> int:
        """Messages not framed yet (waiting for the batch, a transport or the handshake)."""
        return len(self._queued)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def acked_seq(self) -> int:
        return self._acked

    @property
    def received_seq(self) -> int:
        """The last seq delivered from the peer."""
        return self._recv_next - 1

    @property
    def receive_blocked(self) -> bool:
        """``receive_data`` stopped at its ``max_payload`` with input left undecoded (and
        unacknowledged): feed no new bytes; call ``receive_data(b"", now, room)`` once there is room."""
        return self._held is not None

    @property
    def compressing(self) -> bool:
        """Our direction is zstd on the current transport."""
        return self._encoder is not None

    @property
    def dictionary_id(self) -> int | None:
        return self._dict_id

    @property
    def stats(self) -> SessionStats:
        return SessionStats(**self._st)

    def can_send(self, size: int) -> bool:
        """Whether ``send`` of a ``size``-byte message would be accepted now. When the buffer is
        what refuses it, :class:`BufferSpace` follows once acks free space (as after BufferFull)."""
        if self._state is not SessionState.OPEN or size > self.config.max_message_size:
            return False
        if (
            len(self._inflight) + len(self._queued) >= self.config.send_buffer_messages
            or self._buffer_bytes + size > self.config.send_buffer_bytes
        ):
            self._blocked = True
            return False
        return True

    # ---------------------------------------------------------------------------- drain output

    def events_received(self) -> list:
        """Drain the events produced so far."""
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Drain the bytes to write to the attached transport (``b""`` if none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        data = b"".join(out)
        self._st["wire_bytes_out"] += len(data)
        return data

    # -------------------------------------------------------------------------------- sending

    def send(self, data: bytes, now: float) -> int:
        """Queue one message; return its seq. It goes out with the next batch.

        Raises :class:`~darkswap_wasm.errors.LimitExceeded` (larger than ``max_message_size``),
        :class:`BufferFull` (send buffer full: wait for :class:`BufferSpace`) or
        :class:`SessionClosed` (closing, closed or failed).
        """
        if self._state is not SessionState.OPEN:
            raise SessionClosed(f"messaging session is {self._state.value}")
        config = self.config
        n = len(data)
        if n > config.max_message_size:
            raise MessageTooLarge(f"message of {n} bytes exceeds the limit of {config.max_message_size}")
        if (
            len(self._inflight) + len(self._queued) >= config.send_buffer_messages
            or self._buffer_bytes + n > config.send_buffer_bytes
        ):
            self._blocked = True
            raise BufferFull(f"send buffer full ({self.unacked_count} messages, {self._buffer_bytes} bytes unacked)")
        seq = self._next_seq
        self._next_seq = seq + 1
        self._queued.append(bytes(data))
        self._queued_bytes += n
        self._buffer_bytes += n
        if self._batch_deadline is None:
            self._batch_deadline = now + config.batch_delay
        if self._connected and (config.batch_delay <= 0 or self._queued_bytes >= config.batch_max_bytes):
            self._pump(config.batch_delay <= 0)
        return seq

    def flush(self, now: float) -> None:
        """The sender went idle: frame everything queued now (no-op without a handshaken transport)."""
        if self._connected and self._queued:
            self._pump(True)

    def _pump(self, force: bool) -> None:
        """Frame queued messages: full batches only, or everything with ``force``."""
        queued = self._queued
        limit = self.config.batch_max_bytes
        popleft = queued.popleft
        keep = self._inflight.append
        small = _SMALL
        st = self._st
        while queued:
            if not force and self._queued_bytes < limit:
                break
            parts: list[bytes] = []
            add = parts.append
            size = count = nbytes = 0
            while queued:
                data = queued[0]
                n = len(data)
                if n < 128:
                    head = small[n]
                    entry = n + 1
                else:
                    head = _encode_varint(n)
                    entry = n + len(head)
                if size and size + entry > limit:
                    break
                popleft()
                keep(data)
                add(head)
                add(data)
                size += entry
                nbytes += n
                count += 1
            self._queued_bytes -= nbytes
            if self._resend_left:
                resent = min(count, self._resend_left)
                self._resend_left -= resent
                st["resent_messages"] += resent
            st["messages_out"] += count
            st["payload_bytes_out"] += nbytes
            self._emit_data(b"".join(parts))
        if not queued:
            self._batch_deadline = None

    def _emit_data(self, payload: bytes) -> None:
        st = self._st
        encoding = ENC_PLAIN
        body = payload
        encoder = self._encoder
        if encoder is not None and len(payload) >= self.config.min_compress_size:
            kind, body = encoder.encode(payload)
            if kind == COMPRESSED:
                encoding = ENC_ZSTD
                st["compressed_frames_out"] += 1
            else:
                encoding = ENC_STORED
                st["stored_frames_out"] += 1
        ack = self._recv_next - 1 - self._ack_sent
        if ack:
            head = bytes((TYPE_DATA << 4 | DATA_ACK | encoding,)) + _uv(ack)
            self._ack_sent += ack
            self._ack_due = None
        else:
            head = _SMALL[TYPE_DATA << 4 | encoding]
        out = self._out
        out.append(_uv(len(head) + len(body)) + head)
        out.append(body)
        st["frames_out"] += 1

    def _send_ack(self) -> None:
        delta = self._recv_next - 1 - self._ack_sent
        if delta <= 0 or not self._connected:
            return
        body = _SMALL[TYPE_ACK << 4] + _uv(delta)
        self._out.append(_uv(len(body)) + body)
        self._ack_sent += delta
        self._ack_due = None

    # ------------------------------------------------------------------------------ transport

    def attach(self, now: float) -> None:
        """A new transport to the peer is up: queue our HELLO (an attached one is detached first)."""
        if self._state in _TERMINAL:
            raise SessionClosed(f"messaging session is {self._state.value}")
        if self._attached:
            self.detach(now)
        self._attached = True
        self._frames = FrameDecoder(self.config.max_frame_size)
        self._out.append(self._hello())

    def detach(self, now: float) -> None:
        """The transport is gone: unwritten output and partial input are dropped; unacked messages
        stay and are resent after the next handshake; compression contexts are dropped."""
        if not self._attached:
            return
        self._attached = False
        self._connected = False
        self._frames = None
        self._held = None
        self._encoder = None
        self._decoder = None
        self._dict_id = None
        self._out.clear()
        self._ack_due = None
        self._close_sent = False
        if self._state not in _TERMINAL:
            self._offline_since = now

    def _hello(self) -> bytes:
        flags = 0
        fields = [
            _uv(VERSION),
            self._session_id,
            self._peer_id or NO_SESSION,
            _uv(self._acked + 1),
            _uv(self._recv_next),
        ]
        if self._state is SessionState.CLOSING:
            flags |= HELLO_CLOSING
            fields.append(_uv(self._next_seq - 1))
            self._close_sent = True
        if self._backend is not None:
            flags |= HELLO_ZSTD
            fields.append(_uv(self.config.max_window_log))
        fields.append(_uv(len(self._dict_ids)))
        fields.extend(_uv(d) for d in self._dict_ids)
        body = _SMALL[TYPE_HELLO << 4 | flags] + b"".join(fields)
        return _uv(len(body)) + body

    # ------------------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes, now: float, max_payload: int | None = None) -> None:
        """Feed bytes read from the attached transport (ignored when detached or ended).

        ``max_payload``: decompressed bytes this call may deliver (``None``: no bound). Once the
        DATA payloads decoded in this call reach it, the next DATA frame and everything after it
        stay undecoded and unacknowledged (:attr:`receive_blocked`); a later call (``data`` may
        be ``b""``) continues from there. So one call delivers at most ``max_payload`` plus one
        frame (``max_decompressed_frame``), whatever the input inflates to.

        Raises :class:`~darkswap_wasm.errors.ProtocolError` subclasses on bad input; the session
        has then queued CLOSE+ABORT and failed (:class:`SessionFailed`).
        """
        if not self._attached or self._state in _TERMINAL or not (data or self._held is not None):
            return
        frames: FrameDecoder = self._frames  # type: ignore[assignment]
        if data:
            self._st["wire_bytes_in"] += len(data)
            frames.push(data)
        used = 0
        try:
            while True:
                frame = self._held
                if frame is None:
                    frame = frames.next_frame()
                    if frame is None:
                        break
                else:
                    self._held = None
                if (
                    max_payload is not None
                    and used >= max_payload
                    and self._connected
                    and frame
                    and frame[0] >> 4 == TYPE_DATA
                ):
                    self._held = frame  # no room: keep it (and what follows) undecoded, unacked
                    break
                used += self._on_frame(frame, now)
                if self._state in _TERMINAL or not self._attached:
                    break
        except ProtocolError as exc:
            if self._attached:
                self._out.append(b"\x01" + _SMALL[TYPE_CLOSE << 4 | CLOSE_ABORT])
            self._fail(f"protocol error: {exc}", exc)
            raise
        if not self._connected or self._state in _TERMINAL:
            return
        pending = self._recv_next - 1 - self._ack_sent
        if pending:
            if pending >= self.config.ack_every or self._state is SessionState.CLOSING:
                self._send_ack()
            elif self._ack_due is None:
                self._ack_due = now + self.config.ack_delay
        if self._state is SessionState.CLOSING:
            self._progress_close()

    def _on_frame(self, frame: bytes, now: float) -> int:
        """Handle one frame; the payload bytes it delivered (DATA), else 0."""
        if not frame:
            raise DecodeError("darkswap msg: empty frame")
        kind = frame[0]
        ftype = kind >> 4
        flags = kind & 0xF
        if ftype == TYPE_DATA and self._connected:
            return self._on_data(frame, flags)
        elif ftype == TYPE_ACK and self._connected:
            if flags:
                raise DecodeError(f"darkswap msg: ACK with flags {flags:#x}")
            delta, pos = _decode_varint(frame, 1)
            if pos != len(frame) or delta < 1:
                raise DecodeError("darkswap msg: malformed ACK")
            self._on_ack(self._acked + delta)
        elif ftype == TYPE_HELLO:
            if self._connected:
                raise ProtocolError("darkswap msg: second HELLO on one transport")
            self._on_hello(frame, flags, now)
        elif ftype == TYPE_CLOSE and self._connected:
            self._on_close(frame, flags, now)
        elif ftype in (TYPE_DATA, TYPE_ACK, TYPE_CLOSE):
            raise ProtocolError(f"darkswap msg: frame type {ftype} before HELLO")
        else:
            raise DecodeError(f"darkswap msg: unknown frame type {ftype}")
        return 0

    def _on_hello(self, frame: bytes, flags: int, now: float) -> None:
        if flags & ~(HELLO_ZSTD | HELLO_CLOSING):
            raise DecodeError(f"darkswap msg: HELLO with unknown flags {flags:#x}")
        version, pos = _decode_varint(frame, 1)
        if version != VERSION:
            raise ProtocolError(f"darkswap msg: unsupported version {version} (we speak {VERSION})")
        if pos + 2 * SESSION_ID_LENGTH > len(frame):
            raise DecodeError("darkswap msg: truncated HELLO")
        peer_id = frame[pos : pos + SESSION_ID_LENGTH]
        your_id = frame[pos + SESSION_ID_LENGTH : pos + 2 * SESSION_ID_LENGTH]
        pos += 2 * SESSION_ID_LENGTH
        send_base, pos = _decode_varint(frame, pos)
        recv_next, pos = _decode_varint(frame, pos)
        final = window_log = None
        if flags & HELLO_CLOSING:
            final, pos = _decode_varint(frame, pos)
        if flags & HELLO_ZSTD:
            window_log, pos = _decode_varint(frame, pos)
            if not MIN_WINDOW_LOG <= window_log <= MAX_WINDOW_LOG:
                raise DecodeError(f"darkswap msg: HELLO max_window_log {window_log} out of range")
        n_dicts, pos = _decode_varint(frame, pos)
        if n_dicts > MAX_DICT_IDS:
            raise DecodeError(f"darkswap msg: HELLO lists {n_dicts} dictionaries (at most {MAX_DICT_IDS})")
        dict_ids = []
        previous = 0
        for _ in range(n_dicts):
            dict_id, pos = _decode_varint(frame, pos)
            if dict_id <= previous or dict_id > MAX_DICT_ID:
                raise DecodeError("darkswap msg: HELLO dictionary ids must increase within 1..2**32-1")
            dict_ids.append(dict_id)
            previous = dict_id
        if peer_id == NO_SESSION:
            raise DecodeError("darkswap msg: HELLO with an all-zero session id")
        if send_base < 1 or recv_next < 1:
            raise DecodeError("darkswap msg: HELLO seqs start at 1")
        if final is not None and final < send_base - 1:
            raise ProtocolError("darkswap msg: HELLO final_seq below its send_base")

        # the peer's direction: continue, or adopt its send_base (first contact / peer restarted)
        restarted = False
        if peer_id == self._peer_id:
            if send_base > self._recv_next:
                raise ProtocolError(
                    f"darkswap msg: peer dropped messages {self._recv_next}..{send_base - 1} we never received"
                )
            if final is not None and final < self._recv_next - 1:
                raise ProtocolError("darkswap msg: HELLO final_seq below what we delivered")
            if self._peer_final is not None and final is not None and final != self._peer_final:
                raise ProtocolError("darkswap msg: the peer changed its final_seq")
        else:
            restarted = self._peer_id is not None
            self._peer_id = bytes(peer_id)
            self._recv_next = send_base
            self._peer_final = None
        if final is not None:
            self._peer_final = final
        self._ack_sent = self._recv_next - 1
        self._ack_due = None

        # our direction: resend from the peer's recv_next if it knows us, else from our send_base
        if your_id == self._session_id:
            if recv_next <= self._acked:
                raise ProtocolError("darkswap msg: the peer's recv_next is below what it acknowledged")
            if recv_next > self._next_seq:
                raise ProtocolError("darkswap msg: the peer acknowledges messages we never sent")
            self._release(recv_next - 1)
        inflight = self._inflight
        if inflight:
            resent = len(inflight)
            self._queued.extendleft(reversed(inflight))
            self._queued_bytes += sum(map(len, inflight))
            inflight.clear()
            self._resend_left += resent
        resent = self._resend_left

        # compression for this transport
        common = set(dict_ids).intersection(self._dict_ids)
        self._dict_id = dict_id = max(common) if common else None
        if self._backend is not None and flags & HELLO_ZSTD:
            dictionary = self.config.dictionaries[dict_id] if dict_id is not None else None
            compressor = self._backend.compressor(
                self.config.compression_level, min(self.config.window_log, window_log), dictionary
            )
            self._encoder = StreamEncoder(compressor)

        self._connected = True
        self._offline_since = None
        self._st["handshakes"] += 1
        self._events.append(SessionResumed(bytes(peer_id), resent, restarted, self._encoder is not None, dict_id))
        if final is not None:
            self._begin_closing(now, by_peer=True)
        self._pump(True)
        if self._state is SessionState.CLOSING:
            self._progress_close()

    def _on_data(self, frame: bytes, flags: int) -> int:
        if flags & ~(DATA_ENCODING | DATA_ACK):
            raise DecodeError(f"darkswap msg: DATA with unknown flags {flags:#x}")
        pos = 1
        if flags & DATA_ACK:
            delta, pos = _decode_varint(frame, 1)
            if delta < 1:
                raise DecodeError("darkswap msg: DATA with a zero ack")
            self._on_ack(self._acked + delta)
        encoding = flags & DATA_ENCODING
        config = self.config
        if encoding == ENC_PLAIN or encoding == ENC_STORED:
            if len(frame) - pos > config.max_decompressed_frame:
                raise LimitExceeded("darkswap msg: DATA payload exceeds max_decompressed_frame")
            payload = frame
            if encoding == ENC_STORED:
                self._zstd_decoder().append_stored(frame[pos:])
        elif encoding == ENC_ZSTD:
            payload = self._zstd_decoder().decode(frame[pos:], config.max_decompressed_frame)
            pos = 0
        else:
            raise DecodeError("darkswap msg: DATA with encoding 3")
        end = len(payload)
        if pos >= end:
            raise DecodeError("darkswap msg: DATA without messages")
        limit = config.max_message_size
        final = self._peer_final
        seq = self._recv_next
        first = seq
        events = self._events
        nbytes = 0
        try:
            while pos < end:
                n = payload[pos]
                if n < 0x80:
                    pos += 1
                else:
                    n, pos = _decode_varint(payload, pos)
                    if n > limit:
                        raise LimitExceeded(f"darkswap msg: message of {n} bytes exceeds the limit of {limit}")
                stop = pos + n
                if stop > end:
                    raise DecodeError("darkswap msg: truncated message in DATA")
                if final is not None and seq > final:
                    raise ProtocolError("darkswap msg: message after the peer's final_seq")
                events.append(MessageReceived(seq, payload[pos:stop]))
                nbytes += n
                seq += 1
                pos = stop
        finally:
            self._recv_next = seq
            st = self._st
            st["messages_in"] += seq - first
            st["payload_bytes_in"] += nbytes
            st["frames_in"] += 1
        return end

    def _zstd_decoder(self) -> StreamDecoder:
        decoder = self._decoder
        if decoder is None:
            if self._backend is None:
                raise ProtocolError("darkswap msg: compressed DATA although we did not announce zstd")
            dictionary = self.config.dictionaries[self._dict_id] if self._dict_id is not None else None
            decoder = self._decoder = StreamDecoder(self._backend.decompressor(self.config.max_window_log, dictionary))
        return decoder

    def _on_ack(self, up_to: int) -> None:
        if up_to > self._acked + len(self._inflight):
            raise ProtocolError(f"darkswap msg: ack for seq {up_to}, never sent on this transport")
        self._release(up_to)

    def _release(self, up_to: int) -> None:
        n = up_to - self._acked
        if n <= 0:
            return
        pop = self._inflight.popleft
        freed = 0
        for _ in range(n):
            freed += len(pop())
        self._buffer_bytes -= freed
        self._acked = up_to
        self._events.append(Acked(up_to))
        if self._blocked:
            self._blocked = False
            self._events.append(BufferSpace())

    def _on_close(self, frame: bytes, flags: int, now: float) -> None:
        if flags & ~CLOSE_ABORT:
            raise DecodeError(f"darkswap msg: CLOSE with unknown flags {flags:#x}")
        if flags & CLOSE_ABORT:
            if len(frame) != 1:
                raise DecodeError("darkswap msg: CLOSE+ABORT carries no fields")
            self._fail("the peer aborted the session", SessionClosed("the peer aborted the session"))
            return
        final, pos = _decode_varint(frame, 1)
        if pos != len(frame):
            raise DecodeError("darkswap msg: malformed CLOSE")
        if final < self._recv_next - 1 or (self._peer_final is not None and final != self._peer_final):
            raise ProtocolError(f"darkswap msg: CLOSE with final_seq {final} contradicts what we know")
        self._peer_final = final
        self._begin_closing(now, by_peer=True)

    # -------------------------------------------------------------------------------- closing

    def close(self, now: float, *, abort: bool = False) -> None:
        """End the session.

        Graceful (default): no more sends; queued messages still go, then the CLOSE exchange;
        :class:`SessionEnded` when done, :class:`SessionFailed` if ``close_timeout`` passes with
        messages undelivered. Without a transport and with nothing unacked it ends at once.
        ``abort=True``: CLOSE+ABORT to the peer (if attached) and :class:`SessionFailed` now.
        """
        if self._state in _TERMINAL:
            return
        if abort:
            if self._attached:
                self._out.append(b"\x01" + _SMALL[TYPE_CLOSE << 4 | CLOSE_ABORT])
            self._fail("closed locally (abort)", SessionClosed("the session was aborted locally"))
            return
        if self._state is SessionState.OPEN:
            if not self._connected and not self._inflight and not self._queued:
                self._finish(by_peer=False)
                return
            self._begin_closing(now, by_peer=False)
        self._progress_close()

    def _begin_closing(self, now: float, by_peer: bool) -> None:
        if self._state is not SessionState.OPEN:
            return
        self._state = SessionState.CLOSING
        self._closed_by_peer = by_peer
        self._close_deadline = now + self.config.close_timeout
        self._events.append(SessionClosing(by_peer))

    def _progress_close(self) -> None:
        if self._state is not SessionState.CLOSING or not self._connected:
            return
        self._pump(True)
        if not self._close_sent:
            body = _SMALL[TYPE_CLOSE << 4] + _uv(self._next_seq - 1)
            self._out.append(_uv(len(body)) + body)
            self._close_sent = True
        if (
            self._peer_final is not None
            and self._recv_next - 1 >= self._peer_final
            and self._acked == self._next_seq - 1
        ):
            self._send_ack()
            self._finish(self._closed_by_peer)

    def _finish(self, by_peer: bool) -> None:
        self._state = SessionState.CLOSED
        self._events.append(SessionEnded(by_peer))
        self._end()

    def _fail(self, reason: str, error: DarkSwapError) -> None:
        if self._state in _TERMINAL:
            return
        undelivered = range(self._acked + 1, self._next_seq)
        self._state = SessionState.FAILED
        self._events.append(SessionFailed(reason, error, undelivered))
        self._inflight.clear()
        self._queued.clear()
        self._queued_bytes = self._buffer_bytes = 0
        self._end()

    def _end(self) -> None:
        self._batch_deadline = self._ack_due = self._close_deadline = self._offline_since = None
        self._encoder = self._decoder = None
        self._frames = None
        self._held = None

    # --------------------------------------------------------------------------------- timers

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must run next (``None``: no timer)."""
        if self._state in _TERMINAL:
            return None
        deadline = self._close_deadline
        if self._connected:
            for d in (self._batch_deadline if self._queued else None, self._ack_due):
                if d is not None and (deadline is None or d < deadline):
                    deadline = d
        elif self._offline_since is not None:
            d = self._offline_since + self.config.give_up_after
            if deadline is None or d < deadline:
                deadline = d
        return deadline

    def handle_timeout(self, now: float) -> None:
        """Run what is due at ``now``: batch flush, delayed ACK, give-up, close timeout."""
        if self._state in _TERMINAL:
            return
        if not self._connected and self._offline_since is not None:
            if now >= self._offline_since + self.config.give_up_after:
                self._fail(
                    f"no transport to the peer for {self.config.give_up_after:g} s",
                    PeerUnreachable("messaging session gave up: no transport to the peer"),
                )
                return
        if self._close_deadline is not None and now >= self._close_deadline:
            if self._acked == self._next_seq - 1:
                self._finish(self._closed_by_peer)
            else:
                self._fail("close timed out", Timeout("messaging session: close timed out"))
            return
        if self._connected:
            if self._queued and self._batch_deadline is not None and now >= self._batch_deadline:
                self._pump(True)
            if self._ack_due is not None and now >= self._ack_due:
                self._send_ack()
