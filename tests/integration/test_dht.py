"""The Kademlia DHT service (host/dht.py) between our own nodes on 127.0.0.1: provider records
published by one node are found from others, FIND_NODE converges on the true k closest, client
mode is neither advertised nor put in tables, a dead peer only costs a request timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.host.dht import DhtConfig
from darkswap_wasm.protocols.kad import PROTOCOL_ID, KadConfig, distance, kad_id, peer_kad_id, sha256_multihash

from .helpers import async_test

pytestmark = pytest.mark.native_crypto

N_NODES = 14
K = 4  # small k, so "the k closest" is a real choice among 14 nodes


def node_config(bootstrap=(), mode="server", k=K, request_timeout=5.0) -> NetworkConfig:
    return NetworkConfig(
        listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None, monitor=None, messaging=None,
        bootstrap=[str(b) for b in bootstrap], dht=mode, relay_reservations=0,
        dht_config=DhtConfig(kad=KadConfig(k=k, request_timeout=request_timeout), lookup_timeout=20.0),
    )


async def start_network(n: int = N_NODES, **kw) -> list[Network]:
    """Node 0 first; the others bootstrap through node 0, or (every third) through node 1."""
    nodes = [await Network.create(node_config(**kw))]
    nodes.append(await Network.create(node_config([nodes[0].listen_addrs()[0]], **kw)))
    for i in range(2, n):
        via = nodes[1] if i % 3 == 0 else nodes[0]
        nodes.append(await Network.create(node_config([via.listen_addrs()[0]], **kw)))
    for net in nodes:
        assert await net.dht.wait_bootstrapped(30)
    return nodes


async def close_all(nets) -> None:
    await asyncio.gather(*(n.close() for n in nets), return_exceptions=True)


def true_closest(key: bytes, nets, k: int, exclude) -> list[str]:
    target = kad_id(key)
    peers = [n.local_peer_id() for n in nets if n.local_peer_id() != exclude]
    return [str(p) for p in sorted(peers, key=lambda p: distance(peer_kad_id(p), target))[:k]]


@async_test(timeout=150)
async def test_provider_record_published_by_one_node_is_found_from_another():
    nodes = await start_network()
    client = None
    try:
        key = sha256_multihash(b"darkswap test content")
        provider = nodes[7]
        sent = await provider.dht.publish(key)
        assert sent >= 1  # some of the k closest took the record
        for seeker in (nodes[12], nodes[2], nodes[0]):
            found = await seeker.dht.find_providers(key)
            assert [str(p.peer_id) for p in found] == [str(provider.local_peer_id())]
            [record] = found
            assert provider.listen_addrs()[0].without_p2p() in record.addrs
        # a client-mode node that knows only one bootstrap node finds it too
        client = await Network.create(node_config([nodes[5].listen_addrs()[0]], mode="client"))
        assert await client.dht.wait_bootstrapped(30)
        found = await client.dht.find_providers(key)
        assert [p.peer_id for p in found] == [provider.local_peer_id()]
        # an unknown key has no providers (and the lookup ends: every close peer answered)
        assert await client.dht.find_providers(sha256_multihash(b"nobody has this")) == []
    finally:
        await close_all(nodes + ([client] if client else []))


@async_test(timeout=150)
async def test_find_node_converges_on_the_true_k_closest():
    nodes = await start_network()
    try:
        for i, seeker in enumerate((nodes[13], nodes[4], nodes[0])):
            key = sha256_multihash(f"random key {i}".encode())
            result = await seeker.dht.find_node(key)
            assert [str(p.peer_id) for p in result] == true_closest(key, nodes, K, seeker.local_peer_id())
        # our own ID: the nodes nearest to us (what bootstrap's self-lookup fills the table with)
        me = nodes[9]
        result = await me.dht.find_node(me.local_peer_id().to_bytes())
        assert [str(p.peer_id) for p in result] == true_closest(me.local_peer_id().to_bytes(), nodes, K,
                                                                me.local_peer_id())
        # tables hold only servers, and more than the one bootstrap peer after the self-lookup
        assert all(len(n.dht.routing) >= 2 for n in nodes)
    finally:
        await close_all(nodes)


@async_test(timeout=120)
async def test_client_mode_is_not_advertised_and_never_enters_a_table():
    nodes = await start_network(4)
    client = await Network.create(node_config([nodes[0].listen_addrs()[0]], mode="client"))
    try:
        assert await client.dht.wait_bootstrapped(30)
        assert PROTOCOL_ID not in client.host.protocols()
        assert PROTOCOL_ID in nodes[0].host.protocols()
        info = await nodes[0].identify(client.local_peer_id())
        assert PROTOCOL_ID not in info.protocols
        assert client.local_peer_id() not in nodes[0].dht.routing
        assert nodes[0].local_peer_id() in client.dht.routing  # the client uses servers
        # its queries are served, it is never returned to anyone
        key = client.local_peer_id().to_bytes()
        assert client.local_peer_id() not in [p.peer_id for p in await nodes[3].dht.find_node(key)]
    finally:
        await close_all([client, *nodes])


@async_test(timeout=120)
async def test_a_dead_peer_costs_one_request_timeout_and_leaves_the_table():
    nodes = await start_network(6, request_timeout=2.0)
    try:
        dead = nodes[3]
        dead_id = dead.local_peer_id()
        for n in nodes:  # everyone knows the dead node first
            if n is not dead:
                await n.dht.find_node(dead_id.to_bytes())
        seeker = nodes[5]
        assert dead_id in seeker.dht.routing
        await dead.close()
        start = time.monotonic()
        result = await seeker.dht.find_node(dead_id.to_bytes())
        elapsed = time.monotonic() - start
        assert dead_id not in [p.peer_id for p in result]
        assert elapsed < 2.0 * 2 + 3  # bounded by the request timeout, not the 20 s lookup timeout
        assert dead_id not in seeker.dht.routing
    finally:
        await close_all(nodes)
