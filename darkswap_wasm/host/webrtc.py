"""libp2p ``/webrtc`` (browser-to-browser) in the host: signaling over a relayed connection,
then one ``RTCDataChannel`` per stream (``webrtc/webrtc.md``, framing in ``webrtc/README.md``).

The signaling stream rides on the relayed connection, which is itself a Noise session with the
peer: the SDP (and so the DTLS fingerprints) travels encrypted and authenticated, so no second
Noise handshake is needed on the direct connection. The dialer creates the offer; both sides
accept an inbound signaling stream. A failed attempt is retried with backoff a bounded number of
times; after that the peers stay on the relayed path (no endless loop).

Runtime-neutral: the peer connection comes from a :class:`~..transports.webrtc_base.WebRTCRuntime`
(aiortc natively, the browser's objects through ``js_glue`` in a page). The connection and its
streams (the data-channel muxer) are :mod:`.datachannel`; this module is the orchestration:
when to upgrade, signaling, retries and backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ..errors import (
    ConnectionClosed,
    DarkSwapError,
    PeerUnreachable,
    Timeout,
)
from ..identity import PeerId
from ..policy.backoff import Backoff
from ..protocols import webrtc as framing
from ..protocols import webrtc_signaling as sig
from ..tasks import spawn
from ..transports.webrtc_base import RTCPeerConnection, WebRTCConfig, WebRTCRuntime
from . import muxer as contract
from .datachannel import INIT_LABEL, WebRTCConnection
from .host import Host
from .stream import Stream

log = logging.getLogger(__name__)


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
        if not conns or not conns[0].relayed or not conns[0].is_initiator:
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
        return next((c for c in self.host.connections(peer) if c.transport == contract.WEBRTC), None)

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
        live = sum(1 for c in self.host.connections() if c.transport == contract.WEBRTC)
        return live >= self.settings.max_connections

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
            pinger=self.host.ping_on,
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
