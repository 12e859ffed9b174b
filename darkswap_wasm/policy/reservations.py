"""The client side of one circuit relay v2 reservation, as a sans-I/O state machine.

::

    IDLE --start--> CONNECTING --connected--> RESERVING --reserved--> RESERVED
                        ^                         |                   |  (renewals stay RESERVED)
                        |      failed / lost / timeout / expiry       |
                        +------------ BACKOFF <-----------------------+
                                         |  failure after give_up_after retries
                                         +--> FAILED (until start() again)

The I/O layer drives it: feed events (:meth:`start`, :meth:`connected`, :meth:`reserved`,
:meth:`failed`, :meth:`connection_lost`), sleep until :meth:`next_deadline`, call
:meth:`handle_timeout` and perform the :class:`Action` it returns (``DIAL``: get a connection
to the relay, then call ``connected``; ``RESERVE``: send a hop RESERVE on it, then call
``reserved`` or ``failed``). Events that arrive in a state where they mean nothing (a late
reply after a timeout) are ignored.

Timing. ``now`` is monotonic seconds. Each attempt (dial, reserve, renewal) must finish within
``attempt_timeout`` or counts as failed. On success the relay's ``expire`` (unix seconds, the
relay's clock) is converted once, at receipt, into ``remaining = expire_unix - now_unix``;
clock skew between relay and client can make that negative or absurdly large, so:

* renewal is scheduled at ``clamp(0.75 * remaining, min_renew_interval, max_renew_interval)``
  on the monotonic clock — a bogus past ``expire`` renews soon (not in a loop), a far-future
  one still renews every ``max_renew_interval`` (keep it below the relay's real TTL: 30 min
  fits go's and rust's 1 h and js's 2 h);
* the local expiry is ``max(remaining, renew_in + attempt_timeout)`` after receipt: when the
  relay's figure is not credible we assume the reservation lasts until the renewal attempt
  has had its chance. Past the local expiry :meth:`is_reserved` is False, and the machine
  leaves RESERVED (to BACKOFF) at the next :meth:`handle_timeout`.

Failures back off with jitter (:class:`~darkswap_wasm.policy.backoff.Backoff`); a successful
reservation resets the backoff. A lost connection ends the reservation (spec: it is valid
only while the connection to the relay lives).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from ..errors import ConfigError
from ..identity import PeerId
from ..wire.multiaddr import Multiaddr
from .backoff import Backoff


class State(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    RESERVING = "reserving"
    RESERVED = "reserved"
    BACKOFF = "backoff"
    FAILED = "failed"


class Action(enum.Enum):
    DIAL = "dial"
    RESERVE = "reserve"


class ReservationMachine:
    def __init__(
        self,
        relay: PeerId,
        backoff: Backoff | None = None,
        min_renew_interval: float = 5.0,
        max_renew_interval: float = 1800.0,
        attempt_timeout: float = 30.0,
    ) -> None:
        if not 0 < min_renew_interval <= max_renew_interval:
            raise ConfigError("need 0 < min_renew_interval <= max_renew_interval")
        if not attempt_timeout > 0:
            raise ConfigError("attempt_timeout must be > 0")
        self.relay = relay
        self.backoff = backoff if backoff is not None else Backoff()
        self.min_renew_interval = float(min_renew_interval)
        self.max_renew_interval = float(max_renew_interval)
        self.attempt_timeout = float(attempt_timeout)
        self.state = State.IDLE
        self.last_error: str | None = None
        self.reservations_made = 0
        # reservation details (valid in RESERVED)
        self.expires_at_unix: int | None = None
        self.addrs: tuple[Multiaddr, ...] = ()
        self.expires_at: float | None = None  # local, monotonic
        self.renew_at: float | None = None
        # timers
        self._pending: Action | None = None  # an action due at once (handed out by handle_timeout)
        self._pending_at: float | None = None
        self._attempt_deadline: float | None = None  # the running dial/reserve/renewal must end by then
        self._retry_at: float | None = None  # BACKOFF ends
        self._renewing = False

    # -- events ------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Begin (or, from FAILED/IDLE, begin again): the next action is DIAL."""
        if self.state not in (State.IDLE, State.FAILED):
            return
        self.backoff.reset()
        self.last_error = None
        self._to_connecting(now, pending=True)

    def stop(self) -> None:
        """Forget everything and go IDLE (the I/O layer closes what it opened)."""
        self.state = State.IDLE
        self._clear_reservation()
        self._clear_timers()

    def connected(self, now: float) -> None:
        """The connection to the relay is up: the next action is RESERVE."""
        if self.state is not State.CONNECTING:
            return
        self.state = State.RESERVING
        self._pending, self._pending_at = Action.RESERVE, now
        self._attempt_deadline = now + self.attempt_timeout

    def reserved(
        self, now_mono: float, now_unix: float, expire_unix: int, addrs: Iterable[Multiaddr] = ()
    ) -> None:
        """The relay answered STATUS OK with a reservation expiring at ``expire_unix``."""
        if not (self.state is State.RESERVING or (self.state is State.RESERVED and self._renewing)):
            return
        remaining = float(expire_unix) - float(now_unix)
        renew_in = min(max(0.75 * remaining, self.min_renew_interval), self.max_renew_interval)
        lifetime = max(remaining, renew_in + self.attempt_timeout)
        self.state = State.RESERVED
        self.expires_at_unix = int(expire_unix)
        self.addrs = tuple(addrs)
        self.expires_at = now_mono + lifetime
        self.renew_at = now_mono + renew_in
        self.reservations_made += 1
        self.last_error = None
        self._clear_timers()
        self.backoff.reset()

    def failed(self, now: float, reason: str = "failed") -> None:
        """The running dial or reservation (or renewal) failed."""
        if self.state in (State.CONNECTING, State.RESERVING, State.RESERVED):
            self._fail(now, reason)

    def connection_lost(self, now: float) -> None:
        """The connection to the relay closed: any reservation on it is gone."""
        if self.state in (State.CONNECTING, State.RESERVING, State.RESERVED):
            self._fail(now, "connection to the relay lost")

    # -- timers ------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        s = self.state
        if s in (State.CONNECTING, State.RESERVING):
            return self._pending_at if self._pending is not None else self._attempt_deadline
        if s is State.BACKOFF:
            return self._retry_at
        if s is State.RESERVED:
            candidates = [self.expires_at]
            candidates.append(self._attempt_deadline if self._renewing else self.renew_at)
            return min(c for c in candidates if c is not None)
        return None

    def handle_timeout(self, now: float) -> Action | None:
        """Advance timers to ``now``; returns what the I/O layer must do next, if anything."""
        s = self.state
        if s in (State.CONNECTING, State.RESERVING):
            if self._pending is not None:
                action, self._pending, self._pending_at = self._pending, None, None
                return action
            if self._attempt_deadline is not None and now >= self._attempt_deadline:
                self._fail(now, "dial timed out" if s is State.CONNECTING else "reservation timed out")
            return None
        if s is State.BACKOFF:
            if self._retry_at is not None and now >= self._retry_at:
                self._to_connecting(now, pending=False)
                return Action.DIAL
            return None
        if s is State.RESERVED:
            if self.expires_at is not None and now >= self.expires_at:
                self._fail(now, "reservation expired without renewal")
                return None
            if self._renewing:
                if self._attempt_deadline is not None and now >= self._attempt_deadline:
                    self._fail(now, "renewal timed out")
                return None
            if self.renew_at is not None and now >= self.renew_at:
                self._renewing = True
                self._attempt_deadline = now + self.attempt_timeout
                return Action.RESERVE
        return None

    # -- views -------------------------------------------------------------------------------
    def is_reserved(self, now: float) -> bool:
        return self.state is State.RESERVED and self.expires_at is not None and now < self.expires_at

    @property
    def renewing(self) -> bool:
        return self.state is State.RESERVED and self._renewing

    # -- internals ---------------------------------------------------------------------------
    def _to_connecting(self, now: float, *, pending: bool) -> None:
        self.state = State.CONNECTING
        self._clear_timers()
        self._pending = Action.DIAL if pending else None
        self._pending_at = now if pending else None
        self._attempt_deadline = now + self.attempt_timeout

    def _fail(self, now: float, reason: str) -> None:
        self.last_error = reason
        self._clear_reservation()
        self._clear_timers()
        if self.backoff.exhausted:  # give_up_after retries were already spent
            self.state = State.FAILED
            return
        self.state = State.BACKOFF
        self._retry_at = now + self.backoff.next_delay()

    def _clear_timers(self) -> None:
        self._pending = None
        self._pending_at = None
        self._attempt_deadline = None
        self._retry_at = None
        self._renewing = False

    def _clear_reservation(self) -> None:
        self.expires_at_unix = None
        self.addrs = ()
        self.expires_at = None
        self.renew_at = None

    def __repr__(self) -> str:
        return f"ReservationMachine({self.relay}, {self.state.value})"
