"""Heartbeat policy of one connection, clock-free: when the next heartbeat is due, how long to
wait for its answer (adaptive: a smoothed RTT plus four deviations, as TCP's RTO, within
configured bounds), and when the peer is dead (``misses_allowed`` heartbeats in a row
unanswered: two by default, so a dead peer is noticed within two heartbeats). Times are
arguments; :class:`~darkswap_wasm.host.monitor.ConnectionMonitor` drives it."""

from __future__ import annotations

from dataclasses import dataclass


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
