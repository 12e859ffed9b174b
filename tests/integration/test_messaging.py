"""DarkSwap messaging end to end: nothing lost, nothing twice, order kept, across cut paths."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.errors import MessageTooLarge, PeerUnreachable
from darkswap_wasm.protocols.darkswap_msg import MessagingConfig

from .helpers import async_test, reserved
from .procs import RelayProcess
from .proxy import CuttableProxy

pytestmark = pytest.mark.native_crypto

ASSETS = ["BTC", "RUNE:DOG•GO•TO•THE•MOON", "RUNE:UNCOMMON•GOODS", "ALKANE:2:1", "ALKANE:2:7"]


def orders(n: int, seed: int = 7) -> list[bytes]:
    """DarkSwap-like orders (~230 B of JSON each)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        base, quote = rng.sample(ASSETS, 2)
        out.append(
            json.dumps(
                {
                    "type": "order",
                    "id": f"{rng.getrandbits(64):016x}",
                    "seq": i,
                    "side": rng.choice(["buy", "sell"]),
                    "base": base,
                    "quote": quote,
                    "amount": f"{rng.randint(1, 10**8) / 10**8:.8f}",
                    "price": f"{rng.randint(1, 10**6) / 100:.2f}",
                    "expiry": 1795000000 + rng.randint(0, 86400),
                    "maker": "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
                },
                separators=(",", ":"),
            ).encode()
        )
    return out


async def deliver_with_cuts(sender, receiver, peer, msgs, cut, cuts: int) -> list[bytes]:
    """Send ``msgs`` as a steady stream; call ``cut()`` ``cuts`` times mid-stream (with messages
    in flight and more to come); return what arrived at the receiver."""
    got: list[bytes] = []
    cut_points = {len(msgs) * (k + 1) // (cuts + 1) for k in range(cuts)}

    async def recv():
        while len(got) < len(msgs):
            got.append(await receiver.receive_message(sender.local_peer_id(), timeout=60))

    async def send():
        seq = 0
        for i, m in enumerate(msgs):
            if i in cut_points:
                await cut()
            seq = await sender.send_message(peer, m)
            if i % 20 == 0:
                await asyncio.sleep(0.002)  # a steady stream, not one burst
        return seq

    seq, _ = await asyncio.gather(send(), recv())
    await sender.wait_delivered(peer, seq, timeout=60)
    return got


@async_test(timeout=120)
async def test_2000_orders_across_five_cuts_of_a_tcp_path_arrive_exactly_once_in_order():
    b = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None))
    port = int(b.listen_addrs()[0].value_for("tcp"))
    proxy = CuttableProxy("127.0.0.1", port)
    pport = await proxy.start()
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        peer = await a.connect(f"/ip4/127.0.0.1/tcp/{pport}/p2p/{b.local_peer_id()}")
        msgs = orders(2000)

        async def cut():
            proxy.cut()
            await asyncio.sleep(0.01)

        got = await deliver_with_cuts(a, b, peer, msgs, cut, cuts=5)
        assert got == msgs  # every message exactly once, in order
        assert proxy.connections >= 6  # the path really was cut and re-established five times
        payload = sum(len(m) for m in msgs)
        # everything that crossed the cut point (handshakes, acks, resends, both directions)
        assert proxy.bytes_forwarded < 0.6 * payload, (proxy.bytes_forwarded, payload)
        stats = a._messaging.session(peer).stats
        print(f"wire {proxy.bytes_forwarded} B for {payload} B of payload; {stats}")
        assert stats.compressed_frames_out > 0
        assert stats.handshakes >= 6
        assert stats.resent_messages > 0  # in-flight messages were lost at a cut and sent again
    finally:
        await a.close()
        await b.close()
        await proxy.close()


