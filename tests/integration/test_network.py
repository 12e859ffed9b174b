"""Two native networks on 127.0.0.1: dial, ping, identify, streams, limits and errors."""

from __future__ import annotations

import asyncio

import pytest

from darkswap_wasm import Identity, Network, NetworkConfig
from darkswap_wasm.errors import (
    DarkSwapError,
    HandshakeError,
    NegotiationError,
    PeerUnreachable,
    StreamReset,
    Timeout,
)
from darkswap_wasm.host.host import AGENT_VERSION

from .helpers import async_test, echo_handler, echo_roundtrip, networks, pattern

pytestmark = pytest.mark.native_crypto

TCP = "/ip4/127.0.0.1/tcp/0"
WS = "/ip4/127.0.0.1/tcp/0/ws"


@pytest.mark.parametrize("listen,transport", [(TCP, "tcp"), (WS, "ws")])
@async_test()
async def test_dial_ping_identify(listen, transport):
    async with networks(listen, "") as (server, client):
        addr = server.listen_addrs()[0]
        assert str(addr).endswith(f"/p2p/{server.local_peer_id()}")
        peer = await client.connect(addr)
        assert peer == server.local_peer_id()
        assert [c.transport for c in client.connections(peer)] == [transport]
        rtt = await client.ping(str(peer))
        assert 0 < rtt < 5
        info = await client.identify(peer)
        assert info.agent_version == AGENT_VERSION
        assert "/ipfs/ping/1.0.0" in info.protocols and "/ipfs/id/1.0.0" in info.protocols
        assert [str(a) for a in info.listen_addrs] == [str(addr.without_p2p())]
        assert info.public_key is not None and info.public_key.peer_id == server.local_peer_id()
        # the server learned the client's observed address: the client's real TCP source port
        back = await server.identify(client.local_peer_id())
        assert back.observed_addr is not None
        assert back.observed_addr.value_for("ip4") == "127.0.0.1"
        assert server.connections(client.local_peer_id())[0].remote_addr.value_for("tcp") == (
            client.connections(peer)[0].raw.local_addr.value_for("tcp")
        )


@pytest.mark.parametrize("listen", [TCP, WS])
@async_test(timeout=120)
async def test_echo_10_mib_on_a_yamux_stream(listen):
    async with networks(listen, "") as (server, client):
        server.set_stream_handler("/darkswap/echo/1.0.0", echo_handler)
        peer = await client.connect(server.listen_addrs()[0])
        stream = await client.new_stream(peer, ["/darkswap/echo/1.0.0"])
        assert stream.protocol == "/darkswap/echo/1.0.0"
        payload = pattern(10 * 1024 * 1024)
        assert await echo_roundtrip(stream, payload) == payload


@async_test()
async def test_many_concurrent_streams_keep_their_bytes_apart():
    async with networks(TCP, "") as (server, client):
        server.set_stream_handler("/echo", echo_handler)
        peer = await client.connect(server.listen_addrs()[0])

        async def one(i):
            s = await client.new_stream(peer, ["/echo"])
            payload = bytes([i]) * (50_000 + i)
            return await echo_roundtrip(s, payload) == payload

        assert all(await asyncio.gather(*(one(i) for i in range(64))))


@async_test()
async def test_negotiation_falls_back_to_a_supported_protocol():
    async with networks(TCP, "") as (server, client):
        server.set_stream_handler("/v2", echo_handler)
        peer = await client.connect(server.listen_addrs()[0])
        s = await client.new_stream(peer, ["/v3", "/v2"])
        assert s.protocol == "/v2"
        with pytest.raises(NegotiationError):
            await client.new_stream(peer, ["/nope/1", "/nope/2"])


@async_test()
async def test_dialing_the_wrong_peer_id_fails_the_handshake():
    async with networks(TCP, "") as (server, client):
        wrong = Identity.generate().peer_id
        addr = server.listen_addrs()[0].without_p2p().encapsulate(f"/p2p/{wrong}")
        with pytest.raises(HandshakeError):
            await client.connect(addr)
        assert client.connections() == []


@async_test()
async def test_unreachable_address_is_a_clear_error():
    async with networks("") as (client,):
        with pytest.raises(PeerUnreachable):
            await client.connect("/ip4/127.0.0.1/tcp/1")
        with pytest.raises(DarkSwapError):
            await client.connect("/ip4/127.0.0.1/udp/1/quic-v1")


@async_test()
async def test_a_peer_that_never_answers_times_out():
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    from darkswap_wasm.host.connection import ConnectionConfig
    from darkswap_wasm.host.host import HostConfig

    cfg = NetworkConfig(host=HostConfig(connection=ConnectionConfig(upgrade_timeout=0.5)))
    net = await Network.create(cfg)
    try:
        with pytest.raises(Timeout):
            await net.connect(f"/ip4/127.0.0.1/tcp/{port}")
    finally:
        await net.close()
        silent.close()


@async_test()
async def test_garbage_from_a_raw_socket_gets_a_clean_close():
    async with networks(TCP, "") as (server, client):
        host, port = "127.0.0.1", int(server.listen_addrs()[0].value_for("tcp"))
        reader, writer = await asyncio.open_connection(host, port)
        # a valid negotiation, then Noise frames of garbage: the handshake fails at once
        writer.write(b"\x13/multistream/1.0.0\n\x07/noise\n" + b"\x00\x40" + b"\xff" * 64 + b"\x00\x60" + b"\xff" * 96)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)  # server closes: read returns at EOF
        assert data.startswith(b"\x13/multistream/1.0.0\n")
        writer.close()
        # the server is still healthy for others
        peer = await client.connect(server.listen_addrs()[0])
        assert await client.ping(peer) > 0


@async_test()
async def test_closing_the_server_resets_open_streams_and_reports_disconnect():
    async with networks(TCP, "") as (server, client):
        gone = asyncio.Event()
        client.on("peer:disconnect", lambda p: gone.set())
        server.set_stream_handler("/hold", lambda s: asyncio.sleep(30))
        peer = await client.connect(server.listen_addrs()[0])
        s = await client.new_stream(peer, ["/hold"])
        await server.close()
        with pytest.raises((StreamReset, DarkSwapError)):
            await s.read(timeout=5)
        await asyncio.wait_for(gone.wait(), 5)
        assert client.connections(peer) == []


@async_test()
async def test_identity_seed_gives_a_stable_peer_id(tmp_path):
    ident = Identity.load_or_create(tmp_path / "key")
    net = await Network.create(NetworkConfig(identity=Identity.load_or_create(tmp_path / "key"), listen_addrs=[TCP]))
    try:
        assert net.local_peer_id() == ident.peer_id
        assert str(net.local_peer_id()).startswith("12D3KooW")
    finally:
        await net.close()
