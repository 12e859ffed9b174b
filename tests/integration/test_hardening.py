"""Issue 12, attacks 1, 4 and 7 against a real ``darkswap-relay`` process on 127.0.0.1.

Each attacker is written with the project's own machines (a ``Network`` for the connection, a
``MessageSession`` and raw frames for the bomb), as the issue's reproduction was. Each test
asserts three things: the attacker is refused at the limit, an honest peer reserves on the relay
and is pinged through it during the attack, and the relay's memory (``VmHWM``, the peak RSS, from
``/proc/<pid>/status``) stays within a bound of its baseline.
"""

from __future__ import annotations

import asyncio

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.errors import DarkSwapError, NegotiationError, Timeout
from darkswap_wasm.host.connection import ConnectionConfig
from darkswap_wasm.host.host import HostConfig
from darkswap_wasm.host.relay_server import read_message
from darkswap_wasm.protocols import darkswap_msg as dm
from darkswap_wasm.protocols import identify, ping
from darkswap_wasm.protocols import webrtc_signaling as sig
from darkswap_wasm.protocols.circuit_v2 import HOP_PROTOCOL_ID, HopMessage, HopType, Status
from darkswap_wasm.protocols.yamux import YamuxConfig
from darkswap_wasm.wire import varint
from darkswap_wasm.wire.framing import FrameDecoder

from .helpers import async_test, reserved
from .procs import NodeProcess, RelayProcess

pytestmark = pytest.mark.native_crypto

MIB = 1024 * 1024
KIB = 1024


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


async def attacker_network(**host) -> Network:
    return await Network.create(NetworkConfig(webrtc=None, monitor=None, host=HostConfig(**host)))


async def start_relay() -> RelayProcess:
    # every peer here comes from 127.0.0.1: room for the honest checks' reservations
    return await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "0", "--max-reservations-per-peer", "64"
    )


async def honest_peers_work(relay_addr: str) -> None:
    """A fresh peer reserves on the relay and another one pings it through the circuit."""
    b = await Network.create(NetworkConfig(relays=[relay_addr], webrtc=None))
    a = await Network.create(NetworkConfig(webrtc=None))
    try:
        await reserved(b)
        [addr] = [str(x) for x in b.listen_addrs() if "/p2p-circuit/" in str(x) and "/webrtc" not in str(x)]
        peer = await a.connect(addr)
        assert [c.transport for c in a.connections(peer)] == ["relay"]
        assert await a.ping(peer) > 0
    finally:
        await a.close()
        await b.close()


async def reserve_on(net: Network, conn) -> Status:
    """A circuit-v2 RESERVE on exactly this connection; the relay's answer."""
    stream = await net.host.new_stream_on(conn, [HOP_PROTOCOL_ID])
    await stream.write(HopMessage(HopType.RESERVE).encode())
    reply = await read_message(stream, HopMessage, 10)
    await stream.close()
    return reply.status


# ----------------------------------------------------------------- attack 1: the 30 KB bomb


def acks_in(decoder: FrameDecoder, data: bytes) -> int:
    """Messages acknowledged by the target's ACK frames (it sends us nothing else)."""
    total = 0
    for frame in decoder.feed(data):
        if frame[0] == dm.TYPE_ACK << 4:
            total += varint.decode(frame, 1)[0]
        elif frame[0] >> 4 == dm.TYPE_DATA and frame[0] & dm.DATA_ACK:
            total += varint.decode(frame, 1)[0]
    return total


