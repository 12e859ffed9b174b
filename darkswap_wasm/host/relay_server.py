"""Circuit relay v2, the relay's side: the hop service (``relay/circuit-v2.md``).

RESERVE: admit the peer by :class:`~..protocols.circuit_v2.RelayResources`, answer its expiry,
our addresses and a signed voucher. CONNECT: check the target's reservation, ask the target
over the stop protocol, then splice the two streams, counting bytes and time by
:class:`~..protocols.circuit_v2.CircuitMeter` and resetting both halves past the limit.
Requests that arrive over a relayed connection are refused (no relay chains).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..errors import DarkSwapError, LimitExceeded, Timeout
from ..identity import PeerId
from ..identity.envelope import ReservationVoucher, seal_voucher
from ..protocols.circuit_v2 import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    CircuitMeter,
    HopMessage,
    HopType,
    Limit,
    MessageReader,
    Peer,
    RelayConfig,
    RelayResources,
    Reservation,
    Status,
    StopMessage,
    StopType,
    status_for_error,
)
from ..protocols.relay_info import RelayInfo
from ..tasks import spawn
from .host import Host
from .ratelog import RefusalLog
from .relay_info import serve_relay_info
from .stream import NO_TIMEOUT, Stream

log = logging.getLogger(__name__)
refusals = RefusalLog(log, level=logging.INFO)  # at most a line a second per kind of refusal


async def read_message(stream: Stream, kind, timeout: float):
    """One hop/stop message off ``stream``; what followed it is put back into the stream."""
    reader = MessageReader(kind)
    while True:
        data = await stream.read(timeout=timeout)
        if not data:
            reader.end_of_stream()
        got = reader.feed(data)
        if got is not None:
            message, leftover = got
            stream.unread(leftover)
            return message


def _source_of(stream: Stream) -> str | None:
    """The remote IP a request came from (the unit of the per-source caps)."""
    addr = stream.conn.remote_addr
    return addr.value_for("ip4") or addr.value_for("ip6")


class RelayService:
    def __init__(self, host: Host, config: RelayConfig | None = None, *, request_timeout: float = 10.0) -> None:
        self.host = host
        self.config = config or RelayConfig()
        self.resources = RelayResources(self.config)
        self.request_timeout = request_timeout
        self._circuits: set[asyncio.Task] = set()
        self._expiry_task: asyncio.Task | None = None
        host.set_stream_handler(HOP_PROTOCOL_ID, self._handle_hop)
        serve_relay_info(host, self.usage)  # clients weigh our load when choosing relays
        host.on("peer:disconnect", self._on_disconnect)

    def usage(self) -> RelayInfo:
        """Live counts for ``/darkswap/relay-info/1.0.0``: reservations and circuits in use and
        their limits (:func:`~.relay_info.serve_relay_info` answers with this)."""
        return RelayInfo(
            reservations=self.resources.reservation_count,
            reservation_limit=self.config.max_reservations,
            circuits=self.resources.circuit_count,
            circuit_limit=self.config.max_circuits,
        )

    def start(self) -> None:
        self._expiry_task = spawn(self._expire_loop(), "relay reservation expiry")

    async def close(self) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
        for t in list(self._circuits):
            t.cancel()
        await asyncio.gather(*self._circuits, return_exceptions=True)

    def _on_disconnect(self, peer: PeerId) -> None:
        # a reservation lives only as long as the reserving peer's connection to us
        self.resources.unreserve(peer)

    async def _expire_loop(self) -> None:
        while True:
            deadline = self.resources.next_deadline()
            delay = 60.0 if deadline is None else max(0.05, deadline - time.monotonic())
            await asyncio.sleep(min(delay, 60.0))
            for peer in self.resources.expire(time.monotonic()):
                log.debug("reservation of %s expired", peer)

    # -- hop -------------------------------------------------------------------------------
    async def _reply(self, stream: Stream, status: Status, **fields) -> None:
        await stream.write(HopMessage(HopType.STATUS, status=status, **fields).encode())

    async def _handle_hop(self, stream: Stream) -> None:
        if stream.conn.relayed:
            await self._reply(stream, Status.PERMISSION_DENIED)
            await stream.close()
            return
        try:
            msg = await read_message(stream, HopMessage, self.request_timeout)
        except DarkSwapError as exc:
            await self._reply(stream, status_for_error(exc))
            await stream.close()
            return
        if msg.type is HopType.RESERVE:
            await self._reserve(stream)
        elif msg.type is HopType.CONNECT:
            if msg.peer is None:
                await self._reply(stream, Status.MALFORMED_MESSAGE)
                await stream.close()
                return
            await self._connect(stream, msg.peer.id)
        else:
            await self._reply(stream, Status.UNEXPECTED_MESSAGE)
            await stream.close()

    async def _reserve(self, stream: Stream) -> None:
        peer = stream.remote_peer
        source = _source_of(stream)
        status, expire = self.resources.reserve(peer, time.monotonic(), time.time(), source=source)
        if status is not Status.OK:
            refusals.refused(f"relay:reserve:{status.name}", "reservation for %s refused: %s", peer, status.name)
            await self._reply(stream, status)
            await stream.close()
            return
        assert expire is not None
        voucher = seal_voucher(self.host.identity, ReservationVoucher(self.host.peer_id, peer, expire))
        addrs = tuple(self.host.listen_addrs())
        limit = self.resources.limit()
        await self._reply(
            stream,
            Status.OK,
            reservation=Reservation(expire=expire, addrs=addrs, voucher=voucher),
            limit=None if limit.unlimited else limit,
        )
        await stream.close()
        log.debug("reserved for %s until %d", peer, expire)

    async def _connect(self, src_stream: Stream, dst: PeerId) -> None:
        src = src_stream.remote_peer
        now = time.monotonic()
        if not self.resources.has_reservation(dst, now):
            await self._reply(src_stream, Status.NO_RESERVATION)
            await src_stream.close()
            return
        status, circuit = self.resources.open_circuit(src, dst, now, source=_source_of(src_stream))
        if status is not Status.OK:
            await self._reply(src_stream, status)
            await src_stream.close()
            return
        assert circuit is not None
        limit = self.resources.limit()
        try:
            dst_stream = await self._open_stop(src, dst, limit)
        except DarkSwapError as exc:
            refusals.refused("relay:circuit_failed", "circuit %s -> %s failed: %s", src, dst, exc)
            self.resources.close_circuit(circuit)
            await self._reply(src_stream, Status.CONNECTION_FAILED)
            await src_stream.close()
            return
        await self._reply(src_stream, Status.OK, limit=None if limit.unlimited else limit)
        task = spawn(self._splice(circuit, src_stream, dst_stream, limit), "relay circuit")
        self._circuits.add(task)
        task.add_done_callback(self._circuits.discard)

    async def _open_stop(self, src: PeerId, dst: PeerId, limit: Limit) -> Stream:
        conns = [c for c in self.host.connections(dst) if not c.relayed]
        if not conns:
            raise DarkSwapError(f"no direct connection to {dst}")
        stream = await self.host.new_stream_on(conns[0], [STOP_PROTOCOL_ID])
        try:
            await stream.write(
                StopMessage(StopType.CONNECT, peer=Peer(src, ()), limit=None if limit.unlimited else limit).encode()
            )
            reply = await read_message(stream, StopMessage, self.request_timeout)
        except BaseException:
            await stream.reset()
            raise
        if reply.type is not StopType.STATUS or reply.status is not Status.OK:
            await stream.reset()
            raise DarkSwapError(f"target answered {reply.status!r}")
        return stream

    async def _splice(self, circuit: int, a: Stream, b: Stream, limit: Limit) -> None:
        meter = CircuitMeter(limit, time.monotonic())

        async def pipe(src: Stream, dst: Stream, reverse: bool) -> None:
            while True:
                data = await src.read(timeout=NO_TIMEOUT)
                if not data:
                    await dst.close()
                    return
                if not meter.on_data(len(data), reverse=reverse):
                    raise LimitExceeded("circuit data limit reached")
                await dst.write(data)

        try:
            both = asyncio.gather(pipe(a, b, False), pipe(b, a, True))
            if meter.deadline is None:
                await both
            else:
                try:
                    await asyncio.wait_for(both, max(0.0, meter.deadline - time.monotonic()))
                except TimeoutError:
                    raise Timeout("circuit duration limit reached") from None
        except (DarkSwapError, asyncio.CancelledError) as exc:
            log.info("circuit %d closed: %s", circuit, exc or type(exc).__name__)
            await a.reset()
            await b.reset()
        finally:
            self.resources.close_circuit(circuit)
