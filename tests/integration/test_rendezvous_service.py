"""Rendezvous end to end: our relay CLI (a real process) is the rendezvous point; ``Network``s
that hold a reservation on it register under a namespace and find each other by that name."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.protocols.rendezvous import RendezvousError, Status

from .helpers import async_test, reserved
from .procs import RelayProcess

pytestmark = pytest.mark.native_crypto


async def eventually(fn, timeout: float, what: str):
    """Call the async ``fn`` until it returns something truthy (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def relayed_node(relay: RelayProcess) -> Network:
    # like a page: no listener of its own, reachable only through the relay
    return Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))


@async_test(timeout=60)
async def test_two_nodes_find_each_other_by_namespace_and_talk():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    a, b, c = await relayed_node(relay), await relayed_node(relay), await relayed_node(relay)
    try:
        await reserved(a, b, c)
        assert await a.register("room-1") == 2 * 3600  # the point's default TTL
        assert await b.register("room-1", ttl=600) == 600
        await c.register("room-2")

        found = await b.discover("room-1")
        assert [p.peer for p in found] == [a.local_peer_id()]  # never ourselves, not room-2
        (addr,) = [str(x) for x in found[0].addrs]
        assert addr == f"{relay.addr()}/p2p-circuit/p2p/{a.local_peer_id()}"
        assert 0 < found[0].ttl <= 2 * 3600
        assert {p.peer for p in await a.discover("room-1")} == {b.local_peer_id()}

        # found by name alone: the peer ID is enough to reach it and trade
        seq = await b.send_message(found[0].peer, b'{"type":"order"}')
        assert await a.receive_message(b.local_peer_id(), timeout=10) == b'{"type":"order"}'
        await b.wait_delivered(found[0].peer, seq, timeout=10)

        await a.unregister("room-1")
        assert await b.discover("room-1") == []
        await c.close()  # a peer that leaves is forgotten with its connection
        assert await a.discover("room-2") == []
    finally:
        for n in (a, b, c):
            await n.close()
        await relay.stop()


@async_test(timeout=60)
async def test_registration_is_refreshed_before_its_ttl_and_after_a_relay_restart(tmp_path):
    key = tmp_path / "relay.key"
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--identity", str(key))
    relay_addr = relay.addr()
    a, b = await relayed_node(relay), await relayed_node(relay)
    try:
        await reserved(a, b)
        assert await a.register("room", ttl=2) == 2
        await asyncio.sleep(4.5)  # two TTLs: only a refresh (at 3/4 of it) keeps it listed
        assert [p.peer for p in await b.discover("room")] == [a.local_peer_id()]

        port = relay_addr.split("/tcp/")[1].split("/")[0]
        assert await relay.stop(signal.SIGINT) == 0
        relay = await RelayProcess.start("--listen", f"/ip4/127.0.0.1/tcp/{port}", "--identity", str(key))
        await reserved(a, b, timeout=20)

        async def listed():
            try:
                return [p.peer for p in await b.discover("room")]
            except RendezvousError:
                return None  # b's reservation may be back before the point is usable again

        # the restarted point forgot everything; a's client registers again when its reservation returns
        assert await eventually(listed, 15, "a registered again") == [a.local_peer_id()]
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=60)
async def test_refusals_are_coded_errors():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    plain = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--no-rendezvous")
    a = await relayed_node(relay)
    lone = await Network.create(NetworkConfig(webrtc=None))
    other = await Network.create(NetworkConfig(relays=[plain.addr()], webrtc=None))
    try:
        await reserved(a, other)
        with pytest.raises(RendezvousError) as info:
            await lone.register("room")  # no reservation: no rendezvous point
        assert info.value.code == "RENDEZVOUS_FAILED" and "no relay reservation" in str(info.value)

        with pytest.raises(RendezvousError) as info:
            await a.register("x" * 300)
        assert info.value.status is Status.E_INVALID_NAMESPACE and "255 bytes" in str(info.value)
        with pytest.raises(RendezvousError):
            await a.register("room", ttl=100 * 3600)  # over the spec's 72 h

        for i in range(32):  # the point's per-peer quota
            await a.register(f"room-{i}")
        with pytest.raises(RendezvousError) as info:
            await a.register("one-too-many")
        assert info.value.status is Status.E_NOT_AUTHORIZED

        with pytest.raises(RendezvousError) as info:
            await other.discover("room")  # a relay that runs no rendezvous service
        assert plain.peer_id in str(info.value)
    finally:
        for n in (a, lone, other):
            await n.close()
        await relay.stop()
        await plain.stop()
