"""Circuit relay v2 end to end with our relay CLI as a real process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.errors import DarkSwapError, PeerUnreachable, StreamReset
from darkswap_wasm.host.relay_client import RelayError

from .helpers import async_test, echo_handler, echo_roundtrip, pattern
from .procs import RelayProcess

pytestmark = pytest.mark.native_crypto


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def circuit_addrs(net: Network) -> list[str]:
    """The plain circuit addresses (the /webrtc variants are covered by the WebRTC tests)."""
    return [str(a) for a in net.listen_addrs() if "/p2p-circuit/" in str(a) and "/webrtc/" not in str(a)]


@async_test(timeout=90)
async def test_relayed_connection_between_two_python_peers(tmp_path):
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "0")
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        b.set_stream_handler("/darkswap/echo/1.0.0", echo_handler)
        await wait_for(lambda: b.reservations(), 10, "a reservation")
        [rsvp] = b.reservations()
        assert str(rsvp.relay) == relay.peer_id
        assert rsvp.expires_at_unix > time.time() + 3000  # default TTL: one hour
        [addr] = circuit_addrs(b)
        assert addr == f"{relay.addr()}/p2p-circuit/p2p/{b.local_peer_id()}"

        peer = await a.connect(addr)
        assert peer == b.local_peer_id()
        assert [c.transport for c in a.connections(peer)] == ["relay"]
        assert [c.transport for c in b.connections(a.local_peer_id())] == ["relay"]
        assert await a.ping(peer) > 0
        stream = await a.new_stream(peer, ["/darkswap/echo/1.0.0"])
        payload = pattern(1024 * 1024)
        assert await echo_roundtrip(stream, payload) == payload
        # identify over the circuit tells the dialer B's circuit address too
        info = await a.identify(peer)
        assert any("/p2p-circuit" in str(x) for x in info.listen_addrs)
    finally:
        await a.close()
        await b.close()
        assert await relay.stop() == 0


@async_test(timeout=90)
async def test_reservation_renews_and_survives_a_relay_restart(tmp_path):
    key = tmp_path / "relay.key"
    relay = await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0", "--identity", str(key), "--reservation-ttl", "3"
    )
    relay_addr = relay.addr()
    b = await Network.create(NetworkConfig(relays=[relay_addr], webrtc=None))
    events: list[str] = []
    b.on("relay:reserved", lambda r: events.append("reserved"))
    b.on("relay:lost", lambda r: events.append("lost"))
    try:
        await wait_for(lambda: b.reservations(), 10, "a reservation")
        first = b.reservations()[0].expires_at_unix
        # the TTL is 3 s: renewal at 3/4 of it happens during the test, before expiry
        await wait_for(lambda: b.reservations() and b.reservations()[0].expires_at_unix > first, 10, "a renewal")
        assert events.count("reserved") >= 2 and "lost" not in events
        advertised = circuit_addrs(b)
        assert len(advertised) == 1

        # restart the relay on the same port with the same identity: the client re-reserves by itself
        port = relay_addr.split("/tcp/")[1].split("/")[0]
        assert await relay.stop(signal.SIGINT) == 0
        await wait_for(lambda: "lost" in events, 10, "the client noticing the relay is gone")
        assert circuit_addrs(b) == []
        relay = await RelayProcess.start("--listen", f"/ip4/127.0.0.1/tcp/{port}", "--identity", str(key))
        assert relay.addr() == relay_addr  # same peer ID, same address
        await wait_for(lambda: b.reservations(), 20, "a new reservation after the restart")
        assert circuit_addrs(b) == advertised  # the advertised address is stable

        a = await Network.create(NetworkConfig(webrtc=None))
        try:
            peer = await a.connect(advertised[0])
            assert await a.ping(peer) > 0
        finally:
            await a.close()
    finally:
        await b.close()
        await relay.stop()


@async_test(timeout=60)
async def test_peer_reachable_only_through_the_relay_is_dialed_by_peer_id():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0/ws")
    b = await Network.create(NetworkConfig(relays=[relay.addr("ws")], webrtc=None))
    c = await Network.create(NetworkConfig(relays=[relay.addr("ws")], webrtc=None))
    try:
        await wait_for(lambda: b.reservations() and c.reservations(), 10, "reservations")
        rtt = await c.ping(b.local_peer_id())  # no address given: found through the shared relay
        assert rtt > 0
        assert [x.transport for x in c.connections(b.local_peer_id())] == ["relay"]
    finally:
        await b.close()
        await c.close()
        await relay.stop()


@async_test(timeout=60)
async def test_connect_to_a_peer_without_reservation_fails_with_no_reservation():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    a = await Network.create(NetworkConfig(webrtc=None))
    nobody = await Network.create(NetworkConfig(webrtc=None))
    try:
        with pytest.raises(PeerUnreachable) as info:
            await a.connect(f"{relay.addr()}/p2p-circuit/p2p/{nobody.local_peer_id()}")
        assert isinstance(info.value.__cause__, RelayError) or "NO_RESERVATION" in str(info.value)
    finally:
        await a.close()
        await nobody.close()
        await relay.stop()


@async_test(timeout=60)
async def test_a_peer_that_left_is_unreachable_with_each_address_named_once():
    """The circuit to a peer we talked to is known three ways (the address that worked, the
    peer's identify, the route through our relay): the error tries and names it once."""
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    b = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], relays=[relay.addr()], webrtc=None))
    try:
        await wait_for(lambda: a.reservations() and b.reservations(), 10, "reservations")
        peer = b.local_peer_id()
        circuit = f"{relay.addr()}/p2p-circuit/p2p/{peer}"
        await a.connect(circuit)
        await a.identify(peer)
        await b.close()
        await wait_for(lambda: not a.connections(peer), 10, "the circuit to end")
        with pytest.raises(PeerUnreachable) as info:
            await a.ping(peer)
        text = str(info.value)
        assert "NO_RESERVATION" in text
        assert text.count(f"{relay.addr()}/p2p-circuit") == 1, text
        assert text.count("127.0.0.1/tcp/") == 2, text  # the circuit's relay and b's own listener
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=60)
async def test_relay_enforces_the_circuit_data_limit():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "65536")
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        b.set_stream_handler("/darkswap/echo/1.0.0", echo_handler)
        await wait_for(lambda: b.reservations(), 10, "a reservation")
        peer = await a.connect(circuit_addrs(b)[0])
        stream = await a.new_stream(peer, ["/darkswap/echo/1.0.0"])
        with pytest.raises((StreamReset, DarkSwapError)):
            await echo_roundtrip(stream, pattern(1024 * 1024))
        await wait_for(lambda: not a.connections(peer), 10, "the relayed connection to be reset")
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=60)
async def test_relay_refuses_reservations_over_its_limit():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--max-reservations", "1")
    nets = [await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None)) for _ in range(2)]
    try:
        await wait_for(lambda: any(n.reservations() for n in nets), 10, "one reservation")
        await asyncio.sleep(1.0)
        assert sum(1 for n in nets if n.reservations()) == 1
    finally:
        for n in nets:
            await n.close()
        await relay.stop()


