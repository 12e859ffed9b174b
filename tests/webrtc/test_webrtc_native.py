"""libp2p /webrtc natively (aiortc), two or more networks that share only a relay."""

from __future__ import annotations

import asyncio
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.host.webrtc import WebRTCSettings
from darkswap_wasm.protocols.webrtc_signaling import SignalingConfig
from darkswap_wasm.transports.webrtc_base import WebRTCConfig

from ..integration.helpers import async_test, echo_handler, echo_roundtrip, pattern
from ..integration.procs import RelayProcess

pytestmark = pytest.mark.native_crypto
ECHO = "/darkswap/echo/1.0.0"


async def reserved(*nets: Network, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(n.reservations() for n in nets):
        assert time.monotonic() < deadline, "reservations did not come up"
        await asyncio.sleep(0.05)


@async_test(timeout=60)
async def test_peers_sharing_only_a_relay_upgrade_to_webrtc(rtc_settings):
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    try:
        b.set_stream_handler(ECHO, echo_handler)
        await reserved(a, b)
        assert any(str(x).endswith(f"/p2p-circuit/webrtc/p2p/{b.local_peer_id()}") for x in b.listen_addrs())
        conn = await a.create_webrtc_data_channel(b.local_peer_id())
        assert conn.transport == "webrtc"
        assert [c.transport for c in a.connections(b.local_peer_id())] == ["webrtc", "relay"]
        deadline = time.monotonic() + 5  # the answering side registers it when its ICE completes
        while b.connections(a.local_peer_id())[0].transport != "webrtc":
            assert time.monotonic() < deadline, "the answering side never saw the WebRTC connection"
            await asyncio.sleep(0.02)
        # streams now go over the direct connection: ping, identify, a 1 MiB echo
        assert await a.ping(b.local_peer_id()) > 0
        stream = await a.new_stream(b.local_peer_id(), [ECHO])
        assert stream.conn.transport == "webrtc"
        payload = pattern(1024 * 1024)
        assert await echo_roundtrip(stream, payload) == payload
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=60)
async def test_dialing_a_webrtc_circuit_address_connects_directly(rtc_settings):
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    a = await Network.create(NetworkConfig(webrtc=rtc_settings))
    try:
        await reserved(b)
        [addr] = [str(x) for x in b.listen_addrs() if "/webrtc/" in str(x)]
        peer = await a.connect(addr)
        assert peer == b.local_peer_id()
        assert a.connections(peer)[0].transport == "webrtc"
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=120)
async def test_100_data_channels_at_once_on_one_connection(rtc_settings):
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    try:
        b.set_stream_handler(ECHO, echo_handler)
        await reserved(a, b)
        await a.create_webrtc_data_channel(b.local_peer_id())

        async def one(i: int) -> bool:
            s = await a.new_stream(b.local_peer_id(), [ECHO])
            assert s.conn.transport == "webrtc"
            payload = pattern(20_000 + i * 37)
            return await echo_roundtrip(s, payload) == payload

        results = await asyncio.gather(*(one(i) for i in range(100)))
        assert all(results)
        assert len(a.connections(b.local_peer_id())) == 2  # one WebRTC connection (plus the relayed one)
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=240)
async def test_50_peers_each_with_its_own_webrtc_connection(rtc_settings):
    relay = await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0", "--max-reservations-per-peer", "100", "--max-circuits", "128",
        # all 51 come from 127.0.0.1 and the hub is every circuit's destination
        "--max-circuits-per-peer", "64", "--max-circuits-per-ip", "128", "--max-circuits-to-peer", "64",
        "--max-circuits-to-peer-per-ip", "64",
    )
    hub = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    hub.set_stream_handler(ECHO, echo_handler)
    peers = []
    try:
        for _ in range(50):
            n = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
            n.set_stream_handler(ECHO, echo_handler)
            peers.append(n)
        await reserved(hub, *peers, timeout=60)

        async def one(n: Network) -> bool:
            conn = await n.create_webrtc_data_channel(hub.local_peer_id())
            assert conn.transport == "webrtc"
            there = await n.new_stream(hub.local_peer_id(), [ECHO])
            back = await hub.new_stream(n.local_peer_id(), [ECHO])  # the other way, same connection
            assert there.conn.transport == back.conn.transport == "webrtc"
            p1, p2 = pattern(5000), pattern(7000)
            r1, r2 = await asyncio.gather(echo_roundtrip(there, p1), echo_roundtrip(back, p2))
            return r1 == p1 and r2 == p2

        sem = asyncio.Semaphore(10)

        async def limited(n):
            async with sem:
                return await one(n)

        assert all(await asyncio.gather(*(limited(n) for n in peers)))
        assert sum(1 for c in hub.connections() if c.transport == "webrtc") == 50
    finally:
        for n in peers:
            await n.close()
        await hub.close()
        await relay.stop()


@async_test(timeout=90)
async def test_blocked_ice_leaves_traffic_on_the_relayed_path(test_net):
    # no interface in 192.0.2.0/24 (TEST-NET-1): no candidates, so ICE cannot connect
    blocked = WebRTCSettings(
        rtc=WebRTCConfig(allowed_networks=("192.0.2.0/24",)),
        signaling=SignalingConfig(timeout=2.0),
        attempts=2,
        retry_initial=0.1,
        retry_max=0.2,
    )
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "0")
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=blocked))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=blocked))
    try:
        b.set_stream_handler(ECHO, echo_handler)
        await reserved(a, b)
        conn = await a.create_webrtc_data_channel(b.local_peer_id())
        assert conn.transport == "relay"  # bounded attempts, then the relayed connection stays
        stream = await a.new_stream(b.local_peer_id(), [ECHO])
        payload = pattern(100_000)
        assert await echo_roundtrip(stream, payload) == payload
    finally:
        await a.close()
        await b.close()
        await relay.stop()
