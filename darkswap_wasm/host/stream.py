"""A libp2p stream as asyncio sees it: ``read`` / ``write`` / ``close`` / ``reset``.

The same class on every muxed connection (yamux and WebRTC data channels, see
:mod:`.muxer`): the stream buffers what its muxer delivers and waits with timeouts; its
:class:`~.muxer.StreamPort` moves bytes, flags and credits over the connection.

Reads credit the peer's window only once the application has taken the bytes (receive
backpressure; the muxer grows a stream's window only while its reader keeps up); writes wait for
the port to take bytes and for the transport to drain (send backpressure). Every wait is bounded
by the connection's I/O timeout. :meth:`Stream.close_read` stops reading: what is buffered and
what the peer still sends is dropped, never credited.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from ..errors import ConnectionClosed, LimitExceeded, StreamClosed, StreamReset, Timeout
from .wakeup import Wakeup

READ_COALESCE = 256 * 1024  # a read() without max_bytes returns at most this much joined
NO_TIMEOUT = math.inf  # for waits whose bound is enforced elsewhere (an idle relayed connection)

if TYPE_CHECKING:
    from ..identity import PeerId
    from .muxer import MuxedConnection, StreamPort


class Stream:
    def __init__(self, conn: MuxedConnection, stream_id: int, *, inbound: bool, port: StreamPort) -> None:
        self.conn = conn
        self.port = port
        self.stream_id = stream_id
        self.inbound = inbound
        self.protocol: str | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._reset = False
        self._write_closed = False
        self._read_closed = False
        self._uses = 0  # read/write/close/reset/claim calls (the host sees whether a handler used it)
        self._error: BaseException | None = None
        self._readable = Wakeup()
        self._writable = Wakeup()

    # -- the muxer side (called by the stream's muxer, not by applications) -----------------
    def deliver(self, data: bytes) -> None:
        """Bytes from the peer (dropped once reading is closed)."""
        if data and not self._read_closed:
            self._chunks.append(data)
            self._buffered += len(data)
            self._readable.set()

    def deliver_eof(self) -> None:
        """The peer closed its writing half (or the channel closed): reads end after the buffer."""
        self._eof = True
        self._readable.set()

    def deliver_reset(self, error: BaseException | None = None) -> None:
        """The stream is gone (reset by the peer, a limit, the connection closed)."""
        self._reset = True
        self._error = error
        self._readable.set()
        self._writable.set()

    def wake_writer(self) -> None:
        """The port can take bytes again (window credit, buffered amount low)."""
        self._writable.set()

    @property
    def buffered(self) -> int:
        """Bytes delivered and not read yet."""
        return self._buffered

    @property
    def at_eof(self) -> bool:
        return self._eof

    # -- public API --------------------------------------------------------------------
    @property
    def remote_peer(self) -> PeerId:
        assert self.conn.remote_peer is not None
        return self.conn.remote_peer

    @property
    def is_reset(self) -> bool:
        return self._reset

    @property
    def write_closed(self) -> bool:
        """We closed our writing half (FIN sent), or the stream was reset."""
        return self._write_closed or self._reset

    @property
    def uses(self) -> int:
        """How many read/write/close/reset/claim calls it has had (the host compares this before
        and after a handler to see whether the handler used it)."""
        return self._uses

    def claim(self) -> None:
        """The stream outlives its handler (a task owns it now): the host must not reset it as
        unused when the handler returns (see :meth:`~.host.Host.set_stream_handler`)."""
        self._uses += 1

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the buffer (already credited to the window)."""
        if data:
            self._chunks.appendleft(data)
            self._buffered += len(data)
            self._readable.set()

    async def read(self, max_bytes: int = -1, *, timeout: float | None = None) -> bytes:
        """Next bytes (at most ``max_bytes`` when > 0); ``b""`` at end of stream."""
        self._uses += 1
        if self._read_closed:
            raise StreamClosed(f"stream {self.stream_id} is closed for reading")
        while not self._chunks:
            if self._reset:
                raise StreamReset(f"stream {self.stream_id} was reset") from self._error
            if self._eof:
                return b""
            self._readable.clear()
            await self._wait(self._readable, timeout, "read")
        chunk = self._chunks.popleft()
        if 0 < max_bytes < len(chunk):
            self._chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        elif max_bytes <= 0 and self._chunks and len(chunk) < READ_COALESCE:
            # several small chunks waiting (data channel messages are 16 KiB): hand them over in
            # one read, so a reader wakes once per burst rather than once per message
            parts = [chunk]
            size = len(chunk)
            while self._chunks and size + len(self._chunks[0]) <= READ_COALESCE:
                nxt = self._chunks.popleft()
                parts.append(nxt)
                size += len(nxt)
            chunk = b"".join(parts)
        self._buffered -= len(chunk)
        self.port.acknowledge(len(chunk))
        return chunk

    async def readexactly(self, n: int, *, timeout: float | None = None) -> bytes:
        parts = []
        need = n
        while need:
            chunk = await self.read(need, timeout=timeout)
            if not chunk:
                raise StreamClosed(f"stream ended {need} bytes short of {n}")
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

    async def read_all(self, limit: int, *, timeout: float | None = None) -> bytes:
        """Everything until end of stream; :class:`LimitExceeded` past ``limit`` bytes."""
        parts = []
        total = 0
        while True:
            chunk = await self.read(timeout=timeout)
            if not chunk:
                return b"".join(parts)
            total += len(chunk)
            if total > limit:
                await self.reset()
                raise LimitExceeded(f"stream sent more than {limit} bytes")
            parts.append(chunk)

    async def write(self, data: bytes, *, timeout: float | None = None) -> None:
        self._uses += 1
        if self._reset:
            raise StreamReset(f"stream {self.stream_id} was reset") from self._error
        if self._write_closed:
            raise StreamClosed(f"stream {self.stream_id} is closed for writing")
        mv = memoryview(data)
        off = 0
        total = len(mv)
        while off < total:
            self._writable.clear()
            n = self.port.send(mv[off:])
            off += n
            if off < total and n == 0:
                await self._wait(self._writable, timeout, "write")
                if self._reset:
                    raise StreamReset(f"stream {self.stream_id} was reset") from self._error
            await self.port.drain()

    async def close(self) -> None:
        """Close our writing half (FIN); reading goes on until the peer closes its half."""
        self._uses += 1
        if self._write_closed or self._reset:
            return
        self._write_closed = True
        self.port.close_write()
        await self.port.drain()

    async def close_read(self) -> None:
        """Stop reading (go's ``CloseRead``; the peer is not told): buffered bytes are dropped and
        what the peer still sends is discarded without window credit, so the stream holds no
        memory. Once our writing half is closed too the muxer forgets the stream."""
        self._uses += 1
        if self._read_closed or self._reset:
            return
        self._read_closed = True
        self._chunks.clear()
        self._buffered = 0
        self._readable.set()
        self.port.close_read()

    async def reset(self) -> None:
        self._uses += 1
        if self._reset:
            return
        self._reset = True
        self._readable.set()
        self._writable.set()
        self.port.reset()

    async def _wait(self, event: Wakeup, timeout: float | None, what: str) -> None:
        t = self.conn.config.io_timeout if timeout is None else timeout
        if t == NO_TIMEOUT:
            await event.wait()
            return
        if not await event.wait(t):  # one timer per stream and direction, not one per wait
            raise Timeout(f"stream {self.stream_id} {what} timed out after {t:g}s")
        if self.conn.closed and not self._chunks and not self._eof and not self._reset:
            raise ConnectionClosed("connection closed")

    def __repr__(self) -> str:
        return f"<Stream {self.stream_id} {self.protocol or '?'} to {self.conn.remote_peer}>"
