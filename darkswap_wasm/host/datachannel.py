"""The data-channel muxer: a direct WebRTC connection whose streams are ``RTCDataChannel``\\ s
(libp2p ``webrtc/README.md``: one channel per stream, messages framed by
:class:`~..protocols.webrtc.ChannelStream`).

:class:`WebRTCConnection` implements :class:`~.muxer.MuxedConnection`; each stream is a plain
:class:`~.stream.Stream` whose port (:class:`_ChannelPort`) owns the channel and its framing
machine. Shared by both runtimes (aiortc natively, the browser's objects in a page), so the
rules for what arrives early live here once:

* the port takes the channel's events the moment the channel exists (inbound: in
  ``on_data_channel``; outbound: before it opens), so no message is ever dropped for want of a
  handler;
* inbound channels that open before the connection is handed to the host (while signaling is
  still finishing) become streams at once and buffer what arrives, messages and close in order;
  :meth:`WebRTCConnection.start_accepting` hands them to the host in the order they opened.

Writes are gathered: the bytes of consecutive writes are framed and sent together at the end of
the event loop's turn (or as soon as :data:`TX_GATHER` bytes wait, or before a flag, a
backpressure wait or the close), so that an application writing in small pieces still fills
whole 16 KiB messages and the channel gets them in bursts. A write that returned has been
taken, not necessarily sent; a failure to send surfaces on the next write or close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..errors import ConnectionClosed, DarkSwapError, LimitExceeded, StreamReset, Timeout
from ..identity import PeerId
from ..protocols import webrtc as framing
from ..tasks import spawn
from ..transports.webrtc_base import RTCDataChannel, RTCPeerConnection
from ..wire.multiaddr import Multiaddr
from . import muxer as contract
from .driver import Driver
from .stream import Stream
from .wakeup import Wakeup

if TYPE_CHECKING:
    from .connection import ConnectionConfig
    from .webrtc import WebRTCSettings

log = logging.getLogger(__name__)

INIT_LABEL = "init"  # the dialer's channel that only makes the offer carry a data section
WRITE_STEP = 256 * 1024  # payload bytes taken (and framed) per send
TX_GATHER = 256 * 1024  # payload of consecutive writes gathered before it is framed and sent
MAX_EARLY = 64  # inbound channels held before the connection is handed to the host


class _ChannelPort:
    """One data channel as a stream's muxer side (:class:`~.muxer.StreamPort`)."""

    def __init__(self, conn: WebRTCConnection, channel: RTCDataChannel, stream_id: int, *, inbound: bool) -> None:
        self.conn = conn
        self.channel = channel
        self.machine = framing.ChannelStream(conn.settings.channel)
        self.stream = Stream(conn, stream_id, inbound=inbound, port=self)
        self._settings = conn.settings
        self._driver = Driver(  # the framing machine's one timer (the FIN_ACK wait)
            next_deadline=self.machine.next_deadline,
            handle_timeout=self._timeout,
            after=_nothing,  # the port sends as it goes
            on_error=self.stream.deliver_reset,
            what=f"data channel stream {stream_id}",
        )
        self._tx: list[bytes] = []  # gathered payload, not framed yet
        self._tx_bytes = 0
        self._tx_scheduled = False
        self._tx_error: DarkSwapError | None = None
        channel.set_buffered_amount_low_threshold(conn.settings.send_high_water // 2)
        channel.on_message = self._on_message
        channel.on_close = self._on_channel_close
        channel.on_buffered_amount_low = self.stream.wake_writer

    # -- channel events ---------------------------------------------------------------------
    def _on_message(self, data: bytes) -> None:
        try:
            events = self.machine.receive_message(data)
        except DarkSwapError as exc:
            log.debug("bad message on data channel %s: %s", self.stream.stream_id, exc)
            events = []
            self._send_raw(self.machine.outgoing())
            self.stream.deliver_reset(exc)
        self._send_raw(self.machine.outgoing())
        self._apply(events)
        if self.stream.buffered > self._settings.max_receive_buffer:
            self.stream.deliver_reset(LimitExceeded("data channel receive buffer full"))
            self._send_raw(self.machine.reset())
            self.channel.close()

    def _on_channel_close(self) -> None:
        self._drop_tx()
        self._apply(self.machine.channel_closed())
        self.stream.wake_writer()  # aiortc never fires bufferedamountlow after a close: wake writers here
        if not self.stream.at_eof:
            self.stream.deliver_eof()
        self.conn._forget(self.stream)

    def _apply(self, events) -> None:
        for ev in events:
            if isinstance(ev, framing.DataReceived):
                self.stream.deliver(ev.data)
            elif isinstance(ev, framing.RemoteClosedWrite):
                self.stream.deliver_eof()
            elif isinstance(ev, framing.StreamResetByPeer):
                self.stream.deliver_reset(StreamReset("reset by peer"))
            elif isinstance(ev, framing.RemoteStoppedReading):
                self.stream.wake_writer()
            elif isinstance(ev, framing.StreamClosedFully):
                self.channel.close()
        self._driver.rearm()

    def _timeout(self, now: float) -> None:
        self._apply(self.machine.handle_timeout(now))
        if self.machine.is_closed and self.channel.ready_state == "open":
            self.channel.close()

    def _send_raw(self, messages: list[bytes]) -> None:
        """Send flag messages (and whatever data is gathered first, so that order holds)."""
        if not messages:
            return
        self._flush_tx()
        if self.channel.ready_state != "open":
            return
        for m in messages:
            self.channel.send(m)

    # -- gathered writes ---------------------------------------------------------------------
    def _gather(self, chunk: memoryview) -> None:
        self._tx.append(bytes(chunk))  # a copy: the caller may reuse its buffer once write returns
        self._tx_bytes += len(chunk)
        if self._tx_bytes >= TX_GATHER:
            self._flush_tx()
        elif not self._tx_scheduled:
            self._tx_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_tx)

    def _flush_tx(self) -> None:
        self._tx_scheduled = False
        if not self._tx:
            return
        data = self._tx[0] if len(self._tx) == 1 else b"".join(self._tx)
        self._drop_tx()
        if self.stream.is_reset or self.channel.ready_state != "open":
            return  # the channel is gone: the next write or close says so
        try:
            self.channel.send_packed(*self.machine.send_packed(data))
        except DarkSwapError as exc:  # the peer stopped reading, the channel failed under us
            log.debug("data channel stream %s: gathered data not sent: %s", self.stream.stream_id, exc)
            self._tx_error = exc
        except Exception as exc:  # a runtime adapter broke its contract: say so, and lose nothing silently
            log.exception("data channel stream %s: sending failed", self.stream.stream_id)
            self._tx_error = ConnectionClosed(f"data channel send failed: {exc!r}")

    def _drop_tx(self) -> None:
        self._tx.clear()
        self._tx_bytes = 0

    def _check_writable(self) -> None:
        if self._tx_error is not None:
            raise self._tx_error
        if self.channel.ready_state != "open":
            raise ConnectionClosed("data channel closed")
        if not self.machine.can_send:
            self.machine.send(b"")  # raises why (STOP_SENDING from the peer, ...)

    # -- StreamPort --------------------------------------------------------------------------
    def send(self, data: memoryview) -> int:
        self._check_writable()
        high = self._settings.send_high_water
        if self.channel.buffered_amount + self._tx_bytes > high:
            self._flush_tx()
            self._check_writable()
            if self.channel.buffered_amount > high:
                return 0  # the stream waits for on_buffered_amount_low
        n = min(len(data), WRITE_STEP)
        self._gather(data[:n])
        return n

    def acknowledge(self, n: int) -> None:
        """Data channels have their own (SCTP) flow control: nothing to credit."""

    async def drain(self) -> None:
        """Backpressure is in :meth:`send` (the channel's buffered amount)."""

    def close_write(self) -> None:
        self._flush_tx()  # gathered data goes before the FIN (after it the machine refuses data)
        self._send_raw(self.machine.close_write(time.monotonic()))
        self._driver.rearm()
        if self.machine.is_closed:
            self.channel.close()

    def close_read(self) -> None:
        """Later data is dropped as it arrives (the stream discards it; nothing on the wire)."""

    def reset(self) -> None:
        self._drop_tx()
        self._send_raw(self.machine.reset())
        self.channel.close()
        self.conn._forget(self.stream)


