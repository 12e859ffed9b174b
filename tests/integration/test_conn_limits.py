"""Issue 12, attack 3 and the handshake rate limit, against a real ``darkswap-relay`` on 127.0.0.1.

"No limit on connections per IP or per peer, no idle timeout: 1,100 sockets that send 20 bytes
and reconnect after the 10 s handshake timeout, or 1,024 idle authenticated connections from one
peer ID, made every honest check fail for 40 s", and "random first handshake messages drive the
relay to 93 % CPU (honest ping 1 -> 121 ms)".

Strangers come from other loopback addresses (127.0.0.2 and up: all of 127/8 is this machine's
loopback), honest peers from 127.0.0.1. The relay runs with ``--exempt-network none`` where the
honest peers must meet the same per-IP rules as the attackers (by default 127.0.0.1 is exempt).
The flooding attackers run in a process of their own (this module, run as a script), so the honest
latencies measured here are the relay's and not this event loop's.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import time
from collections import Counter

import pytest

from darkswap_wasm import Identity, Network, NetworkConfig
from darkswap_wasm.errors import DarkSwapError
from darkswap_wasm.host.connection import Connection, ConnectionConfig
from darkswap_wasm.protocols import multistream, ping
from darkswap_wasm.transports.tcp import TcpConnection
from darkswap_wasm.wire.multiaddr import Multiaddr

from .helpers import async_test, reserved
from .procs import ROOT, RelayProcess

pytestmark = pytest.mark.native_crypto

MSS_HEADER = multistream.encode_message(multistream.PROTOCOL_ID)  # the 20 bytes
ATTACK_IPS = [f"127.0.0.{i}" for i in range(2, 13)]  # 11 strangers' addresses
HONEST_IP = "127.0.0.1"


def raise_fd_limit(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample_fds(pid: int) -> tuple[asyncio.Future, list[int]]:
    """Sample a process's open file descriptors every 50 ms until the task is cancelled."""
    samples: list[int] = []

    async def run() -> None:
        while True:
            try:
                samples.append(open_fds(pid))
            except OSError:
                return
            await asyncio.sleep(0.05)

    return asyncio.ensure_future(run()), samples


def tcp_port(addr: str) -> int:
    return int(Multiaddr(addr).value_for("tcp"))