async def bomb(target_addr: str, count: int = 1700) -> tuple[Network, int, int, object]:
    """One throwaway peer ID: handshake with our MessageSession, then ``count`` zstd DATA frames of
    ~150 bytes, each a 4 MiB message, in one write. Returns (network, bomb bytes, messages the
    target acknowledged, the stream)."""
    net = await attacker_network()
    target = await net.connect(target_addr)
    stream = await net.new_stream(target, [dm.PROTOCOL_ID])
    session = dm.MessageSession(dm.MessagingConfig(send_buffer_bytes=16 * MIB), now=0)
    session.attach(0)
    await stream.write(session.data_to_send())
    while not session.is_connected:
        session.receive_data(await stream.read(timeout=10), 0)
    assert session.compressing
    message = bytes(4 * MIB - 16)
    frames = []
    for _ in range(3):
        session.send(message, 0)
        session.flush(0)
        frames.append(session.data_to_send())
    assert frames[1] == frames[2]  # the compressor's steady state: every later frame is the same
    payload = frames[0] + frames[1] * (count - 1)
    assert len(payload) < 250 * KIB  # fits the stream's initial window: one write, one read
    await stream.write(payload, timeout=10)
    # what the target acknowledges (it acks every message it decoded into its inbox)
    decoder = FrameDecoder(1 << 20)
    acked = 0
    while True:
        try:  # the first ack may take a while on a loaded machine; then quiet for 2 s = done
            data = await stream.read(timeout=2 if acked else 60)
        except Timeout:
            break
        if not data:
            break
        acked += acks_in(decoder, data)
    return net, len(payload), acked, stream


@async_test(timeout=60)
async def test_the_relay_runs_no_messaging_and_no_webrtc_signaling():
    """Issue 12, attack 5: the relay acknowledged DarkSwap messages nobody would read (8 peer IDs
    left 132 MiB held for good) and built a peer connection for every signaling stream. It serves
    neither now: the bomb below does not get past protocol negotiation."""
    relay = await start_relay()
    net = await attacker_network()
    try:
        peer = await net.connect(relay.addr())
        for protocol in (dm.PROTOCOL_ID, sig.PROTOCOL_ID):
            with pytest.raises(NegotiationError):
                await net.new_stream(peer, [protocol])
        await honest_peers_work(relay.addr())
    finally:
        await net.close()
        assert await relay.stop() == 0


@async_test(timeout=240)
async def test_30_kb_zstd_bomb_is_refused_at_the_inbox_budget_of_a_node_that_never_reads():
    node = await NodeProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")  # no --echo: it reads nothing
    attackers = []
    honest = await Network.create(NetworkConfig(webrtc=None, monitor=None))
    try:
        node_peer = await honest.connect(node.addrs[0])
        await honest.wait_delivered(node_peer, await honest.send_message(node_peer, b"warm-up"), timeout=10)
        base = memory_kib(node.proc.pid)
        per_peer = dm.MessagingConfig().inbox_bytes_per_peer
        for _ in range(2):  # the second throwaway peer ID doubled it
            net, size, acked, stream = await bomb(node.addrs[0])
            attackers.append(net)
            print(f"bomb of {size} bytes: the node acknowledged {acked} messages")
            # refused at the budget: only what fits the inbox was decoded and acknowledged ...
            assert 1 <= acked <= per_peer // (4 * MIB) + 2, acked
            # ... and the rest is not read: more of it gets no window, the sender waits
            with pytest.raises(Timeout):
                await stream.write(bytes(1 * MIB), timeout=3)
            # an honest peer's messages are still taken (its own budget; the total has room)
            seq = await honest.send_message(node_peer, b"order")
            await honest.wait_delivered(node_peer, seq, timeout=10)
        now = memory_kib(node.proc.pid)
        grown = (now["VmHWM"] - base["VmHWM"]) / 1024
        print(f"node memory: baseline {base}, now {now}, peak grew {grown:.1f} MiB")
        # main: a relay went 67 -> 873 MiB after one bomb, 1,674 MiB after two
        assert grown <= 64, f"node peak RSS grew by {grown:.0f} MiB (baseline {base}, now {now})"
        assert node.proc.returncode is None
    finally:
        for net in [*attackers, honest]:
            await net.close()
        assert await node.stop() == 0


