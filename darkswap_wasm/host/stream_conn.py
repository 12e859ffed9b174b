"""A libp2p stream used as a raw connection: what a relayed circuit is to both of its ends.

The bytes of the end-to-end connection (multistream → Noise → yamux) ride inside one stream
of the connection to the relay, so the relay only ever sees ciphertext.
"""

from __future__ import annotations

from ..errors import DarkSwapError
from ..transports.base import QueuedSender, RawConnection
from ..wire.multiaddr import Multiaddr
from .stream import NO_TIMEOUT, Stream

MAX_MESSAGE = 256 * 1024
HIGH_WATER = 1024 * 1024


class StreamConnection(RawConnection):
    def __init__(
        self,
        stream: Stream,
        *,
        transport: str,
        remote_addr: Multiaddr,
        local_addr: Multiaddr | None,
        limit=None,
    ) -> None:
        self.stream = stream
        self.limit = limit  # a relay's circuit Limit (duration, data per direction), if it set one
        self.transport = transport
        self.remote_addr = remote_addr
        self.local_addr = local_addr
        self._sender = QueuedSender(stream.write, max_message=MAX_MESSAGE, high_water=HIGH_WATER)
        self._closed = False

    async def read(self) -> bytes:
        try:
            # no read timeout: an idle relayed connection is legitimate (the relay enforces limits)
            return await self.stream.read(timeout=NO_TIMEOUT)
        except DarkSwapError:
            return b""

    def write(self, data: bytes) -> None:
        if data:
            self._sender.write(data)

    async def drain(self) -> None:
        await self._sender.drain()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._sender.close()
        try:
            await self.stream.close()  # FIN; the relay closes the circuit once both ends did
        except DarkSwapError:
            await self.stream.reset()

    @property
    def closed(self) -> bool:
        return self._closed or self._sender.closed or self.stream.is_reset