async def start_relay(*extra: str, exempt_loopback: bool = False) -> RelayProcess:
    args = ["--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "0", "--max-reservations-per-peer", "64"]
    if not exempt_loopback:
        args += ["--exempt-network", "none"]
    return await RelayProcess.start(*args, *extra)


async def honest_dial_ping(relay_addr: str) -> float:
    """A fresh peer dials the relay and pings it: seconds for both."""
    net = await Network.create(NetworkConfig(webrtc=None, monitor=None))
    try:
        start = time.monotonic()
        peer = await net.connect(relay_addr)
        await net.ping(peer)
        return time.monotonic() - start
    finally:
        await net.close()


async def honest_peers_work(relay_addr: str) -> float:
    """A fresh peer reserves on the relay and another one pings it through the circuit: seconds."""
    start = time.monotonic()
    b = await Network.create(NetworkConfig(relays=[relay_addr], webrtc=None, monitor=None))
    a = await Network.create(NetworkConfig(webrtc=None, monitor=None))
    try:
        await reserved(b, timeout=10)
        [addr] = [str(x) for x in b.listen_addrs() if "/p2p-circuit/" in str(x) and "/webrtc" not in str(x)]
        peer = await a.connect(addr)
        assert [c.transport for c in a.connections(peer)] == ["relay"]
        assert await a.ping(peer) > 0
        return time.monotonic() - start
    finally:
        await a.close()
        await b.close()


async def first_bytes(port: int, src: str, payload: bytes = b"", wait: float = 5.0) -> tuple[int, bool]:
    """Open a socket from ``src``, send ``payload``: (bytes the relay sent within ``wait``, whether it
    closed the connection by then)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    got = 0
    closed = False
    try:
        if payload:
            writer.write(payload)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(4096), left)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            got += len(data)
    finally:
        writer.close()
    return got, closed


async def run_attacker(mode: str, port: int, seconds: float, *args: str) -> asyncio.subprocess.Process:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.test_conn_limits", mode, str(port), str(seconds), *args,
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), env=env,
    )


async def attacker_report(proc: asyncio.subprocess.Process) -> dict:
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"attacker exited with {proc.returncode}"
    return json.loads(out.decode().strip().splitlines()[-1])


async def honest_checks_during(relay_addr: str, seconds: float) -> dict:
    """For ``seconds``: a long-lived honest connection pings the relay every 0.2 s, a fresh peer
    dials and pings every 0.5 s, and twice a fresh pair reserves and pings through the relay."""
    pinger = await Network.create(NetworkConfig(webrtc=None, monitor=None))
    pings: list[float] = []
    dials: list[float] = []
    circuits: list[float] = []
    errors: list[str] = []
    try:
        peer = await pinger.connect(relay_addr)
        end = time.monotonic() + seconds

        async def ping_loop() -> None:
            while time.monotonic() < end:
                try:
                    pings.append(await pinger.ping(peer))
                except DarkSwapError as exc:
                    errors.append(f"ping: {exc!r}")
                await asyncio.sleep(0.2)

        async def dial_loop() -> None:
            while time.monotonic() < end:
                try:
                    dials.append(await honest_dial_ping(relay_addr))
                except DarkSwapError as exc:
                    errors.append(f"dial+ping: {exc!r}")
                await asyncio.sleep(0.5)

        async def circuit_loop() -> None:
            for _ in range(2):
                await asyncio.sleep(seconds / 3)
                try:
                    circuits.append(await honest_peers_work(relay_addr))
                except (DarkSwapError, AssertionError) as exc:
                    errors.append(f"reserve+circuit: {exc!r}")

        await asyncio.gather(ping_loop(), dial_loop(), circuit_loop())
    finally:
        await pinger.close()
    return {"pings": pings, "dials": dials, "circuits": circuits, "errors": errors}


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return f"n={len(values)} median {statistics.median(values) * 1000:.1f} ms max {max(values) * 1000:.1f} ms"


def assert_honest_ok(checks: dict) -> None:
    assert checks["errors"] == [], checks["errors"]
    assert len(checks["dials"]) >= 5 and len(checks["pings"]) >= 10 and len(checks["circuits"]) == 2
    # main: every honest check failed for 40 s. Bounds for a loaded 2-CPU CI machine:
    # (here: ping max ~1.2 s, dial+ping max ~2.2 s during the slowloris, ~0.1 / 0.4 s in the flood)
    assert max(checks["dials"]) < 6.0, summary(checks["dials"])
    assert max(checks["pings"]) < 4.0, summary(checks["pings"])
    assert max(checks["circuits"]) < 12.0, summary(checks["circuits"])


# --------------------------------------------- 1,100 sockets holding half-open handshakes


@async_test(timeout=180)
async def test_1100_sockets_holding_half_open_handshakes_do_not_lock_honest_peers_out():
    relay = await start_relay()
    try:
        port = tcp_port(relay.addr())
        base_cpu = cpu_seconds(relay.proc.pid)
        base_fds = open_fds(relay.proc.pid)
        fd_task, fds = sample_fds(relay.proc.pid)
        attack_seconds = 15.0  # past the 10 s handshake timeout: held sockets are dropped and reconnect
        attacker = await run_attacker("slowloris", port, attack_seconds, "1100", *ATTACK_IPS)
        await asyncio.sleep(2.0)  # the attack is under way
        checks = await honest_checks_during(relay.addr(), attack_seconds - 4)
        report = await attacker_report(attacker)
        fd_task.cancel()
        cpu = cpu_seconds(relay.proc.pid) - base_cpu
        print(f"attacker: {report}")
        fds.sort()
        held = fds[len(fds) // 2] - base_fds  # the steady state; the peaks are sockets being closed
        print(f"relay file descriptors: {base_fds} before; during the attack median {fds[len(fds) // 2]}, "
              f"90th percentile {fds[len(fds) * 9 // 10]}, max {fds[-1]}")
        print(f"honest ping {summary(checks['pings'])}; dial+ping {summary(checks['dials'])}; "
              f"reserve+circuit ping {summary(checks['circuits'])}; relay CPU {cpu:.1f} s in {attack_seconds:g} s")
        assert report["sockets"] >= 500, report  # 1,100, or what the fd limit allows
        # refused at the limits (8 half-open handshakes per IP, 64 in all, 10 handshakes a second
        # per IP): most attempts were closed before any byte
        assert report["refused"] > report["served"], report
        assert report["served"] <= len(ATTACK_IPS) * (20 + 10 * attack_seconds) + 50, report
        # the relay's sockets: at most 64 pending, the honest peers' few, and the refused ones on
        # their way out (~1,000 refusals a second: each lives a few turns of a busy event loop;
        # 90-170 at the median here). main: every one of the 1,100 held for the 10 s timeout
        assert held < 1100 // 2, (base_fds, fds)
        assert_honest_ok(checks)
        assert relay.proc.returncode is None
    finally:
        assert await relay.stop() == 0


# --------------------------------------- random first handshake messages, as fast as possible


@async_test(timeout=180)
async def test_a_flood_of_random_first_handshake_messages_is_rate_limited_per_ip():
    relay = await start_relay()
    try:
        port = tcp_port(relay.addr())
        base_cpu = cpu_seconds(relay.proc.pid)
        attack_seconds = 10.0
        attacker = await run_attacker("noise_flood", port, attack_seconds, "64", "127.0.0.2")
        await asyncio.sleep(1.0)
        checks = await honest_checks_during(relay.addr(), attack_seconds - 3)
        report = await attacker_report(attacker)
        cpu = cpu_seconds(relay.proc.pid) - base_cpu
        print(f"attacker: {report}")
        print(f"honest ping {summary(checks['pings'])}; dial+ping {summary(checks['dials'])}; "
              f"relay CPU {cpu:.1f} s in {attack_seconds:g} s ({cpu / report['attempts'] * 1e6:.0f} us an attempt)")
        # the relay did handshake work for the bucket's burst (20) and rate (10/s) only: the
        # rest were closed before their first message was read
        assert report["attempts"] >= 300, report
        assert report["served"] <= 20 + 10 * report["seconds"] + 10, report
        assert report["refused"] >= report["attempts"] - report["served"] - 5, report
        assert_honest_ok(checks)
    finally:
        assert await relay.stop() == 0


# ----------------------------------------------- the per-IP pending limit, before any Noise


@async_test(timeout=60)
async def test_the_per_ip_pending_limit_refuses_before_the_first_handshake_byte():
    relay = await start_relay()
    held = []
    try:
        port = tcp_port(relay.addr())
        src = "127.0.0.2"
        for _ in range(8):  # 8 half-open handshakes: each answered with the multistream header
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
            held.append(writer)
            assert await asyncio.wait_for(reader.readexactly(len(MSS_HEADER)), 5) == MSS_HEADER
        # the 9th from that IP is closed at once, before the relay sent a handshake byte
        got, closed = await first_bytes(port, src, MSS_HEADER, wait=5)
        assert (got, closed) == (0, True)  # main: answered and held for 10 s
        # another IP is not affected
        got, closed = await first_bytes(port, "127.0.0.3", wait=1)
        assert got == len(MSS_HEADER) and not closed
        # one of the 8 ends: room for one more from that IP
        held.pop().close()
        await asyncio.sleep(0.5)
        got, _ = await first_bytes(port, src, wait=1)
        assert got == len(MSS_HEADER)
        await honest_peers_work(relay.addr())
    finally:
        for w in held:
            w.close()
        assert await relay.stop() == 0


# ------------------------------------------ 1,024 authenticated connections of one peer ID


async def authenticated(port: int, identity: Identity, relay_peer, src: str = HONEST_IP) -> Connection | None:
    """One more upgraded connection to the relay as ``identity`` (None: the relay refused it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    conn = Connection(
        TcpConnection(reader, writer), identity, is_initiator=True, expected_peer=relay_peer,
        config=ConnectionConfig(), on_stream=lambda stream: None, on_closed=lambda conn: None,
    )
    try:
        await conn.start()
    except DarkSwapError:
        return None
    return conn


@async_test(timeout=240)
async def test_1024_authenticated_connections_of_one_peer_id_are_bounded_per_peer():
    count = min(1024, raise_fd_limit(4096) - 200) // 32 * 32  # 1,024, or what the fd limit allows
    relay = await start_relay(exempt_loopback=True)  # from 127.0.0.1 only the per-peer rule applies
    identity = Identity.generate()
    conns: list[Connection] = []
    try:
        port = tcp_port(relay.addr())
        from darkswap_wasm.identity import PeerId

        relay_peer = PeerId.from_string(relay.peer_id)
        base = rss_kib(relay.proc.pid)
        start = time.monotonic()
        opened = 0
        honest_during = asyncio.ensure_future(honest_peers_work(relay.addr()))
        for _ in range(count // 32):
            batch = await asyncio.gather(*(authenticated(port, identity, relay_peer) for _ in range(32)))
            conns.extend(c for c in batch if c is not None)
            opened += sum(c is not None for c in batch)
        took = time.monotonic() - start
        reserve_during = await honest_during
        deadline = time.monotonic() + 15
        while sum(not c.closed for c in conns) > 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        alive = sum(not c.closed for c in conns)
        grown = (rss_kib(relay.proc.pid) - base) / 1024
        print(f"{opened} connections of one peer ID opened in {took:.1f} s; the relay holds {alive}; "
              f"its RSS grew {grown:.1f} MiB; an honest reservation + circuit ping during it took "
              f"{reserve_during:.2f} s")
        assert opened == count  # each one got in (the peer's oldest idle one made room) ...
        assert alive <= 8  # ... and the relay holds at most the per-peer limit (main: all 1,024)
        assert await conns[-1].ping(5) >= 0  # the newest one works
        took = await honest_peers_work(relay.addr())
        assert took < 10.0
    finally:
        for c in conns:
            await c.close()
        assert await relay.stop() == 0


# ------------------------------------------------- a peer that reconnects quickly gets in


@async_test(timeout=120)
async def test_a_peer_that_reconnects_before_its_old_connections_are_noticed_dead_gets_in():
    relay = await start_relay()
    identity = Identity.generate()
    stale: list[Connection] = []
    net = None
    try:
        port = tcp_port(relay.addr())
        from darkswap_wasm.identity import PeerId

        relay_peer = PeerId.from_string(relay.peer_id)
        # 8 connections of this peer ID the relay still believes in (a crashed process's, say;
        # from 127.0.0.1, which the relay gives the same per-IP rules as a stranger here)
        for _ in range(8):
            conn = await authenticated(port, identity, relay_peer)
            assert conn is not None
            stale.append(conn)
        # the peer restarts with the same identity and reserves at once
        start = time.monotonic()
        net = await Network.create(NetworkConfig(identity=identity, relays=[relay.addr()], webrtc=None, monitor=None))
        await reserved(net, timeout=10)
        took = time.monotonic() - start
        assert await net.ping(relay_peer) > 0
        deadline = time.monotonic() + 5
        while sum(c.closed for c in stale) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        closed = sum(c.closed for c in stale)
        print(f"reserved {took:.2f} s after restarting; {closed} of the 8 stale connections closed")
        assert took < 5.0
        assert closed == 1  # the oldest idle one made room (main: the relay kept all 9)
        assert stale[0].closed
        # and again: the restarted peer is never refused, its stale connections go one by one
        for _ in range(3):
            conn = await authenticated(port, identity, relay_peer)
            assert conn is not None
            stale.append(conn)
        await asyncio.sleep(1.0)
        assert sum(not c.closed for c in stale) + len(net.connections(relay_peer)) <= 8
        assert net.reservations()  # the reservation's connection was not the one to go
        assert await net.ping(relay_peer) > 0
    finally:
        for c in stale:
            await c.close()
        if net is not None:
            await net.close()
        assert await relay.stop() == 0


# ------------------------------------------------------------------------- the idle timeout


async def wait_closed(net: Network, peer, timeout: float, since: float | None = None) -> float | None:
    """Seconds from ``since`` (default: now) until ``net`` has no connection to ``peer`` left
    (None: still connected after ``timeout``)."""
    start = time.monotonic() if since is None else since
    while time.monotonic() - start < timeout:
        if not net.connections(peer):
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


def closed_at(net: Network, peer) -> asyncio.Future:
    """A task whose result is the monotonic time ``net`` lost its last connection to ``peer``."""

    async def watch() -> float:
        while net.connections(peer):
            await asyncio.sleep(0.05)
        return time.monotonic()

    return asyncio.ensure_future(watch())


@async_test(timeout=90)
async def test_idle_connections_are_closed_and_busy_reserved_or_relaying_ones_are_not():
    idle_timeout = 1.5
    relay = await start_relay("--idle-timeout", str(idle_timeout))
    nets: list[Network] = []

    async def network(**kw) -> Network:
        n = await Network.create(NetworkConfig(webrtc=None, monitor=None, **kw))
        nets.append(n)
        return n

    try:
        from darkswap_wasm.identity import PeerId

        relay_peer = PeerId.from_string(relay.peer_id)
        idle = await network()
        busy = await network()
        reserving = await network(relays=[relay.addr()])
        await idle.connect(relay.addr())
        idle_since = time.monotonic()
        idle_gone = closed_at(idle, relay_peer)
        await busy.connect(relay.addr())
        open_stream = await busy.new_stream(relay_peer, [ping.PROTOCOL_ID])  # open, quiet
        await reserved(reserving)
        [circuit_addr] = [str(x) for x in reserving.listen_addrs() if "/p2p-circuit/" in str(x)
                          and "/webrtc" not in str(x)]
        relaying = await network()
        target = await relaying.connect(circuit_addr)  # a circuit through the relay, quiet
        [busy_conn] = busy.connections(relay_peer)
        [reserving_conn] = reserving.connections(relay_peer)
        [relaying_conn] = relaying.connections(relay_peer)

        try:
            took = await asyncio.wait_for(asyncio.shield(idle_gone), 6 * idle_timeout) - idle_since
        except TimeoutError:
            raise AssertionError("the idle connection was never closed") from None  # main: kept for good
        print(f"the idle connection was closed after {took:.2f} s (idle timeout {idle_timeout:g} s)")
        assert took >= idle_timeout * 0.8

        await asyncio.sleep(2.5 * idle_timeout)  # the others saw more than two idle periods
        assert busy.connections(relay_peer) == [busy_conn]  # a stream is open on it
        assert reserving.connections(relay_peer) == [reserving_conn]  # it holds a reservation
        assert reserving.reservations()
        assert relaying.connections(relay_peer) == [relaying_conn]  # it carries a circuit
        assert await relaying.ping(target) > 0

        # the stream ends: the connection is idle from then on and goes within two periods
        await open_stream.close()
        took = await wait_closed(busy, relay_peer, 6 * idle_timeout)
        print(f"after its stream closed, the busy connection was closed after {took:.2f} s")
        assert took is not None and took >= idle_timeout * 0.8
        await honest_peers_work(relay.addr())
    finally:
        for n in nets:
            await n.close()
        assert await relay.stop() == 0


@async_test(timeout=60)
async def test_host_idle_timeout_closes_only_connections_without_streams():
    from darkswap_wasm.host.host import HostConfig

    from .helpers import echo_handler

    server = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None, monitor=None,
                                                host=HostConfig(idle_timeout=1.0)))
    clients = [await Network.create(NetworkConfig(webrtc=None, monitor=None)) for _ in range(2)]
    try:
        server.set_stream_handler("/echo/1.0.0", echo_handler)
        addr = str(server.listen_addrs()[0])
        idle, busy = clients
        peer = await idle.connect(addr)
        since = time.monotonic()
        await busy.connect(addr)
        stream = await busy.new_stream(peer, ["/echo/1.0.0"])
        took = await wait_closed(idle, peer, 5, since)
        assert took is not None and 0.8 <= took < 5
        await stream.write(b"hi")
        assert await stream.read(timeout=5) == b"hi"
        await asyncio.sleep(2.5)
        assert busy.connections(peer) and await busy.ping(peer) > 0
        await stream.close()  # the echo handler returns: idle from now on
        took = await wait_closed(busy, peer, 5)
        assert took is not None and 0.8 <= took < 3
        assert server.host.idle_closed == 2
    finally:
        for n in [*clients, server]:
            await n.close()


@async_test(timeout=60)
async def test_idle_timeout_counts_from_when_the_last_stream_of_any_service_ended():
    """The connection says how many streams are open and when its last one ended (the muxer
    contract), so a stream the host never saw (a service's: messaging, a circuit) and one that
    is half-closed but still carries data both keep it busy, and the timeout runs from the end
    of the last one, not one timeout later."""
    from darkswap_wasm.host.host import HostConfig

    server = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None, monitor=None,
                                                host=HostConfig(idle_timeout=1.0)))
    client = await Network.create(NetworkConfig(webrtc=None, monitor=None))
    held: list = []

    async def talker(stream) -> None:  # answers after the dialer closed its half, for a while
        stream.claim()
        held.append(stream)

    try:
        server.set_stream_handler("/talk/1.0.0", talker)
        peer = await client.connect(str(server.listen_addrs()[0]))
        stream = await client.new_stream(peer, ["/talk/1.0.0"])
        await stream.close()  # our half is closed; the server's is open and still sends
        for _ in range(6):  # 3 s: three idle timeouts
            await asyncio.sleep(0.5)
            await held[0].write(b"tick")
            assert await stream.read(timeout=5) == b"tick"
        conn = server.connections(client.local_peer_id())[0]
        assert conn.num_streams == 1 and conn.idle_since is None
        await held[0].close()  # both halves closed now: the stream ends here
        assert await stream.read(timeout=5) == b""
        ended = time.monotonic()
        took = await wait_closed(client, peer, 5, ended)
        assert took is not None and 0.8 <= took < 1.8, took  # one timeout after the end (was up to two)
        assert server.host.idle_closed == 1
    finally:
        await client.close()
        await server.close()


