"""Connection monitoring and reconnection.

:class:`HeartbeatState` is the sans-I/O policy of one connection: when the next heartbeat is
due, how long to wait for its answer (adaptive: a smoothed RTT plus four deviations, as TCP's
RTO, within configured bounds), and when the peer is dead (``misses_allowed`` heartbeats in a
row unanswered: two by default, so a dead peer is noticed within two heartbeats).

:class:`ConnectionMonitor` runs it for every connection of a host (a yamux ping on multiplexed
connections, ``/ipfs/ping`` on WebRTC ones) and closes dead connections, which emits
``peer:disconnect``. :class:`Reconnector` redials keep-alive peers after a disconnect with
jittered exponential backoff (:class:`~.backoff.Backoff`) until they are back or its give-up
rule says stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..errors import ConnectionClosed, DarkSwapError
from ..identity import PeerId
from ..tasks import spawn
from ..wire.multiaddr import Multiaddr
from .backoff import Backoff
from .host import Host

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorConfig:
    interval: float = 5.0  # seconds between heartbeats on an idle connection
    min_timeout: float = 0.5  # bounds of the adaptive heartbeat timeout
    max_timeout: float = 10.0
    initial_timeout: float = 3.0  # before any RTT was measured
    misses_allowed: int = 2  # consecutive unanswered heartbeats that make a peer dead
    reconnect_initial: float = 0.5  # keep-alive redial backoff
    reconnect_max: float = 30.0
    reconnect_give_up_after: int | None = None  # attempts; None = keep trying


class HeartbeatState:
    """The heartbeat policy of one connection. Times are arguments; nothing is read."""

    def __init__(self, config: MonitorConfig, now: float) -> None:
        self.config = config
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.misses = 0
        self.next_due = now + config.interval

    def timeout(self) -> float:
        c = self.config
        if self.srtt is None:
            return c.initial_timeout
        return min(c.max_timeout, max(c.min_timeout, self.srtt + 4 * self.rttvar))

    def answered(self, rtt: float, now: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.misses = 0
        self.next_due = now + self.config.interval

    def missed(self, now: float) -> bool:
        """A heartbeat went unanswered; True when the peer is now considered dead."""
        self.misses += 1
        # retry sooner after a miss: detection within two heartbeats, not two intervals
        self.next_due = now + min(self.config.interval, self.timeout())
        return self.misses >= self.config.misses_allowed


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

    async def _beat(self, conn, timeout: float) -> float:
        if hasattr(conn, "ping_muxer"):
            return await conn.ping_muxer(timeout)
        return await asyncio.wait_for(self.host.ping_on(conn), timeout)

    async def _run(self, conn) -> None:
        state = self.states[conn]
        while not conn.closed:
            await asyncio.sleep(max(0.0, state.next_due - time.monotonic()))
            if conn.closed:
                return
            try:
                rtt = await self._beat(conn, state.timeout())
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
                    self.host._emit("peer:unreachable", peer)
                    return
        finally:
            self._tasks.pop(peer, None)

    async def close(self) -> None:
        for t in list(self._tasks.values()):
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
