"""Connection limits, the handshake token bucket and the idle rule (issue 12, attack 3).

Plain calls with a hand-driven clock: ``now`` is a number the tests advance. Keys stand for the
host's connection objects (any hashable). Pure: runs in Pyodide too.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ConfigError
from darkswap_wasm.policy.conn_limits import (
    CONNECTIONS_PER_IP,
    CONNECTIONS_PER_PEER,
    HANDSHAKE_RATE,
    PENDING_PER_IP,
    PENDING_TOTAL,
    ConnectionLimits,
    ConnLimitsConfig,
    IdleTimer,
    TokenBucket,
    ip_scope,
)

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True)
T0 = 1000.0
A = "203.0.113.7"
B = "198.51.100.9"


def limits(**kw) -> ConnectionLimits:
    return ConnectionLimits(ConnLimitsConfig(**kw))


def test_defaults_are_the_documented_ones() -> None:
    cfg = ConnLimitsConfig()
    assert (cfg.max_pending_per_ip, cfg.max_pending) == (8, 64)
    assert (cfg.max_connections_per_ip, cfg.max_connections_per_peer) == (32, 8)
    assert (cfg.handshake_rate_per_ip, cfg.handshake_burst_per_ip) == (10.0, 20)
    assert cfg.exempt == ("127.0.0.1/32", "::1/128")
    # one peer reconnecting must never meet the per-IP limit before its own per-peer rule
    assert cfg.max_connections_per_ip > cfg.max_connections_per_peer


@pytest.mark.parametrize(
    "kw", [{"max_pending_per_ip": 0}, {"max_pending": 0}, {"max_connections_per_peer": 0},
           {"handshake_rate_per_ip": -1}, {"handshake_burst_per_ip": 0}, {"exempt": ("not-a-net",)}]
)
def test_bad_config_is_refused(kw) -> None:
    with pytest.raises(ConfigError):
        ConnLimitsConfig(**kw)


def test_ip_scope_is_the_ipv4_address_or_the_ipv6_slash_64() -> None:
    assert ip_scope("203.0.113.7") == "203.0.113.7"
    assert ip_scope("2001:db8:1:2:aaaa::1") == ip_scope("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert ip_scope("2001:db8:1:3::1") != ip_scope("2001:db8:1:2::1")
    assert ip_scope("::ffff:203.0.113.7") == "203.0.113.7"


def test_pending_per_ip_refuses_the_next_one_before_any_handshake() -> None:
    lim = limits(max_pending_per_ip=3)
    for i in range(3):
        assert lim.inbound(("a", i), A, T0).admitted
    verdict = lim.inbound(("a", 3), A, T0)
    assert verdict.refused == PENDING_PER_IP and verdict.evict == ()
    assert lim.inbound(("b", 0), B, T0).admitted  # another IP is not affected
    assert lim.pending_from(A) == 3 and lim.pending == 4
    lim.closed(("a", 0))  # one handshake ended (failed): room for one more
    assert lim.inbound(("a", 4), A, T0).admitted
    assert lim.refused[PENDING_PER_IP] == 1


def test_a_finished_handshake_frees_its_pending_slot_and_counts_per_ip() -> None:
    lim = limits(max_pending_per_ip=2, max_connections_per_ip=3)
    assert lim.inbound("r1", A, T0).admitted
    assert lim.established("c1", "peer1", pending_key="r1") == ()
    assert lim.pending_from(A) == 0 and lim.connections_from(A) == 1
    assert lim.inbound("r2", A, T0).admitted
    assert lim.inbound("r3", A, T0).admitted
    # 1 established + 2 pending = the per-IP limit of 3
    assert lim.inbound("r4", A, T0).refused in (PENDING_PER_IP, CONNECTIONS_PER_IP)
    lim.established("c2", "peer2", pending_key="r2")
    lim.established("c3", "peer3", pending_key="r3")
    assert lim.inbound("r5", A, T0).refused == CONNECTIONS_PER_IP
    lim.closed("c1")
    assert lim.connections_from(A) == 2
    assert lim.inbound("r6", A, T0).admitted


def test_pending_total_closes_the_oldest_handshake_of_the_ip_holding_the_most() -> None:
    lim = limits(max_pending=4, max_pending_per_ip=3)
    assert lim.inbound("honest", A, T0).admitted  # the oldest, but its IP holds only this one
    for i in range(3):
        assert lim.inbound(("flood", i), B, T0).admitted
    verdict = lim.inbound("new", "192.0.2.1", T0)
    assert verdict.admitted and verdict.evict == (("flood", 0),)
    assert lim.pending_from(A) == 1 and lim.pending_from(B) == 2


def test_pending_total_closes_the_oldest_handshake_not_the_new_one() -> None:
    lim = limits(max_pending=3)
    ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"]
    for i, ip in enumerate(ips[:3]):
        assert lim.inbound(i, ip, T0).admitted
    verdict = lim.inbound(3, ips[3], T0)
    assert verdict.admitted and verdict.evict == (0,)  # the oldest half-open one goes
    assert lim.pending == 3 and lim.pending_from(ips[0]) == 0
    lim.closed(0)  # the host closed it: nothing left to forget
    lim.established("c1", "p1", pending_key=1)  # 1 finished its handshake
    assert lim.inbound(4, ips[4], T0).evict == ()  # room again
    assert lim.refused[PENDING_TOTAL] == 1


def test_handshake_rate_per_ip_is_a_token_bucket() -> None:
    lim = limits(handshake_rate_per_ip=10, handshake_burst_per_ip=20, max_pending_per_ip=1000,
                 max_connections_per_ip=1000, max_pending=1000)
    admitted = 0
    for i in range(100):  # a flood at one instant: the burst gets in
        v = lim.inbound(i, A, T0)
        if v.admitted:
            admitted += 1
            lim.closed(i)  # garbage: the handshake fails at once
    assert admitted == 20 and lim.refused[HANDSHAKE_RATE] == 80
    assert lim.inbound("other", B, T0).admitted  # another IP has its own bucket
    # then 10 a second
    now = T0 + 1.0
    got = sum(1 for i in range(50) if lim.inbound(("t", i), A, now).admitted)
    assert got == 10
    # a refused connection spends no token: counts are checked first
    lim2 = limits(max_pending_per_ip=1, handshake_burst_per_ip=2, handshake_rate_per_ip=1)
    assert lim2.inbound("x", A, T0).admitted
    for i in range(10):
        assert lim2.inbound(i, A, T0).refused == PENDING_PER_IP
    lim2.closed("x")
    assert lim2.inbound("y", A, T0).admitted  # the second token of the burst is still there


def test_zero_rate_is_unlimited() -> None:
    lim = limits(handshake_rate_per_ip=0, max_pending_per_ip=10_000, max_connections_per_ip=10_000,
                 max_pending=10_000)
    for i in range(1000):
        assert lim.inbound(i, A, T0).admitted
        lim.closed(i)
    assert lim.tracked_ips == 0


def test_exempt_networks_skip_the_per_ip_rules_and_the_pending_total() -> None:
    lim = limits(max_pending_per_ip=2, max_pending=2, handshake_burst_per_ip=1, handshake_rate_per_ip=1)
    for i in range(50):
        v = lim.inbound(("lo", i), "127.0.0.1", T0)
        assert v.admitted and v.evict == ()
    assert lim.inbound(("v6", 0), "::1", T0).admitted
    # exempt pending ones are never evicted for strangers, and do not fill the total for them
    assert lim.inbound("s1", A, T0).admitted
    assert lim.inbound("s2", B, T0).admitted
    assert lim.inbound("s3", "192.0.2.1", T0).evict == ("s1",)
    # 127.0.0.2 is loopback too but not in the default exemption (the tests attack from it)
    assert not lim.is_exempt("127.0.0.2") and lim.is_exempt("::ffff:127.0.0.1")
    assert limits(exempt=()).is_exempt("127.0.0.1") is False


def test_connections_without_an_ip_have_no_ip_scope_but_count_in_the_total() -> None:
    lim = limits(max_pending_per_ip=1, max_pending=2)
    assert lim.inbound("relayed1", None, T0).admitted
    assert lim.inbound("relayed2", None, T0).admitted  # no per-IP limit for relayed connections
    assert lim.inbound("relayed3", None, T0).evict == ("relayed1",)


def test_per_peer_limit_closes_the_peers_oldest_idle_connection_for_the_new_one() -> None:
    lim = limits(max_connections_per_peer=3)
    busy = {"c1"}
    for key in ("c1", "c2", "c3"):
        assert lim.established(key, "peer", idle=lambda k: k not in busy) == ()
    # a reconnect (its old connections not noticed dead yet) gets in; the oldest idle one goes
    assert lim.established("c4", "peer", idle=lambda k: k not in busy) == ("c2",)
    assert lim.connections_of("peer") == 3
    assert lim.refused[CONNECTIONS_PER_PEER] == 1
    # none idle: the oldest goes (only the peer itself can prove its ID: it hurts nobody else)
    busy = {"c1", "c3", "c4"}
    assert lim.established("c5", "peer", idle=lambda k: k not in busy) == ("c1",)
    assert lim.established("x1", "other", idle=lambda k: True) == ()  # other peers are untouched
    lim.closed("c2")  # the evicted one's close arrives later: already forgotten
    assert lim.connections_of("peer") == 3


def test_per_peer_eviction_frees_the_evicted_ones_ip_slot() -> None:
    lim = limits(max_connections_per_peer=2, max_connections_per_ip=3, max_pending_per_ip=8)
    for i in range(2):
        lim.inbound(("r", i), A, T0)
        lim.established(("c", i), "peer", pending_key=("r", i))
    assert lim.connections_from(A) == 2
    lim.inbound(("r", 2), A, T0)
    assert lim.established(("c", 2), "peer", pending_key=("r", 2)) == (("c", 0),)
    assert lim.connections_from(A) == 2


def test_bucket_table_stays_bounded_and_forgets_refilled_buckets_first() -> None:
    lim = limits(max_tracked_ips=4, handshake_rate_per_ip=1, handshake_burst_per_ip=2)
    for i in range(4):
        ip = f"192.0.2.{i}"
        assert lim.inbound(i, ip, T0).admitted
        lim.closed(i)
    assert lim.tracked_ips == 4
    # 10 s later every bucket is full again: dropping them loses nothing
    assert lim.inbound("new", "192.0.2.200", T0 + 10).admitted
    assert lim.tracked_ips == 1
    for i in range(100):  # far more IPs than the table holds
        lim.inbound(("m", i), f"198.51.100.{i}", T0 + 10)
        lim.closed(("m", i))
    assert lim.tracked_ips <= 4


def test_token_bucket() -> None:
    b = TokenBucket(rate=2, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(0.4) and b.take(0.5)
    assert not b.full(1.0) and b.full(2.0)
    assert b.take(100.0) and b.tokens == 2.0  # capped at the burst, never above
    b2 = TokenBucket(rate=1, burst=1, now=10.0)
    assert b2.take(5.0)  # a clock that went backwards grants nothing extra
    assert not b2.take(5.0)


def test_idle_timer_closes_after_timeout_without_activity() -> None:
    t = IdleTimer(120.0, T0)
    assert t.deadline == T0 + 120
    assert not t.expired(T0 + 119.9, busy=False)
    assert t.expired(T0 + 120, busy=False)


def test_idle_timer_activity_moves_the_deadline_and_a_busy_connection_gets_another_period() -> None:
    t = IdleTimer(10.0, T0)
    t.activity(T0 + 5)  # a stream opened or ended
    assert t.deadline == T0 + 15
    assert not t.expired(T0 + 10, busy=False)  # the timer fired early: sleep on to the deadline
    assert not t.expired(T0 + 15, busy=True)  # a stream is open (or a reservation)
    assert t.deadline == T0 + 25
    assert t.expired(T0 + 25, busy=False)
    t.activity(T0 - 100)  # an old time never moves the deadline back
    assert t.deadline == T0 + 25
    with pytest.raises(ConfigError):
        IdleTimer(0, T0)


OPS = st.lists(
    st.tuples(st.sampled_from(["in", "up", "close"]), st.integers(0, 30), st.sampled_from([A, B, "127.0.0.1", None]),
              st.integers(0, 3), st.floats(0, 5)),
    max_size=200,
)


@FUZZ
@given(OPS)
def test_counts_never_go_negative_or_over_the_limits(ops) -> None:
    cfg = ConnLimitsConfig(max_pending_per_ip=3, max_pending=5, max_connections_per_ip=6, max_connections_per_peer=2,
                           handshake_rate_per_ip=2, handshake_burst_per_ip=4)
    lim = ConnectionLimits(cfg)
    now = T0
    pending: dict[int, str | None] = {}
    conns: set[tuple] = set()
    for op, key, ip, peer, dt in ops:
        now += dt
        if op == "in" and key not in pending:
            v = lim.inbound(key, ip, now)
            for old in v.evict:
                del pending[old]
            if v.admitted:
                pending[key] = ip
        elif op == "up" and key in pending:
            del pending[key]
            evicted = lim.established(("c", key), peer, pending_key=key)
            conns.add(("c", key))
            conns.difference_update(evicted)
        elif op == "close":
            lim.closed(key)
            pending.pop(key, None)
            lim.closed(("c", key))
            conns.discard(("c", key))
        assert lim.pending == len(pending)
        assert all(lim.connections_of(p) <= cfg.max_connections_per_peer for p in range(4))
        for src in (A, B):
            assert 0 <= lim.pending_from(src) <= cfg.max_pending_per_ip
            assert 0 <= lim.pending_from(src) + lim.connections_from(src) <= cfg.max_connections_per_ip
        assert sum(1 for src in pending.values() if src != "127.0.0.1") <= cfg.max_pending
    for key in list(pending):
        lim.closed(key)
    for key in list(conns):
        lim.closed(key)
    assert lim.pending == 0 and lim.connections_from(A) == lim.connections_from(B) == 0
    assert all(lim.connections_of(p) == 0 for p in range(4))