@async_test(timeout=120)
async def test_messages_survive_a_relay_restart_mid_stream(tmp_path):
    key = str(tmp_path / "relay.key")
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--identity", key, "--circuit-data", "0")
    port = relay.addr().split("/tcp/")[1].split("/")[0]
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    try:
        await reserved(a, b)
        peer = b.local_peer_id()  # reachable only through the relay: dialed by peer ID
        msgs = orders(1000, seed=11)
        restarted = []

        async def restart():
            nonlocal relay
            if restarted:
                return
            restarted.append(True)
            await relay.stop()
            relay = await RelayProcess.start(
                "--listen", f"/ip4/127.0.0.1/tcp/{port}", "--identity", key, "--circuit-data", "0"
            )

        got = await deliver_with_cuts(a, b, peer, msgs, restart, cuts=1)
        assert restarted and got == msgs
        assert all(c.transport == "relay" for c in a.connections(peer))
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=30)
async def test_a_message_over_the_maximum_is_a_clear_error():
    b = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None))
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        peer = await a.connect(b.listen_addrs()[0])
        with pytest.raises(MessageTooLarge):
            await a.send_message(peer, bytes(4 * 1024 * 1024 + 1))
        big = random.Random(1).randbytes(4 * 1024 * 1024)  # the maximum itself goes through whole
        await a.send_message(peer, big)
        assert await b.receive_message(a.local_peer_id(), timeout=20) == big
    finally:
        await a.close()
        await b.close()


@async_test(timeout=30)
async def test_a_sender_blocked_on_a_full_buffer_gets_a_clear_error_when_the_session_ends():
    from darkswap_wasm.protocols.darkswap_msg import MessagingConfig, SessionClosed

    b = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None))
    cfg = MessagingConfig(send_buffer_messages=5)
    a = await Network.create(NetworkConfig(webrtc=None, messaging=cfg))
    peer = await a.connect(b.listen_addrs()[0])
    await a.send_message(peer, b"hello")
    assert await b.receive_message(a.local_peer_id(), timeout=5) == b"hello"
    await b.close()  # the peer is gone: nothing will be acknowledged any more
    blocked = asyncio.ensure_future(asyncio.gather(*(a.send_message(peer, b"x" * 100) for _ in range(10))))
    await asyncio.sleep(0.3)
    assert not blocked.done()  # backpressure: the bounded buffer is full
    await a.close()
    with pytest.raises(SessionClosed):
        await asyncio.wait_for(blocked, 5)


@async_test(timeout=30)
async def test_a_failing_session_timer_ends_the_session_with_the_reason_instead_of_hanging():
    """Without its timer a session sends no delayed ack and no resend: a bug there (in a page, a
    Pyodide loop that refused a timeout, see transports/webloop.py) must surface, not stall."""
    from darkswap_wasm.protocols.darkswap_msg import SessionClosed

    b = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None))
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        peer = await a.connect(b.listen_addrs()[0])
        await a.send_message(peer, b"hello")
        assert await b.receive_message(a.local_peer_id(), timeout=5) == b"hello"
        p = b._messaging._peers[a.local_peer_id()]

        def boom(now):
            raise RuntimeError("boom")

        p.session.handle_timeout = boom
        p.session.next_deadline = lambda: 0.0  # due now: the driver's one timer fires
        p.driver.rearm()
        with pytest.raises(SessionClosed, match="driver failed: RuntimeError"):
            await b.receive_message(a.local_peer_id(), timeout=5)  # waiting when it failed: told why
        # a call after that starts a new session (driven by the same driver), which delivers
        seq = await b.send_message(a.local_peer_id(), b"x")
        assert await a.receive_message(b.local_peer_id(), timeout=10) == b"x"
        await b.wait_delivered(a.local_peer_id(), seq, timeout=10)
    finally:
        await a.close()
        await b.close()


