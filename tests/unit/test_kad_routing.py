"""Kademlia routing table: k = 20 XOR buckets, replacement cache, relay-only refusal, random walk."""

import random

import pytest

from darkswap_wasm.identity import PeerId
from darkswap_wasm.protocols.kad import KadConfig, KadPeer, distance, kad_id, peer_kad_id
from darkswap_wasm.protocols.kad_routing import (
    MAX_REFRESH_BUCKET,
    RefreshSchedule,
    RoutingTable,
    bucket_index,
    is_relay_only,
    random_key_for_bucket,
)
from darkswap_wasm.wire.multiaddr import Multiaddr

ADDR = Multiaddr("/ip4/10.0.0.1/tcp/4001")
RELAYED = Multiaddr("/ip4/10.0.0.9/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit")


def _peer(rnd, addrs=(ADDR,)):
    return KadPeer(PeerId(b"\x12\x20" + rnd.randbytes(32)), tuple(addrs))


def test_buckets_hold_k_by_common_prefix_and_closest_matches_brute_force():
    rnd = random.Random(1)
    me = _peer(rnd).peer_id
    table = RoutingTable(me)
    peers = [_peer(rnd) for _ in range(600)]
    for p in peers:
        table.add(p)
    by_bucket = {}
    for p in peers:
        by_bucket.setdefault(bucket_index(table.local_id, peer_kad_id(p.peer_id)), []).append(p)
    for idx, members in by_bucket.items():
        assert len(table.bucket(idx)) == min(20, len(members))
        assert all(bucket_index(table.local_id, peer_kad_id(p.peer_id)) == idx for p in table.bucket(idx))
    assert len(table.bucket(0)) == 20 and len(table.replacements(0)) == 20  # ~300 wanted bucket 0
    tid = kad_id(b"target")
    truth = sorted(table.peers(), key=lambda p: distance(peer_kad_id(p.peer_id), tid))[:20]
    assert table.closest(tid) == truth


def test_full_bucket_parks_newcomer_and_dead_entry_is_replaced_by_freshest():
    rnd = random.Random(2)
    me = _peer(rnd).peer_id
    table = RoutingTable(me, KadConfig(k=2, replacement_cache_size=2))
    local = table.local_id
    bucket0 = []
    while len(bucket0) < 5:
        p = _peer(rnd)
        if bucket_index(local, peer_kad_id(p.peer_id)) == 0:
            bucket0.append(p)
    a, b, c, d, e = bucket0
    assert table.add(a).added and table.add(b).added
    res = table.add(c)
    assert not res.added and res.pending and res.ping == a.peer_id  # ask the caller to ping a
    table.add(d)
    table.add(e)  # cache of 2: c is dropped, d and e wait
    assert [p.peer_id for p in table.replacements(0)] == [d.peer_id, e.peer_id]
    table.mark_alive(a.peer_id)  # a answered the ping: b is now the oldest
    assert [p.peer_id for p in table.bucket(0)] == [b.peer_id, a.peer_id]
    assert table.mark_failed(b.peer_id) == e.peer_id
    assert [p.peer_id for p in table.bucket(0)] == [a.peer_id, e.peer_id]
    assert b.peer_id not in table and e.peer_id in table
    assert table.mark_failed(a.peer_id) == d.peer_id
    assert table.mark_failed(d.peer_id) is None and len(table) == 1


def test_self_and_relay_only_peers_are_refused():
    rnd = random.Random(3)
    me = _peer(rnd)
    table = RoutingTable(me.peer_id)
    assert table.add(me).refused == "self"
    assert table.add(_peer(rnd, (RELAYED,))).refused == "relay-only"
    assert table.add(_peer(rnd, ())).refused == "relay-only"
    mixed = _peer(rnd, (RELAYED, ADDR))
    assert table.add(mixed).added  # one direct address is enough
    assert is_relay_only([RELAYED]) and not is_relay_only([RELAYED, ADDR])
    assert len(table) == 1


@pytest.mark.parametrize("index", [0, 1, 3, 8])
def test_random_key_for_bucket_lands_in_that_bucket_and_is_reproducible(index):
    local = kad_id(b"me")
    k1 = random_key_for_bucket(local, index, random.Random(9).randbytes)
    k2 = random_key_for_bucket(local, index, random.Random(9).randbytes)
    assert k1 == k2 and k1[:2] == b"\x12\x20" and len(k1) == 34
    assert bucket_index(local, kad_id(k1)) == index
    assert random_key_for_bucket(local, index, random.Random(10).randbytes) != k1


def test_random_key_for_too_deep_a_bucket_is_refused():
    with pytest.raises(ValueError):
        random_key_for_bucket(kad_id(b"me"), MAX_REFRESH_BUCKET + 1, random.Random(1).randbytes)


def test_refresh_schedule_walks_each_stale_bucket_once_and_never_loops_on_failure():
    rnd = random.Random(4)
    me = _peer(rnd).peer_id
    table = RoutingTable(me)
    for _ in range(100):
        table.add(_peer(rnd))
    deepest = min(max(table.non_empty_buckets()), MAX_REFRESH_BUCKET)
    sched = RefreshSchedule(table, now=0.0)
    assert sched.next_deadline() == 0.0
    due = sched.handle_timeout(0.0)
    assert due == list(range(deepest + 1))
    assert sched.handle_timeout(1.0) == [] and sched.next_deadline() is None  # all in flight
    for idx in due[1:]:
        key = random_key_for_bucket(table.local_id, idx, rnd.randbytes)
        sched.lookup_done(kad_id(key), now=5.0)
    sched.walk_failed(0, now=6.0)
    interval = KadConfig().refresh_interval
    assert sched.next_deadline() == 5.0 + interval
    assert sched.handle_timeout(5.0 + interval) == list(range(1, deepest + 1))
    assert sched.handle_timeout(6.0 + interval) == [0]  # the failed one, one interval later