@async_test(timeout=240)
async def test_30_kb_zstd_bomb_against_a_node_that_reads_its_messages():
    # the issue: "a node that reads its messages still peaked at 830 MiB" (one read inflated them all)
    node = await NodeProcess.start("--listen", "/ip4/127.0.0.1/tcp/0", "--echo")
    attacker = honest = None
    try:
        honest = await Network.create(NetworkConfig(webrtc=None, monitor=None))
        node_peer = await honest.connect(node.addrs[0])
        await honest.send_message(node_peer, b"warm-up")
        assert await honest.receive_message(node_peer, timeout=10) == b"warm-up"
        base = memory_kib(node.proc.pid)
        attacker, size, acked, _stream = await bomb(node.addrs[0])
        # the inbox budget (16 MiB: 4-5 messages) plus the 3 the echo took out (its send buffer,
        # 8 MiB, then fills: the attacker never reads the echoes), not 1,700
        assert 1 <= acked <= dm.MessagingConfig().inbox_bytes_per_peer // (4 * MIB) + 2 + 3, acked
        # an honest peer is echoed during the attack
        await honest.send_message(node_peer, b"still there?")
        assert await honest.receive_message(node_peer, timeout=10) == b"still there?"
        now = memory_kib(node.proc.pid)
        grown = (now["VmHWM"] - base["VmHWM"]) / 1024
        print(f"node memory: baseline {base}, now {now}, peak grew {grown:.1f} MiB")
        assert grown <= 64, f"node peak RSS grew by {grown:.0f} MiB (baseline {base}, now {now})"
    finally:
        for net in (attacker, honest):
            if net is not None:
                await net.close()
        assert await node.stop() == 0


# ----------------------------------------------------- attack 4: 64 identify streams, unread


@async_test(timeout=240)
async def test_64_unread_identify_streams_hold_no_memory():
    relay = await start_relay()
    attacker = await attacker_network()
    try:
        await honest_peers_work(relay.addr())
        base = memory_kib(relay.proc.pid)
        peer = await attacker.connect(relay.addr())
        [conn] = attacker.connections(peer)
        streams = [await attacker.host.new_stream_on(conn, [identify.PROTOCOL_ID]) for _ in range(64)]
        sent = [0] * len(streams)
        chunk = bytes(256 * KIB)

        async def flood(i: int) -> None:
            # 16 MiB into a stream whose handler never reads it (main granted all of it at once)
            try:
                while sent[i] < 16 * MIB:
                    await streams[i].write(chunk, timeout=3)
                    sent[i] += len(chunk)
            except (Timeout, DarkSwapError):
                pass  # no more window: refused

        await asyncio.gather(*(flood(i) for i in range(len(streams))))
        await honest_peers_work(relay.addr())  # during the attack, the attacker still connected
        now = memory_kib(relay.proc.pid)
        grown = (now["VmHWM"] - base["VmHWM"]) / 1024
        print(f"relay memory: baseline {base}, now {now}, peak grew {grown:.1f} MiB")
        # refused at the spec's window: nothing beyond 256 KiB per stream was ever accepted
        assert max(sent) < 256 * KIB, sent
        assert grown <= 48, f"relay peak RSS grew by {grown:.0f} MiB (baseline {base}, now {now})"
        # the connection is still usable for honest requests
        assert await attacker.ping(peer) > 0
    finally:
        await attacker.close()
        assert await relay.stop() == 0


# --------------------------------------------------------------- attack 7: identify pushes


@async_test(timeout=240)
async def test_600_identify_pushes_then_a_reservation_on_the_same_connection():
    relay = await start_relay()
    # the attacker keeps its own side of every push (far more than the relay's 512 streams)
    attacker = await attacker_network(connection=ConnectionConfig(yamux=YamuxConfig(max_streams=4096)))
    try:
        base = memory_kib(relay.proc.pid)
        peer = await attacker.connect(relay.addr())
        [conn] = attacker.connections(peer)
        push = identify.IdentifyInfo(
            protocol_version=identify.PROTOCOL_VERSION,
            agent_version="js-libp2p/like",
            public_key=attacker.host.identity.public_key,
            observed_addr=conn.remote_addr,
            protocols=(identify.PUSH_PROTOCOL_ID,),
        ).encode()
        refused = 0
        for _ in range(600):  # js-libp2p pushes whenever its addresses change
            try:
                stream = await attacker.host.new_stream_on(conn, [identify.PUSH_PROTOCOL_ID])
                await stream.write(push)
                await stream.close()
            except DarkSwapError:
                refused += 1
        assert refused == 0  # main: the relay refused every push after ~500
        assert await reserve_on(attacker, conn) is Status.OK  # main: refused (stream reset)
        assert await attacker.ping(peer) > 0
        await honest_peers_work(relay.addr())
        grown = (memory_kib(relay.proc.pid)["VmHWM"] - base["VmHWM"]) / 1024
        print(f"relay memory: peak grew {grown:.1f} MiB")
        assert grown <= 64, f"relay peak RSS grew by {grown:.0f} MiB"
    finally:
        await attacker.close()
        assert await relay.stop() == 0


