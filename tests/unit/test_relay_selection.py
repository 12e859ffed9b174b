"""Relay selection policy: SRTT, decayed counts, load, score, power of two choices, backoff,
replacement (reserve new first, then release old)."""

import random

import pytest

from darkswap_wasm.errors import UsageError
from darkswap_wasm.identity import PeerId
from darkswap_wasm.policy.relay_selection import DiscoverySchedule, RelaySelector, Replace, SelectionConfig
from darkswap_wasm.protocols.kad import sha256_multihash
from darkswap_wasm.protocols.relay_info import RelayInfo

RELAYS = [PeerId(sha256_multihash(f"relay {i}".encode())) for i in range(5)]


def _selector(seed=0, config=None, rtts=None):
    sel = RelaySelector(config, rng=random.Random(seed))
    for i, peer in enumerate(RELAYS):
        sel.add(peer)
        if rtts is not None:
            sel.observe_rtt(peer, rtts[i])
    return sel


def test_srtt_follows_rfc6298():
    sel = _selector()
    s = sel.stats(RELAYS[0])
    s.on_rtt(0.100)
    assert (s.srtt, s.rttvar) == (0.100, 0.050)
    s.on_rtt(0.200)
    assert s.rttvar == pytest.approx(0.75 * 0.050 + 0.25 * 0.100)
    assert s.srtt == pytest.approx(0.875 * 0.100 + 0.125 * 0.200)
    for _ in range(100):
        s.on_rtt(0.300)
    assert s.srtt == pytest.approx(0.300, abs=1e-4)
    with pytest.raises(UsageError):
        s.on_rtt(-1.0)
    with pytest.raises(UsageError):
        s.on_rtt(float("nan"))


def test_failure_counts_decay_with_half_life_and_raise_the_score():
    sel = _selector(rtts=[0.05] * 5)
    s = sel.stats(RELAYS[0])
    base = s.score(0.0)
    for t in range(4):
        s.on_failure(float(t))
    assert s.counts(3.0) == (0.0, pytest.approx(4.0, rel=0.01))
    assert s.score(3.0) > 3 * base
    hl = SelectionConfig().count_half_life
    assert s.counts(3.0 + hl)[1] == pytest.approx(s.counts(3.0)[1] / 2)
    assert s.score(3.0 + 10 * hl) == pytest.approx(base, rel=0.02)  # old failures stop mattering


def test_power_of_two_choices_spreads_1000_clients_where_lowest_rtt_herds():
    """1,000 clients arrive one by one; each measures the 5 equal relays (50-52 ms, 3 pings
    each with 0.2 % jitter: the order never changes), reads their load from relay-info (a report
    at most 25 arrivals old), and picks one."""
    true_rtt = [0.050, 0.0505, 0.051, 0.0515, 0.052]
    limit = 400
    one_choice = SelectionConfig(choices=1)  # uniform among the same candidates, for comparison
    p2c, p1c, lowest = [0] * 5, [0] * 5, [0] * 5
    reported = {"p2c": [0] * 5, "p1c": [0] * 5}  # the reservations figures relays last published
    world = random.Random(42)
    for client in range(1000):
        if client % 25 == 0:
            reported = {"p2c": list(p2c), "p1c": list(p1c)}
        for name, counts, cfg in (("p2c", p2c, None), ("p1c", p1c, one_choice)):
            sel = RelaySelector(cfg, rng=random.Random(client))
            for i, peer in enumerate(RELAYS):
                sel.add(peer)
                for _ in range(3):
                    sel.observe_rtt(peer, true_rtt[i] * world.uniform(0.998, 1.002))
                load = RelayInfo(reservations=reported[name][i], reservation_limit=limit).load
                sel.observe_load(peer, load, now=0.0)
            (pick,) = sel.select(1, now=0.0)
            counts[RELAYS.index(pick)] += 1
        best_rtt = min(RELAYS, key=lambda p: sel.stats(p).srtt)
        lowest[RELAYS.index(best_rtt)] += 1
    mean = 1000 / 5
    print(f"p2c spread {p2c} max/mean {max(p2c) / mean:.3f}; one random choice {p1c} "
          f"{max(p1c) / mean:.3f}; lowest-RTT-only {lowest}")
    assert max(p2c) / mean <= 1.15
    assert max(p2c) < max(p1c)  # the second choice is what evens the load
    assert max(lowest) == 1000  # lowest RTT only: every client on the same relay


