"""Relay fairness against strangers (issue 12, attack 6), with our relay CLI as a real process.

Throwaway peer IDs each holding one relayed connection to a victim used to make it unreachable:
the per-peer circuit cap counted circuits *to* a peer. Now a source address holds at most its
share of a destination's circuits. The attacker comes from 127.0.0.1, the honest peer from the
test namespace's 10.99.0.1 (a second source address on this machine), so the test needs
``./build.sh test``'s namespace."""

from __future__ import annotations

import os

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.errors import PeerUnreachable

from .helpers import async_test, reserved
from .procs import RelayProcess

pytestmark = pytest.mark.native_crypto


def second_address() -> str:
    net = os.environ.get("DARKSWAP_TEST_NETNS")
    if not net:
        pytest.fail("needs the test network namespace's 10.99.0.1: use ./build.sh test [pytest args]")
    return "10.99.0.1"


@async_test(timeout=90)
async def test_throwaway_peer_ids_cannot_make_a_peer_unreachable_through_the_relay():
    honest_ip = second_address()
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--listen", f"/ip4/{honest_ip}/tcp/0")
    loop_addr = next(a for a in relay.addrs if a.startswith("/ip4/127.0.0.1/"))
    honest_addr = next(a for a in relay.addrs if a.startswith(f"/ip4/{honest_ip}/"))
    victim = await Network.create(NetworkConfig(relays=[loop_addr], webrtc=None))
    attackers: list[Network] = []
    try:
        await reserved(victim)
        target = victim.local_peer_id()
        refused = 0
        for _ in range(8):  # each one a fresh peer ID, all from 127.0.0.1, each holding a circuit
            a = await Network.create(NetworkConfig(webrtc=None))
            attackers.append(a)
            try:
                await a.connect(f"{loop_addr}/p2p-circuit/p2p/{target}")
            except PeerUnreachable as exc:
                assert "RESOURCE_LIMIT_EXCEEDED" in str(exc), exc
                refused += 1
        assert refused == 4, "127.0.0.1 holds its share of the victim's circuits (4) and no more"

        honest = await Network.create(NetworkConfig(webrtc=None))
        try:
            peer = await honest.connect(f"{honest_addr}/p2p-circuit/p2p/{target}")
            assert await honest.ping(peer) > 0
            assert [c.transport for c in honest.connections(peer)] == ["relay"]
        finally:
            await honest.close()
    finally:
        for a in attackers:
            await a.close()
        await victim.close()
        await relay.stop()
