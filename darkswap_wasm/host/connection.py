"""One upgraded libp2p connection: the I/O loop around :class:`~.upgrade.ConnectionUpgrade`.

Read bytes → feed the machine → write what it asks → wake streams on its events. That is all it
does; protocol rules live in the machines. It implements :class:`~.muxer.MuxedConnection` with
yamux streams; each stream's :class:`~.muxer.StreamPort` is a :class:`_YamuxPort`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConnectionClosed, DarkSwapError, ProtocolError, Timeout
from ..identity import PeerId
from ..protocols import yamux
from ..protocols.upgrade import ConnectionUpgrade, Upgraded
from ..tasks import spawn
from ..transports.base import RawConnection
from . import muxer as contract
from .ratelog import RefusalLog
from .stream import Stream

if TYPE_CHECKING:
    from ..identity import Identity

log = logging.getLogger(__name__)
refusals = RefusalLog(log)  # streams refused at a limit, all connections of the process


@dataclass(frozen=True)
class ConnectionConfig:
    """Timeouts and limits of one connection (seconds, bytes)."""

    upgrade_timeout: float = 10.0  # multistream + Noise + muxer negotiation
    io_timeout: float = 60.0  # longest wait of one stream read or write
    yamux: yamux.YamuxConfig = field(default_factory=yamux.YamuxConfig)


class Connection:
    def __init__(
        self,
        raw: RawConnection,
        identity: Identity,
        *,
        is_initiator: bool,
        expected_peer: PeerId | None,
        config: ConnectionConfig,
        on_stream: Callable[[Stream], None],
        on_closed: Callable[[Connection], None],
    ) -> None:
        self.raw = raw
        self.config = config
        self.is_initiator = is_initiator
        self.remote_peer: PeerId | None = None
        self.remote_public_key = None
        self.opened_at = time.time()
        self._machine = ConnectionUpgrade(
            identity,
            is_initiator=is_initiator,
            expected_peer=expected_peer,
            now=time.monotonic(),
            timeout=config.upgrade_timeout,
            yamux_config=config.yamux,
        )
        self._streams = contract.StreamTable()
        self._on_stream = on_stream
        self._on_closed = on_closed
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = False
        self._close_reason: BaseException | None = None
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._ping_seq = 0
        self._task: asyncio.Task[None] | None = None

    # -- life cycle ------------------------------------------------------------------------
    @property
    def transport(self) -> str:
        return self.raw.transport

    @property
    def remote_addr(self):
        return self.raw.remote_addr

    @property
    def limit(self):
        """The relay's circuit limit on a relayed connection (``None``: unlimited or direct)."""
        return self.raw.limit

    @property
    def relayed(self) -> bool:
        return self.raw.transport == contract.RELAY

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def num_streams(self) -> int:
        return len(self._streams)

    @property
    def idle_since(self) -> float | None:
        return self._streams.idle_since

    async def start(self) -> None:
        """Run the upgrade; returns once secured and muxed, raises on failure or timeout."""
        self._flush()
        self._task = spawn(self._read_loop(), "connection read loop")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.config.upgrade_timeout)
        except TimeoutError:
            await self.close(Timeout(f"connection upgrade with {self.raw.remote_addr} timed out"))
            raise Timeout(f"connection upgrade with {self.raw.remote_addr} timed out") from None
        except BaseException:
            await self.close()
            raise

    async def _read_loop(self) -> None:
        reason: BaseException | None = None
        try:
            while True:
                data = await self.raw.read()
                if not data:
                    reason = ConnectionClosed("the remote closed the connection")
                    break
                self._machine.receive_data(data)
                self._dispatch()
                self._flush()
        except asyncio.CancelledError:
            reason = ConnectionClosed("connection closed locally")
        except DarkSwapError as exc:
            log.debug("connection to %s failed: %s", self.raw.remote_addr, exc)
            reason = exc
            try:  # tell the peer (go-away on protocol errors) before closing
                self._flush()
            except DarkSwapError:
                pass
        except Exception as exc:
            log.exception("unexpected error on connection to %s", self.raw.remote_addr)
            reason = ProtocolError(f"internal error: {exc!r}")
        await self._teardown(reason)

    def _dispatch(self) -> None:
        for ev in self._machine.events_received():
            if isinstance(ev, yamux.DataReceived):
                s = self._streams.get(ev.stream_id)
                if s is not None:
                    s.deliver(ev.data)
            elif isinstance(ev, yamux.WindowUpdated):
                s = self._streams.get(ev.stream_id)
                if s is not None:
                    s.wake_writer()
            elif isinstance(ev, yamux.StreamOpened):
                s = Stream(self, ev.stream_id, inbound=True, port=_YamuxPort(self, ev.stream_id))
                self._streams.add(s)
                self._muxer().accept_stream(ev.stream_id)
                self._on_stream(s)
            elif isinstance(ev, yamux.StreamEnded):
                s = self._streams.get(ev.stream_id)
                if s is not None:
                    s.deliver_eof()
            elif isinstance(ev, yamux.StreamResetByPeer):
                s = self._streams.drop(ev.stream_id)
                if s is not None:
                    s.deliver_reset()
            elif isinstance(ev, yamux.PongReceived):
                fut = self._pings.pop(ev.opaque, None)
                if fut is not None and not fut.done():
                    fut.set_result(time.monotonic())
            elif isinstance(ev, Upgraded):
                self.remote_peer = ev.remote_peer
                self.remote_public_key = ev.remote_public_key
                self.raw.authenticated()
                if not self._ready.done():
                    self._ready.set_result(None)
            elif isinstance(ev, yamux.ConnectionTerminated):
                raise ConnectionClosed(f"yamux session ended: {ev.reason}")
            elif isinstance(ev, yamux.StreamClosedFully):
                self._streams.drop(ev.stream_id)
            elif isinstance(ev, yamux.StreamRefused) and ev.reason != "go_away":  # a limit, not a shutdown
                refusals.refused(
                    f"yamux:{ev.reason}",
                    "refused an inbound stream from %s (%s): RESOURCE_LIMIT_EXCEEDED, stream reset",
                    self.remote_peer,
                    ev.reason,
                )

    def _flush(self) -> None:
        data = self._machine.data_to_send()
        if data and not self.raw.closed:
            self.raw.write(data)

    async def _drain(self) -> None:
        if self._closed:
            raise ConnectionClosed("connection closed") from self._close_reason
        try:
            await asyncio.wait_for(self.raw.drain(), self.config.io_timeout)
        except TimeoutError:
            raise Timeout("transport write timed out") from None

    async def _teardown(self, reason: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        if not self._ready.done():
            self._ready.set_exception(reason or ConnectionClosed("connection closed"))
            self._ready.exception()  # mark retrieved
        for s in self._streams.take_all():
            s.deliver_reset(reason)
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed("connection closed"))
        self._pings.clear()
        try:
            await self.raw.close()
        finally:
            self._on_closed(self)

    async def close(self, reason: BaseException | None = None) -> None:
        if self._closed:
            return
        muxer = self._machine.muxer
        if muxer is not None:
            try:
                muxer.go_away(0)
                self._flush()
                await asyncio.wait_for(self.raw.drain(), 1.0)
            except (TimeoutError, DarkSwapError):
                pass
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._teardown(reason or ConnectionClosed("connection closed locally"))

    # -- used by the streams' ports ---------------------------------------------------------
    def _muxer(self) -> yamux.YamuxConnection:
        if self._closed:
            raise ConnectionClosed("connection closed") from self._close_reason
        muxer = self._machine.muxer
        if muxer is None:
            raise ConnectionClosed("connection is not upgraded yet")
        return muxer

    def _send_data(self, stream_id: int, data) -> int:
        n = self._muxer().send_data(stream_id, data)
        self._flush()
        return n

    def _acknowledge(self, stream_id: int, n: int) -> None:
        if self._closed:
            return
        try:
            self._muxer().acknowledge(stream_id, n)
        except DarkSwapError:
            return
        self._flush()

    def _close_read(self, stream_id: int) -> None:
        if self._closed:
            return
        try:
            self._muxer().close_read(stream_id)
        except DarkSwapError:
            return
        self._dispatch()  # the stream may be fully closed now: forget it
        self._flush()

    def _close_stream(self, stream_id: int) -> None:
        self._muxer().close_stream(stream_id)
        self._dispatch()  # our FIN may have closed the stream fully: forget it now
        self._flush()

    def _reset_stream(self, stream_id: int) -> None:
        if self._closed:
            return
        self._streams.drop(stream_id)
        try:
            self._muxer().reset_stream(stream_id)
        except DarkSwapError:
            return
        self._flush()

    # -- public ----------------------------------------------------------------------------
    async def open_stream(self) -> Stream:
        sid = self._muxer().open_stream()
        s = Stream(self, sid, inbound=False, port=_YamuxPort(self, sid))
        self._streams.add(s)
        self._flush()
        return s

    async def ping(self, timeout: float) -> float:
        """Round trip of a yamux ping (liveness without opening a stream)."""
        self._ping_seq = (self._ping_seq + 1) & 0xFFFFFFFF
        opaque = self._ping_seq
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[opaque] = fut
        start = time.monotonic()
        self._muxer().ping(opaque)
        self._flush()
        try:
            end = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self._pings.pop(opaque, None)
            raise Timeout(f"yamux ping timed out after {timeout:g}s") from None
        return end - start

    def __repr__(self) -> str:
        return f"<Connection {self.transport} {self.raw.remote_addr} peer={self.remote_peer}>"


class _YamuxPort:
    """One yamux stream's side of its connection (:class:`~.muxer.StreamPort`)."""

    __slots__ = ("_conn", "_id")

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self._conn = conn
        self._id = stream_id

    def send(self, data) -> int:
        return self._conn._send_data(self._id, data)

    def acknowledge(self, n: int) -> None:
        self._conn._acknowledge(self._id, n)

    async def drain(self) -> None:
        await self._conn._drain()

    def close_write(self) -> None:
        self._conn._close_stream(self._id)

    def close_read(self) -> None:
        self._conn._close_read(self._id)

    def reset(self) -> None:
        self._conn._reset_stream(self._id)
