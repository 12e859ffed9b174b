"""A simulated 200-node Kademlia network on a fake clock: every request goes through the codec
(bytes) into the remote node's KadServerStream and back, with per-node latency. Some nodes are
dead (never answer: the lookup's timer fires), some refuse connections (immediate failure), some
answer only after the request timeout (late: ignored), and some are clients (they query, they are
in nobody's table). Lookups (alpha = 3, done when the k closest have answered) must find exactly
the k closest responsive servers, checked by brute force for many random targets."""

import heapq
import random

from darkswap_wasm.identity import PeerId
from darkswap_wasm.protocols.kad import (
    PROTOCOL_ID,
    KadConfig,
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
from darkswap_wasm.protocols.kad_providers import ProviderStore, add_provider_message
from darkswap_wasm.protocols.kad_routing import RoutingTable
from darkswap_wasm.protocols.kad_server import KadServer, KadServerStream
from darkswap_wasm.wire.multiaddr import Multiaddr

N = 200
CFG = KadConfig()  # k = 20, alpha = 3, request_timeout = 10 s


class Node:
    def __init__(self, i, rnd, client=False):
        self.peer = KadPeer(PeerId(b"\x12\x20" + rnd.randbytes(32)),
                            (Multiaddr(f"/ip4/10.{i // 250}.{i % 250}.1/tcp/4001"),))
        self.id = self.peer.peer_id
        self.config = KadConfig(client_mode=client)
        self.table = RoutingTable(self.id, self.config)
        self.providers = ProviderStore(self.config)
        self.server = KadServer(self.id, self.table, self.providers, self.config, self.peer.addrs)
        self.protocols = ["/ipfs/id/1.0.0"] + ([] if client else [PROTOCOL_ID])
        self.behaviour = "ok"  # ok | dead | refuse | slow
        self.latency = rnd.uniform(0.005, 0.3)


class Net:
    def __init__(self, seed, n=N, n_clients=10):
        self.rnd = random.Random(seed)
        self.nodes = [Node(i, self.rnd, client=i >= n - n_clients) for i in range(n)]
        self.by_id = {nd.id: nd for nd in self.nodes}
        for nd in self.nodes:  # identify with everyone, in random order: only servers get in
            for other in self.rnd.sample(self.nodes, len(self.nodes)):
                if other is not nd:
                    nd.table.add_if_server(other.peer, other.protocols)
        self.now = 0.0
        self.stats = {"requests": 0, "max_in_flight": 0}

    def servers(self):
        return [nd for nd in self.nodes if not nd.config.client_mode]

    def lookup(self, origin, key, kind=MessageType.FIND_NODE):
        """Run one lookup from ``origin`` to completion on the fake clock."""
        lk = Lookup(key, origin.table.closest(kad_id(key)), local_peer=origin.id, kind=kind, config=CFG)
        events = []  # (time, seq, kind, peer, message-bytes)
        seq = 0
        asked = set()

        def send(actions):
            nonlocal seq
            for a in actions:
                pid = a.peer.peer_id
                assert pid not in asked, "a peer was asked twice"
                asked.add(pid)
                self.stats["requests"] += 1
                target = self.by_id[pid]
                seq += 1
                if target.behaviour == "dead":
                    continue  # silence: only the lookup's own timer ends it
                if target.behaviour == "refuse":
                    heapq.heappush(events, (self.now + 0.001, seq, "fail", pid, b""))
                    continue
                stream = KadServerStream(target.server, origin.id)
                stream.receive_data(a.message.encode(), self.now)
                delay = 2 * target.latency + (CFG.request_timeout if target.behaviour == "slow" else 0.0)
                heapq.heappush(events, (self.now + delay, seq, "reply", pid, stream.data_to_send()))
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], lk.in_flight)
            assert lk.in_flight <= CFG.alpha

        send(lk.start(self.now))
        while not lk.done:
            deadline = lk.next_deadline()
            if events and (deadline is None or events[0][0] < deadline):
                self.now, _, what, pid, data = heapq.heappop(events)
                if what == "fail":
                    send(lk.on_failure(pid, now=self.now))
                else:
                    (resp,) = KadMessageReader().receive_data(data)
                    send(lk.on_message(pid, resp, now=self.now))
            else:
                assert deadline is not None, "lookup stalled with nothing in flight"
                self.now = deadline
                send(lk.handle_timeout(self.now))
        return lk

    def purge(self, gone):
        """``gone`` died long ago: every table's maintenance has found out (ping failed) and the
        replacement caches filled the holes, as over a real network's uptime."""
        gone_ids = {nd.id for nd in gone}
        self.replaced = 0
        for nd in gone:
            nd.behaviour = "dead"
        for nd in self.nodes:
            while True:
                stale = [p.peer_id for p in nd.table.peers() if p.peer_id in gone_ids]
                if not stale:
                    break
                for pid in stale:
                    self.replaced += nd.table.mark_failed(pid) is not None
        self.gone = gone_ids

    def truth(self, key, exclude=(), n=20):
        """The n closest servers by brute force: every server still in the tables."""
        tid = kad_id(key)
        skip = set(exclude) | getattr(self, "gone", set())
        ids = [nd.id for nd in self.servers() if nd.id not in skip]
        return sorted(ids, key=lambda p: distance(peer_kad_id(p), tid))[:n]

    def check(self, lk, origin, key):
        """The lookup asked every one of the true k closest; the responsive ones are exactly
        the nearest entries of its result, in order; the failures are exactly the rest."""
        truth = self.truth(key, exclude=[origin.id])
        live = [p for p in truth if self.by_id[p].behaviour == "ok"]
        got = [p.peer_id for p in lk.result().closest]
        assert got[: len(live)] == live
        assert all(lk.state_of(p) is not None for p in truth)
        assert {p for p in truth if lk.state_of(p).value == "failed"} == set(truth) - set(live)
        return len(truth) - len(live)


