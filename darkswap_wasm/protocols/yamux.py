"""yamux ``/yamux/1.0.0``: the stream multiplexer libp2p runs over a secured connection.

Spec: hashicorp/yamux ``spec.md``. Behaviour checked against the implementations we must talk
to: go-yamux (libp2p fork), rust-yamux and js ``@chainsafe/libp2p-yamux``.

Wire format: every frame starts with a 12-byte big-endian header
``version:u8 (=0) | type:u8 | flags:u16 | stream_id:u32 | length:u32``. Types: ``0`` Data
(``length`` payload bytes follow), ``1`` Window Update (``length`` is a window delta), ``2`` Ping
(``length`` is an opaque value echoed back), ``3`` Go Away (``length`` is an error code: 0 normal,
1 protocol error, 2 internal error). Flags: ``SYN=1`` opens a stream (or marks a ping request),
``ACK=2`` accepts it (or marks a ping reply), ``FIN=4`` half-closes, ``RST=8`` resets. SYN/ACK/
FIN/RST may ride on a Data or a Window Update frame. The client uses odd stream ids, the server
even ones; id 0 is the session. Every stream starts with a 256 KiB window in each direction;
only Data payload bytes count against it.

This is a sans-I/O machine: :meth:`YamuxConnection.receive_data` takes bytes from the (secured)
transport, :meth:`YamuxConnection.events_received` drains what happened, and
:meth:`YamuxConnection.data_to_send` drains the bytes to write. No sockets, no clock, no sleeps.

Design choices (all interoperable with go/rust/js):

* **Window growth follows reading.** Every stream starts at the spec's 256 KiB
  (``initial_window``) in both directions; our SYN and ACK carry no extra window. go and js grow
  a stream's window towards their maximum by RTT-based auto-tuning; this machine has no clock,
  so growth is driven by consumption instead: each time the application has acknowledged a
  whole current window's worth of bytes since the last growth *and* at most a quarter of the
  window is still waiting unread (the reader keeps up: the window, not the reader, is the
  bottleneck), the window doubles, up to ``YamuxConfig.receive_window`` (16 MiB, the go/js
  maximum), and the extra rides on the next window update (updates are deltas, so this is what
  go/rust/js expect). A reader that keeps up reaches 16 MiB after about 16 MiB; a stream nobody
  reads, or a slow reader, stays small. ``receive_window = initial_window`` turns growth off.
* **Receive backpressure.** Received bytes are credited back to the peer only when the
  application calls :meth:`~YamuxConnection.acknowledge`; a window update goes out once at least
  half of the stream's current window is waiting to be credited (go's and js's threshold). So at
  most the stream's window of unconsumed bytes can ever be in flight or buffered.
* **Connection budget.** The windows of all streams of the session together never grow past
  ``YamuxConfig.connection_receive_budget`` (what one peer can make us buffer): growth may use
  three quarters of it (so that new streams always find room next to a few grown ones), and an
  inbound SYN whose initial window does not fit is refused with RST (:class:`StreamRefused`),
  like one over ``max_streams``. Our own streams always open (counted,
  but not refused). A plain number so that a resource manager can hand out a scope's share.
* **Closing the read side.** :meth:`~YamuxConnection.close_read` is go-yamux's ``CloseRead``:
  the peer is not told; data it still sends on the stream (within the window it holds) is
  dropped unbuffered and never credited; once our write side is closed too the stream is
  forgotten (later frames for it are ignored). For handlers that are done with a stream.
* **Accepting.** An inbound SYN gives :class:`StreamOpened`; the stream counts against
  ``max_accept_backlog`` until we ACK it. The ACK is sent by
  :meth:`~YamuxConnection.accept_stream` or implicitly with our first frame on the stream
  (send, close, acknowledge), like go's ``AcceptStream`` / first write.
* **Data after the peer's FIN** (length > 0, stream still tracked) is a protocol error: the
  spec says FIN means "no further data", and no conforming peer (go, rust, js) sends any. go
  and rust quietly buffer it instead; we prefer failing loudly over silently merging bytes
  into a stream the application already saw end. Zero-length frames and repeated FINs after
  a FIN are accepted.
* **Frames for unknown stream ids** (reset or fully closed and forgotten, or refused) are
  ignored, payload included, as go/rust/js do: a peer can legitimately still have data in
  flight after our RST. Such payloads are skipped without being buffered.
* **Stream id reuse** is detected for live streams and for the last ``_RECENT_LIMIT`` closed
  ones (bounded memory); a SYN with our own parity is a protocol error.
* **RST on a Window Update** carries an error code in ``length`` (go-yamux), never a window
  delta; RST on a Data frame discards its payload (rust-yamux).
* **Pings** with SYN are answered with ACK and the same opaque value, whatever their stream id
  (go is lenient; the spec says 0). Every ping ACK gives :class:`PongReceived`; matching it to
  a ping we sent is the caller's job. Pings with neither flag are ignored.
* **Go Away.** A received Go Away gives :class:`GoAwayReceived`; after it no new outbound
  stream may be opened. Code 0 lets existing streams finish (spec/hashicorp semantics); any
  other code terminates the machine (go/js abort the session on it). Likewise
  :meth:`~YamuxConnection.go_away` with code 0 drains (inbound SYNs are then refused with RST,
  as go/js do), with another code terminates.
* **Protocol errors** raised from :meth:`~YamuxConnection.receive_data` are
  :class:`~darkswap_wasm.errors.ProtocolError` subclasses; before raising, the machine queues
  Go Away(protocol error), emits :class:`ConnectionTerminated` and ignores all later input.
  Exceeding a stream's receive window raises
  :class:`~darkswap_wasm.errors.LimitExceeded`.

Extras beyond the brief's shape: :meth:`~YamuxConnection.accept_stream`,
:meth:`~YamuxConnection.receive_eof`, :meth:`~YamuxConnection.close_read`,
:meth:`~YamuxConnection.has_stream`, :meth:`~YamuxConnection.receive_window` and the
``state`` / ``local_go_away`` / ``remote_go_away`` / ``termination_reason`` properties.

Buffering: a partial frame never holds more than a 12-byte header plus a payload the window
check already allowed; outgoing bytes are a list of chunks joined once by ``data_to_send``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import (
    ConfigError,
    ConnectionClosed,
    LimitExceeded,
    ProtocolError,
    ResourceLimitExceeded,
    StreamClosed,
    StreamReset,
)

PROTOCOL_ID = "/yamux/1.0.0"

VERSION = 0
HEADER_LENGTH = 12

TYPE_DATA = 0
TYPE_WINDOW_UPDATE = 1
TYPE_PING = 2
TYPE_GO_AWAY = 3

FLAG_SYN = 0x1
FLAG_ACK = 0x2
FLAG_FIN = 0x4
FLAG_RST = 0x8

GO_AWAY_NORMAL = 0
GO_AWAY_PROTOCOL_ERROR = 1
GO_AWAY_INTERNAL_ERROR = 2

INITIAL_STREAM_WINDOW = 256 * 1024
MAX_UINT32 = 0xFFFFFFFF

_HEADER = struct.Struct(">BBHII")
_pack = _HEADER.pack
_unpack_from = _HEADER.unpack_from

# How many closed/reset stream ids we remember (for precise errors and reuse detection).
_RECENT_LIMIT = 1024


def encode_header(frame_type: int, flags: int, stream_id: int, length: int) -> bytes:
    """The 12-byte header of a frame (version 0)."""
    return _pack(VERSION, frame_type, flags, stream_id, length)


def decode_header(data: bytes, offset: int = 0) -> tuple[int, int, int, int, int]:
    """``(version, type, flags, stream_id, length)`` from 12 bytes at ``offset`` (no checks)."""
    return _unpack_from(data, offset)


@dataclass(frozen=True)
class YamuxConfig:
    """Limits and windows. Defaults follow go-yamux / js-libp2p-yamux."""

    max_streams: int = 512  # open streams at once (inbound + outbound); inbound SYN over it -> RST
    initial_window: int = INITIAL_STREAM_WINDOW  # the spec's initial window; both sides assume it
    receive_window: int = 16 * 1024 * 1024  # per-stream window we announce with our SYN/ACK
    max_frame_payload: int = 256 * 1024  # outgoing Data frames are split at this size
    max_accept_backlog: int = 256  # inbound streams not yet ACKed; beyond -> RST
    # sum of all streams' receive windows (bytes the peer may make us buffer on this session):
    # windows grow only within it, an inbound stream that does not fit is refused (RST)
    connection_receive_budget: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_streams",
            "initial_window",
            "receive_window",
            "max_frame_payload",
            "connection_receive_budget",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"YamuxConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.max_accept_backlog, int) or self.max_accept_backlog < 0:
            raise ConfigError(f"YamuxConfig.max_accept_backlog must be >= 0, got {self.max_accept_backlog!r}")
        if self.initial_window > MAX_UINT32 or self.receive_window > MAX_UINT32:
            raise ConfigError("YamuxConfig windows must fit in 32 bits")
        if self.receive_window < self.initial_window:
            raise ConfigError("YamuxConfig.receive_window must be >= initial_window")
        if self.max_frame_payload > MAX_UINT32:
            raise ConfigError("YamuxConfig.max_frame_payload must fit in 32 bits")
        if self.connection_receive_budget < self.initial_window:
            raise ConfigError("YamuxConfig.connection_receive_budget must be >= initial_window")


# ---------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a stream (inbound SYN). Accept it with ``accept_stream`` or by using it."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamRefused:
    """We refused the peer's SYN with RST (``reason``: ``"max_streams"``, ``"accept_backlog"``,
    ``"receive_budget"`` or ``"go_away"``). Nothing else is reported for this id."""

    stream_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class StreamAcknowledged:
    """The peer ACKed a stream we opened."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Payload of one Data frame. Call ``acknowledge(stream_id, len(data))`` once consumed."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed the stream (FIN): no more data will arrive on it."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamResetByPeer:
    """The peer reset the stream (RST), or refused a stream we opened. The id is forgotten."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamClosedFully:
    """Both halves are closed (FIN both ways); the id is forgotten."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    """Our send window on the stream grew: a blocked ``send_data`` may be retried."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PongReceived:
    """The peer answered a ping (ACK) with this opaque value."""

    opaque: int


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The peer sent Go Away with this code (0 normal, 1 protocol error, 2 internal error)."""

    code: int


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The machine is terminated: every stream is gone, later input is ignored."""

    reason: str