def _nothing() -> None:
    pass


def channel_stream(conn: WebRTCConnection, channel: RTCDataChannel, stream_id: int, *, inbound: bool) -> Stream:
    """A stream over ``channel`` (takes the channel's events at once)."""
    return _ChannelPort(conn, channel, stream_id, inbound=inbound).stream


class WebRTCConnection:
    """A direct WebRTC connection to one peer (:class:`~.muxer.MuxedConnection`); streams are
    data channels. ``pinger`` measures a round trip over the connection (the host's libp2p ping:
    data channels have no muxer-level ping)."""

    transport = contract.WEBRTC
    relayed = False
    limit = None

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        remote_peer: PeerId,
        remote_addr: Multiaddr,
        settings: WebRTCSettings,
        config: ConnectionConfig,
        is_initiator: bool,
        on_stream: Callable[[Stream], None],
        on_closed: Callable[[WebRTCConnection], None],
        pinger: Callable[[WebRTCConnection], Awaitable[float]],
    ) -> None:
        self.pc = pc
        self.remote_peer = remote_peer
        self.remote_addr = remote_addr
        self.settings = settings
        self.config = config
        self.is_initiator = is_initiator
        self.opened_at = time.time()
        self._on_stream = on_stream
        self._on_closed = on_closed
        self._pinger = pinger
        self._streams = contract.StreamTable()
        self._next_id = 0
        self._closed = False
        self._accepting = False
        self._early: list[Stream] = []
        self.connected = Wakeup()
        self._closer: asyncio.Future | None = None
        self._disconnected_timer: asyncio.TimerHandle | None = None
        pc.on_data_channel = self._on_data_channel
        pc.on_connection_state_change = self._on_state

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def num_streams(self) -> int:
        return len(self._streams)

    @property
    def idle_since(self) -> float | None:
        return self._streams.idle_since

    def start_accepting(self) -> None:
        """Hand inbound streams to the host from now on (once the connection is registered),
        first those whose channels opened before, with what they buffered meanwhile."""
        self._accepting = True
        early, self._early = self._early, []
        for stream in early:
            self._on_stream(stream)

    def _on_state(self, state: str) -> None:
        if self._disconnected_timer is not None:
            self._disconnected_timer.cancel()
            self._disconnected_timer = None
        if state == "connected":
            self.connected.set()
        elif state == "disconnected" and not self._closed:
            # browsers may sit in "disconnected" for good when the peer vanished: give ICE a
            # grace period to recover, then treat the connection as dead
            self._disconnected_timer = asyncio.get_running_loop().call_later(
                self.settings.disconnected_grace, self._on_state, "failed"
            )
        elif state in ("failed", "closed") and self._closer is None:
            closing = self.close(ConnectionClosed(f"WebRTC connection {state}"))
            self._closer = spawn(closing, "closing a WebRTC connection")

    def _on_data_channel(self, channel: RTCDataChannel) -> None:
        if channel.label == INIT_LABEL:
            if channel.ready_state == "open":
                channel.close()
            else:
                channel.on_open = channel.close
            return
        if self._closed or (not self._accepting and len(self._early) >= MAX_EARLY):
            channel.close()
            return
        self._next_id += 1
        stream = channel_stream(self, channel, self._next_id, inbound=True)
        self._streams.add(stream)
        if self._accepting:
            self._on_stream(stream)
        else:
            self._early.append(stream)

    def _forget(self, stream: Stream) -> None:
        self._streams.drop(stream.stream_id)

    async def open_stream(self) -> Stream:
        if self._closed:
            raise ConnectionClosed("WebRTC connection closed")
        channel = self.pc.create_data_channel("")
        # the stream takes the channel's events at once: the peer may answer as soon as it opens
        self._next_id += 1
        stream = channel_stream(self, channel, self._next_id, inbound=False)
        opened = Wakeup()
        on_close = channel.on_close

        def closed() -> None:
            opened.set()
            if on_close is not None:
                on_close()

        channel.on_open = opened.set
        channel.on_close = closed
        if not await opened.wait(self.settings.channel_open_timeout):
            channel.close()
            raise Timeout("data channel did not open in time")
        if channel.ready_state != "open":
            raise ConnectionClosed("data channel closed before it opened")
        if self._closed:
            channel.close()
            raise ConnectionClosed("WebRTC connection closed")
        self._streams.add(stream)
        return stream

    async def ping(self, timeout: float) -> float:
        try:
            return await asyncio.wait_for(self._pinger(self), timeout)
        except TimeoutError:
            raise Timeout(f"ping over WebRTC timed out after {timeout:g}s") from None

    async def close(self, reason: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        for s in self._streams.take_all():
            s.deliver_reset(reason or ConnectionClosed("WebRTC connection closed"))
        for s in self._early:
            s.deliver_reset(reason or ConnectionClosed("WebRTC connection closed"))
        self._early.clear()
        await self.pc.close()
        self._on_closed(self)

    def __repr__(self) -> str:
        return f"<WebRTCConnection {self.remote_peer}>"

