"""asyncio WebSocket transport over the ``websockets`` library (native runtime only).

libp2p over WebSocket carries the raw connection bytes in binary frames. Text frames are a protocol
error. Secure WebSocket is ``/tls/ws`` (the multiaddr spec's spelling; ``/wss`` is the older one,
read the same): dialing verifies the server's certificate with :func:`ssl.create_default_context`
(the system's CAs; ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` point OpenSSL elsewhere) against the
address's host (an IP address or a DNS name), or with ``client_ssl`` if given; listening needs a
``server_ssl`` context holding the certificate and key (:func:`server_ssl_context`). Each
connection's addresses say which it is (``…/tcp/<port>/tls/ws``).

Memory a remote can make us hold: at most ``MAX_QUEUE`` received messages per connection, each
at most :data:`PRE_AUTH_FRAME` bytes until the connection upgrade authenticated the peer
(multistream and Noise handshake messages are far smaller; a stranger's big frame closes the
connection with 1009 "message too big") and :data:`MAX_FRAME` after it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidURI

from ..errors import ConfigError, ConnectionClosed, ProtocolError
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
TLS_HANDSHAKE_TIMEOUT = 10.0  # s, an inbound TLS handshake (asyncio's default is 60 s)
HOSTS = ("ip4", "ip6", "dns", "dns4", "dns6")
SECURE_SUFFIXES = (("tls", "ws"), ("wss",))


def ws_kind(addr: Multiaddr) -> str | None:
    """``"ws"`` for ``<host>/tcp/<port>/ws``, ``"tls/ws"`` for ``…/tls/ws`` and ``…/wss``, else None."""
    protos = addr.without_p2p().protocols()
    if len(protos) < 3 or protos[0] not in HOSTS or protos[1] != "tcp":
        return None
    rest = tuple(protos[2:])
    if rest == ("ws",):
        return "ws"
    if rest in SECURE_SUFFIXES:
        return "tls/ws"
    return None


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context with a PEM certificate chain and its key; :class:`ConfigError` naming
    the file and the reason if they cannot be read or do not match."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS certificate or key file not found: {exc.filename or cert_file}") from None
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert_file} with the key {key_file}: {exc}") from None
    return ctx


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
    """``/ws`` and ``/tls/ws`` (``/wss``). ``server_ssl``: the certificate for ``/tls/ws``
    listeners (none: listening there is a :class:`ConfigError`); ``client_ssl``: the context that
    verifies servers (default: :func:`ssl.create_default_context`, made at the first secure dial)."""

    name = "ws"

    def __init__(self, server_ssl: ssl.SSLContext | None = None, client_ssl: ssl.SSLContext | None = None) -> None:
        self.server_ssl = server_ssl
        self._client_ssl = client_ssl

    def can_dial(self, addr: Multiaddr) -> bool:
        return ws_kind(addr) is not None

    def client_ssl(self) -> ssl.SSLContext:
        if self._client_ssl is None:
            self._client_ssl = ssl.create_default_context()
        return self._client_ssl

    async def dial(self, addr: Multiaddr) -> RawConnection:
        kind = ws_kind(addr)
        host, port, family = host_port(addr)
        netloc = f"[{host}]" if family == "ip6" else host
        secure = kind == "tls/ws"
        try:
            ws = await ws_connect(
                f"{'wss' if secure else 'ws'}://{netloc}:{port}/",
                ssl=self.client_ssl() if secure else None,
                max_size=PRE_AUTH_FRAME,
                max_queue=MAX_QUEUE,
                compression=None,
                open_timeout=10,
                ping_interval=None,
            )
        except ssl.SSLCertVerificationError as exc:
            raise ConnectionClosed(
                f"WebSocket dial {addr} failed: the server's TLS certificate is not trusted ({exc.verify_message}; "
                "SSL_CERT_FILE names a CA bundle to trust)"
            ) from exc
        except (TimeoutError, OSError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectionClosed(f"WebSocket dial {addr} failed: {exc}") from exc
        local = ws.local_address
        return WsConnection(
            ws,
            addr.without_p2p(),
            tcp_multiaddr(local[0], local[1]).encapsulate(f"/{kind}") if local else None,
        )

    async def listen(self, addr: Multiaddr, handler: ConnectionHandler) -> Listener:
        kind = ws_kind(addr)
        if kind is None:
            raise ConfigError(f"not a WebSocket address: {addr}")
        if kind == "tls/ws" and self.server_ssl is None:
            raise ConfigError(f"listening on {addr} needs a TLS certificate and key (WebSocketTransport(server_ssl=))")
        host, port, _ = host_port(addr)
        suffix = f"/{kind}"

        async def on_ws(ws: ServerConnection) -> None:
            remote = ws.remote_address
            local = ws.local_address
            conn = WsConnection(
                ws,
                tcp_multiaddr(remote[0], remote[1]).encapsulate(suffix),
                tcp_multiaddr(local[0], local[1]).encapsulate(suffix),
            )
            await handler(conn)
            # websockets closes the socket when this handler returns: live until closed
            await conn.done

        tls = {"ssl": self.server_ssl, "ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT} if kind == "tls/ws" else {}
        server = await serve(
            on_ws, host, port, max_size=PRE_AUTH_FRAME, max_queue=MAX_QUEUE, compression=None, ping_interval=None,
            **tls,
        )
        return ServerListener(server, [a.encapsulate(suffix) for a in bound_addrs(server)])
