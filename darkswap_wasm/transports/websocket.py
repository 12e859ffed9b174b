"""asyncio WebSocket transport over the ``websockets`` library (native runtime only).

libp2p over WebSocket carries the raw connection bytes in binary frames (``/ws``; ``/wss`` needs
TLS certificates, configured by the caller). Text frames are a protocol error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidURI

from ..errors import ConnectionClosed, ProtocolError
from ..wire.multiaddr import Multiaddr
from .base import ConnectionHandler, Listener, RawConnection, Transport, host_port, tcp_multiaddr

log = logging.getLogger(__name__)
MAX_FRAME = 16 * 1024 * 1024  # largest binary message we accept
SEND_FRAME = 1024 * 1024  # we send at most this much per message
WRITE_HIGH_WATER = 1024 * 1024


class WsConnection(RawConnection):
    transport = "ws"

    def __init__(self, ws, remote_addr: Multiaddr, local_addr: Multiaddr | None) -> None:
        self._ws = ws
        self.remote_addr = remote_addr
        self.local_addr = local_addr
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed = False
        self._error: BaseException | None = None
        self._sender = asyncio.ensure_future(self._send_loop())
        self.done = asyncio.get_running_loop().create_future()

    async def _send_loop(self) -> None:
        try:
            while True:
                while not self._queue:
                    if self._closed:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                # coalesce queued chunks into one frame (bounded by MAX_FRAME)
                parts = []
                size = 0
                while self._queue and size + len(self._queue[0]) <= SEND_FRAME:
                    chunk = self._queue.popleft()
                    parts.append(chunk)
                    size += len(chunk)
                await self._ws.send(b"".join(parts) if len(parts) > 1 else parts[0])
                self._queued -= size
                if self._queued <= WRITE_HIGH_WATER:
                    self._drained.set()
        except (WsConnectionClosed, OSError) as exc:
            self._error = exc
            self._closed = True
            self._drained.set()

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
        if self._closed:
            raise ConnectionClosed(f"WebSocket connection is closed{': ' + str(self._error) if self._error else ''}")
        if not data:
            return
        mv = memoryview(data)
        for off in range(0, len(mv), SEND_FRAME):
            self._queue.append(bytes(mv[off : off + SEND_FRAME]))
        self._queued += len(data)
        if self._queued > WRITE_HIGH_WATER:
            self._drained.clear()
        self._wakeup.set()

    async def drain(self) -> None:
        await self._drained.wait()
        if self._error is not None:
            raise ConnectionClosed(f"WebSocket connection lost: {self._error}")

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wakeup.set()
            try:
                await asyncio.wait_for(self._sender, 2.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing regardless
                self._sender.cancel()
        try:
            await asyncio.wait_for(self._ws.close(), 2.0)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001
            pass
        if not self.done.done():
            self.done.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed


class _WsListener(Listener):
    def __init__(self, server, addrs: list[Multiaddr]) -> None:
        self._server = server
        self._addrs = addrs

    @property
    def multiaddrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    async def close(self) -> None:
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), 3.0)
        except asyncio.TimeoutError:
            pass


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
                max_size=MAX_FRAME,
                compression=None,
                open_timeout=10,
                ping_interval=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, asyncio.TimeoutError) as exc:
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

        server = await serve(on_ws, host, port, max_size=MAX_FRAME, compression=None, ping_interval=None)
        bound = [
            tcp_multiaddr(s.getsockname()[0], s.getsockname()[1]).encapsulate("/ws") for s in server.sockets
        ]
        return _WsListener(server, bound)
