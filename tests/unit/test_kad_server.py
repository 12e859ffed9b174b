"""Kademlia server side: FIND_NODE, GET_PROVIDERS, ADD_PROVIDER, refusals, client mode."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import LimitExceeded, ProtocolError
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
    sha256_multihash,
)
from darkswap_wasm.protocols.kad_providers import ProviderStore
from darkswap_wasm.protocols.kad_routing import RoutingTable
from darkswap_wasm.protocols.kad_server import KadServer, KadServerStream
from darkswap_wasm.wire.multiaddr import Multiaddr

ADDR = Multiaddr("/ip4/10.0.0.1/tcp/4001")
CIRCUIT = Multiaddr("/ip4/10.0.0.9/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit")
ME_ADDR = Multiaddr("/ip4/10.9.9.9/tcp/4001")


def _pid(rnd):
    return PeerId(b"\x12\x20" + rnd.randbytes(32))


def _server(n=120, seed=3, config=None):
    rnd = random.Random(seed)
    me = _pid(rnd)
    cfg = config or KadConfig()
    table = RoutingTable(me, cfg)
    peers = [KadPeer(_pid(rnd), (ADDR,)) for _ in range(n)]
    for p in peers:
        table.add(p)
    server = KadServer(me, table, ProviderStore(cfg), cfg, local_addrs=[ME_ADDR])
    return rnd, me, peers, table, server


def test_find_node_answers_k_closest_in_table_never_the_requester_nor_us():
    rnd, me, peers, table, server = _server()
    in_table = {p.peer_id for p in table.peers()}
    for _ in range(20):
        key = rnd.randbytes(34)
        tid = kad_id(key)
        requester = min(table.peers(), key=lambda p: distance(peer_kad_id(p.peer_id), tid)).peer_id
        reply = server.handle_request(requester, KadMessage(MessageType.FIND_NODE, key=key, cluster_level=0), 5.0)
        assert reply.refused is None and reply.response.type is MessageType.FIND_NODE
        assert reply.response.cluster_level == 0 and reply.response.key is None
        got = [p.peer_id for p in reply.response.closer_peers]
        truth = sorted((p for p in in_table if p != requester), key=lambda p: distance(peer_kad_id(p), tid))[:20]
        assert got == truth
        assert requester not in got and me not in got


def test_find_node_for_our_own_id_includes_us_with_our_addresses():
    _, me, peers, _, server = _server()
    reply = server.handle_request(peers[0].peer_id, KadMessage(MessageType.FIND_NODE, key=me.to_bytes()), 0.0)
    ours = [p for p in reply.response.closer_peers if p.peer_id == me]
    assert ours == [KadPeer(me, (ME_ADDR,))]


def test_relay_only_peers_are_never_in_the_table_nor_in_answers():
    rnd, me, peers, table, server = _server(n=10)
    relayed = KadPeer(_pid(rnd), (CIRCUIT,))
    assert table.add(relayed).refused == "relay-only"
    assert table.add(KadPeer(_pid(rnd), ())).refused == "relay-only"
    reply = server.handle_request(peers[0].peer_id,
                                  KadMessage(MessageType.FIND_NODE, key=relayed.peer_id.to_bytes()), 0.0)
    assert relayed.peer_id not in {p.peer_id for p in reply.response.closer_peers}
    assert len(reply.response.closer_peers) == 9


def test_add_provider_stores_only_the_senders_own_record_with_its_addresses():
    rnd, _, peers, _, server = _server(n=30)
    sender, other = peers[0].peer_id, peers[1].peer_id
    key = relay_key()
    sender_addrs = (Multiaddr("/ip4/1.1.1.1/tcp/1/ws"), Multiaddr("/ip4/1.1.1.1/tcp/2"))
    msg = KadMessage(MessageType.ADD_PROVIDER, key=key,
                     provider_peers=(KadPeer(other, (ADDR,)), KadPeer(sender, sender_addrs)))
    reply = server.handle_request(sender, msg, 10.0)
    assert reply.response is None and reply.refused is None
    assert (reply.stored, reply.ignored) == (1, 1)
    assert server.providers.get(key, now=11.0) == [KadPeer(sender, sender_addrs)]
    # a record without any address is ignored, as js does
    reply = server.handle_request(other, KadMessage(MessageType.ADD_PROVIDER, key=key,
                                                    provider_peers=(KadPeer(other, ()),)), 12.0)
    assert (reply.stored, reply.ignored) == (0, 1)
    assert len(server.providers) == 1


def test_get_providers_answers_providers_and_closer_peers_and_echoes_key():
    _, me, peers, table, server = _server(n=60)
    key = relay_key()
    server.handle_request(peers[5].peer_id, KadMessage(MessageType.ADD_PROVIDER, key=key,
                                                       provider_peers=(peers[5],)), 0.0)
    req = KadMessage(MessageType.GET_PROVIDERS, key=key, cluster_level=0)
    reply = server.handle_request(peers[7].peer_id, req, 1.0)
    r = reply.response
    assert r.type is MessageType.GET_PROVIDERS and r.key == key and r.cluster_level == 0
    assert [p.peer_id for p in r.provider_peers] == [peers[5].peer_id]
    truth = [p.peer_id for p in table.closest(kad_id(key), 21) if p.peer_id != peers[7].peer_id][:20]
    assert [p.peer_id for p in r.closer_peers] == truth
    # when we provide the key ourselves we are listed first
    server.providers.provide(key, now=1.0)
    r = server.handle_request(peers[7].peer_id, req, 2.0).response
    assert [p.peer_id for p in r.provider_peers] == [me, peers[5].peer_id]
    # after 48 h the remote record is gone
    r = server.handle_request(peers[7].peer_id, req, 48 * 3600.0 + 1).response
    assert [p.peer_id for p in r.provider_peers] == [me]


def test_provider_answer_stays_within_the_message_peer_limit():
    cfg = KadConfig(max_peers_per_message=25, max_providers_per_key=64)
    rnd, _, peers, _, server = _server(n=60, config=cfg)
    key = relay_key()
    for p in peers[:40]:
        server.handle_request(p.peer_id, KadMessage(MessageType.ADD_PROVIDER, key=key, provider_peers=(p,)), 0.0)
    r = server.handle_request(peers[50].peer_id, KadMessage(MessageType.GET_PROVIDERS, key=key), 1.0).response
    assert len(r.closer_peers) == 20 and len(r.provider_peers) == 5
    assert KadMessage.decode_body(r.encode_body(cfg), cfg) == r


@pytest.mark.parametrize("kind", [MessageType.PUT_VALUE, MessageType.GET_VALUE, MessageType.PING])
def test_value_records_and_ping_are_refused(kind):
    _, _, peers, _, server = _server(n=5)
    reply = server.handle_request(peers[0].peer_id, KadMessage(kind, key=relay_key(), record=b"v"), 0.0)
    assert reply.response is None and kind.name in reply.refused


@pytest.mark.parametrize("msg", [
    KadMessage(MessageType.FIND_NODE),
    KadMessage(MessageType.GET_PROVIDERS),
    KadMessage(MessageType.GET_PROVIDERS, key=b"\x12\x20short"),
    KadMessage(MessageType.ADD_PROVIDER, key=b"not a multihash"),
])
def test_missing_or_malformed_keys_are_refused(msg):
    _, _, peers, _, server = _server(n=5)
    reply = server.handle_request(peers[0].peer_id, msg, 0.0)
    assert reply.response is None and reply.refused


def test_client_mode_refuses_every_request():
    _, _, peers, _, server = _server(n=5, config=KadConfig(client_mode=True))
    for kind in (MessageType.FIND_NODE, MessageType.GET_PROVIDERS, MessageType.ADD_PROVIDER):
        reply = server.handle_request(peers[0].peer_id, KadMessage(kind, key=relay_key(),
                                                                   provider_peers=(peers[0],)), 0.0)
        assert reply.response is None and "client mode" in reply.refused
    assert len(server.providers) == 0


def test_requesters_are_not_added_to_the_table_only_identified_servers_are():
    rnd, _, _, table, server = _server(n=5)
    client = KadPeer(_pid(rnd), (ADDR,))
    server.handle_request(client.peer_id, KadMessage(MessageType.FIND_NODE, key=relay_key()), 0.0)
    assert client.peer_id not in table
    assert table.add_if_server(client, ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"]).refused == "client"
    assert client.peer_id not in table
    assert table.add_if_server(client, ["/ipfs/id/1.0.0", PROTOCOL_ID]).added
    assert client.peer_id in table


def test_server_stream_bytes_in_bytes_out_several_requests_then_limit():
    cfg = KadConfig(max_requests_per_stream=3)
    _, _, peers, _, server = _server(n=30, config=cfg)
    stream = KadServerStream(server, peers[0].peer_id)
    req = KadMessage(MessageType.FIND_NODE, key=sha256_multihash(b"t"))
    wire = req.encode() * 2
    replies = stream.receive_data(wire[:7], 0.0) + stream.receive_data(wire[7:], 0.0)
    assert len(replies) == 2
    out = KadMessageReader().receive_data(stream.data_to_send())
    assert out == [replies[0].response, replies[1].response]
    assert stream.data_to_send() == b""
    stream.receive_data(req.encode(), 0.0)
    with pytest.raises(LimitExceeded):
        stream.receive_data(req.encode(), 0.0)


def test_server_stream_refusal_closes_and_garbage_is_a_protocol_error():
    _, _, peers, _, server = _server(n=5)
    stream = KadServerStream(server, peers[0].peer_id)
    ping = KadMessage(MessageType.PING).encode()
    find = KadMessage(MessageType.FIND_NODE, key=relay_key()).encode()
    replies = stream.receive_data(ping + find, 0.0)
    assert len(replies) == 1 and replies[0].refused and stream.closed
    assert stream.data_to_send() == b"" and stream.receive_data(find, 0.0) == []
    with pytest.raises(ProtocolError):
        KadServerStream(server, peers[0].peer_id).receive_data(b"\x03\xff\xff\xff", 0.0)


def _fuzz_server():
    cfg = KadConfig(max_providers_per_key=4, max_provider_keys=8, max_provider_records=16)
    return _server(n=40, config=cfg)


_FUZZ = _fuzz_server()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(0, 39))
def test_server_stream_fed_random_bytes_only_raises_protocol_errors(data, who):
    _, _, peers, _, server = _FUZZ
    stream = KadServerStream(server, peers[who].peer_id)
    try:
        stream.receive_data(data, 1.0)
    except ProtocolError:
        pass
    for reply in KadMessageReader(server.config).receive_data(stream.data_to_send()):
        assert reply.type in (MessageType.FIND_NODE, MessageType.GET_PROVIDERS)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(MessageType)), st.binary(max_size=40), st.integers(0, 39),
       st.lists(st.integers(0, 39), max_size=4), st.floats(0, 1e6))
def test_any_decodable_request_is_answered_or_refused_never_raises(kind, key, who, provs, now):
    _, _, peers, _, server = _FUZZ
    msg = KadMessage(kind, key=key, provider_peers=tuple(peers[i] for i in provs))
    stream = KadServerStream(server, peers[who].peer_id)
    (reply,) = stream.receive_data(msg.encode(server.config), now)
    assert (reply.response is None) or (reply.refused is None)
    assert len(server.providers) <= 16 and server.providers.key_count <= 8
    out = KadMessageReader(server.config).receive_data(stream.data_to_send())
    assert out == ([reply.response] if reply.response is not None else [])
