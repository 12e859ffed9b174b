"""Client-side relay reservation machine: dial → reserve → renew, skew, backoff, loss, expiry.

A fake clock only: ``now`` (monotonic) and ``unix`` are numbers the tests advance. Pure: runs
in Pyodide too.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ConfigError
from darkswap_wasm.identity import PeerId
from darkswap_wasm.policy.backoff import Backoff
from darkswap_wasm.policy.reservations import Action, ReservationMachine, State
from darkswap_wasm.wire.multiaddr import Multiaddr

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True)
RELAY = PeerId.from_string("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq")
ADDR = Multiaddr(f"/ip4/1.2.3.4/tcp/4001/p2p/{RELAY}")
T0 = 500.0
U0 = 1_700_000_000


def machine(**kw) -> ReservationMachine:
    kw.setdefault("backoff", Backoff(rng=random.Random(5)))
    return ReservationMachine(RELAY, **kw)


def reserve(m: ReservationMachine, now: float, unix: float, ttl: float) -> None:
    """Drive a fresh machine from IDLE to RESERVED at ``now``."""
    m.start(now)
    assert m.next_deadline() == now
    assert m.handle_timeout(now) is Action.DIAL
    m.connected(now)
    assert m.state is State.RESERVING and m.next_deadline() == now
    assert m.handle_timeout(now) is Action.RESERVE
    m.reserved(now, unix, int(unix + ttl), [ADDR])
    assert m.state is State.RESERVED


def test_happy_path() -> None:
    m = machine()
    assert m.state is State.IDLE and m.next_deadline() is None and m.handle_timeout(T0) is None
    m.start(T0)
    assert m.state is State.CONNECTING
    assert m.handle_timeout(T0) is Action.DIAL
    assert m.handle_timeout(T0 + 1) is None  # dial in progress
    assert m.next_deadline() == T0 + m.attempt_timeout
    m.connected(T0 + 1)
    assert m.handle_timeout(T0 + 1) is Action.RESERVE
    assert m.handle_timeout(T0 + 1) is None
    m.reserved(T0 + 2, U0, U0 + 3600, [ADDR])
    assert m.is_reserved(T0 + 2)
    assert m.expires_at_unix == U0 + 3600 and m.addrs == (ADDR,)
    assert m.reservations_made == 1 and m.last_error is None


def test_reservation_renews_before_expiry() -> None:
    m = machine(max_renew_interval=3600.0)
    reserve(m, T0, U0, 3600)
    # renewal at 3/4 of the 3600 s the relay granted, measured on the monotonic clock
    assert m.renew_at == T0 + 2700 and m.expires_at == T0 + 3600
    assert m.next_deadline() == T0 + 2700
    assert m.handle_timeout(T0 + 2699.9) is None
    assert m.handle_timeout(T0 + 2700) is Action.RESERVE
    assert m.state is State.RESERVED and m.renewing and m.is_reserved(T0 + 2700)
    assert m.next_deadline() == T0 + 2700 + m.attempt_timeout
    # the relay answers; the new expiry counts from now
    m.reserved(T0 + 2701, U0 + 2701, U0 + 2701 + 3600, [ADDR])
    assert not m.renewing and m.renew_at == T0 + 2701 + 2700
    assert m.is_reserved(T0 + 3600 + 1)  # well past the first expiry
    assert m.reservations_made == 2
    # and again
    assert m.handle_timeout(T0 + 2701 + 2700) is Action.RESERVE


def test_default_max_renew_interval_caps_renewal() -> None:
    m = machine()
    reserve(m, T0, U0, 7200)  # js relays grant 2 h
    assert m.renew_at == T0 + 1800 and m.expires_at == T0 + 7200


def test_skew_expire_in_the_past() -> None:
    # the relay's clock is far behind ours: its expire is already in our past
    m = machine()
    m.start(T0)
    m.handle_timeout(T0)
    m.connected(T0)
    m.handle_timeout(T0)
    m.reserved(T0, U0, U0 - 5000, [ADDR])
    assert m.state is State.RESERVED
    assert m.renew_at == T0 + m.min_renew_interval  # soon, but not in a busy loop
    assert m.expires_at == T0 + m.min_renew_interval + m.attempt_timeout
    assert m.is_reserved(T0 + 1)
    assert m.handle_timeout(T0 + m.min_renew_interval) is Action.RESERVE
    m.reserved(T0 + 6, U0 + 6, U0 - 5000)
    assert m.renew_at == T0 + 6 + m.min_renew_interval and m.is_reserved(T0 + 7)


def test_skew_expire_far_in_the_future() -> None:
    m = machine()
    reserve(m, T0, U0, 10 * 365 * 86400)  # relay clock ten years ahead
    assert m.renew_at == T0 + m.max_renew_interval  # still renews regularly
    assert m.handle_timeout(T0 + m.max_renew_interval) is Action.RESERVE


def test_short_reservation_renews_at_three_quarters() -> None:
    m = machine()
    reserve(m, T0, U0, 100)
    assert m.renew_at == T0 + 75
    assert m.expires_at == T0 + 75 + m.attempt_timeout  # max(100, 75 + 30)


def test_expiry_without_renewal_leaves_reserved() -> None:
    m = machine(attempt_timeout=60.0)
    reserve(m, T0, U0, 100)  # renew at 75; expiry max(100, 75 + 60) = 135
    assert m.handle_timeout(T0 + 75) is Action.RESERVE  # sent, but the relay never answers
    assert m.is_reserved(T0 + 134.9)
    assert not m.is_reserved(T0 + 135)  # even before the machine is told the time
    assert m.state is State.RESERVED
    assert m.handle_timeout(T0 + 135) is None
    assert m.state is State.BACKOFF and m.last_error is not None
    assert m.expires_at_unix is None and m.addrs == ()


def test_expiry_when_io_layer_never_acts_on_renewal() -> None:
    m = machine()
    reserve(m, T0, U0, 3600)
    # the I/O layer slept through the renewal and the expiry: expiry wins
    assert not m.is_reserved(T0 + 4000)
    assert m.handle_timeout(T0 + 4000) is None
    assert m.state is State.BACKOFF


def test_renewal_timeout_fails() -> None:
    m = machine()
    reserve(m, T0, U0, 3600)
    assert m.handle_timeout(T0 + 1800) is Action.RESERVE
    assert m.handle_timeout(T0 + 1800 + m.attempt_timeout) is None
    assert m.state is State.BACKOFF and "renewal" in (m.last_error or "")


def test_backoff_after_failure() -> None:
    m = machine()
    m.start(T0)
    m.handle_timeout(T0)
    m.connected(T0)
    m.handle_timeout(T0)
    m.failed(T0 + 1, "RESERVATION_REFUSED")
    assert m.state is State.BACKOFF and m.last_error == "RESERVATION_REFUSED"
    retry = m.next_deadline()
    assert retry is not None and T0 + 1 + 0.4 <= retry <= T0 + 1 + 0.6  # 0.5 s ± 20 %
    assert m.handle_timeout(retry - 0.01) is None
    assert m.handle_timeout(retry) is Action.DIAL
    assert m.state is State.CONNECTING
    assert m.next_deadline() == retry + m.attempt_timeout
    # failing again waits longer: 1 s ± 20 %
    m.failed(retry + 1, "dial failed")
    second = m.next_deadline()
    assert second is not None and retry + 1 + 0.8 <= second <= retry + 1 + 1.2


def test_dial_and_reserve_timeouts_back_off() -> None:
    m = machine()
    m.start(T0)
    assert m.handle_timeout(T0) is Action.DIAL
    assert m.handle_timeout(T0 + m.attempt_timeout) is None
    assert m.state is State.BACKOFF and "dial" in (m.last_error or "")
    retry = m.next_deadline()
    assert m.handle_timeout(retry) is Action.DIAL
    m.connected(retry)
    assert m.handle_timeout(retry) is Action.RESERVE
    m.handle_timeout(retry + m.attempt_timeout)
    assert m.state is State.BACKOFF and "reservation" in (m.last_error or "")


def test_backoff_resets_after_success() -> None:
    m = machine()
    m.start(T0)
    now = T0
    for _ in range(5):  # five failed dials: the backoff grows to ~8 s
        assert m.handle_timeout(now) is Action.DIAL
        m.failed(now, "dial failed")
        now = m.next_deadline()
    assert m.backoff.attempts == 5
    assert m.handle_timeout(now) is Action.DIAL
    m.connected(now)
    m.handle_timeout(now)
    m.reserved(now, U0, U0 + 3600)
    assert m.backoff.attempts == 0
    m.connection_lost(now + 10)
    retry = m.next_deadline()
    assert retry is not None and retry - (now + 10) <= 0.6  # back to the initial delay


def test_reconnect_after_connection_loss() -> None:
    m = machine()
    reserve(m, T0, U0, 3600)
    m.connection_lost(T0 + 100)
    assert m.state is State.BACKOFF and not m.is_reserved(T0 + 100)
    assert m.expires_at_unix is None
    retry = m.next_deadline()
    assert m.handle_timeout(retry) is Action.DIAL
    m.connected(retry + 0.1)
    assert m.handle_timeout(retry + 0.1) is Action.RESERVE
    m.reserved(retry + 0.2, U0 + 101, U0 + 101 + 3600, [ADDR])
    assert m.is_reserved(retry + 1) and m.reservations_made == 2


def test_connection_loss_while_dialing_or_reserving() -> None:
    for step in ("connecting", "reserving"):
        m = machine()
        m.start(T0)
        m.handle_timeout(T0)
        if step == "reserving":
            m.connected(T0)
        m.connection_lost(T0 + 1)
        assert m.state is State.BACKOFF


def test_give_up_after_and_restart() -> None:
    m = machine(backoff=Backoff(give_up_after=2, rng=random.Random(1)))
    m.start(T0)
    now = T0
    for _ in range(2):
        assert m.handle_timeout(now) is Action.DIAL
        m.failed(now, "dial failed")
        assert m.state is State.BACKOFF
        now = m.next_deadline()
    assert m.handle_timeout(now) is Action.DIAL
    m.failed(now, "dial failed")
    assert m.state is State.FAILED and m.next_deadline() is None
    assert m.handle_timeout(now + 1000) is None
    m.start(now + 1000)  # a new start resets the backoff
    assert m.state is State.CONNECTING and m.backoff.attempts == 0
    assert m.handle_timeout(now + 1000) is Action.DIAL


def test_late_and_out_of_state_events_are_ignored() -> None:
    m = machine()
    m.reserved(T0, U0, U0 + 3600)  # never asked
    m.connected(T0)
    m.failed(T0)
    m.connection_lost(T0)
    assert m.state is State.IDLE
    m.start(T0)
    m.reserved(T0, U0, U0 + 3600)  # no RESERVE sent yet
    assert m.state is State.CONNECTING
    m.handle_timeout(T0)
    m.failed(T0, "x")
    m.reserved(T0 + 0.1, U0, U0 + 3600)  # the reply arrived after we gave up on it
    m.connected(T0 + 0.1)
    assert m.state is State.BACKOFF
    m.start(T0 + 0.2)  # already running: no effect
    assert m.state is State.BACKOFF
    reserve(fresh := machine(), T0, U0, 3600)
    fresh.reserved(T0 + 1, U0 + 1, U0 + 9999)  # not renewing: ignored
    assert fresh.expires_at_unix == U0 + 3600


def test_stop() -> None:
    m = machine()
    reserve(m, T0, U0, 3600)
    m.stop()
    assert m.state is State.IDLE and m.next_deadline() is None and not m.is_reserved(T0)
    assert m.handle_timeout(T0 + 10_000) is None


def test_config_errors() -> None:
    with pytest.raises(ConfigError):
        machine(min_renew_interval=0)
    with pytest.raises(ConfigError):
        machine(min_renew_interval=10, max_renew_interval=5)
    with pytest.raises(ConfigError):
        machine(attempt_timeout=0)


EVENTS = st.sampled_from(["start", "connected", "reserved", "failed", "lost", "tick", "stop"])


@FUZZ
@given(
    st.lists(st.tuples(EVENTS, st.floats(0, 5000), st.integers(-10**6, 10**9)), max_size=60),
    st.integers(0, 2**32),
)
def test_property_random_event_sequences(events, seed: int) -> None:
    m = machine(backoff=Backoff(rng=random.Random(seed), give_up_after=20))
    now = T0
    for kind, dt, expire_offset in events:
        now += dt
        if kind == "start":
            m.start(now)
        elif kind == "connected":
            m.connected(now)
        elif kind == "reserved":
            m.reserved(now, U0 + now, U0 + now + expire_offset, [ADDR])
        elif kind == "failed":
            m.failed(now, "x")
        elif kind == "lost":
            m.connection_lost(now)
        elif kind == "stop":
            m.stop()
        else:
            deadline = m.next_deadline()
            if deadline is not None:
                action = m.handle_timeout(max(now, deadline))
                assert action is None or isinstance(action, Action)
        deadline = m.next_deadline()
        if m.state in (State.IDLE, State.FAILED):
            assert deadline is None and not m.is_reserved(now)
        else:
            assert deadline is not None
        if m.state is State.RESERVED:
            assert m.renew_at is not None and m.expires_at is not None
            assert m.renew_at < m.expires_at  # renewal always gets its chance before expiry
            assert m.expires_at_unix is not None
        else:
            assert not m.is_reserved(now)
