"""The small interface every transport adapter implements."""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from ..errors import ConnectionClosed
from ..tasks import spawn
from ..wire.multiaddr import Multiaddr


class RawConnection(abc.ABC):
    """A reliable, ordered duplex of bytes (TCP socket, WebSocket, relayed stream, ...).

    ``write`` only queues (never blocks); ``drain`` waits while the queue is above its high-water
    mark. ``read`` returns ``b""`` once the remote closed.
    """

    transport: str  # "tcp" | "ws" | "relay" (host/muxer.py names the kinds)
    local_addr: Multiaddr | None
    remote_addr: Multiaddr
    limit = None  # a relay's circuit limit (protocols.circuit_v2.Limit) on a relayed circuit

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

    def authenticated(self) -> None:  # noqa: B027 - a hook; most transports hold nothing back
        """The connection upgrade finished: the remote is an authenticated peer now. A transport
        that gives a stranger less (the WebSocket's message size) gives the peer the rest here."""


ConnectionHandler = Callable[[RawConnection], Awaitable[None]]


class Listener(abc.ABC):
    @property
    @abc.abstractmethod
    def multiaddrs(self) -> list[Multiaddr]:
        """The addresses actually bound (a ``tcp/0`` request shows its real port here)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class ServerListener(Listener):
    """A listener backed by a server object with ``close()`` and ``wait_closed()`` (asyncio's,
    ``websockets``')."""

    def __init__(self, server, addrs: list[Multiaddr], close_timeout: float = 3.0) -> None:
        self._server = server
        self._addrs = addrs
        self._close_timeout = close_timeout

    @property
    def multiaddrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    async def close(self) -> None:
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), self._close_timeout)
        except TimeoutError:
            pass  # connections still closing: the host closes them itself


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


class QueuedSender:
    """The write side of adapters whose leaf ``send`` is a coroutine (WebSocket, a relayed stream,
    a data channel): ``write`` queues without blocking; one task sends in order, coalescing
    queued chunks up to ``max_message`` bytes; ``drain`` waits while more than ``high_water``
    bytes are queued. A send failure closes it and is raised by the next ``write``/``drain``.
    """

    def __init__(self, send: Callable[[bytes], Awaitable[None]], *, max_message: int, high_water: int) -> None:
        self._send = send
        self._max_message = max_message
        self._high_water = high_water
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = False
        self.error: BaseException | None = None
        self._task = spawn(self._run(), "queued sender")

    def write(self, data: bytes) -> None:
        if self.error is not None or self.closed:
            raise ConnectionClosed(f"connection is closed{': ' + str(self.error) if self.error else ''}")
        mv = memoryview(data)
        for off in range(0, len(mv), self._max_message):
            self._queue.append(bytes(mv[off : off + self._max_message]))
        self._queued += len(mv)
        if self._queued > self._high_water:
            self._drained.clear()
        self._wakeup.set()

    async def drain(self) -> None:
        await self._drained.wait()
        if self.error is not None:
            raise ConnectionClosed(f"connection lost: {self.error}")

    async def _run(self) -> None:
        try:
            while True:
                while not self._queue:
                    if self.closed:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                parts = [self._queue.popleft()]
                size = len(parts[0])
                while self._queue and size + len(self._queue[0]) <= self._max_message:
                    chunk = self._queue.popleft()
                    parts.append(chunk)
                    size += len(chunk)
                await self._send(parts[0] if len(parts) == 1 else b"".join(parts))
                self._queued -= size
                if self._queued <= self._high_water:
                    self._drained.set()
        except Exception as exc:  # noqa: BLE001 - any leaf failure ends the sender
            self.error = exc
            self.closed = True
            self._queue.clear()
            self._drained.set()

    async def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop."""
        self.closed = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (TimeoutError, Exception):  # noqa: BLE001
            self._task.cancel()