YamuxEvent = (
    StreamOpened
    | StreamRefused
    | StreamAcknowledged
    | DataReceived
    | StreamEnded
    | StreamResetByPeer
    | StreamClosedFully
    | WindowUpdated
    | PongReceived
    | GoAwayReceived
    | ConnectionTerminated
)


class ConnectionState(enum.Enum):
    OPEN = "open"
    DRAINING = "draining"  # a Go Away (code 0) was sent or received: no new outbound streams
    TERMINATED = "terminated"


# --------------------------------------------------------------------------------------- streams


class _Stream:
    __slots__ = (
        "acked",
        "consumed",
        "local_closed",
        "outbound",
        "read_closed",
        "recv_avail",
        "recv_pending",
        "recv_unacked",
        "remote_closed",
        "send_window",
        "stream_id",
        "window",
    )

    def __init__(self, stream_id: int, outbound: bool, window: int, send_window: int) -> None:
        self.stream_id = stream_id
        self.outbound = outbound
        # outbound: the peer ACKed our SYN; inbound: we ACKed the peer's SYN.
        self.acked = False
        self.local_closed = False  # we sent FIN
        self.remote_closed = False  # we received FIN
        self.read_closed = False  # close_read: inbound data is dropped, never credited
        self.send_window = send_window  # bytes we may still send
        # receive side; invariant: recv_avail + recv_unacked + recv_pending == window (until the
        # peer's FIN or our close_read, after which nothing more is credited)
        self.window = window  # the receive window granted to the peer; grows with reading
        self.recv_avail = window  # bytes the peer may still send (credit it holds)
        self.recv_unacked = 0  # delivered to the application, not yet acknowledged
        self.recv_pending = 0  # acknowledged, not yet credited back to the peer
        self.consumed = 0  # acknowledged since the window last grew