@async_test(timeout=60)
async def test_relay_enforces_the_circuit_duration_limit():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-duration", "1")
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        await wait_for(lambda: b.reservations(), 10, "a reservation")
        peer = await a.connect(circuit_addrs(b)[0])
        assert await a.ping(peer) > 0
        opened = time.monotonic()
        await wait_for(lambda: not a.connections(peer), 10, "the relay to end the circuit")
        assert 0.8 < time.monotonic() - opened < 5
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=60)
async def test_no_reservation_or_connect_over_an_already_relayed_connection():
    from darkswap_wasm.host.relay_server import RelayService, read_message
    from darkswap_wasm.protocols.circuit_v2 import HOP_PROTOCOL_ID, HopMessage, HopType, Peer, Status

    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    # B is a relay too, but reachable by A only through the first relay
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    service = RelayService(b.host)
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        await wait_for(lambda: b.reservations(), 10, "a reservation")
        peer = await a.connect(circuit_addrs(b)[0])
        conn = a.connections(peer)[0]
        assert conn.transport == "relay"
        for request in (HopMessage(HopType.RESERVE), HopMessage(HopType.CONNECT, peer=Peer(a.local_peer_id()))):
            stream = await a.host.new_stream_on(conn, [HOP_PROTOCOL_ID])
            await stream.write(request.encode())
            reply = await read_message(stream, HopMessage, 5)
            assert reply.type is HopType.STATUS and reply.status is Status.PERMISSION_DENIED
    finally:
        await a.close()
        await service.close()
        await b.close()
        await relay.stop()
