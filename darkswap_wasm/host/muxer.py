"""The contract of a connection that carries streams, and what a stream needs from it.

Two kinds of connection carry libp2p streams: an upgraded byte connection (TCP, WebSocket or a
relayed circuit, muxed by yamux: :class:`~.connection.Connection`) and a direct WebRTC
connection, whose streams are data channels (:class:`~.datachannel.WebRTCConnection`, the
data-channel muxer). Everything above them — the host, messaging, the relay, the monitor, the
JS API — holds a :class:`MuxedConnection` and never asks which kind it is (as rust-libp2p's
``StreamMuxer`` is implemented by yamux and by WebRTC data channels, and js-libp2p's
``DataChannelMuxer`` implements its ``StreamMuxer``).

A :class:`~.stream.Stream` is the same object on both: it buffers what arrives and waits with
timeouts; its muxer side is a :class:`StreamPort` (one per stream), which moves the bytes, flags
and credits of that stream over the connection. The muxer feeds the stream through the stream's
public "muxer side" methods (``deliver``, ``deliver_eof``, ``deliver_reset``, ``wake_writer``).

Transport kinds are named here once (:data:`TCP`, :data:`WS`, :data:`RELAY`, :data:`WEBRTC`),
and :func:`rank` is the one ordering of connections to the same peer (direct WebRTC first, a
relayed circuit last).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..identity import PeerId
    from ..protocols.circuit_v2 import Limit
    from ..wire.multiaddr import Multiaddr
    from .connection import ConnectionConfig
    from .stream import Stream

__all__ = ["RELAY", "TCP", "WEBRTC", "WS", "MuxedConnection", "StreamPort", "StreamTable", "rank"]

TCP = "tcp"
WS = "ws"
RELAY = "relay"  # a circuit through a relay (circuit relay v2): the relay sees ciphertext only
WEBRTC = "webrtc"  # a direct WebRTC connection, one data channel per stream

_PREFERENCE = {WEBRTC: 0, TCP: 1, WS: 2, RELAY: 5}
_UNKNOWN = 9


def rank(conn: MuxedConnection) -> int:
    """Preference of a connection (lower is better): direct WebRTC, TCP, WebSocket, then a
    relayed circuit. Sort a peer's connections with ``sorted(conns, key=rank)``."""
    return _PREFERENCE.get(conn.transport, _UNKNOWN)


@runtime_checkable
class MuxedConnection(Protocol):
    """A connection to one authenticated peer that opens and accepts streams."""

    remote_peer: PeerId | None  # set once authenticated (always, on a connection the host holds)
    is_initiator: bool  # we dialed it (direction "outbound")
    opened_at: float  # wall-clock seconds (time.time()) when it was created
    config: ConnectionConfig  # its streams' I/O timeout, among others

    @property
    def transport(self) -> str:
        """One of :data:`TCP`, :data:`WS`, :data:`RELAY`, :data:`WEBRTC`."""
        ...

    @property
    def remote_addr(self) -> Multiaddr: ...

    @property
    def relayed(self) -> bool:
        """The bytes pass through a relay (a circuit, limited by :attr:`limit`)."""
        ...

    @property
    def limit(self) -> Limit | None:
        """The relay's circuit limit (duration, data per direction); ``None``: none known."""
        ...

    @property
    def closed(self) -> bool: ...

    @property
    def num_streams(self) -> int:
        """Streams open on it (opened by either side, not yet fully closed or reset)."""
        ...

    @property
    def idle_since(self) -> float | None:
        """``time.monotonic()`` when its last stream ended (or it opened, if none ever did);
        ``None`` while a stream is open. The host's idle timeout reads this."""
        ...

    async def open_stream(self) -> Stream:
        """A new outbound stream (protocol not negotiated yet)."""
        ...

    async def ping(self, timeout: float) -> float:
        """Round-trip time in seconds of one liveness check; raises on timeout or close."""
        ...

    async def close(self, reason: BaseException | None = None) -> None: ...


class StreamPort(Protocol):
    """The muxer side of one stream: what :class:`~.stream.Stream` calls to move its bytes.

    ``send`` takes what it can now (0: wait for ``Stream.wake_writer``) and raises when the
    stream or connection cannot send any more; ``acknowledge`` credits bytes the application
    has read (receive flow control; a no-op where the transport does its own); ``drain`` waits
    while the connection's send queue is above its high-water mark.
    """

    def send(self, data: memoryview) -> int: ...

    def acknowledge(self, n: int) -> None: ...

    async def drain(self) -> None: ...

    def close_write(self) -> None: ...

    def close_read(self) -> None: ...

    def reset(self) -> None: ...


class StreamTable:
    """The open streams of one connection by id, and since when none is open (what
    :attr:`MuxedConnection.num_streams` and :attr:`MuxedConnection.idle_since` report): one
    bookkeeping for every muxer."""

    __slots__ = ("_streams", "idle_since")

    def __init__(self) -> None:
        self._streams: dict[int, Stream] = {}
        self.idle_since: float | None = time.monotonic()

    def __len__(self) -> int:
        return len(self._streams)

    def get(self, stream_id: int) -> Stream | None:
        return self._streams.get(stream_id)

    def add(self, stream: Stream) -> None:
        self._streams[stream.stream_id] = stream
        self.idle_since = None

    def drop(self, stream_id: int) -> Stream | None:
        s = self._streams.pop(stream_id, None)
        if s is not None and not self._streams:
            self.idle_since = time.monotonic()
        return s

    def take_all(self) -> list[Stream]:
        """Every stream, forgotten (the connection closed)."""
        streams = list(self._streams.values())
        self._streams.clear()
        return streams