# ----------------------------------------------------------- the attackers, as a process


async def _slowloris(port: int, seconds: float, sockets: int, ips: list[str]) -> dict:
    """``sockets`` sockets spread over ``ips``: each sends the 20-byte multistream header and waits
    for the relay to drop it, then reconnects after a pause (the issue's attacker reconnected as
    the 10 s handshake timeout dropped it; one refused at once comes back 0.5 s later)."""
    stats: Counter[str] = Counter()
    held = 0
    end = time.monotonic() + seconds

    async def one(ip: str) -> None:
        nonlocal held
        while time.monotonic() < end:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0))
            except OSError:
                stats["connect_errors"] += 1
                await asyncio.sleep(0.5)
                continue
            got = 0
            try:
                writer.write(MSS_HEADER)
                while time.monotonic() < end:
                    try:
                        data = await asyncio.wait_for(reader.read(4096), max(0.01, end - time.monotonic()))
                    except TimeoutError:
                        break
                    if not data:
                        break
                    if not got:
                        held += 1
                        stats["max_held"] = max(stats["max_held"], held)
                    got += len(data)
            except OSError:
                pass
            finally:
                if got:
                    held -= 1
                writer.close()
            stats["served" if got else "refused"] += 1
            await asyncio.sleep(0.5)

    tasks = [asyncio.ensure_future(one(ips[i % len(ips)])) for i in range(sockets)]
    stats["sockets"] = sockets
    await asyncio.gather(*tasks)
    return dict(stats)


