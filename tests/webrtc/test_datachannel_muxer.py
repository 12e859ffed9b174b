"""The data-channel muxer (host/datachannel.py) over two real aiortc peer connections in one
process: what the far side sends on a stream it opens the instant the connection is up, before
our side hands inbound streams to the host, is delivered in order, and the close after it.

Natively this used to lose the first messages: the connection parked inbound channels without a
message handler until ``start_accepting`` (after the signaling stream closed), and the aiortc
adapter drops messages that arrive with no handler installed.
"""

from __future__ import annotations

import asyncio

import pytest

from darkswap_wasm.host.connection import ConnectionConfig
from darkswap_wasm.host.datachannel import WebRTCConnection
from darkswap_wasm.identity import Identity
from darkswap_wasm.transports.webrtc_aiortc import AiortcRuntime
from darkswap_wasm.wire.multiaddr import Multiaddr

from ..integration.helpers import async_test, pattern

pytestmark = pytest.mark.native_crypto


def muxer(pc, peer, settings, *, initiator: bool, accepted: list) -> WebRTCConnection:
    async def no_ping(conn) -> float:
        raise AssertionError("not pinged in this test")

    return WebRTCConnection(
        pc,
        remote_peer=peer,
        remote_addr=Multiaddr("/ip4/127.0.0.1/tcp/1/webrtc"),
        settings=settings,
        config=ConnectionConfig(io_timeout=10.0),
        is_initiator=initiator,
        on_stream=accepted.append,
        on_closed=lambda c: None,
        pinger=no_ping,
    )


async def connected_pair(settings, accepted_a: list, accepted_b: list):
    runtime = AiortcRuntime()
    pa = runtime.create_peer_connection(settings.rtc)
    pb = runtime.create_peer_connection(settings.rtc)
    a = muxer(pa, Identity.generate().peer_id, settings, initiator=True, accepted=accepted_a)
    b = muxer(pb, Identity.generate().peer_id, settings, initiator=False, accepted=accepted_b)
    pa.create_data_channel("init")
    offer = await pa.create_offer()
    await pb.set_remote_description("offer", offer)
    answer = await pb.create_answer()
    await pa.set_remote_description("answer", answer)
    return a, b


@async_test(timeout=60)
async def test_messages_and_close_before_the_receiver_accepts_arrive_in_order(rtc_settings):
    accepted_a: list = []
    accepted_b: list = []
    a, b = await connected_pair(rtc_settings, accepted_a, accepted_b)
    try:
        assert await a.connected.wait(20), "ICE did not connect"
        a.start_accepting()
        # the far side opens its streams the instant the connection is up and sends at once;
        # our side (b) has not handed inbound streams to anyone yet
        payloads = [pattern(1000 + 4097 * i) for i in range(3)]
        for i, payload in enumerate(payloads):
            s = await a.open_stream()
            for k in range(0, len(payload), 700):  # many small writes: several messages
                await s.write(payload[k : k + 700])
            if i < 2:
                await s.close()  # the close must come after the data
        await asyncio.sleep(1.0)  # everything has arrived at b by now, with nobody reading
        assert accepted_b == []
        b.start_accepting()
        assert len(accepted_b) == 3, accepted_b
        for i, (stream, payload) in enumerate(zip(accepted_b, payloads, strict=True)):
            got = b""
            if i < 2:
                while chunk := await stream.read(timeout=10):
                    got += chunk
                assert got == payload, f"stream {i}: {len(got)} of {len(payload)} bytes, in order"
            else:
                got = await stream.readexactly(len(payload), timeout=10)
                assert got == payload
                # still open: the stream works both ways after the early part
                await stream.write(b"pong")
                assert await s.readexactly(4, timeout=10) == b"pong"
    finally:
        await a.close()
        await b.close()


@async_test(timeout=60)
async def test_early_inbound_channels_are_bounded(rtc_settings):
    from darkswap_wasm.host import datachannel

    accepted_a: list = []
    accepted_b: list = []
    a, b = await connected_pair(rtc_settings, accepted_a, accepted_b)
    old = datachannel.MAX_EARLY
    datachannel.MAX_EARLY = 4
    try:
        assert await a.connected.wait(20), "ICE did not connect"
        opened = [await a.open_stream() for _ in range(6)]
        await asyncio.sleep(0.5)
        b.start_accepting()
        assert len(accepted_b) == 4  # beyond the bound, early channels are closed, not held
        await asyncio.sleep(0.5)
        assert sum(1 for s in opened if s.at_eof) == 2
    finally:
        datachannel.MAX_EARLY = old
        await a.close()
        await b.close()
