"""Connection monitoring and reconnection.

:class:`~darkswap_wasm.policy.heartbeat.HeartbeatState` is the clock-free policy of one
connection (when a heartbeat is due, its adaptive timeout, when the peer is dead).

:class:`ConnectionMonitor` runs it for every connection of a host (a yamux ping on multiplexed
connections, ``/ipfs/ping`` on WebRTC ones) and closes dead connections, which emits
``peer:disconnect``. :class:`Reconnector` redials keep-alive peers after a disconnect with
jittered exponential backoff (:class:`~darkswap_wasm.policy.backoff.Backoff`) until they are back or its give-up
rule says stop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..errors import ConnectionClosed, DarkSwapError
from ..identity import PeerId
from ..policy.backoff import Backoff
from ..policy.heartbeat import HeartbeatState, MonitorConfig
from ..tasks import spawn
from ..wire.multiaddr import Multiaddr
from .host import Host

log = logging.getLogger(__name__)


class ConnectionMonitor:
    def __init__(self, host: Host, config: MonitorConfig) -> None:
        self.host = host
        self.config = config
        self._tasks: dict[object, asyncio.Task] = {}
        self.states: dict[object, HeartbeatState] = {}
        host.on("connection:open", self._watch)
        host.on("connection:close", self._unwatch)

    def _watch(self, conn) -> None:
        if conn in self._tasks:
            return
        self.states[conn] = HeartbeatState(self.config, time.monotonic())
        self._tasks[conn] = spawn(self._run(conn), "connection monitor")

    def _unwatch(self, conn) -> None:
        task = self._tasks.pop(conn, None)
        self.states.pop(conn, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _run(self, conn) -> None:
        state = self.states[conn]
        while not conn.closed:
            await asyncio.sleep(max(0.0, state.next_due - time.monotonic()))
            if conn.closed:
                return
            try:
                rtt = await conn.ping(state.timeout())
                state.answered(rtt, time.monotonic())
            except (DarkSwapError, TimeoutError) as exc:
                if conn.closed:
                    return
                if state.missed(time.monotonic()):
                    log.info("%r missed %d heartbeats (%s): closing it", conn, state.misses, exc)
                    await conn.close(ConnectionClosed("peer stopped answering heartbeats"))
                    return

    async def close(self) -> None:
        for t in list(self._tasks.values()):
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()


class Reconnector:
    """Keeps chosen peers connected: redials them after a disconnect, with jittered backoff."""

    def __init__(self, host: Host, config: MonitorConfig) -> None:
        self.host = host
        self.config = config
        self._addrs: dict[PeerId, list[Multiaddr]] = {}
        self._tasks: dict[PeerId, asyncio.Task] = {}
        self.gave_up: set[PeerId] = set()
        host.on("peer:disconnect", self._on_disconnect)

    def keep_alive(self, peer: PeerId, addrs: list[Multiaddr] | None = None) -> None:
        self._addrs.setdefault(peer, [])
        for a in addrs or []:
            if a not in self._addrs[peer]:
                self._addrs[peer].append(a)
        self.gave_up.discard(peer)

    def forget(self, peer: PeerId) -> None:
        self._addrs.pop(peer, None)
        task = self._tasks.pop(peer, None)
        if task is not None:
            task.cancel()

    def _on_disconnect(self, peer: PeerId) -> None:
        if peer in self._addrs and peer not in self._tasks and not self.host.closed:
            self._tasks[peer] = spawn(self._redial(peer), f"keep-alive redial of {peer}")

    async def _redial(self, peer: PeerId) -> None:
        c = self.config
        backoff = Backoff(initial=c.reconnect_initial, maximum=c.reconnect_max, give_up_after=c.reconnect_give_up_after)
        try:
            while peer in self._addrs and not self.host.closed:
                if self.host.connections(peer):
                    return
                await asyncio.sleep(backoff.next_delay())
                for addr in self._addrs.get(peer, []) or [None]:
                    try:
                        if addr is None:
                            await self.host.connection_to(peer)
                        else:
                            await self.host.dial(addr)
                        log.info("keep-alive peer %s is back", peer)
                        return
                    except DarkSwapError as exc:
                        log.debug("redial of %s via %s failed: %s", peer, addr, exc)
                if backoff.exhausted:
                    log.warning("giving up on keep-alive peer %s after %d attempts", peer, backoff.attempts)
                    self.gave_up.add(peer)
                    self.host.emit("peer:unreachable", peer)
                    return
        finally:
            self._tasks.pop(peer, None)

    async def close(self) -> None:
        for t in list(self._tasks.values()):
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
