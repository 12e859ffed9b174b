"""The small interface every transport adapter implements."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable

from ..wire.multiaddr import Multiaddr


class RawConnection(abc.ABC):
    """A reliable, ordered duplex of bytes (TCP socket, WebSocket, relayed stream, ...).

    ``write`` only queues (never blocks); ``drain`` waits while the queue is above its high-water
    mark. ``read`` returns ``b""`` once the remote closed.
    """

    transport: str  # "tcp" | "ws" | "webrtc" | "relay"
    local_addr: Multiaddr | None
    remote_addr: Multiaddr

    @abc.abstractmethod
    async def read(self) -> bytes: ...

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def drain(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...


ConnectionHandler = Callable[[RawConnection], Awaitable[None]]


class Listener(abc.ABC):
    @property
    @abc.abstractmethod
    def multiaddrs(self) -> list[Multiaddr]:
        """The addresses actually bound (a ``tcp/0`` request shows its real port here)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class Transport(abc.ABC):
    name: str

    @abc.abstractmethod
    def can_dial(self, addr: Multiaddr) -> bool: ...

    def can_listen(self, addr: Multiaddr) -> bool:
        return self.can_dial(addr)

    @abc.abstractmethod
    async def dial(self, addr: Multiaddr) -> RawConnection: ...

    @abc.abstractmethod
    async def listen(self, addr: Multiaddr, handler: ConnectionHandler) -> Listener: ...


def host_port(addr: Multiaddr) -> tuple[str, int, str]:
    """``(host, port, family)`` from ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/...``."""
    protos = addr.protocols()
    if len(protos) < 2 or protos[1] != "tcp":
        raise ValueError(f"not a TCP-based address: {addr}")
    family = protos[0]
    host = addr.value_for(family)
    port = addr.value_for("tcp")
    if family not in ("ip4", "ip6", "dns", "dns4", "dns6") or host is None or port is None:
        raise ValueError(f"not a TCP-based address: {addr}")
    return host, int(port), family


def tcp_multiaddr(host: str, port: int) -> Multiaddr:
    family = "ip6" if ":" in host else "ip4"
    return Multiaddr(f"/{family}/{host}/tcp/{port}")