# ------------------------------------------------------- messaging state of peers that left


@async_test(timeout=120)
async def test_messaging_state_of_peers_that_left_is_dropped():
    config = dm.MessagingConfig(give_up_after=1.0)
    node = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None, messaging=config))
    service = node._messaging  # the node's messaging service: what it keeps per peer

    try:
        addr = str(node.listen_addrs()[0])
        gone = []
        for i in range(20):  # throwaway peer IDs: one message each, then gone
            peer = await Network.create(NetworkConfig(webrtc=None, monitor=None))
            try:
                await peer.connect(addr)
                seq = await peer.send_message(node.local_peer_id(), b"hello %d" % i)
                assert await node.receive_message(peer.local_peer_id(), timeout=10) == b"hello %d" % i
                await peer.wait_delivered(node.local_peer_id(), seq, timeout=10)
                gone.append(peer.local_peer_id())
            finally:
                await peer.close()
        deadline = asyncio.get_running_loop().time() + 30
        while any(service.session(p) for p in gone) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        kept = [p for p in gone if service.session(p) is not None]
        assert kept == []  # main: all 20 sessions kept for good (a relay: one per stranger)
        # a peer that comes back later is served as before
        back = await Network.create(NetworkConfig(webrtc=None, monitor=None))
        try:
            await back.connect(addr)
            await back.send_message(node.local_peer_id(), b"again")
            assert await node.receive_message(back.local_peer_id(), timeout=10) == b"again"
        finally:
            await back.close()
    finally:
        await node.close()


# -------------------------------------------- inbox budgets: per peer and in total, nothing lost


