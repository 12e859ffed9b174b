"""DarkSwap messaging in the host: one :class:`~..protocols.darkswap_msg.MessageSession` per peer
over a ``/darkswap/msg/1.0.0`` stream, on whatever connection reaches the peer best.

The adapter is thin: read → ``receive_data`` → write ``data_to_send`` → dispatch events; one
timer per session; ``send`` waits on :class:`BufferFull` (backpressure) and flushes once the
caller's burst is queued. When the stream breaks the session is detached and, while it still
holds unacked messages, re-attached on a new stream through any path (redial, another relay,
WebRTC or not); the machine resends exactly what is missing. A better connection (WebRTC after
a relayed start) takes the session over the same way.

Inbox budgets (``MessagingConfig.inbox_bytes_per_peer`` / ``inbox_bytes_total``): received
messages the application has not taken yet. Each read hands the session only the room left (it
stops decoding there, so one read of compressed frames cannot inflate past it), and at no room
the peer's stream is not read at all: nothing more is acked, the sender is back-pressured and
resends later. A node that never reads its inbox (a relay) holds at most the total budget. The
state of a peer that disconnected with nothing pending either way is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from ..errors import ConnectionClosed, DarkSwapError, MessageTooLarge, PeerUnreachable, Timeout
from ..identity import PeerId
from ..policy.backoff import Backoff
from ..protocols import darkswap_msg as dm
from ..tasks import spawn
from .driver import Driver
from .host import Host
from .muxer import rank
from .ratelog import RefusalLog
from .stream import NO_TIMEOUT, Stream
from .wakeup import Wakeup

log = logging.getLogger(__name__)
refusals = RefusalLog(log, level=logging.INFO)  # inboxes at their budget (the sender waits)
PROTOCOL_ID = "/darkswap/msg/1.0.0"
UNDELIVERED_KEPT = 16  # lost seq ranges remembered per peer (one per session that gave up)


class _Peer:
    def __init__(self, service: MessagingService, peer: PeerId) -> None:
        self.service = service
        self.peer = peer
        self.session = dm.MessageSession(service.config, now=time.monotonic())
        self.stream: Stream | None = None
        self.ever_attached = False  # once a stream carried it, a lost path never fails a send
        self.inbox: deque[bytes] = deque()
        self.inbox_bytes = 0
        self.waiting = 0  # send/receive calls using this peer's state right now
        self.receivers = 0  # receive calls waiting for this peer's next message
        self.readable = Wakeup()
        self.inbox_space = Wakeup()
        self.inbox_space.set()
        self.space = Wakeup()
        self.acked_seq = 0  # API seqs: ``seq_base`` + the current session's own
        self.seq_base = 0  # the last seq a replaced (failed) session handed out
        self.undelivered: deque[tuple[int, int, DarkSwapError]] = deque()  # (first, last, why), newest last
        self.forgotten_through = 0  # lost ranges older than the last UNDELIVERED_KEPT end here
        self.acked = Wakeup()
        self.failed: DarkSwapError | None = None
        self.drop_timer: asyncio.TimerHandle | None = None  # forget this state if the peer stays gone
        self.reader: asyncio.Task | None = None
        self.redial: asyncio.Task | None = None
        self.write_lock = asyncio.Lock()
        # the session's one timer (acks, batching, give-up) and coalesced flushes: no polling
        self.driver = Driver(
            next_deadline=lambda: self.session.next_deadline(),
            handle_timeout=lambda now: self.session.handle_timeout(now),
            flush=lambda now: self.session.flush(now),
            after=self._after_input,
            on_error=self._driver_failed,
            what=f"messaging with {peer}",
        )

    # -- I/O -------------------------------------------------------------------------------
    def _after_input(self) -> None:
        self.dispatch()
        self.write_out()

    def _driver_failed(self, exc: Exception) -> None:
        """A bug, not the peer: without the driver no ack or resend goes out, so end the session
        with the reason instead of letting senders wait forever."""
        self.failed = dm.SessionClosed(f"the messaging session driver failed: {exc!r}")
        self.space.set()
        self.readable.set()
        self.acked.set()

    def write_out(self) -> None:
        data = self.session.data_to_send()
        if data and self.stream is not None and not self.stream.is_reset:
            stream = self.stream
            self.service.spawn(self._write(stream, data), "messaging write")

    async def _write(self, stream: Stream, data: bytes) -> None:
        async with self.write_lock:  # writes go out in the order the session produced them
            try:
                await stream.write(data)
            except DarkSwapError as exc:
                log.debug("messaging write to %s failed: %s", self.peer, exc)
                self.lost(stream)

    def dispatch(self) -> None:
        for ev in self.session.events_received():
            if isinstance(ev, dm.MessageReceived):
                self.inbox.append(ev.data)
                self.inbox_bytes += len(ev.data)
                self.service.inbox_total += len(ev.data)
                self.readable.set()
            elif isinstance(ev, dm.Acked):
                self.acked_seq = self.seq_base + ev.up_to_seq
                self.acked.set()
            elif isinstance(ev, dm.BufferSpace):
                self.space.set()
            elif isinstance(ev, dm.SessionResumed):
                log.debug("messaging with %s resumed (%d resent)", self.peer, ev.resent)
            elif isinstance(ev, dm.SessionFailed):
                self.failed = ev.error
                self.space.set()
                self.readable.set()
                self.acked.set()
            elif isinstance(ev, dm.SessionEnded):
                self.failed = dm.SessionClosed("the session ended")
                self.space.set()
                self.readable.set()

    def renew(self) -> None:
        """The session failed (gave up after ``give_up_after`` without a path, or the peer broke
        the protocol, or ended it): start a new one for what comes next. Its new session id tells
        the peer to start afresh too (as after a restart). What the old one did not deliver stays
        failed, and says so: :meth:`MessagingService.wait_acked` raises for those seqs, and a
        warning names them; new messages get the seqs after them."""
        old, why = self.session, self.failed
        assert why is not None
        first, last = self.seq_base + old.acked_seq + 1, self.seq_base + old.next_seq - 1
        if last >= first:
            self.undelivered.append((first, last, why))
            if len(self.undelivered) > UNDELIVERED_KEPT:
                self.forgotten_through = self.undelivered.popleft()[1]
            log.warning("messaging with %s: messages %d..%d were not delivered (%s)", self.peer, first, last, why)
        self.seq_base = last  # acked_seq stays: every seq up to it was acknowledged
        if self.reader is not None:
            self.reader.cancel()
            self.reader = None
        if self.stream is not None:
            stream, self.stream = self.stream, None
            self.service.spawn(stream.reset(), "resetting a failed messaging stream")
        self.session = dm.MessageSession(self.service.config, now=time.monotonic())
        self.failed = None
        self.ever_attached = False  # first contact again: a send dials, and fails fast if it cannot
        self.driver.rearm()

    def not_delivered(self, seq: int) -> DarkSwapError | None:
        """Why message ``seq`` will never be acknowledged (a replaced session lost it), or None."""
        for first, last, why in self.undelivered:
            if first <= seq <= last:
                return PeerUnreachable(f"message {seq} was not delivered: {why}")
        if seq <= self.forgotten_through:  # it may be among the forgotten losses: never say delivered
            return PeerUnreachable(f"message {seq} is not known to be delivered (too many failed sessions since)")
        return None

    async def offer(self, stream: Stream) -> None:
        """A stream we opened for this session: used if there is none, or if it wins the rule
        both ends apply to two live streams (:meth:`MessagingService._better`); else reset.
        (Keeping "whichever came first" here let the two ends keep different streams when both
        re-attached at once, and reset each other's forever.)"""
        current = self.stream
        if current is None or current.is_reset or self.service._better(stream, current):
            self.attach(stream)
        else:
            await stream.reset()

    def attach(self, stream: Stream) -> None:
        old = self.stream
        if old is not None and old is not stream:
            self.session.detach(time.monotonic())
            if self.reader is not None:
                self.reader.cancel()
            self.service.spawn(old.close(), "closing a replaced messaging stream")
        self.stream = stream
        self.ever_attached = True
        self.session.attach(time.monotonic())
        self.driver.step()
        self.reader = spawn(self._read_loop(stream), f"messaging reader for {self.peer}")

    def lost(self, stream: Stream) -> None:
        if self.stream is not stream:
            return
        self.stream = None
        self.session.detach(time.monotonic())
        self.driver.step()
        self.ensure_attached()

    def ensure_attached(self) -> None:
        if self.stream is None and self.failed is None and self.redial is None and not self.service.closed:
            if self.session.unacked_count or self.session.queued_count:
                self.redial = spawn(self._reattach(), f"messaging re-attach to {self.peer}")

    async def _reattach(self) -> None:
        backoff = Backoff(initial=0.1, maximum=5.0)
        try:
            while self.stream is None and self.failed is None and not self.service.closed:
                try:
                    stream = await self.service.host.new_stream(self.peer, [PROTOCOL_ID])
                    await self.offer(stream)
                    return
                except DarkSwapError as exc:
                    log.debug("messaging: cannot reach %s yet: %s", self.peer, exc)
                await asyncio.sleep(backoff.next_delay())
        finally:
            self.redial = None

    async def _read_loop(self, stream: Stream) -> None:
        service = self.service
        try:
            while True:
                room = service.inbox_room(self)
                if room <= 0:  # read nothing (no acks): the sender is back-pressured
                    refusals.refused(
                        "messaging:inbox_full",
                        "messaging inbox full (%d bytes from %s, %d in all): not reading until it is read",
                        self.inbox_bytes,
                        self.peer,
                        service.inbox_total,
                    )
                    self.inbox_space.clear()
                    service._blocked.add(self)
                    await self.inbox_space.wait()
                    continue
                if self.session.receive_blocked:  # input left undecoded at the last budget
                    self.session.receive_data(b"", time.monotonic(), room)
                else:
                    data = await stream.read(timeout=NO_TIMEOUT)
                    if not data:
                        break
                    self.session.receive_data(data, time.monotonic(), service.inbox_room(self))
                self.driver.step()
        except asyncio.CancelledError:
            return
        except DarkSwapError as exc:
            log.debug("messaging stream with %s broke: %s", self.peer, exc)
            self.driver.step()
        self.lost(stream)

    async def close(self, grace: float) -> None:
        """Close the session: a graceful CLOSE while connected (at most ``grace`` seconds to get
        what is queued acknowledged), then wake every waiter with a clear error."""
        if self.failed is None and self.stream is not None and self.session.is_connected:
            self.session.close(time.monotonic())
            self.driver.step()
            deadline = time.monotonic() + grace
            while self.failed is None and (self.session.unacked_count or self.session.queued_count):
                self.acked.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await self.acked.wait(remaining):
                    break
        if self.failed is None:
            self.failed = dm.SessionClosed("the messaging session was closed")
        for ev in (self.space, self.readable, self.acked, self.inbox_space):
            ev.set()
        self.driver.close()
        for t in (self.reader, self.redial):
            if t is not None:
                t.cancel()
        if self.stream is not None:
            await self.stream.reset()


class MessagingService:
    def __init__(self, host: Host, config: dm.MessagingConfig | None = None, *, inbox_limit: int | None = None):
        self.host = host
        self.config = config or dm.MessagingConfig()
        self.inbox_limit = self.config.inbox_bytes_per_peer if inbox_limit is None else inbox_limit
        self.inbox_total = 0  # bytes in every peer's inbox
        self.closed = False
        self._peers: dict[PeerId, _Peer] = {}
        self._blocked: set[_Peer] = set()  # readers waiting for inbox room
        self._tasks: set[asyncio.Task] = set()
        host.set_stream_handler(PROTOCOL_ID, self._handle)
        host.on("connection:open", self._on_connection)
        host.on("peer:disconnect", self._on_disconnect)

    def spawn(self, coro, name: str) -> asyncio.Task:
        """A background task of the service: tracked, cancelled by :meth:`close`."""
        task = spawn(coro, name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def inbox_room(self, p: _Peer) -> int:
        """Decompressed bytes ``p``'s session may deliver now (per-peer and total budgets).

        A peer the application is waiting on (``receive`` with its inbox empty) may always take
        one more frame: other peers' unread messages filling the total must not starve a reader
        that takes its messages at once (the overshoot is one frame per waiting ``receive``)."""
        total = self.config.inbox_bytes_total - self.inbox_total
        if p.receivers and not p.inbox:
            total = max(total, 1)
        return min(self.inbox_limit - p.inbox_bytes, total)

    def _taken(self, p: _Peer, n: int) -> None:
        """The application took ``n`` bytes of ``p``'s inbox: wake readers that have room again."""
        p.inbox_bytes -= n
        self.inbox_total -= n
        self._wake_blocked()

    def _wake_blocked(self) -> None:
        for q in list(self._blocked):
            if self.inbox_room(q) > 0:
                self._blocked.discard(q)
                q.inbox_space.set()

    def _on_disconnect(self, peer: PeerId) -> None:
        p = self._peers.get(peer)
        if p is not None and not self.closed:  # a peer that comes back soon keeps its session
            if p.drop_timer is not None:  # one timer per peer, however often it reconnects
                p.drop_timer.cancel()
            p.drop_timer = asyncio.get_running_loop().call_later(self.config.give_up_after, self._drop_if_gone, peer)

    def _drop_if_gone(self, peer: PeerId) -> None:
        """Drop the state of a peer gone for ``give_up_after`` with nothing pending either way."""
        p = self._peers.get(peer)
        if p is None or self.closed or self.host.connections(peer) or p.redial is not None or p.inbox or p.waiting:
            return
        if (p.stream is not None and not p.stream.conn.closed) or p.session.unacked_count or p.session.queued_count:
            return
        del self._peers[peer]
        p.drop_timer = None
        self._blocked.discard(p)
        p.driver.close()
        if p.reader is not None:
            p.reader.cancel()

    def _peer(self, peer: PeerId) -> _Peer:
        p = self._peers.get(peer)
        if p is None:
            p = self._peers[peer] = _Peer(self, peer)
        return p

    async def _handle(self, stream: Stream) -> None:
        p = self._peer(stream.remote_peer)
        if p.failed is not None and not self.closed:
            p.renew()  # the peer came back after ours gave up: a new session
        current = p.stream
        if current is not None and not current.is_reset:
            # two live streams: both ends keep the one opened by the smaller peer id
            keep_new = self._better(stream, current)
            if not keep_new:
                await stream.reset()
                return
        stream.claim()  # its reader task owns it now: the host must not reset it as unused
        p.attach(stream)

    def _better(self, new: Stream, current: Stream) -> bool:
        rank_new = rank(new.conn)
        rank_cur = rank(current.conn)
        if rank_new != rank_cur:
            return rank_new < rank_cur
        opener_new = self.host.peer_id if not new.inbound else new.remote_peer
        opener_cur = self.host.peer_id if not current.inbound else current.remote_peer
        return opener_new.to_bytes() < opener_cur.to_bytes()

    def _on_connection(self, conn) -> None:
        p = self._peers.get(conn.remote_peer)
        if p is None or p.failed is not None:
            return
        if p.stream is None:
            p.ensure_attached()
        elif rank(conn) < rank(p.stream.conn):
            self.spawn(self._migrate(p, conn), "messaging migration")

    async def _migrate(self, p: _Peer, conn) -> None:
        """A better connection came up (e.g. WebRTC): move the session onto it."""
        if self.host.peer_id.to_bytes() > p.peer.to_bytes():
            return  # the peer with the smaller id moves it; the other accepts the new stream
        try:
            stream = await self.host.new_stream_on(conn, [PROTOCOL_ID])
        except DarkSwapError as exc:
            log.debug("moving messaging with %s to %s failed: %s", p.peer, conn.transport, exc)
            return
        p.attach(stream)

    # -- API --------------------------------------------------------------------------------
    async def send(self, peer: PeerId | str, data: bytes, timeout: float | None = None) -> int:
        """Queue one message; returns its sequence number. Waits while the send buffer is full."""
        peer = PeerId.coerce(peer)
        if len(data) > self.config.max_message_size:
            raise MessageTooLarge(f"message of {len(data)} bytes exceeds the maximum of {self.config.max_message_size}")
        p = self._peer(peer)
        p.waiting += 1  # not dropped on disconnect while a caller uses it
        try:
            return await self._send(p, peer, data, timeout)
        finally:
            p.waiting -= 1

    async def _send(self, p: _Peer, peer: PeerId, data: bytes, timeout: float | None) -> int:
        if p.failed is not None and not self.closed:
            p.renew()  # a call after the session failed: a new one (what the old one lost stays reported)
        self._check_path_limit(peer, len(data))
        if p.stream is None and p.redial is None and not p.ever_attached:
            # first contact: a peer we cannot reach is a clear error, nothing is queued. Later a
            # lost path (a circuit that ended, a relay restarting) only delays: the message is
            # queued and the session re-attaches in the background until ``give_up_after``.
            try:
                stream = await self.host.new_stream(peer, [PROTOCOL_ID])
                await p.offer(stream)
            except DarkSwapError as exc:
                raise PeerUnreachable(f"cannot reach {peer} to send a message: {exc}") from exc
        if timeout is None:
            timeout = self.config.give_up_after  # every wait has a bound
        deadline = time.monotonic() + timeout
        while True:
            try:
                seq = p.session.send(bytes(data), time.monotonic())
                break
            except dm.BufferFull:
                p.space.clear()
                p.driver.soon()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await p.space.wait(remaining):
                    raise Timeout("send buffer stayed full") from None
                if p.failed is not None:
                    raise p.failed from None
        p.dispatch()
        p.driver.soon()
        p.ensure_attached()
        return p.seq_base + seq

    def _check_path_limit(self, peer: PeerId, size: int) -> None:
        """A message that cannot fit through the only path to the peer (a relay circuit's data
        limit) would be resent forever: say so at once instead."""
        conns = self.host.connections(peer)
        if not conns or not conns[0].relayed:
            return
        limit = conns[0].limit
        budget = limit.data_limit if limit is not None else None
        if budget is not None and size + 64 > budget:
            raise MessageTooLarge(
                f"a {size}-byte message cannot pass the relay circuit to {peer} (data limit {budget} bytes): "
                "wait for a direct connection (create_webrtc_data_channel) or use a relay with larger limits"
            )

    async def receive(self, peer: PeerId | str, timeout: float | None = None) -> bytes:
        peer = PeerId.coerce(peer)
        p = self._peer(peer)
        p.waiting += 1  # not dropped on disconnect while a caller waits on it
        p.receivers += 1
        try:
            if not p.inbox and p in self._blocked:
                self._wake_blocked()  # it may have room now that we wait on it
            if p.failed is not None and not p.inbox and not self.closed:
                p.renew()  # a call after the session failed: a new one (the peer may be back)
            while not p.inbox:
                if p.failed is not None:
                    raise p.failed  # it failed while we waited: say why
                p.readable.clear()
                if not await p.readable.wait(timeout):
                    raise Timeout(f"no message from {peer} within {timeout:g}s")
        finally:
            p.waiting -= 1
            p.receivers -= 1
        data = p.inbox.popleft()
        self._taken(p, len(data))
        return data

    async def wait_acked(self, peer: PeerId | str, seq: int, timeout: float = 30.0) -> None:
        """Wait until the peer acknowledged every message up to ``seq``. ``PeerUnreachable`` for
        a message that will never be: its session gave up (and a new one took over since)."""
        p = self._peer(PeerId.coerce(peer))
        deadline = time.monotonic() + timeout
        while (lost := p.not_delivered(seq)) is not None or p.acked_seq < seq:
            if lost is not None:
                raise lost
            if isinstance(p.failed, PeerUnreachable):
                raise PeerUnreachable(f"message {seq} was not delivered: {p.failed}") from p.failed
            if p.failed is not None:
                raise p.failed
            p.acked.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"messages up to {seq} not acknowledged within {timeout:g}s")
            await p.acked.wait(remaining)

    def session(self, peer: PeerId | str) -> dm.MessageSession | None:
        p = self._peers.get(PeerId.coerce(peer))
        return p.session if p else None

    async def close(self, grace: float = 2.0) -> None:
        self.closed = True
        await asyncio.gather(*(p.close(grace) for p in list(self._peers.values())))
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


__all__ = ["PROTOCOL_ID", "ConnectionClosed", "MessagingService"]