def test_without_load_reports_near_best_relays_still_share_the_clients():
    """js-libp2p relays send no relay-info: power of two choices falls back to a random one of
    the two sampled near-best relays; a relay outside the margin (RTT 2x) gets nobody."""
    true_rtt = [0.050, 0.0505, 0.051, 0.0515, 0.100]
    counts = [0] * 5
    world = random.Random(7)
    for client in range(1000):
        sel = RelaySelector(rng=random.Random(10_000 + client))
        for i, peer in enumerate(RELAYS):
            sel.add(peer)
            sel.observe_rtt(peer, true_rtt[i] * world.uniform(0.998, 1.002))
        (pick,) = sel.select(1, now=0.0)
        counts[RELAYS.index(pick)] += 1
    mean = 1000 / 4
    print(f"no-load spread {counts} max/mean {max(counts[:4]) / mean:.3f}")
    assert counts[4] == 0
    assert max(counts[:4]) / mean <= 1.15


def test_a_relay_reporting_90_percent_load_is_preferred_less():
    picks = [0] * 3
    for client in range(600):
        sel = RelaySelector(rng=random.Random(client))
        for peer in RELAYS[:3]:
            sel.add(peer)
            sel.observe_rtt(peer, 0.050)
        sel.observe_load(RELAYS[0], RelayInfo(reservations=90, reservation_limit=100).load, now=0.0)
        sel.observe_load(RELAYS[1], RelayInfo(reservations=30, reservation_limit=100).load, now=0.0)
        sel.observe_load(RELAYS[2], RelayInfo(circuits=3, circuit_limit=10).load, now=0.0)
        assert sel.score(RELAYS[0], 0.0) > 2 * sel.score(RELAYS[1], 0.0)
        (pick,) = sel.select(1, now=0.0)
        picks[RELAYS.index(pick)] += 1
    assert picks[0] < picks[1] / 10 and picks[0] < picks[2] / 10
    assert picks[1] > 100 and picks[2] > 100


def test_stale_load_is_forgotten_and_unknown_load_scores_on_rtt_alone():
    sel = _selector(rtts=[0.05] * 5)
    sel.observe_load(RELAYS[0], 0.95, now=0.0)
    assert sel.score(RELAYS[0], 1.0) > sel.score(RELAYS[1], 1.0)
    age = SelectionConfig().load_max_age
    assert sel.score(RELAYS[0], age + 1) == sel.score(RELAYS[1], age + 1) == pytest.approx(0.05)


def test_a_failed_relay_is_not_retried_before_its_backoff_then_can_be():
    cfg = SelectionConfig(backoff_initial=5.0, backoff_jitter=0.0)
    sel = RelaySelector(cfg, rng=random.Random(3))
    fast, slow = RELAYS[0], RELAYS[1]
    sel.add(fast)
    sel.add(slow)
    sel.observe_rtt(fast, 0.010)
    sel.observe_rtt(slow, 0.200)
    assert sel.select(1, now=0.0) == [fast]
    assert sel.record_failure(fast, now=0.0) == 5.0
    assert sel.next_deadline() == 5.0
    for t in (0.0, 1.0, 4.99):
        for _ in range(50):
            assert sel.select(1, now=t) == [slow]
    assert sel.handle_timeout(4.99) == []
    assert sel.handle_timeout(5.0) == [fast] and sel.next_deadline() is None
    assert fast in sel.select(2, now=5.0)
    # a second failure backs off longer; a success resets it
    assert sel.record_failure(fast, now=6.0) == 6.0 + 10.0
    assert sel.select(1, now=15.9) == [slow]
    sel.handle_timeout(16.0)
    sel.record_success(fast, now=16.0)
    assert sel.record_failure(fast, now=17.0) == 17.0 + 5.0


def test_a_dead_held_relay_is_replaced_reserve_new_first():
    sel = _selector(seed=5, rtts=[0.05, 0.06, 0.07, 0.08, 0.09])
    held = [RELAYS[0], RELAYS[1]]
    assert sel.replacements(held, now=0.0) == []
    sel.record_failure(RELAYS[0], now=1.0)  # its reservation was lost
    (rep,) = sel.replacements(held, now=1.0)
    assert rep.release == RELAYS[0] and rep.reason == "dead"
    assert rep.reserve not in held
    assert isinstance(rep, Replace)