@async_test(timeout=30)
async def test_an_idle_session_arms_no_timer():
    """The session's one timer follows its deadline (delayed ack, batch, give-up): once all is
    acknowledged nothing is armed (the old timer task woke every 5 s per peer for nothing)."""
    b = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None))
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        peer = await a.connect(b.listen_addrs()[0])
        seq = await a.send_message(peer, b"hello")
        assert await b.receive_message(a.local_peer_id(), timeout=5) == b"hello"
        await a.wait_delivered(peer, seq, timeout=5)
        pa = a._messaging._peers[peer]
        pb = b._messaging._peers[a.local_peer_id()]
        deadline = time.monotonic() + 5
        while pa.driver.armed_at is not None or pb.driver.armed_at is not None:
            assert time.monotonic() < deadline, (pa.driver.armed_at, pb.driver.armed_at)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert pa.driver.armed_at is None and pb.driver.armed_at is None
        seq = await a.send_message(peer, b"again")  # and it still works after
        assert await b.receive_message(a.local_peer_id(), timeout=5) == b"again"
        await a.wait_delivered(peer, seq, timeout=5)
    finally:
        await a.close()
        await b.close()


@async_test(timeout=60)
async def test_a_message_larger_than_the_relay_circuit_limit_is_a_clear_error():
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")  # default: 128 KiB per circuit
    a = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    b = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=None))
    try:
        await reserved(a, b)
        peer = b.local_peer_id()
        await a.send_message(peer, b"small")  # reaches b through the relay
        assert await b.receive_message(a.local_peer_id(), timeout=10) == b"small"
        assert a.connections(peer)[0].limit.data_limit == 128 * 1024
        with pytest.raises(MessageTooLarge, match="relay circuit"):
            await a.send_message(peer, bytes(200_000))
    finally:
        await a.close()
        await b.close()
        await relay.stop()


@async_test(timeout=90)
async def test_a_session_that_gave_up_is_replaced_once_the_peer_is_back(tmp_path):
    """Issue 12, item 8: after an outage longer than ``give_up_after`` both sides used to raise
    PeerUnreachable for good although they reconnected, and the message queued during the outage
    was lost without a word. Now the message that could not be delivered is reported as such,
    and the next send (or the peer's) starts a new session that delivers. The two peers reach
    each other only through a relay; the outage is the relay being down."""
    key = tmp_path / "relay.key"
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--identity", str(key))
    relay_addr = relay.addr()
    port = relay_addr.split("/tcp/")[1].split("/")[0]
    config = MessagingConfig(give_up_after=1.0)
    a = await Network.create(NetworkConfig(relays=[relay_addr], webrtc=None, messaging=config))
    b = await Network.create(NetworkConfig(relays=[relay_addr], webrtc=None, messaging=config))
    try:
        await reserved(a, b)
        peer, me = b.local_peer_id(), a.local_peer_id()
        s1 = await a.send_message(peer, b"before")
        assert await b.receive_message(me, timeout=10) == b"before"
        await a.wait_delivered(peer, s1, timeout=10)

        assert await relay.stop() == 0  # the only path is gone, and stays gone past give_up_after
        s2 = await a.send_message(peer, b"during the outage")  # queued: the session still hopes
        assert s2 == s1 + 1
        with pytest.raises(PeerUnreachable, match=f"message {s2} was not delivered"):
            await a.wait_delivered(peer, s2, timeout=10)  # the give-up says what was lost

        relay = await RelayProcess.start("--listen", f"/ip4/127.0.0.1/tcp/{port}", "--identity", str(key))
        await reserved(a, b, timeout=30)
        s3 = await a.send_message(peer, b"after")  # a new session, not the old PeerUnreachable
        assert s3 > s2
        assert await b.receive_message(me, timeout=10) == b"after"  # the lost one is not resent
        await a.wait_delivered(peer, s3, timeout=10)
        await b.send_message(me, b"reply")  # and the other side's session was replaced too
        assert await a.receive_message(peer, timeout=10) == b"reply"
        with pytest.raises(PeerUnreachable):  # still reported, later too
            await a.wait_delivered(peer, s2, timeout=1)
        await a.wait_delivered(peer, s1, timeout=1)  # and what was delivered stays delivered
    finally:
        await a.close()
        await b.close()
        await relay.stop()