async def _noise_flood(port: int, seconds: float, concurrency: int, ips: list[str]) -> dict:
    """Connections as fast as ``concurrency`` allows, each a well-formed multistream negotiation of
    ``/noise`` and a random first Noise message (then a random second one): the relay that answers
    computes its handshake reply for each."""
    from darkswap_wasm.protocols import noise

    proposal = MSS_HEADER + multistream.encode_message(noise.PROTOCOL_ID)
    stats: Counter[str] = Counter()
    start = time.monotonic()
    end = start + seconds

    async def one(ip: str) -> None:
        while time.monotonic() < end:
            stats["attempts"] += 1
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ip, 0))
            except OSError:
                stats["connect_errors"] += 1
                continue
            got = 0
            try:
                writer.write(proposal + (32).to_bytes(2, "big") + os.urandom(32))
                writer.write((96).to_bytes(2, "big") + os.urandom(96))
                while True:
                    try:
                        data = await asyncio.wait_for(reader.read(4096), 11)
                    except TimeoutError:
                        break
                    if not data:
                        break
                    got += len(data)
            except OSError:
                pass
            finally:
                writer.close()
            stats["served" if got else "refused"] += 1

    await asyncio.gather(*(one(ips[i % len(ips)]) for i in range(concurrency)))
    stats["seconds"] = round(time.monotonic() - start, 2)
    return dict(stats)


def main(argv: list[str]) -> int:
    mode, port, seconds, count, *ips = argv
    fds = raise_fd_limit(int(count) + 256)
    count = str(min(int(count), fds - 100))  # as many as the fd limit allows
    fn = {"slowloris": _slowloris, "noise_flood": _noise_flood}[mode]
    report = asyncio.run(fn(int(port), float(seconds), int(count), ips))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