def test_a_much_worse_held_relay_is_replaced_a_slightly_worse_one_is_not():
    sel = _selector(seed=6, rtts=[0.05, 0.05, 0.05, 0.05, 0.05])
    held = [RELAYS[0]]
    for _ in range(40):
        sel.observe_rtt(RELAYS[0], 0.070)  # a bit slower: no churn
    assert sel.replacements(held, now=0.0) == []
    for _ in range(60):
        sel.observe_rtt(RELAYS[0], 0.400)  # much slower (e.g. a slow proxy in front of it)
    (rep,) = sel.replacements(held, now=0.0)
    assert rep.release == RELAYS[0] and rep.reason == "worse" and rep.reserve in RELAYS[1:]


def test_no_replacement_when_nothing_better_is_usable():
    sel = RelaySelector(rng=random.Random(1))
    sel.add(RELAYS[0])
    sel.add(RELAYS[1])
    sel.record_failure(RELAYS[0], now=0.0)
    sel.record_failure(RELAYS[1], now=0.0)
    assert sel.replacements([RELAYS[0]], now=1.0) == []  # keep what we have, never zero
    assert sel.select(2, now=1.0) == []


def test_select_holds_n_distinct_relays_and_snapshot_orders_by_score():
    sel = _selector(seed=2, rtts=[0.05, 0.06, 0.07, 0.08, 0.5])
    chosen = sel.select(2, now=0.0)
    assert len(chosen) == 2 and len(set(chosen)) == 2 and RELAYS[4] not in chosen
    assert sel.select(2, now=0.0, held=chosen) == []
    assert sel.select(3, now=0.0, held=chosen[:1])[0] not in chosen[:1]
    snap = sel.snapshot(0.0)
    assert [r.peer for r in snap][-1] == RELAYS[4]
    assert [r.score for r in snap] == sorted(r.score for r in snap)
    with pytest.raises(UsageError):
        sel.stats(PeerId(sha256_multihash(b"unknown")))


def test_sources_merge_into_one_entry_per_relay():
    sel = RelaySelector(rng=random.Random(1))
    sel.add(RELAYS[0], "config")
    sel.add(RELAYS[0], "provider")
    sel.add(RELAYS[1], "identify")
    assert len(sel) == 2
    (s0,) = [r for r in sel.snapshot(0.0) if r.peer == RELAYS[0]]
    assert s0.sources == {"config", "provider"}
    with pytest.raises(UsageError):
        sel.add(RELAYS[2], "rumour")


def test_discovery_never_stops_while_too_few_relays_and_slows_down_when_enough():
    cfg = SelectionConfig(discovery_initial=5.0, discovery_max=300.0, backoff_initial=60.0, backoff_jitter=0.0)
    sel = RelaySelector(cfg, rng=random.Random(2))
    disc = DiscoverySchedule(sel, want=2, now=0.0)  # target: 2 + 2 spare usable relays
    now, gaps = 0.0, []
    while now < 24 * 3600:  # a day with no relay answering
        now = disc.next_deadline()
        assert disc.handle_timeout(now)
        assert disc.next_deadline() is None and not disc.handle_timeout(now + 1e6)  # one at a time
        now += 2.0  # the round takes 2 s and finds nothing
        gaps.append(disc.round_done(now) - now)
    assert gaps[:7] == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0]
    assert set(gaps[7:]) == {300.0}  # capped, never given up
    assert disc.rounds > 280
    for peer in RELAYS[:4]:  # a round finds four relays: enough
        sel.add(peer, "provider")
    assert disc.handle_timeout(disc.next_deadline())
    assert disc.round_done(now + 1) == now + 1 + cfg.discovery_interval
    # a relay fails: 3 usable < 4 wanted, so look again in 5 s instead of in 10 minutes
    sel.record_failure(RELAYS[0], now=now + 10)
    disc.relays_changed(now + 10)
    assert disc.next_deadline() == now + 15
    assert not disc.handle_timeout(now + 14.9) and disc.handle_timeout(now + 15)
    assert disc.round_done(now + 16) == now + 16 + 10.0  # still short: the backoff goes on
