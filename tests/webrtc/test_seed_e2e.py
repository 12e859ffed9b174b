"""The seed's end-to-end test (4.1), for real: two networks that share only a relay."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.errors import MessageTooLarge

from ..integration.helpers import async_test
from ..integration.procs import RelayProcess

pytestmark = pytest.mark.native_crypto


@async_test(timeout=90)
async def test_webrtc_data_channel_send_and_receive(rtc_settings):
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0/ws")
    alice = await Network.create(NetworkConfig(relays=[relay.addr("ws")], webrtc=rtc_settings))
    bob = await Network.create(NetworkConfig(relays=[relay.addr("ws")], webrtc=rtc_settings))
    try:
        deadline = time.monotonic() + 10
        while not (alice.reservations() and bob.reservations()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert not alice.connections(bob.local_peer_id())  # they share only the relay

        await alice.create_webrtc_data_channel(bob.local_peer_id())
        assert alice.connections(bob.local_peer_id())[0].transport == "webrtc"

        order = b'{"type":"order","base":"BTC","quote":"RUNE:DOG","amount":"0.5","price":"101.25"}'
        await alice.send_webrtc_message(bob.local_peer_id(), order)
        assert await bob.receive_webrtc_message(alice.local_peer_id(), timeout=10) == order

        # both ways, and messages of a MiB and more arrive whole and in order
        big = [os.urandom(1024 * 1024), os.urandom(2 * 1024 * 1024 + 5), b"tail"]
        for m in big:
            await bob.send_webrtc_message(alice.local_peer_id(), m)
        got = [await alice.receive_webrtc_message(bob.local_peer_id(), timeout=30) for _ in big]
        assert got == big
        # the messaging stream rides the direct connection
        stream = alice._messaging._peers[bob.local_peer_id()].stream
        assert stream is not None and stream.conn.transport == "webrtc"

        with pytest.raises(MessageTooLarge):
            await alice.send_webrtc_message(bob.local_peer_id(), bytes(4 * 1024 * 1024 + 1))
    finally:
        await alice.close()
        await bob.close()
        await relay.stop()
