"""libp2p identify (``/ipfs/id/1.0.0``, ``/ipfs/id/push/1.0.0``) on the host: answer what we
are, ask every new connection's peer what it is, remember the answers (bounded) and tell the
host's listeners (``peer:identify``). The message rules are :mod:`~..protocols.identify`'s."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import events
from ..errors import DarkSwapError, Timeout
from ..identity import PeerId
from ..protocols import identify
from .wakeup import Wakeup

if TYPE_CHECKING:
    from .host import Host
    from .muxer import MuxedConnection
    from .stream import Stream

log = logging.getLogger(__name__)


def remember(table: dict, key, value, cap: int) -> None:
    """``table[key] = value`` as the newest entry; the oldest go once there are over ``cap``."""
    table.pop(key, None)
    table[key] = value
    while len(table) > cap:
        table.pop(next(iter(table)))


class IdentifyService:
    def __init__(self, host: Host, *, timeout: float, cap: Callable[[], int]) -> None:
        self.host = host
        self.timeout = timeout
        self._cap = cap  # how many peers' answers to keep
        self._known: dict[PeerId, identify.IdentifyInfo] = {}
        self._waiters: dict[PeerId, tuple[Wakeup, int]] = {}  # peer -> (its wakeup, callers waiting)
        host.set_stream_handler(identify.PROTOCOL_ID, self._handle)
        host.set_stream_handler(identify.PUSH_PROTOCOL_ID, self._handle_push)

    def known(self, peer: PeerId) -> identify.IdentifyInfo | None:
        """The last answer ``peer`` gave, if it is still remembered."""
        return self._known.get(peer)

    def our_info(self, conn: MuxedConnection) -> identify.IdentifyInfo:
        host = self.host
        return identify.IdentifyInfo(
            protocol_version=identify.PROTOCOL_VERSION,
            agent_version=host.config.agent_version,
            public_key=host.identity.public_key,
            listen_addrs=tuple(a.without_p2p() for a in host.listen_addrs()),
            observed_addr=conn.remote_addr,
            protocols=tuple(host.protocols()),
        )

    async def _handle(self, stream: Stream) -> None:
        await stream.write(self.our_info(stream.conn).encode())
        await stream.close()

    async def _handle_push(self, stream: Stream) -> None:
        await self._read(stream)  # one bounded message, then we are done with it
        await stream.close()

    async def _read(self, stream: Stream) -> identify.IdentifyInfo:
        reader = identify.IdentifyReader(stream.remote_peer)
        while True:
            data = await stream.read(timeout=self.timeout)
            if not data:
                info = reader.end_of_stream()
                break
            if reader.receive_data(data) is not None:
                info = reader.result
                break
        assert info is not None
        peer = stream.remote_peer
        remember(self._known, peer, info, self._cap())
        waiting = self._waiters.get(peer)
        if waiting is not None:
            waiting[0].set()
        self.host.emit(events.PEER_IDENTIFY, peer, info)
        return info

    async def exchange(self, conn: MuxedConnection) -> None:
        """Ask the peer of a new connection (errors are logged: identify is best effort)."""
        try:
            stream = await self.host.new_stream_on(conn, [identify.PROTOCOL_ID])
            try:
                await self._read(stream)
            except BaseException:
                await stream.reset()
                raise
            await stream.close()
            await stream.close_read()
        except DarkSwapError as exc:
            log.debug("identify with %s failed: %s", conn.remote_peer, exc)

    async def identify(self, peer: PeerId, timeout: float | None = None) -> identify.IdentifyInfo:
        """What identify told us about ``peer`` (waits for the exchange on a new connection)."""
        info = self._known.get(peer)
        if info is not None:
            return info
        wakeup, n = self._waiters.get(peer, (None, 0))
        if wakeup is None:
            wakeup = Wakeup()
        self._waiters[peer] = (wakeup, n + 1)
        t = self.timeout if timeout is None else timeout
        try:
            answered = await wakeup.wait(t)
        finally:
            _, left = self._waiters[peer]
            if left <= 1:
                del self._waiters[peer]  # no entry outlives its callers (a timeout used to leave one)
            else:
                self._waiters[peer] = (wakeup, left - 1)
        if not answered:
            raise Timeout(f"no identify from {peer} within {t:g}s")
        info = self._known.get(peer)
        if info is None:
            raise Timeout(f"identify of {peer} arrived but was already evicted")
        return info
