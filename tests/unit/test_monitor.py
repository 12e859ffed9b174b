"""The heartbeat policy: adaptive timeout and dead-peer detection within two heartbeats."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.policy.heartbeat import HeartbeatState, MonitorConfig

CFG = MonitorConfig(interval=5.0, min_timeout=0.5, max_timeout=10.0, initial_timeout=3.0, misses_allowed=2)


def test_first_heartbeat_is_due_one_interval_after_start():
    s = HeartbeatState(CFG, now=100.0)
    assert s.next_due == 105.0
    assert s.timeout() == CFG.initial_timeout


def test_timeout_adapts_to_the_measured_rtt_within_bounds():
    s = HeartbeatState(CFG, now=0.0)
    for i in range(20):
        s.answered(0.002, now=float(i))
    assert s.timeout() == CFG.min_timeout  # a LAN peer: floored at min_timeout
    s2 = HeartbeatState(CFG, now=0.0)
    for i in range(20):
        s2.answered(2.0, now=float(i))
    assert 2.0 <= s2.timeout() <= 3.0
    s3 = HeartbeatState(CFG, now=0.0)
    s3.answered(60.0, now=0.0)
    assert s3.timeout() == CFG.max_timeout


def test_peer_is_dead_after_two_misses_in_a_row_and_a_reply_resets_the_count():
    s = HeartbeatState(CFG, now=0.0)
    assert s.missed(now=5.0) is False
    s.answered(0.1, now=6.0)
    assert s.misses == 0
    assert s.missed(now=11.0) is False
    assert s.missed(now=14.0) is True


def test_after_a_miss_the_next_beat_comes_sooner_than_an_interval():
    s = HeartbeatState(CFG, now=0.0)
    s.answered(0.1, now=5.0)
    s.missed(now=10.0)
    assert s.next_due - 10.0 <= s.timeout() <= CFG.interval


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=1, max_size=50))
def test_timeout_always_within_bounds(rtts):
    s = HeartbeatState(CFG, now=0.0)
    for i, r in enumerate(rtts):
        s.answered(r, now=float(i))
        assert CFG.min_timeout <= s.timeout() <= CFG.max_timeout
