"""asyncio TCP transport (native runtime only)."""

from __future__ import annotations

import asyncio
import logging
import socket

from ..errors import ConnectionClosed
from ..wire.multiaddr import Multiaddr
from .base import ConnectionHandler, Listener, RawConnection, ServerListener, Transport, host_port, tcp_multiaddr

log = logging.getLogger(__name__)
READ_CHUNK = 256 * 1024
WRITE_HIGH_WATER = 1024 * 1024


class TcpConnection(RawConnection):
    transport = "tcp"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        self.remote_addr = tcp_multiaddr(peer[0], peer[1])
        self.local_addr = tcp_multiaddr(local[0], local[1]) if local else None
        self._closed = False

    async def read(self) -> bytes:
        try:
            return await self._reader.read(READ_CHUNK)
        except (ConnectionError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        if self._closed or self._writer.is_closing():
            raise ConnectionClosed("TCP connection is closed")
        self._writer.write(data)

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionClosed(f"TCP connection lost: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        except (TimeoutError, ConnectionError, OSError):
            pass

    @property
    def closed(self) -> bool:
        return self._closed or self._writer.is_closing()


class TcpTransport(Transport):
    name = "tcp"

    def can_dial(self, addr: Multiaddr) -> bool:
        protos = addr.without_p2p().protocols()
        return len(protos) == 2 and protos[0] in ("ip4", "ip6", "dns", "dns4", "dns6") and protos[1] == "tcp"

    async def dial(self, addr: Multiaddr) -> RawConnection:
        host, port, _ = host_port(addr)
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=READ_CHUNK)
        except OSError as exc:
            raise ConnectionClosed(f"TCP dial {host}:{port} failed: {exc}") from exc
        return TcpConnection(reader, writer)

    async def listen(self, addr: Multiaddr, handler: ConnectionHandler) -> Listener:
        host, port, _ = host_port(addr)

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await handler(TcpConnection(reader, writer))

        server = await asyncio.start_server(on_client, host, port, limit=READ_CHUNK)
        bound = [tcp_multiaddr(s.getsockname()[0], s.getsockname()[1]) for s in server.sockets]
        return ServerListener(server, bound)