@async_test(timeout=120)
async def test_inbox_budgets_backpressure_senders_and_lose_nothing():
    mib_messages = 6
    config = dm.MessagingConfig(inbox_bytes_per_peer=3 * MIB, inbox_bytes_total=5 * MIB)
    node = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None, messaging=config))
    senders = [await Network.create(NetworkConfig(webrtc=None, monitor=None)) for _ in range(3)]
    try:
        addr = str(node.listen_addrs()[0])
        me = node.local_peer_id()
        for i, s in enumerate(senders):
            await s.connect(addr)
            for k in range(mib_messages):  # 1 MiB each, compressible: a few bytes on the wire
                await s.send_message(me, bytes([i, k]) * (MIB // 2), timeout=30)
        await asyncio.sleep(1.0)  # let the node take what its budgets allow
        acked = [s._messaging.session(me).acked_seq for s in senders]
        # the node never read: at most the budget (+ one message per read) was taken and acked
        assert all(a <= 3 + 1 for a in acked), acked  # per peer: 3 MiB
        assert sum(acked) <= 5 + 3, acked  # in total: 5 MiB (+ one per peer)
        assert sum(acked) < 3 * mib_messages  # the rest waits at the senders, unacked
        # the application reads: every message arrives, once, in order, and is acknowledged
        for i, s in enumerate(senders):
            for k in range(mib_messages):
                assert await node.receive_message(s.local_peer_id(), timeout=30) == bytes([i, k]) * (MIB // 2)
        for s in senders:
            await s.wait_delivered(me, mib_messages, timeout=30)
    finally:
        for s in senders:
            await s.close()
        await node.close()


# ------------------------------------------- yamux connection budget: refused, logged quietly


@async_test(timeout=120)
async def test_streams_over_the_connection_budget_are_refused_with_few_log_lines(caplog):
    from darkswap_wasm.host import connection as connection_module

    budget = YamuxConfig(connection_receive_budget=1 * MIB)  # 4 streams at the spec's 256 KiB
    node = await Network.create(
        NetworkConfig(
            listen_addrs=["/ip4/127.0.0.1/tcp/0"],
            webrtc=None,
            host=HostConfig(connection=ConnectionConfig(yamux=budget)),
        )
    )
    release = asyncio.Event()

    async def hold(stream) -> None:  # keeps its stream open, never reads it
        await release.wait()

    node.set_stream_handler("/hold", hold)
    attacker = await attacker_network()
    honest = await Network.create(NetworkConfig(webrtc=None, monitor=None))
    before = connection_module.refusals.counts["yamux:receive_budget"]
    try:
        addr = str(node.listen_addrs()[0])
        peer = await attacker.connect(addr)
        held, refused = [], 0
        with caplog.at_level("WARNING", logger="darkswap_wasm.host.connection"):
            for _ in range(60):
                try:
                    held.append(await attacker.new_stream(peer, ["/hold"]))
                except DarkSwapError:
                    refused += 1  # reset by the node: no room for another window
        lines = [r for r in caplog.records if "RESOURCE_LIMIT_EXCEEDED" in r.getMessage()]
        assert len(held) <= 4 and refused >= 56, (len(held), refused)
        assert connection_module.refusals.counts["yamux:receive_budget"] - before == refused
        assert 1 <= len(lines) < refused / 4  # one line per second at most, not one per refusal
        # the budget is the attacker's own connection's: everybody else is served
        await honest.connect(addr)
        assert await honest.ping(node.local_peer_id()) > 0
        assert await honest.new_stream(node.local_peer_id(), ["/hold"])
        with pytest.raises(DarkSwapError):
            await attacker.ping(peer)  # its own connection is full of its own streams...
        release.set()  # ...until the node's handlers let them go: then it is served again
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                assert await attacker.ping(peer) > 0
                break
            except DarkSwapError:
                assert asyncio.get_running_loop().time() < deadline, "the budget was never freed"
                await asyncio.sleep(0.05)
    finally:
        release.set()
        await honest.close()
        await attacker.close()
        await node.close()


# ------------------------------------------- attack 2: idle ping streams take every handler


@async_test(timeout=240)
async def test_idle_streams_of_a_few_peers_do_not_take_every_handler_slot():
    """Issue 12, attack 2: one shared pool of 1,024 inbound handlers; 3 connections holding 512
    idle ping streams each blocked every honest reservation (five do today, each connection's
    stream budget holding 256). Now one peer holds at most ``max_inbound_stream_handlers_per_peer``
    (128) of them; the rest are reset at once."""
    relay = await start_relay()
    attackers = [await attacker_network() for _ in range(5)]
    held = []
    try:
        await honest_peers_work(relay.addr())
        refused = 0
        for net in attackers:
            peer = await net.connect(relay.addr())
            for _ in range(512):
                try:
                    stream = await net.new_stream(peer, [ping.PROTOCOL_ID])
                    await stream.write(bytes(32))  # one ping, then idle: the handler waits for more
                    held.append(stream)
                except DarkSwapError:
                    refused += 1
        await asyncio.sleep(0.5)
        alive = [s for s in held if not s.is_reset]
        print(f"{len(held)} ping streams negotiated, {refused} refused, {len(alive)} still open")
        await honest_peers_work(relay.addr())  # a reservation and a ping through the relay meanwhile
        assert len(alive) <= 5 * 128, len(alive)  # each peer's share, not the host's 1,024
    finally:
        for net in attackers:
            await net.close()
        assert await relay.stop() == 0


# ------------------------------------------------- reservations: a rate limit, quiet logs


@async_test(timeout=120)
async def test_a_reservation_flood_is_rate_limited_and_logs_a_few_lines():
    """Issue 12: 478 reservations a second from one peer, an INFO line each. Now a peer gets
    ``--reservation-rate-per-peer`` (10 a minute) and a refusal is a line a second at most."""
    relay = await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0", "--max-reservations-per-peer", "64", "--log-level", "INFO",
        capture_stderr=True,
    )
    attacker = await attacker_network()
    try:
        peer = await attacker.connect(relay.addr())
        [conn] = attacker.connections(peer)
        answers = [await reserve_on(attacker, conn) for _ in range(200)]
        ok = answers.count(Status.OK)
        print(f"200 RESERVE from one peer: {ok} accepted, the rest {set(answers) - {Status.OK}}")
        assert 1 <= ok <= 10, ok  # the burst, then refused (refreshes of the one reservation)
        assert set(answers) <= {Status.OK, Status.RESOURCE_LIMIT_EXCEEDED}
        await honest_peers_work(relay.addr())  # others are not affected
    finally:
        await attacker.close()
        code = await relay.stop()
    assert code == 0
    lines = [line for line in relay.stderr if "reserv" in line]
    assert len(lines) <= 15, lines  # not one per request
