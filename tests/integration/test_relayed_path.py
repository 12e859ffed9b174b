"""The relayed path is as lossless as the direct one (issue 10, item 1).

Two nodes that can reach each other only through a relay whose circuits end after a few seconds
(the circuit *duration* limit of circuit relay v2), and whose WebRTC upgrade can never succeed
(no usable local network for ICE, as for browsers behind NATs without STUN/TURN): every message
sent each way over more than a minute arrives exactly once and in order, no send is rejected, no
send waits for a WebRTC attempt, and each ended circuit is replaced by a new one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.host.webrtc import WebRTCSettings
from darkswap_wasm.transports.webrtc_base import WebRTCConfig

from .helpers import async_test, reserved
from .procs import RelayProcess
from .test_messaging import orders

pytestmark = pytest.mark.native_crypto

# TEST-NET-1 (RFC 5737): no interface has an address in it, so ICE gathers no candidate and every
# WebRTC attempt fails, as it does between browsers that share no reachable network.
NO_ICE = WebRTCSettings(rtc=WebRTCConfig(allowed_networks=("192.0.2.0/24",)))
CIRCUIT_SECONDS = 20


@async_test(timeout=180)
async def test_forty_messages_each_way_across_ending_circuits_arrive_exactly_once_in_order():
    relay = await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-duration", str(CIRCUIT_SECONDS), "--circuit-data", "0"
    )
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=NO_ICE))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=NO_ICE))
    circuits: list[str] = []  # relayed connections a had to b (either side may have dialed)
    a.on("connection:open", lambda c: circuits.append(c.transport))
    try:
        await reserved(a, b)
        pa, pb = a.local_peer_id(), b.local_peer_id()
        a_msgs = orders(40, seed=1)
        b_msgs = orders(40, seed=2)
        got_at_a: list[bytes] = []
        got_at_b: list[bytes] = []
        slowest_send = 0.0
        errors: list[BaseException] = []

        async def sender(net: Network, peer, msgs: list[bytes]) -> int:
            nonlocal slowest_send
            seq = 0
            for m in msgs:
                t0 = time.monotonic()
                try:
                    seq = await net.send_webrtc_message(peer, m)  # WebRTC first: it fails every time
                except BaseException as exc:  # noqa: BLE001 - collected: no send may be rejected
                    errors.append(exc)
                slowest_send = max(slowest_send, time.monotonic() - t0)
                await asyncio.sleep(1.6)  # 40 messages over ~64 s: three circuits end meanwhile
            return seq

        async def receiver(net: Network, peer, got: list[bytes], n: int) -> None:
            while len(got) < n:
                got.append(await net.receive_message(peer, timeout=90))

        seq_a, seq_b, _, _ = await asyncio.gather(
            sender(a, pb, a_msgs),
            sender(b, pa, b_msgs),
            receiver(b, pa, got_at_b, 40),
            receiver(a, pb, got_at_a, 40),
        )
        assert errors == []
        await a.wait_delivered(pb, seq_a, timeout=60)
        await b.wait_delivered(pa, seq_b, timeout=60)
        assert got_at_b == a_msgs  # exactly once, in order
        assert got_at_a == b_msgs
        # every circuit ended after CIRCUIT_SECONDS and was replaced: more than three circuits
        assert circuits.count("relay") >= 3, circuits
        # a send queues; it never waits for a WebRTC attempt (each one takes seconds to fail)
        assert slowest_send < 2.0, slowest_send
        assert all(c.transport == "relay" for c in a.connections(pb))
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=60)
async def test_create_webrtc_data_channel_returns_the_relayed_connection_when_webrtc_fails():
    """No IndexError when the circuit is gone by the time the WebRTC attempt ended: the best
    connection then, or a clear PeerUnreachable; never an internal error."""
    relay = await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-duration", "3", "--circuit-data", "0"
    )
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=NO_ICE))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=NO_ICE))
    try:
        await reserved(a, b)
        for _ in range(3):
            conn = await a.create_webrtc_data_channel(b.local_peer_id())
            assert conn.transport == "relay"
            await asyncio.sleep(1.5)
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=90)
async def test_a_send_while_the_only_path_is_down_is_queued_and_delivered_once_it_is_back(tmp_path):
    """A peer we had a session with is not 'unreachable' because its relay restarts: the send is
    queued (no PeerUnreachable) and arrives once the relay is back and the peer re-reserved."""
    key = str(tmp_path / "relay.key")
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--identity", key, "--circuit-data", "0")
    port = relay.addr().split("/tcp/")[1].split("/")[0]
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    try:
        await reserved(a, b)
        pb = b.local_peer_id()
        seq = await a.send_message(pb, b"before")
        assert await b.receive_message(a.local_peer_id(), timeout=10) == b"before"
        await a.wait_delivered(pb, seq, timeout=10)  # nothing unacked: no re-attach is running
        await relay.stop()
        deadline = time.monotonic() + 10
        while a.connections(pb):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        seq = await a.send_message(pb, b"during")  # queued, not PeerUnreachable
        relay = await RelayProcess.start(
            "--listen", f"/ip4/127.0.0.1/tcp/{port}", "--identity", key, "--circuit-data", "0"
        )
        assert await b.receive_message(a.local_peer_id(), timeout=40) == b"during"
        await a.wait_delivered(pb, seq, timeout=10)
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=120)
async def test_dialing_a_webrtc_circuit_address_follows_the_upgrade_policy_when_webrtc_cannot_connect():
    """``connect("<relay>/p2p-circuit/webrtc/p2p/<peer>")`` where WebRTC cannot connect returns
    the relayed connection after at most ``upgrade_wait``, the round of attempts going on in the
    background, as ``create_webrtc_data_channel`` does (it used to wait for the whole round:
    ~45 s in a page before "connected"); once the round failed, another connect starts no new
    round while the peer is backed off."""
    settings = replace(NO_ICE, upgrade_wait=0.2)  # each attempt takes seconds to fail, a round more
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "0")
    a = await Network.create(NetworkConfig(webrtc=settings))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=settings))
    try:
        await reserved(b)
        pb = b.local_peer_id()
        [addr] = [str(x) for x in b.listen_addrs() if "/webrtc/" in str(x)]
        assert await a.connect(addr) == pb
        assert [c.transport for c in a.connections(pb)] == ["relay"]
        assert pb not in a.webrtc.failures  # returned while the round still runs...
        deadline = time.monotonic() + 90
        while pb not in a.webrtc.failures:  # ...which fails in the background
            assert time.monotonic() < deadline, "the WebRTC round never ended"
            await asyncio.sleep(0.1)
        assert not a.webrtc.may_try(pb)
        backed_off_until = a.webrtc._retry[pb][1]
        assert await a.connect(addr) == pb  # backed off: returns at once, no new round
        assert a.webrtc._retry[pb][1] == backed_off_until
        assert pb not in a.webrtc._dialing
        seq = await a.send_message(pb, b"over the relay")
        assert await b.receive_message(a.local_peer_id(), timeout=10) == b"over the relay"
        await a.wait_delivered(pb, seq, timeout=10)
    finally:
        await a.close()
        await b.close()
        await relay.stop()