def test_lookups_converge_exactly_on_the_true_k_closest_after_old_failures_were_replaced():
    net = Net(seed=10)
    net.purge(net.rnd.sample(net.servers(), 25))  # 25 of 190 servers died long ago
    assert net.replaced > 100  # the replacement caches filled the dead entries' places
    origins = [nd for nd in net.nodes if nd.behaviour == "ok"]
    for _ in range(60):
        key = b"\x12\x20" + net.rnd.randbytes(32)
        origin = net.rnd.choice(origins)
        lk = net.lookup(origin, key)
        assert [p.peer_id for p in lk.result().closest] == net.truth(key, exclude=[origin.id])
        assert lk.failed() == []


def test_lookups_with_fresh_dead_refusing_and_slow_nodes_still_cover_the_true_k_closest():
    net = Net(seed=11)
    net.purge(net.rnd.sample(net.servers(), 10))
    fresh = [s for s in net.servers() if s.behaviour == "ok"]
    for nd in net.rnd.sample(fresh, 12):
        nd.behaviour = net.rnd.choice(["dead", "refuse", "slow"])  # still in every table
    clients = [nd.id for nd in net.nodes if nd.config.client_mode]
    assert all(c not in nd.table for nd in net.nodes for c in clients)
    origins = [nd for nd in net.nodes if nd.behaviour == "ok"]
    met = 0
    for _ in range(60):
        key = b"\x12\x20" + net.rnd.randbytes(32)
        origin = net.rnd.choice(origins)
        start = net.now
        lk = net.lookup(origin, key)
        met += net.check(lk, origin, key)
        assert not {p.peer_id for p in lk.result().closest} & set(clients)
        assert net.now - start < 10 * CFG.request_timeout
    assert met > 0, "no lookup met a failing node among the k closest: the test exercised nothing"
    assert net.stats["max_in_flight"] == CFG.alpha


def test_lookups_from_client_mode_nodes_converge_too():
    net = Net(seed=12)
    net.purge(net.rnd.sample(net.servers(), 20))
    clients = [nd for nd in net.nodes if nd.config.client_mode]
    for _ in range(30):
        key = b"\x12\x20" + net.rnd.randbytes(32)
        lk = net.lookup(net.rnd.choice(clients), key)
        assert [p.peer_id for p in lk.result().closest] == net.truth(key)


def test_provider_record_published_to_k_closest_is_found_from_elsewhere_until_it_expires():
    net = Net(seed=13)
    net.purge(net.rnd.sample(net.servers(), 10))
    key = relay_key()
    relay = next(nd for nd in net.servers() if nd.behaviour == "ok")
    assert relay.providers.provide(key, now=net.now)[0].key == key
    closest = net.lookup(relay, key).result().closest
    assert len(closest) == 20
    add = add_provider_message(key, relay.peer)
    for p in closest:
        reply = net.by_id[p.peer_id].server.handle_request(relay.id, KadMessage.decode_body(add.encode_body()),
                                                           net.now)
        assert reply.stored == 1
    published = net.now
    relay.providers.republished(key, now=published)
    seeker = next(nd for nd in net.nodes if nd.config.client_mode)
    lk = net.lookup(seeker, key, kind=MessageType.GET_PROVIDERS)
    assert [p.peer_id for p in lk.result().providers] == [relay.id]
    assert lk.result().providers[0].addrs == relay.peer.addrs
    # the relay's own timer asks for the republish at 22 h, well before the records' 48 h
    assert relay.providers.next_deadline() == published + 22 * 3600
    net.now = published + 48 * 3600 + 1  # no republish happened: every record expired
    lk = net.lookup(seeker, key, kind=MessageType.GET_PROVIDERS)
    assert lk.result().providers == ()
    assert all(len(net.by_id[p.peer_id].providers.get(key, net.now)) == 0 for p in closest)


def test_wrong_type_answers_fail_the_peer_and_relay_only_closer_peers_are_not_asked():
    net = Net(seed=14, n=40, n_clients=0)
    origin, a, b = net.nodes[:3]
    key = relay_key()
    lk = Lookup(key, [a.peer, b.peer], local_peer=origin.id, config=KadConfig(alpha=2))
    sent = lk.start(0.0)
    assert {r.peer.peer_id for r in sent} == {a.id, b.id}
    assert all(r.message == KadMessage(MessageType.FIND_NODE, key=key) for r in sent)
    assert lk.on_message(a.id, KadMessage(MessageType.GET_PROVIDERS, key=key), now=1.0) == []
    assert lk.state_of(a.id).value == "failed"
    relayed = KadPeer(net.nodes[5].id, (Multiaddr(f"/ip4/10.0.0.9/tcp/1/p2p/{net.nodes[6].id}/p2p-circuit"),))
    no_addr = KadPeer(net.nodes[7].id, ())
    direct = net.nodes[8].peer
    nxt = lk.on_message(b.id, KadMessage(MessageType.FIND_NODE, closer_peers=(relayed, no_addr, direct)), now=1.0)
    assert [r.peer.peer_id for r in nxt] == [direct.peer_id]
    assert lk.state_of(relayed.peer_id) is None and lk.state_of(no_addr.peer_id) is None
