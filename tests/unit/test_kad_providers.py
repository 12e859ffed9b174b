"""Provider store: 48 h expiry, 22 h republish of our own keys, bounded keys/records per key."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import UsageError
from darkswap_wasm.identity import PeerId
from darkswap_wasm.protocols.kad import KadConfig, KadPeer, relay_key, sha256_multihash
from darkswap_wasm.protocols.kad_providers import AddOutcome, ProviderStore, Republish
from darkswap_wasm.wire.multiaddr import Multiaddr

HOUR = 3600.0
ADDR = Multiaddr("/ip4/10.0.0.1/tcp/4001")


def _peers(n, seed=7):
    rnd = random.Random(seed)
    return [KadPeer(PeerId(b"\x12\x20" + rnd.randbytes(32)), (ADDR,)) for _ in range(n)]


def test_defaults_follow_spec_r2_48h_expiry_22h_republish():
    cfg = KadConfig()
    assert cfg.provider_ttl == 48 * HOUR
    assert cfg.republish_interval == 22 * HOUR


def test_record_is_served_until_48h_then_expires_and_is_purged_by_the_timer():
    store = ProviderStore()
    (p,) = _peers(1)
    key = relay_key()
    assert store.add(key, p, now=0.0).outcome is AddOutcome.ADDED
    assert store.get(key, now=48 * HOUR - 1) == [p]
    assert store.next_deadline() == 48 * HOUR
    assert store.get(key, now=48 * HOUR) == []  # expired at its deadline, even before the purge
    assert len(store) == 1
    assert store.handle_timeout(48 * HOUR) == []
    assert len(store) == 0 and store.key_count == 0 and store.expired == 1
    assert store.next_deadline() is None


def test_readding_refreshes_expiry_and_addresses():
    store = ProviderStore()
    (p,) = _peers(1)
    key = relay_key()
    store.add(key, p, now=0.0)
    p2 = KadPeer(p.peer_id, (Multiaddr("/ip4/10.0.0.2/tcp/1"),))
    assert store.add(key, p2, now=20 * HOUR).outcome is AddOutcome.REFRESHED
    assert len(store) == 1
    store.handle_timeout(48 * HOUR)  # the first expiry is stale: nothing dropped
    assert store.get(key, now=48 * HOUR) == [p2]
    assert store.next_deadline() == 68 * HOUR
    store.handle_timeout(68 * HOUR)
    assert store.get(key, now=68 * HOUR) == [] and len(store) == 0


def test_full_key_evicts_its_oldest_record_not_another_keys():
    cfg = KadConfig(max_providers_per_key=3)
    store = ProviderStore(cfg)
    ps = _peers(5)
    a, b = sha256_multihash(b"a"), sha256_multihash(b"b")
    store.add(b, ps[4], now=0.0)
    for i in range(3):
        store.add(a, ps[i], now=float(i))
    store.add(a, ps[0], now=5.0)  # refreshed: ps[1] is now the oldest of key a
    res = store.add(a, ps[3], now=6.0)
    assert res.outcome is AddOutcome.ADDED and res.evicted.provider == ps[1]
    assert set(store.get(a, now=7.0)) == {ps[0], ps[2], ps[3]}
    assert store.get(a, now=7.0)[0] == ps[3]  # freshest first
    assert store.get(b, now=7.0) == [ps[4]]
    assert store.evicted == 1


def test_key_limit_refuses_new_keys_but_expired_keys_make_room():
    store = ProviderStore(KadConfig(max_provider_keys=2))
    ps = _peers(3)
    k = [sha256_multihash(bytes([i])) for i in range(3)]
    store.add(k[0], ps[0], now=0.0)
    store.add(k[1], ps[1], now=10 * HOUR)
    assert store.add(k[2], ps[2], now=20 * HOUR).outcome is AddOutcome.REFUSED_KEYS
    assert store.refused == 1 and store.get(k[2], now=20 * HOUR) == []
    assert store.add(k[0], ps[2], now=21 * HOUR).outcome.stored  # existing key: fine
    # at 58 h key 1's only record has expired: a new key fits again
    assert store.add(k[2], ps[2], now=58 * HOUR).outcome is AddOutcome.ADDED
    assert store.key_count == 2


def test_record_limit_refuses_over_the_total():
    store = ProviderStore(KadConfig(max_provider_records=4))
    ps = _peers(6)
    key = relay_key()
    outcomes = [store.add(key, p, now=0.0).outcome for p in ps]
    assert outcomes == [AddOutcome.ADDED] * 4 + [AddOutcome.REFUSED_RECORDS] * 2
    assert len(store) == 4 and store.refused == 2


def test_oversized_key_is_a_usage_error():
    with pytest.raises(UsageError):
        ProviderStore().add(b"x" * 300, _peers(1)[0], now=0.0)


def test_own_key_publishes_now_then_every_22h_and_retries_after_failure():
    store = ProviderStore()
    key = relay_key()
    assert store.provide(key, now=100.0) == [Republish(key)]
    assert store.provide(key, now=101.0) == []  # already providing
    assert store.is_providing(key)
    assert store.next_deadline() is None  # first publish in flight: no timer for it yet
    store.republished(key, now=160.0)
    due = 160.0 + 22 * HOUR
    assert store.next_deadline() == due
    assert store.handle_timeout(due - 1) == []
    assert store.handle_timeout(due) == [Republish(key)]
    assert store.handle_timeout(due + 1) == []  # in flight: asked once
    store.republish_failed(key, now=due + 30)
    assert store.next_deadline() == due + 30 + KadConfig().republish_retry_interval
    assert store.handle_timeout(due + 30 + 600) == [Republish(key)]
    store.republished(key, now=due + 700)
    assert store.next_deadline() == due + 700 + 22 * HOUR
    # republishing every 22 h keeps a 48 h record alive on the remote side
    assert KadConfig().republish_interval + KadConfig().republish_retry_interval < KadConfig().provider_ttl
    assert store.stop_providing(key)
    assert store.next_deadline() is None and store.handle_timeout(10**9) == []


def test_timer_is_earliest_of_expiry_and_republish():
    store = ProviderStore()
    store.add(sha256_multihash(b"x"), _peers(1)[0], now=0.0)
    store.provide(relay_key(), now=0.0)
    store.republished(relay_key(), now=0.0)
    assert store.next_deadline() == 22 * HOUR
    assert store.handle_timeout(22 * HOUR) == [Republish(relay_key())]
    store.republished(relay_key(), now=22 * HOUR)
    assert store.next_deadline() == 44 * HOUR
    store.handle_timeout(44 * HOUR)
    store.republished(relay_key(), now=44 * HOUR)
    assert store.next_deadline() == 48 * HOUR  # the stored record's expiry comes first now


def test_many_refreshes_keep_the_expiry_heap_bounded():
    store = ProviderStore()
    ps = _peers(10)
    key = relay_key()
    for t in range(5000):
        store.add(key, ps[t % 10], now=float(t))
    assert len(store) == 10
    assert len(store._expiry_heap) <= 2 * 10 + 64 + 1
    assert store.next_deadline() == 4990.0 + 48 * HOUR


def test_one_provider_cannot_fill_the_store_and_lock_out_the_relay_key():
    cfg = KadConfig(max_records_per_provider=8, max_provider_keys=16)
    store = ProviderStore(cfg)
    attacker, honest = _peers(2)
    outcomes = [store.add(sha256_multihash(bytes([i])), attacker, now=0.0).outcome for i in range(50)]
    assert outcomes.count(AddOutcome.ADDED) == 8
    assert set(outcomes[8:]) == {AddOutcome.REFUSED_PROVIDER}
    assert store.add(relay_key(), honest, now=1.0).outcome is AddOutcome.ADDED
    assert store.add(sha256_multihash(bytes([0])), attacker, now=2.0).outcome is AddOutcome.REFRESHED
    store.handle_timeout(48 * HOUR + 1.0)  # the attacker's records expire: its quota is back
    assert len(store) == 1
    assert store.add(sha256_multihash(b"later"), attacker, now=48 * HOUR + 1.0).outcome is AddOutcome.ADDED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9), st.floats(0, 5 * 24 * HOUR)), max_size=120))
def test_random_operations_keep_every_bound_and_the_timer_right(ops):
    cfg = KadConfig(max_providers_per_key=3, max_provider_keys=4, max_provider_records=8,
                    max_records_per_provider=3)
    store = ProviderStore(cfg)
    ps = _peers(10, seed=1)
    now = 0.0
    for key_i, peer_i, dt in ops:
        now += dt / 100
        store.add(sha256_multihash(bytes([key_i])), ps[peer_i], now=now)
        assert len(store) <= 8 and store.key_count <= 4
        per_key = {k: len(store.records(sha256_multihash(bytes([k])))) for k in range(6)}
        assert max(per_key.values()) <= 3 and sum(per_key.values()) == len(store)
        per_peer = {}
        for k in range(6):
            for r in store.records(sha256_multihash(bytes([k]))):
                per_peer[r.provider.peer_id] = per_peer.get(r.provider.peer_id, 0) + 1
        assert max(per_peer.values(), default=0) <= 3
        deadline = store.next_deadline()
        live = [r.expires for k in range(6) for r in store.records(sha256_multihash(bytes([k]))) if r.expires > now]
        assert deadline == (min(live) if live else None)
