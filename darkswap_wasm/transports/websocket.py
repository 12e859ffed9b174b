"""asyncio WebSocket transport over the ``websockets`` library (native runtime only).

libp2p over WebSocket carries the raw connection bytes in binary frames (``/ws``; ``/wss`` needs
TLS certificates, configured by the caller). Text frames are a protocol error.

Memory a remote can make us hold: at most ``MAX_QUEUE`` received messages per connection, each
at most :data:`PRE_AUTH_FRAME` bytes until the connection upgrade authenticated the peer
(multistream and Noise handshake messages are far smaller; a stranger's big frame closes the
connection with 1009 "message too big") and :data:`MAX_FRAME` after it.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidURI

from ..errors import ConnectionClosed, ProtocolError
from ..wire.multiaddr import Multiaddr
from .base import (
    ConnectionHandler,
    Listener,
    QueuedSender,
    RawConnection,
    ServerListener,
    Transport,
    host_port,
    tcp_multiaddr,
)
from .tcp import bound_addrs

log = logging.getLogger(__name__)
MAX_FRAME = 4 * 1024 * 1024  # largest binary message we accept from an authenticated peer
PRE_AUTH_FRAME = 128 * 1024  # ... and from anyone before that (a Noise message is at most 64 KiB)
MAX_QUEUE = 4  # received messages buffered per connection before we stop reading the socket
SEND_FRAME = 1024 * 1024  # we send at most this much per message
WRITE_HIGH_WATER = 1024 * 1024


class WsConnection(RawConnection):
    transport = "ws"

    def __init__(self, ws, remote_addr: Multiaddr, local_addr: Multiaddr | None) -> None:
        self._ws = ws
        self.remote_addr = remote_addr
        self.local_addr = local_addr
        self._sender = QueuedSender(ws.send, max_message=SEND_FRAME, high_water=WRITE_HIGH_WATER)
        self.done = asyncio.get_running_loop().create_future()

    async def read(self) -> bytes:
        while True:
            try:
                msg = await self._ws.recv()
            except (WsConnectionClosed, OSError):
                return b""
            if isinstance(msg, str):
                raise ProtocolError("libp2p over WebSocket expects binary frames, got a text frame")
            if msg:  # empty binary messages happen (js-libp2p sends some); b"" means EOF to us
                return msg

    def write(self, data: bytes) -> None:
        if data:
            self._sender.write(data)

    async def drain(self) -> None:
        await self._sender.drain()

    def authenticated(self) -> None:
        self._ws.protocol.max_message_size = MAX_FRAME  # read by websockets per incoming frame

    async def close(self) -> None:
        await self._sender.close()
        try:
            await asyncio.wait_for(self._ws.close(), 2.0)
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 - closing regardless
            log.debug("WebSocket close: %r", exc)
        if not self.done.done():
            self.done.set_result(None)

    @property
    def closed(self) -> bool:
        return self._sender.closed


class WebSocketTransport(Transport):
    name = "ws"

    def can_dial(self, addr: Multiaddr) -> bool:
        protos = addr.without_p2p().protocols()
        return (
            len(protos) == 3
            and protos[0] in ("ip4", "ip6", "dns", "dns4", "dns6")
            and protos[1] == "tcp"
            and protos[2] == "ws"
        )

    async def dial(self, addr: Multiaddr) -> RawConnection:
        host, port, family = host_port(addr)
        netloc = f"[{host}]" if family == "ip6" else host
        try:
            ws = await ws_connect(
                f"ws://{netloc}:{port}/",
                max_size=PRE_AUTH_FRAME,
                max_queue=MAX_QUEUE,
                compression=None,
                open_timeout=10,
                ping_interval=None,
            )
        except (TimeoutError, OSError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectionClosed(f"WebSocket dial {addr} failed: {exc}") from exc
        local = ws.local_address
        return WsConnection(
            ws,
            addr.without_p2p(),
            tcp_multiaddr(local[0], local[1]).encapsulate("/ws") if local else None,
        )

    async def listen(self, addr: Multiaddr, handler: ConnectionHandler) -> Listener:
        host, port, _ = host_port(addr)

        async def on_ws(ws: ServerConnection) -> None:
            remote = ws.remote_address
            local = ws.local_address
            conn = WsConnection(
                ws,
                tcp_multiaddr(remote[0], remote[1]).encapsulate("/ws"),
                tcp_multiaddr(local[0], local[1]).encapsulate("/ws"),
            )
            await handler(conn)
            # websockets closes the socket when this handler returns: live until closed
            await conn.done

        server = await serve(
            on_ws, host, port, max_size=PRE_AUTH_FRAME, max_queue=MAX_QUEUE, compression=None, ping_interval=None
        )
        return ServerListener(server, [a.encapsulate("/ws") for a in bound_addrs(server)])
