"""Kademlia lookup over a simulated 200-node network (fake clock), plus codec smoke checks."""

import random

from darkswap_wasm.errors import ProtocolError
from darkswap_wasm.identity import PeerId
from darkswap_wasm.protocols.kad import (
    KadMessage,
    KadMessageReader,
    KadPeer,
    MessageType,
    distance,
    kad_id,
    peer_kad_id,
    relay_key,
)
from darkswap_wasm.protocols.kad_lookup import Lookup
from darkswap_wasm.protocols.kad_routing import RoutingTable

ADDR = "/ip4/1.2.3.4/tcp/4001"


def _network(seed=1, n=200):
    from darkswap_wasm.wire.multiaddr import Multiaddr

    rnd = random.Random(seed)
    peers = [KadPeer(PeerId(b"\x12\x20" + rnd.randbytes(32)), (Multiaddr(ADDR),)) for _ in range(n)]
    tables = {p.peer_id: RoutingTable(p.peer_id) for p in peers}
    for t in tables.values():
        for p in rnd.sample(peers, 40):
            t.add(p)
    return rnd, peers, tables


def test_relay_key_is_sha256_multihash_of_namespace():
    assert relay_key().hex() == "12207277bd2e4b1a814dcacc6faf7e4e2e50bac4a428982a738c2166ba56c6d7c473"


def test_codec_round_trip_and_mutations_give_only_protocol_errors():
    rnd, peers, _ = _network()
    m = KadMessage(MessageType.GET_PROVIDERS, key=relay_key(), closer_peers=tuple(peers[:3]),
                   provider_peers=(peers[5],))
    assert KadMessage.decode_body(m.encode_body()) == m
    assert KadMessageReader().receive_data(m.encode()) == [m]
    for _ in range(2000):
        b = bytearray(m.encode_body())
        for _ in range(3):
            b[rnd.randrange(len(b))] = rnd.getrandbits(8)
        try:
            KadMessage.decode_body(bytes(b))
        except ProtocolError:
            pass


def test_lookup_converges_on_true_k_closest_asking_each_peer_once_with_alpha_3():
    rnd, peers, tables = _network()
    me = PeerId(b"\x12\x20" + rnd.randbytes(32))
    table = RoutingTable(me)
    for p in peers[:10]:
        table.add(p)
    key = relay_key()
    tid = kad_id(key)
    dead = {p.peer_id for p in peers[100:110]}
    lookup = Lookup(key, table.closest(tid), local_peer=me)
    queue, asked, now = list(lookup.start(0.0)), set(), 0.0
    while queue or lookup.in_flight:
        assert lookup.in_flight <= 3
        if not queue:  # only dead peers outstanding: let the clock pass their deadline
            now = lookup.next_deadline()
            queue += lookup.handle_timeout(now)
            continue
        action = queue.pop(0)
        pid = action.peer.peer_id
        assert pid not in asked
        asked.add(pid)
        if pid not in dead:
            queue += lookup.on_response(pid, tables[pid].closest(tid), now=now)
    assert lookup.done
    live = [p for p in peers if p.peer_id not in dead]
    truth = sorted(live, key=lambda p: distance(peer_kad_id(p.peer_id), tid))[:20]
    assert [p.peer_id for p in lookup.result().closest] == [p.peer_id for p in truth]
