"""asyncio TCP transport (native runtime only).

A listener bound on an unspecified address (``0.0.0.0`` / ``::``) reports the machine's interface
addresses instead (loopback included), as go-libp2p does: nobody can dial ``0.0.0.0``. The list
is taken when the listener starts (:func:`expand_unspecified`, also used by the WebSocket listener).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import sys

from ..errors import ConnectionClosed
from ..wire.multiaddr import Multiaddr
from .base import ConnectionHandler, Listener, RawConnection, ServerListener, Transport, host_port, tcp_multiaddr

log = logging.getLogger(__name__)
READ_CHUNK = 256 * 1024
WRITE_HIGH_WATER = 1024 * 1024


SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def interface_addresses(family: int) -> list[str]:
    """This machine's interface addresses of ``family`` (``AF_INET`` / ``AF_INET6``), loopback
    first. Standard library only: ``if_nameindex`` + ``SIOCGIFADDR`` and ``/proc/net/if_inet6`` on
    Linux, the host name's addresses elsewhere. Link-local IPv6 addresses are left out (they need a
    zone to be dialed)."""
    found: list[str] = []
    if family == socket.AF_INET and sys.platform.startswith("linux"):
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:
                    req = struct.pack("256s", name.encode()[:15])
                    found.append(socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24]))
                except OSError:
                    pass  # no IPv4 address on this interface
    elif family == socket.AF_INET6 and sys.platform.startswith("linux"):
        try:
            with open("/proc/net/if_inet6") as f:
                for line in f:
                    h = line.split()[0]
                    found.append(str(ipaddress.IPv6Address(bytes.fromhex(h))))
        except OSError:
            pass
    if not found:
        try:
            infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
            found = [i[4][0] for i in infos]
        except OSError:
            pass
        found.append("127.0.0.1" if family == socket.AF_INET else "::1")
    ips = {ipaddress.ip_address(a.split("%")[0]) for a in found}
    ips = {ip for ip in ips if not ip.is_link_local and not ip.is_unspecified}
    return [str(ip) for ip in sorted(ips, key=lambda ip: (not ip.is_loopback, ip))]


def expand_unspecified(host: str, port: int) -> list[Multiaddr]:
    """``/ip4/<a>/tcp/<port>`` for ``host``, or for every interface address when ``host`` is
    ``0.0.0.0`` / ``::``."""
    ip = ipaddress.ip_address(host.split("%")[0])
    if not ip.is_unspecified:
        return [tcp_multiaddr(host, port)]
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return [tcp_multiaddr(a, port) for a in interface_addresses(family)] or [tcp_multiaddr(host, port)]


def bound_addrs(server: asyncio.base_events.Server) -> list[Multiaddr]:
    """The dialable addresses of a listening server's sockets (unspecified ones expanded)."""
    out: list[Multiaddr] = []
    for s in server.sockets:
        name = s.getsockname()
        for a in expand_unspecified(name[0], name[1]):
            if a not in out:
                out.append(a)
    return out


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

        server = await asyncio.start_server(on_client, host, port, limit=READ_CHUNK)  # OSError: Host.listen names it
        return ServerListener(server, bound_addrs(server))
