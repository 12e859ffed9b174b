"""Circuit relay v2 interop with js-libp2p (@libp2p/circuit-relay-v2): js peers through our
relay, and our peer through a js relay."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from darkswap_wasm import Network, NetworkConfig

from ..integration.helpers import async_test, echo_handler
from ..integration.procs import RelayProcess
from .jspeer import JsPeer, pattern, require_node

pytestmark = [pytest.mark.interop, pytest.mark.native_crypto]

ECHO = "/darkswap/echo/1.0.0"
TCP = "/ip4/127.0.0.1/tcp/0"


async def wait_for_circuit_addr(js: JsPeer, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await js.ok("info")
        circuit = [a for a in info["addrs"] if "/p2p-circuit/" in a]
        if circuit:
            return circuit[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{js.name} never got a circuit address: {info['addrs']}")


@async_test(timeout=120)
async def test_js_peer_reserves_on_our_relay_and_another_js_peer_reaches_it():
    require_node()
    relay = await RelayProcess.start("--listen", TCP, "--circuit-data", "0")
    target = await JsPeer.start(
        "js-target", "--relay-client", "--listen", TCP, "--listen", f"{relay.addr()}/p2p-circuit"
    )
    dialer = await JsPeer.start("js-dialer", "--relay-client", "--listen", TCP)
    try:
        circuit = await wait_for_circuit_addr(target)
        assert circuit == f"{relay.addr()}/p2p-circuit/p2p/{target.peer_id}"
        r = await dialer.ok("dial", addr=circuit)
        assert r["peerId"] == target.peer_id
        conns = (await dialer.ok("connections"))["connections"]
        assert any(c["peer"] == target.peer_id and "/p2p-circuit" in c["addr"] for c in conns)
        r = await dialer.ok("echo", peer=target.peer_id, size=200_000, limited=True)
        assert r["bytes"] == 200_000 and r["sha256"] == hashlib.sha256(pattern(200_000)).hexdigest()
        r = await dialer.ok("ping", peer=target.peer_id, limited=True)
        assert r["rtt_ms"] >= 0
    finally:
        await dialer.stop()
        await target.stop()
        assert await relay.stop() == 0
    assert target.errors == [] and dialer.errors == []


@async_test(timeout=120)
async def test_we_reserve_on_a_js_relay_and_a_js_peer_reaches_us():
    require_node()
    js_relay = await JsPeer.start("js-relay", "--relay-server", "--listen", TCP)
    dialer = await JsPeer.start("js-dialer", "--relay-client", "--listen", TCP)
    ours = await Network.create(NetworkConfig(relays=[js_relay.addr("tcp")]))
    ours.set_stream_handler(ECHO, echo_handler)
    try:
        deadline = time.monotonic() + 15
        while not ours.reservations():
            assert time.monotonic() < deadline, "no reservation on the js relay"
            await asyncio.sleep(0.1)
        [rsvp] = ours.reservations()  # its voucher was verified against the js relay's key
        assert str(rsvp.relay) == js_relay.peer_id
        [circuit] = [str(a) for a in ours.listen_addrs() if "/p2p-circuit/" in str(a) and "/webrtc/" not in str(a)]
        r = await dialer.ok("dial", addr=circuit)
        assert r["peerId"] == str(ours.local_peer_id())
        r = await dialer.ok("echo", peer=str(ours.local_peer_id()), size=60_000, limited=True)
        assert r["bytes"] == 60_000 and r["sha256"] == hashlib.sha256(pattern(60_000)).hexdigest()
        peer = next(p for p in ours.peers() if str(p) == dialer.peer_id)
        assert [c.transport for c in ours.connections(peer)] == ["relay"]
        assert await ours.ping(peer) > 0
    finally:
        await ours.close()
        await dialer.stop()
        await js_relay.stop()
    assert js_relay.errors == [] and dialer.errors == []


@async_test(timeout=120)
async def test_we_dial_a_js_peer_through_a_js_relay():
    require_node()
    js_relay = await JsPeer.start("js-relay", "--relay-server", "--listen", TCP)
    target = await JsPeer.start(
        "js-target", "--relay-client", "--listen", TCP, "--listen", f"{js_relay.addr('tcp')}/p2p-circuit"
    )
    ours = await Network.create(NetworkConfig())
    try:
        circuit = await wait_for_circuit_addr(target)
        peer = await ours.connect(circuit)
        assert str(peer) == target.peer_id
        assert [c.transport for c in ours.connections(peer)] == ["relay"]
        stream = await ours.new_stream(peer, [ECHO])
        from ..integration.helpers import echo_roundtrip

        payload = pattern(50_000)
        assert await echo_roundtrip(stream, payload) == payload
    finally:
        await ours.close()
        await target.stop()
        await js_relay.stop()
