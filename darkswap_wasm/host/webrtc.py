"""libp2p ``/webrtc`` (browser-to-browser) in the host: signaling over a relayed connection,
then one ``RTCDataChannel`` per stream (``webrtc/webrtc.md``, framing in ``webrtc/README.md``).

The signaling stream rides on the relayed connection, which is itself a Noise session with the
peer: the SDP (and so the DTLS fingerprints) travels encrypted and authenticated, so no second
Noise handshake is needed on the direct connection. The dialer creates the offer; both sides
accept an inbound signaling stream. A failed attempt is retried with backoff a bounded number of
times; after that the peers stay on the relayed path (no endless loop).

Runtime-neutral: the peer connection comes from a :class:`~..transports.webrtc_base.WebRTCRuntime`
(aiortc natively, the browser's objects through ``js_glue`` in a page).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import (
    ConnectionClosed,
    DarkSwapError,
    LimitExceeded,
    PeerUnreachable,
    StreamClosed,
    StreamReset,
    Timeout,
)
from ..identity import PeerId
from ..policy.backoff import Backoff
from ..protocols import webrtc as framing
from ..protocols import webrtc_signaling as sig
from ..tasks import spawn
from ..transports.webrtc_base import RTCDataChannel, RTCPeerConnection, WebRTCConfig, WebRTCRuntime
from ..wire.multiaddr import Multiaddr
from .connection import ConnectionConfig
from .host import Host
from .stream import Stream

log = logging.getLogger(__name__)

INIT_LABEL = "init"
WRITE_STEP = 256 * 1024  # payload bytes framed at a time
TX_GATHER = 256 * 1024  # payload of consecutive writes gathered before it is framed and sent


@dataclass(frozen=True)
class WebRTCSettings:
    rtc: WebRTCConfig = field(default_factory=WebRTCConfig)
    signaling: sig.SignalingConfig = field(default_factory=sig.SignalingConfig)
    channel: framing.ChannelStreamConfig = field(default_factory=framing.ChannelStreamConfig)
    attempts: int = 3  # signaling/ICE attempts before staying on the relayed path
    retry_initial: float = 0.5
    retry_max: float = 5.0
    channel_open_timeout: float = 10.0
    send_high_water: int = 1024 * 1024  # bufferedAmount above which writes wait
    max_receive_buffer: int = 8 * 1024 * 1024  # unread bytes per stream before it is reset
    max_connections: int = 400  # live WebRTC connections (Chrome allows ~500 per tab lifetime)
    disconnected_grace: float = 5.0  # s in ICE "disconnected" before the connection counts as dead
    auto_upgrade: bool = True  # upgrade relayed connections we dialed when the peer speaks /webrtc-signaling
    retry_after: float = 30.0  # s after a failed round of attempts before a send tries WebRTC again...
    retry_after_max: float = 600.0  # ...doubling per failed round up to this
    upgrade_wait: float = 10.0  # s create_webrtc_data_channel waits for WebRTC before it returns the relayed path


class DataChannelStream(Stream):
    """A libp2p stream over one data channel (framing by :class:`~..protocols.webrtc.ChannelStream`).

    Writes are gathered: the bytes of consecutive writes are framed and sent together at the end
    of the event loop's turn (or as soon as :data:`TX_GATHER` bytes wait, or before a flag, a
    backpressure wait or the close), so that an application writing in small pieces still fills
    whole 16 KiB messages and the channel gets them in bursts. A write that returned has been
    taken, not necessarily sent; a failure to send surfaces on the next write or close.
    """

    def __init__(self, conn: WebRTCConnection, channel: RTCDataChannel, stream_id: int, *, inbound: bool) -> None:
        super().__init__(conn, stream_id, inbound=inbound)  # type: ignore[arg-type]
        self.channel = channel
        self.machine = framing.ChannelStream(conn.settings.channel)
        self._settings = conn.settings
        self._timer: asyncio.TimerHandle | None = None
        self._tx: list[bytes] = []  # gathered payload, not framed yet
        self._tx_bytes = 0
        self._tx_scheduled = False
        self._tx_error: DarkSwapError | None = None
        channel.set_buffered_amount_low_threshold(conn.settings.send_high_water // 2)
        channel.on_message = self._on_message
        channel.on_close = self._on_channel_close
        channel.on_buffered_amount_low = self._writable.set

    # -- channel events ---------------------------------------------------------------------
    def _on_message(self, data: bytes) -> None:
        try:
            events = self.machine.receive_message(data)
        except DarkSwapError as exc:
            log.debug("bad message on data channel %s: %s", self.stream_id, exc)
            events = []
            self._send_raw(self.machine.outgoing())
            self._on_reset(exc)
        self._send_raw(self.machine.outgoing())
        self._apply(events)
        if self._buffered > self._settings.max_receive_buffer:
            self._on_reset(LimitExceeded("data channel receive buffer full"))
            self._send_raw(self.machine.reset())
            self.channel.close()

    def _on_channel_close(self) -> None:
        self._drop_tx()
        self._apply(self.machine.channel_closed())
        self._writable.set()  # aiortc never fires bufferedamountlow after a close: wake writers here
        if not self._eof:
            self._feed_eof()
        self.conn._forget(self)

    def _apply(self, events) -> None:
        for ev in events:
            if isinstance(ev, framing.DataReceived):
                self._feed(ev.data)
            elif isinstance(ev, framing.RemoteClosedWrite):
                self._feed_eof()
            elif isinstance(ev, framing.StreamResetByPeer):
                self._on_reset(StreamReset("reset by peer"))
            elif isinstance(ev, framing.RemoteStoppedReading):
                self._writable.set()
            elif isinstance(ev, framing.StreamClosedFully):
                self.channel.close()
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.machine.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, deadline - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.machine.handle_timeout(time.monotonic()))
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
        if self._reset or self.channel.ready_state != "open":
            return  # the channel is gone: the next write or close says so
        try:
            send_packed = getattr(self.channel, "send_packed", None)
            if send_packed is not None:  # one buffer across the runtime boundary
                send_packed(*self.machine.send_packed(data))
            else:
                for m in self.machine.send(data):
                    self.channel.send(m)
        except DarkSwapError as exc:  # the peer stopped reading, the channel failed under us
            log.debug("data channel stream %s: gathered data not sent: %s", self.stream_id, exc)
            self._tx_error = exc
        except Exception as exc:  # a runtime adapter broke its contract: say so, and lose nothing silently
            log.exception("data channel stream %s: sending failed", self.stream_id)
            self._tx_error = ConnectionClosed(f"data channel send failed: {exc!r}")

    def _drop_tx(self) -> None:
        self._tx.clear()
        self._tx_bytes = 0

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamReset(f"data channel stream {self.stream_id} was reset") from self._error
        if self._tx_error is not None:
            raise self._tx_error
        if self._write_closed:
            raise StreamClosed(f"data channel stream {self.stream_id} is closed for writing")
        if self.channel.ready_state != "open":
            raise ConnectionClosed("data channel closed")
        if not self.machine.can_send:
            self.machine.send(b"")  # raises why (STOP_SENDING from the peer, ...)

    # -- Stream API --------------------------------------------------------------------------
    async def write(self, data: bytes, *, timeout: float | None = None) -> None:
        self._uses += 1
        self._check_writable()
        mv = memoryview(data).cast("B")
        high = self._settings.send_high_water
        for off in range(0, len(mv), WRITE_STEP):
            while self.channel.buffered_amount + self._tx_bytes > high:
                if self._tx:
                    self._flush_tx()
                    continue
                self._writable.clear()
                if self.channel.ready_state != "open":
                    break
                await self._wait(self._writable, timeout, "write")
            self._check_writable()
            self._gather(mv[off : off + WRITE_STEP])

    async def close(self) -> None:
        self._uses += 1
        if self._write_closed or self._reset:
            return
        self._write_closed = True
        self._flush_tx()  # gathered data goes before the FIN (after it the machine refuses data)
        self._send_raw(self.machine.close_write(time.monotonic()))
        self._arm_timer()
        if self.machine.is_closed:
            self.channel.close()

    def _stop_reading(self) -> None:
        """Stream.close_read: later data is dropped as it arrives (nothing on the wire)."""

    async def reset(self) -> None:
        self._uses += 1
        if self._reset:
            return
        self._reset = True
        self._drop_tx()
        self._readable.set()
        self._writable.set()
        self._send_raw(self.machine.reset())
        self.channel.close()
        self.conn._forget(self)


class WebRTCConnection:
    """A direct WebRTC connection to one peer; streams are data channels."""

    transport = "webrtc"

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
        self._streams: dict[int, DataChannelStream] = {}
        self._next_id = 0
        self._closed = False
        self._accepting = False
        self._early: list[RTCDataChannel] = []
        self.connected = asyncio.Event()
        self._closer: asyncio.Future | None = None
        self._disconnected_timer: asyncio.TimerHandle | None = None
        pc.on_data_channel = self._on_data_channel
        pc.on_connection_state_change = self._on_state

    @property
    def closed(self) -> bool:
        return self._closed

    def start_accepting(self) -> None:
        """Hand inbound channels to the host from now on (once the connection is registered)."""
        self._accepting = True
        early, self._early = self._early, []
        for ch in early:
            self._accept(ch)

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
            # the dialer's channel that only makes the offer carry a data section: not a stream
            if channel.ready_state == "open":
                channel.close()
            else:
                channel.on_open = channel.close
            return
        if not self._accepting:
            self._early.append(channel)
            return
        self._accept(channel)

    def _accept(self, channel: RTCDataChannel) -> None:
        self._next_id += 1
        stream = DataChannelStream(self, channel, self._next_id, inbound=True)
        self._streams[stream.stream_id] = stream
        self._on_stream(stream)

    def _forget(self, stream: DataChannelStream) -> None:
        self._streams.pop(stream.stream_id, None)

    def _acknowledge(self, stream_id: int, n: int) -> None:
        """Data channels have their own (SCTP) flow control: nothing to credit."""

    async def open_stream(self) -> Stream:
        if self._closed:
            raise ConnectionClosed("WebRTC connection closed")
        channel = self.pc.create_data_channel("")
        # the stream takes the channel's events at once: the peer may answer as soon as it opens
        self._next_id += 1
        stream = DataChannelStream(self, channel, self._next_id, inbound=False)
        opened = asyncio.Event()
        on_close = channel.on_close

        def closed() -> None:
            opened.set()
            if on_close is not None:
                on_close()

        channel.on_open = opened.set
        channel.on_close = closed
        try:
            await asyncio.wait_for(opened.wait(), self.settings.channel_open_timeout)
        except TimeoutError:
            channel.close()
            raise Timeout("data channel did not open in time") from None
        if channel.ready_state != "open":
            raise ConnectionClosed("data channel closed before it opened")
        self._streams[stream.stream_id] = stream
        return stream

    async def close(self, reason: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        for s in list(self._streams.values()):
            s._on_reset(reason or ConnectionClosed("WebRTC connection closed"))
        self._streams.clear()
        await self.pc.close()
        self._on_closed(self)

    def __repr__(self) -> str:
        return f"<WebRTCConnection {self.remote_peer}>"


class WebRTCService:
    """Upgrades connections to direct WebRTC: dials (offer) and answers signaling streams."""

    def __init__(self, host: Host, runtime: WebRTCRuntime, settings: WebRTCSettings | None = None) -> None:
        self.host = host
        self.runtime = runtime
        self.settings = settings or WebRTCSettings()
        self._dialing: dict[PeerId, asyncio.Future] = {}
        self.failures: dict[PeerId, str] = {}  # the last failed round's reason, per peer
        self._retry: dict[PeerId, tuple[Backoff, float]] = {}  # per peer: backoff, monotonic retry time
        self._tasks: set[asyncio.Task] = set()
        host.set_stream_handler(sig.PROTOCOL_ID, self._handle_signaling)
        if self.settings.auto_upgrade:
            host.on("peer:identify", self._on_identify)

    def _on_identify(self, peer: PeerId, info) -> None:
        """Prefer direct: a relayed connection we dialed is upgraded once the peer says it can."""
        if sig.PROTOCOL_ID not in info.protocols or self.webrtc_connection(peer) is not None:
            return
        conns = self.host.connections(peer)
        if not conns or conns[0].transport != "relay" or not getattr(conns[0], "is_initiator", False):
            return
        self.upgrade_in_background(peer)

    def may_try(self, peer: PeerId) -> bool:
        """False while ``peer`` is backed off after a failed round of attempts."""
        retry = self._retry.get(peer)
        return retry is None or time.monotonic() >= retry[1]

    def upgrade_in_background(self, peer: PeerId) -> None:
        """Start an upgrade to ``peer`` unless one runs, one exists or the peer is backed off.
        Never waits: traffic goes on over whatever connection there is meanwhile."""
        if self.webrtc_connection(peer) is None and self.may_try(peer):
            self._attempt(peer)

    def _attempt(self, peer: PeerId) -> asyncio.Future:
        """The one running round of attempts to ``peer`` (started when there is none); its
        result is the WebRTC connection or ``None``."""
        pending = self._dialing.get(peer)
        if pending is not None:
            return pending
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._dialing[peer] = fut

        async def run() -> None:
            try:
                result = await self._upgrade_with_retries(peer)
            except BaseException as exc:
                if not fut.done():
                    err = exc if isinstance(exc, DarkSwapError) else ConnectionClosed(f"WebRTC upgrade ended: {exc!r}")
                    fut.set_exception(err)
                    fut.exception()  # retrieved: a round nobody awaited is not an "unretrieved" error
                if not isinstance(exc, (DarkSwapError, asyncio.CancelledError)):
                    raise
            else:
                fut.set_result(result)
            finally:
                self._dialing.pop(peer, None)

        task = spawn(run(), f"WebRTC upgrade to {peer}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return fut

    async def upgrade_within(self, peer: PeerId, wait: float | None = None) -> WebRTCConnection | None:
        """Upgrade to ``peer``, waiting at most ``wait`` (default ``upgrade_wait``) seconds; the
        attempts go on in the background after that. ``None``: no WebRTC connection (yet), or
        the peer is backed off after failed attempts (then it does not wait at all)."""
        existing = self.webrtc_connection(peer)
        if existing is not None or not self.may_try(peer):
            return existing
        try:
            limit = self.settings.upgrade_wait if wait is None else wait
            await asyncio.wait_for(asyncio.shield(self._attempt(peer)), limit)
        except (TimeoutError, DarkSwapError):
            pass
        return self.webrtc_connection(peer)

    def _failed_round(self, peer: PeerId, reason: str) -> None:
        self.failures[peer] = reason
        backoff, _ = self._retry.pop(peer, (None, 0.0))
        if backoff is None:
            first = self.settings.retry_after
            backoff = Backoff(initial=first, maximum=max(first, self.settings.retry_after_max))
        self._retry[peer] = (backoff, time.monotonic() + backoff.next_delay())
        for table in (self._retry, self.failures):  # bounded: one entry per peer, oldest out first
            while len(table) > 4 * self.host.config.max_connections:
                table.pop(next(iter(table)))

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def webrtc_connection(self, peer: PeerId) -> WebRTCConnection | None:
        return next((c for c in self.host.connections(peer) if c.transport == "webrtc"), None)

    async def upgrade(self, peer: PeerId | str) -> WebRTCConnection | None:
        """A direct WebRTC connection to ``peer`` (dialing through any existing connection,
        usually relayed); ``None`` when every attempt of the round failed (the relayed path
        stays). Joins the running round if there is one."""
        peer = PeerId.coerce(peer)
        existing = self.webrtc_connection(peer)
        if existing is not None:
            return existing
        return await asyncio.shield(self._attempt(peer))

    def _at_budget(self) -> bool:
        return sum(1 for c in self.host.connections() if c.transport == "webrtc") >= self.settings.max_connections

    async def _upgrade_with_retries(self, peer: PeerId) -> WebRTCConnection | None:
        if self._at_budget():
            log.warning("WebRTC budget of %d reached: %s stays relayed", self.settings.max_connections, peer)
            return None
        backoff = Backoff(initial=self.settings.retry_initial, maximum=self.settings.retry_max)
        last: BaseException | None = None
        for attempt in range(self.settings.attempts):
            if attempt:
                await asyncio.sleep(backoff.next_delay())
            existing = self.webrtc_connection(peer)
            if existing is not None:
                return existing
            try:
                base = await self.host.connection_to(peer)
                return await self._dial_once(base, peer)
            except DarkSwapError as exc:
                last = exc
                log.info("WebRTC attempt %d to %s failed: %s", attempt + 1, peer, exc)
        self._failed_round(peer, str(last))
        log.warning(
            "WebRTC to %s failed %d times (%s): staying on the relayed path", peer, self.settings.attempts, last
        )
        return None

    def _new_connection(self, pc: RTCPeerConnection, peer: PeerId, via, *, is_initiator: bool) -> WebRTCConnection:
        return WebRTCConnection(
            pc,
            remote_peer=peer,
            remote_addr=via.remote_addr.encapsulate("/webrtc"),
            settings=self.settings,
            config=self.host.config.connection,
            is_initiator=is_initiator,
            on_stream=self.host.accept_stream,
            on_closed=self.host.connection_closed,
        )

    async def _dial_once(self, via, peer: PeerId) -> WebRTCConnection:
        pc = self.runtime.create_peer_connection(self.settings.rtc)
        conn = self._new_connection(pc, peer, via, is_initiator=True)
        machine = sig.SignalingDialer(self.settings.signaling, now=time.monotonic())
        stream = await self.host.new_stream_on(via, [sig.PROTOCOL_ID])
        try:
            trickle = _Trickle(pc)
            init = pc.create_data_channel(INIT_LABEL)
            offer = await pc.create_offer()
            await stream.write(machine.offer(offer))
            trickle.start(stream, machine)  # the dialer may trickle right after its offer
            await self._exchange(stream, machine, pc, conn, trickle)
            init.close()
        except BaseException as exc:
            await stream.reset()
            await pc.close()
            if isinstance(exc, TimeoutError):
                raise Timeout("WebRTC signaling timed out") from None
            raise
        await stream.close()
        self._register(conn)
        return conn

    async def _handle_signaling(self, stream: Stream) -> None:
        peer = stream.remote_peer
        if self._at_budget() or self.webrtc_connection(peer) is not None:
            await stream.reset()
            return
        pc = self.runtime.create_peer_connection(self.settings.rtc)
        conn = self._new_connection(pc, peer, stream.conn, is_initiator=False)
        machine = sig.SignalingListener(self.settings.signaling, now=time.monotonic())
        trickle = _Trickle(pc)
        try:
            await self._exchange(stream, machine, pc, conn, trickle)
        except asyncio.CancelledError:
            await stream.reset()
            await pc.close()
            raise
        except Exception as exc:  # noqa: BLE001 - any failure (ours, aiortc's, the browser's) ends this attempt
            log.info("inbound WebRTC from %s failed: %r", peer, exc)
            await stream.reset()
            await pc.close()
            return
        await stream.close()
        self._register(conn)

    def _register(self, conn: WebRTCConnection) -> None:
        self.host.add_connection(conn)
        conn.start_accepting()
        self.failures.pop(conn.remote_peer, None)
        self._retry.pop(conn.remote_peer, None)

    async def _exchange(self, stream, machine, pc, conn: WebRTCConnection, trickle: _Trickle) -> None:
        """Run the signaling machine until the peer connection is up (or the deadline)."""

        async def reader() -> None:
            while not conn.connected.is_set():
                data = await stream.read(timeout=self.settings.signaling.timeout)
                events = machine.receive_eof() if not data else machine.receive_data(data)
                for ev in events:
                    if isinstance(ev, sig.OfferReceived):
                        await pc.set_remote_description("offer", ev.sdp)
                        await stream.write(machine.answer(await pc.create_answer()))
                        trickle.start(stream, machine)  # the listener trickles after its answer
                    elif isinstance(ev, sig.AnswerReceived):
                        await pc.set_remote_description("answer", ev.sdp)
                    elif isinstance(ev, sig.RemoteCandidate):
                        await pc.add_ice_candidate(ev.candidate)
                if not data:
                    return

        read_task = asyncio.ensure_future(reader())
        connected = asyncio.ensure_future(conn.connected.wait())
        try:
            deadline = self.settings.signaling.timeout
            done, _ = await asyncio.wait({read_task, connected}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
            if read_task in done and read_task.exception() is not None:
                raise read_task.exception()
            if not conn.connected.is_set():
                await asyncio.wait_for(conn.connected.wait(), max(0.1, deadline / 2))
        except TimeoutError:
            machine.abort("timeout")
            raise PeerUnreachable(f"WebRTC to {conn.remote_peer}: ICE did not connect in time") from None
        finally:
            read_task.cancel()
            connected.cancel()
            await trickle.stop()
        machine.connected()


class _Trickle:
    """Sends our ICE candidates as the peer connection finds them (trickle ICE), once the
    signaling machine allows it; candidates found earlier wait in order."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self._pending: list[dict | None] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        pc.on_ice_candidate = self._add

    def _add(self, candidate: dict | None) -> None:
        self._pending.append(candidate)
        self._wake.set()

    def start(self, stream: Stream, machine) -> None:
        if self._task is None:
            self._task = spawn(self._run(stream, machine), "WebRTC signaling")

    async def _run(self, stream: Stream, machine) -> None:
        while True:
            while self._pending:
                out = machine.add_local_candidate(self._pending.pop(0))
                if out:
                    await stream.write(out)
            self._wake.clear()
            await self._wake.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