class YamuxConnection:
    """One yamux session (sans-I/O). ``is_client``: the dialer side; it uses odd stream ids."""

    def __init__(self, is_client: bool, config: YamuxConfig = YamuxConfig()) -> None:
        self.is_client = bool(is_client)
        self.config = config
        self._streams: dict[int, _Stream] = {}
        self._recent: dict[int, bool] = {}  # forgotten id -> was reset
        self._next_id = 1 if self.is_client else 2
        self._peer_parity = 0 if self.is_client else 1
        self._backlog = 0  # inbound streams not yet ACKed by us
        self._granted = 0  # sum of the receive windows of the tracked streams
        self._growth_ceiling = config.connection_receive_budget - config.connection_receive_budget // 4
        self._refused = 0  # inbound SYNs refused with RST
        self._events: list = []
        self._out: list = []
        self._local_go_away: int | None = None
        self._remote_go_away: int | None = None
        self._terminated = False
        self._termination_reason: str | None = None
        # Partial-frame state: header bytes (< 12) or a Data frame waiting for its payload.
        self._hbuf = bytearray()
        self._pending: tuple[int, int, int, bool] | None = None  # flags, stream_id, length, keep
        self._parts: list[bytes] = []
        self._need = 0

    # ------------------------------------------------------------------------------ properties

    @property
    def state(self) -> ConnectionState:
        if self._terminated:
            return ConnectionState.TERMINATED
        if self._local_go_away is not None or self._remote_go_away is not None:
            return ConnectionState.DRAINING
        return ConnectionState.OPEN

    @property
    def is_terminated(self) -> bool:
        return self._terminated

    @property
    def termination_reason(self) -> str | None:
        return self._termination_reason

    @property
    def local_go_away(self) -> int | None:
        """The code of the Go Away we sent, or None."""
        return self._local_go_away

    @property
    def remote_go_away(self) -> int | None:
        """The code of the Go Away the peer sent, or None."""
        return self._remote_go_away

    @property
    def stream_ids(self) -> list[int]:
        """Ids of the streams currently tracked (open in at least one direction)."""
        return list(self._streams)

    @property
    def num_streams(self) -> int:
        return len(self._streams)

    def has_stream(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def send_window(self, stream_id: int) -> int:
        """Bytes ``send_data`` would accept now on the stream (0 if unknown or closed)."""
        s = self._streams.get(stream_id)
        if s is None or s.local_closed:
            return 0
        return s.send_window

    def receive_window(self, stream_id: int) -> int:
        """The stream's current receive window: what the peer may have sent us unacknowledged
        (starts at ``initial_window``, grows with reading up to ``receive_window``; 0 if unknown)."""
        s = self._streams.get(stream_id)
        return 0 if s is None else s.window

    def receive_credit(self, stream_id: int) -> int:
        """Bytes the peer may still send on the stream before it needs a window update."""
        s = self._streams.get(stream_id)
        return 0 if s is None else s.recv_avail

    @property
    def receive_window_total(self) -> int:
        """The sum of the receive windows of all tracked streams (<= the connection budget, but for
        our own streams, which always open)."""
        return self._granted

    @property
    def refused_streams(self) -> int:
        """Inbound streams refused with RST so far (stream cap, backlog, budget, going away)."""
        return self._refused

    # ---------------------------------------------------------------------------------- output

    def events_received(self) -> list:
        """Drain the events produced so far."""
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        """Drain the bytes to write to the transport (``b""`` if none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return b"".join(out)

    # ---------------------------------------------------------------------------------- input

    def receive_data(self, data) -> None:
        """Feed bytes read from the transport. Raises ProtocolError subclasses on bad input."""
        if self._terminated or not data:
            return
        try:
            self._feed(data)
        except ProtocolError as exc:
            self._fail(str(exc) or type(exc).__name__)
            raise

    def receive_eof(self) -> None:
        """The transport closed: terminate (a partial frame is dropped)."""
        if not self._terminated:
            self._terminate("transport closed")

    def _fail(self, reason: str) -> None:
        if self._terminated:
            return
        self._out.append(_pack(VERSION, TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR))
        if self._local_go_away is None:
            self._local_go_away = GO_AWAY_PROTOCOL_ERROR
        self._terminate(f"protocol error: {reason}")

    def _terminate(self, reason: str) -> None:
        self._terminated = True
        self._termination_reason = reason
        for sid in self._streams:
            self._remember(sid, True)
        self._streams.clear()
        self._backlog = 0
        self._granted = 0
        self._hbuf.clear()
        self._pending = None
        self._parts = []
        self._need = 0
        self._events.append(ConnectionTerminated(reason))

    def _feed(self, data) -> None:
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        end = len(view)
        pos = 0
        if self._hbuf or self._pending is not None:
            pos = self._continue_partial(view, end)
            if pos >= end or self._terminated:
                return
        unpack = _unpack_from
        hl = HEADER_LENGTH
        while end - pos >= hl:
            version, ftype, flags, sid, length = unpack(view, pos)
            if ftype == TYPE_DATA and version == VERSION:
                keep = self._check_data_header(flags, sid, length)
                stop = pos + hl + length
                if stop > end:
                    # Partial payload: keep what we have (bounded by the checked length).
                    self._pending = (flags, sid, length, keep)
                    self._need = length
                    self._parts = []
                    self._take_payload(view, pos + hl, end)
                    return
                if keep:
                    self._on_data(flags, sid, view[pos + hl : stop])
                pos = stop
            else:
                self._on_control(version, ftype, flags, sid, length)
                pos += hl
            if self._terminated:
                return
        if pos < end:
            self._hbuf += view[pos:end]

    def _take_payload(self, view: memoryview, start: int, end: int) -> int:
        take = min(self._need, end - start)
        if take:
            if self._pending[3]:  # type: ignore[index]
                self._parts.append(bytes(view[start : start + take]))
            self._need -= take
        return start + take

    def _continue_partial(self, view: memoryview, end: int) -> int:
        """Complete the pending frame from ``view``; the offset reached (``end`` if still partial)."""
        pos = 0
        if self._pending is None:
            hbuf = self._hbuf
            take = min(HEADER_LENGTH - len(hbuf), end)
            hbuf += view[:take]
            pos = take
            if len(hbuf) < HEADER_LENGTH:
                return end
            version, ftype, flags, sid, length = _unpack_from(hbuf, 0)
            hbuf.clear()
            if ftype != TYPE_DATA or version != VERSION:
                self._on_control(version, ftype, flags, sid, length)
                return pos
            keep = self._check_data_header(flags, sid, length)
            self._pending = (flags, sid, length, keep)
            self._need = length
            self._parts = []
        pos = self._take_payload(view, pos, end)
        if self._need:
            return end
        flags, sid, _length, keep = self._pending
        parts = self._parts
        self._pending = None
        self._parts = []
        if keep:
            payload = parts[0] if len(parts) == 1 else b"".join(parts)
            self._on_data(flags, sid, payload)
        return pos

    # ------------------------------------------------------------------------- frame handling

    def _check_data_header(self, flags: int, sid: int, length: int) -> bool:
        """Validate a Data header before buffering its payload; False: skip the payload unread."""
        if sid == 0:
            raise ProtocolError("yamux Data frame on stream 0")
        s = self._streams.get(sid)
        if s is not None:
            if length and not flags & FLAG_RST:
                if s.remote_closed:
                    raise ProtocolError(f"yamux data on stream {sid} after the peer's FIN")
                if length > s.recv_avail:
                    raise LimitExceeded(
                        f"yamux stream {sid}: {length} bytes exceed the receive window ({s.recv_avail})"
                    )
            elif length > self.config.receive_window:
                raise LimitExceeded(f"yamux Data frame of {length} bytes exceeds any window we granted")
            return True
        if flags & FLAG_SYN:
            if sid & 1 != self._peer_parity:
                raise ProtocolError(f"yamux SYN for stream {sid} with our id parity (both sides clients?)")
            if length > self.config.initial_window:
                raise LimitExceeded(f"yamux stream {sid}: first frame of {length} bytes exceeds the initial window")
            return True
        # Unknown stream (forgotten, refused or never opened): skip the payload.
        if length > self.config.receive_window:
            raise LimitExceeded(f"yamux Data frame of {length} bytes exceeds any window we granted")
        return False

    def _on_data(self, flags: int, sid: int, payload) -> None:
        if flags & FLAG_SYN:
            s = self._inbound_syn(sid, flags)
        else:
            s = self._streams.get(sid)
        if s is None:
            return
        if flags & FLAG_RST:
            self._peer_reset(s)
            return
        if flags & FLAG_ACK and s.outbound and not s.acked:
            s.acked = True
            self._events.append(StreamAcknowledged(sid))
        n = len(payload)
        if n:
            if s.remote_closed:
                raise ProtocolError(f"yamux data on stream {sid} after the peer's FIN")
            if n > s.recv_avail:
                raise LimitExceeded(f"yamux stream {sid}: {n} bytes exceed the receive window ({s.recv_avail})")
            s.recv_avail -= n
            if not s.read_closed:  # after close_read: dropped, never credited
                s.recv_unacked += n
                self._events.append(DataReceived(sid, payload if type(payload) is bytes else bytes(payload)))
        if flags & FLAG_FIN:
            self._peer_fin(s)

    def _on_control(self, version: int, ftype: int, flags: int, sid: int, length: int) -> None:
        if version != VERSION:
            raise ProtocolError(f"yamux version {version} (expected 0)")
        if ftype == TYPE_WINDOW_UPDATE:
            if sid == 0:
                raise ProtocolError("yamux Window Update on stream 0")
            if flags & FLAG_SYN:
                s = self._inbound_syn(sid, flags)
            else:
                s = self._streams.get(sid)
            if s is None:
                return
            if flags & FLAG_RST:  # length is an error code here (go-yamux), not a delta
                self._peer_reset(s)
                return
            if flags & FLAG_ACK and s.outbound and not s.acked:
                s.acked = True
                self._events.append(StreamAcknowledged(sid))
            if length:
                s.send_window += length
                if not s.local_closed:
                    self._events.append(WindowUpdated(sid))
            if flags & FLAG_FIN:
                self._peer_fin(s)
        elif ftype == TYPE_PING:
            if flags & FLAG_SYN:
                self._out.append(_pack(VERSION, TYPE_PING, FLAG_ACK, 0, length))
            elif flags & FLAG_ACK:
                self._events.append(PongReceived(length))
        elif ftype == TYPE_GO_AWAY:
            self._remote_go_away = length
            self._events.append(GoAwayReceived(length))
            if length != GO_AWAY_NORMAL:
                self._terminate(f"peer sent Go Away with code {length}")
        elif ftype == TYPE_DATA:  # only reached with a bad version, handled above
            raise ProtocolError("yamux Data frame routed as control")  # pragma: no cover
        else:
            raise ProtocolError(f"yamux frame of unknown type {ftype}")

    def _inbound_syn(self, sid: int, flags: int) -> _Stream | None:
        """Handle the peer's SYN: the new stream, or None when refused (RST queued)."""
        if sid & 1 != self._peer_parity:
            raise ProtocolError(f"yamux SYN for stream {sid} with our id parity (both sides clients?)")
        if sid in self._streams or sid in self._recent:
            raise ProtocolError(f"yamux SYN reuses stream id {sid}")
        if flags & FLAG_RST:  # opened and reset at once: nothing to deliver
            self._remember(sid, True)
            return None
        cfg = self.config
        if self._local_go_away is not None:
            reason = "go_away"
        elif len(self._streams) >= cfg.max_streams:
            reason = "max_streams"
        elif self._backlog >= cfg.max_accept_backlog:
            reason = "accept_backlog"
        elif self._granted + cfg.initial_window > cfg.connection_receive_budget:
            reason = "receive_budget"
        else:
            reason = None
        if reason is not None:
            self._out.append(_pack(VERSION, TYPE_WINDOW_UPDATE, FLAG_RST, sid, 0))
            self._remember(sid, True)
            self._refused += 1
            self._events.append(StreamRefused(sid, reason))
            return None
        s = _Stream(sid, False, cfg.initial_window, cfg.initial_window)
        self._streams[sid] = s
        self._granted += s.window
        self._backlog += 1
        self._events.append(StreamOpened(sid))
        return s

    def _peer_reset(self, s: _Stream) -> None:
        self._forget(s, True)
        self._events.append(StreamResetByPeer(s.stream_id))

    def _peer_fin(self, s: _Stream) -> None:
        if s.remote_closed:
            return
        s.remote_closed = True
        self._events.append(StreamEnded(s.stream_id))
        if s.local_closed:
            self._forget(s, False)
            self._events.append(StreamClosedFully(s.stream_id))

    def _forget(self, s: _Stream, reset: bool) -> None:
        del self._streams[s.stream_id]
        self._granted -= s.window
        if not s.outbound and not s.acked:
            self._backlog -= 1
        self._remember(s.stream_id, reset)

    def _remember(self, sid: int, reset: bool) -> None:
        recent = self._recent
        recent[sid] = reset
        if len(recent) > _RECENT_LIMIT:
            del recent[next(iter(recent))]

    def _ensure_acked(self, s: _Stream) -> None:
        """ACK an inbound stream if not done yet (no extra window: it grows with reading)."""
        if s.outbound or s.acked:
            return
        s.acked = True
        self._backlog -= 1
        self._out.append(_pack(VERSION, TYPE_WINDOW_UPDATE, FLAG_ACK, s.stream_id, 0))

    def _live_stream(self, stream_id: int) -> _Stream:
        if self._terminated:
            raise ConnectionClosed(f"yamux connection terminated ({self._termination_reason})")
        s = self._streams.get(stream_id)
        if s is None:
            if self._recent.get(stream_id):
                raise StreamReset(f"yamux stream {stream_id} was reset")
            raise StreamClosed(f"yamux stream {stream_id} is closed (or was never opened)")
        return s

    # ---------------------------------------------------------------------------- local calls

    def open_stream(self) -> int:
        """Open an outbound stream: queues SYN (the spec's initial window); returns its id."""
        if self._terminated:
            raise ConnectionClosed(f"yamux connection terminated ({self._termination_reason})")
        if self._local_go_away is not None:
            raise ConnectionClosed("yamux: we sent Go Away; no new streams")
        if self._remote_go_away is not None:
            raise ConnectionClosed("yamux: the peer sent Go Away; no new streams")
        cfg = self.config
        if len(self._streams) >= cfg.max_streams:
            raise ResourceLimitExceeded(f"yamux: {cfg.max_streams} streams already open")
        sid = self._next_id
        if sid > MAX_UINT32:
            raise LimitExceeded("yamux: stream ids exhausted")
        self._next_id = sid + 2
        s = self._streams[sid] = _Stream(sid, True, cfg.initial_window, cfg.initial_window)
        self._granted += s.window
        self._out.append(_pack(VERSION, TYPE_WINDOW_UPDATE, FLAG_SYN, sid, 0))
        return sid

    def accept_stream(self, stream_id: int) -> None:
        """ACK an inbound stream now (also done implicitly by our first frame on it)."""
        s = self._streams.get(stream_id)
        if s is not None and not self._terminated:
            self._ensure_acked(s)

    def send_data(self, stream_id: int, data) -> int:
        """Queue up to the stream's send window of ``data``; returns the bytes accepted.

        0 means the window is exhausted: wait for :class:`WindowUpdated`, then retry with the rest.
        """
        s = self._live_stream(stream_id)
        if s.local_closed:
            raise StreamClosed(f"yamux stream {stream_id}: our side is closed")
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        n = len(view)
        if n == 0:
            return 0
        self._ensure_acked(s)
        k = s.send_window
        if k <= 0:
            return 0
        if k < n:
            view = view[:k]
        else:
            k = n
        if not view.readonly:  # the caller may reuse its buffer before data_to_send
            view = memoryview(bytes(view))
        s.send_window -= k
        out = self._out
        step = self.config.max_frame_payload
        if k <= step:
            out.append(_pack(VERSION, TYPE_DATA, 0, stream_id, k))
            out.append(view)
        else:
            for off in range(0, k, step):
                chunk = view[off : off + step]
                out.append(_pack(VERSION, TYPE_DATA, 0, stream_id, len(chunk)))
                out.append(chunk)
        return k

    def close_stream(self, stream_id: int) -> None:
        """Half-close our side (FIN). No-op if already closed, reset or unknown."""
        if self._terminated:
            return
        s = self._streams.get(stream_id)
        if s is None or s.local_closed:
            return
        self._ensure_acked(s)
        s.local_closed = True
        self._out.append(_pack(VERSION, TYPE_WINDOW_UPDATE, FLAG_FIN, stream_id, 0))
        if s.remote_closed or s.read_closed:
            self._forget(s, False)
            self._events.append(StreamClosedFully(stream_id))

    def close_read(self, stream_id: int) -> None:
        """Stop reading the stream (go-yamux ``CloseRead``; the peer is not told).

        Bytes it still sends within the window it holds are dropped without being buffered or
        credited; unacknowledged bytes need no acknowledgement. If our write side is closed too,
        the stream is forgotten now (:class:`StreamClosedFully`). No-op if unknown.
        """
        if self._terminated:
            return
        s = self._streams.get(stream_id)
        if s is None or s.read_closed:
            return
        self._ensure_acked(s)
        s.read_closed = True
        s.recv_unacked = s.recv_pending = 0
        if s.local_closed:
            self._forget(s, False)
            self._events.append(StreamClosedFully(stream_id))

    def reset_stream(self, stream_id: int) -> None:
        """Reset the stream (RST) and forget it. No-op if unknown."""
        if self._terminated:
            return
        s = self._streams.get(stream_id)
        if s is None:
            return
        self._out.append(_pack(VERSION, TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0))
        self._forget(s, True)

    def acknowledge(self, stream_id: int, n: int) -> None:
        """The application consumed ``n`` received bytes: credit them back to the peer.

        A window update is queued once at least half of the stream's window is waiting; it also
        carries the window's growth when a whole window has been consumed since the last growth
        and the reader keeps up (see the module docstring). Unknown (forgotten) or read-closed
        streams are ignored; acknowledging more than was received raises ProtocolError (a local
        bug; the machine is not terminated).
        """
        if n < 0:
            raise ValueError("acknowledge: n must be >= 0")
        if self._terminated:
            return
        s = self._streams.get(stream_id)
        if s is None or n == 0 or s.read_closed:
            return
        if n > s.recv_unacked:
            raise ProtocolError(
                f"yamux stream {stream_id}: acknowledged {n} bytes but only {s.recv_unacked} are unacknowledged"
            )
        s.recv_unacked -= n
        if s.remote_closed:
            return  # the peer sends no more data: no credit needed
        self._ensure_acked(s)
        pending = s.recv_pending + n
        window = s.window
        if pending < (window >> 1 or 1):
            s.recv_pending = pending
            return
        consumed = s.consumed + pending
        cfg = self.config
        if consumed >= window and window < cfg.receive_window and s.recv_unacked <= window >> 2:
            # the reader consumed a whole window and keeps up: double it (within the budget)
            grow = min(window, cfg.receive_window - window, self._growth_ceiling - self._granted)
            if grow > 0:
                s.window = window + grow
                self._granted += grow
                pending += grow
                consumed = 0
        s.consumed = consumed
        s.recv_pending = 0
        s.recv_avail += pending
        self._out.append(_pack(VERSION, TYPE_WINDOW_UPDATE, 0, stream_id, pending))

    def ping(self, opaque: int) -> None:
        """Queue a ping (SYN); the peer's ACK gives :class:`PongReceived` with ``opaque``."""
        if self._terminated:
            raise ConnectionClosed(f"yamux connection terminated ({self._termination_reason})")
        if not 0 <= opaque <= MAX_UINT32:
            raise ValueError("ping opaque must fit in 32 bits")
        self._out.append(_pack(VERSION, TYPE_PING, FLAG_SYN, 0, opaque))

    def go_away(self, code: int = GO_AWAY_NORMAL) -> None:
        """Send Go Away. Code 0 drains (existing streams go on); any other code terminates."""
        if self._terminated:
            return
        if not 0 <= code <= MAX_UINT32:
            raise ValueError("go-away code must fit in 32 bits")
        if self._local_go_away is None:
            self._local_go_away = code
            self._out.append(_pack(VERSION, TYPE_GO_AWAY, 0, 0, code))
        if code != GO_AWAY_NORMAL:
            self._terminate(f"we sent Go Away with code {code}")
