"""Prefer direct: a relayed connection we dialed upgrades to WebRTC by itself, and the messaging
session moves onto it without losing anything."""

from __future__ import annotations

import asyncio
import time

import pytest

from darkswap_wasm import Network, NetworkConfig

from ..integration.helpers import async_test
from ..integration.procs import RelayProcess

pytestmark = pytest.mark.native_crypto


@async_test(timeout=60)
async def test_relayed_connection_upgrades_itself_and_messages_follow(rtc_settings):
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "0")
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings))
    try:
        while not (a.reservations() and b.reservations()):
            await asyncio.sleep(0.05)
        peer = b.local_peer_id()
        msgs = [f"order {i}".encode() * 20 for i in range(300)]
        for m in msgs[:100]:
            await a.send_message(peer, m)  # starts on the relayed connection
        deadline = time.monotonic() + 10
        while a.connections(peer)[0].transport != "webrtc":
            assert time.monotonic() < deadline, "no automatic upgrade to WebRTC"
            await asyncio.sleep(0.02)
        for m in msgs[100:]:
            await a.send_message(peer, m)
        got = [await b.receive_message(a.local_peer_id(), timeout=10) for _ in msgs]
        assert got == msgs
        deadline = time.monotonic() + 5
        while a._messaging._peers[peer].stream.conn.transport != "webrtc":
            assert time.monotonic() < deadline, "the messaging session did not move to WebRTC"
            await asyncio.sleep(0.02)
    finally:
        await a.close()
        await b.close()
        await relay.stop()
