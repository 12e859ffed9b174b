"""Relay benchmarks.

    python bench/bench_relay.py reservations [--count 10000] [--clients 2]
    python bench/bench_relay.py throughput [--mib 32] [--runs 3]

``reservations``: how many reservations one relay process holds, and its RSS (target: 10,000
under 300 MB). Each reservation is a distinct peer with its own Noise + yamux connection, from
``--clients`` load processes.

``throughput``: a Python sender → circuit → Python sink, through our relay process and through a
js-libp2p relay (``--relay-unlimited``), in the same run; the endpoints are the same, only the
relay differs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from darkswap_wasm import Network, NetworkConfig  # noqa: E402
from tests.integration.procs import RelayProcess  # noqa: E402
from tests.interop.jspeer import JsPeer, require_node  # noqa: E402

MIB = 1024 * 1024
SINK = "/darkswap/sink/1.0.0"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def reservations(count: int, clients: int) -> None:
    relay = await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0",
        "--max-reservations", str(count + 100),
        "--max-reservations-per-peer", str(count + 100),
        "--max-connections", str(count + 200),
        "--reservation-rate-per-ip", "0",  # every bench client is on 127.0.0.1

    )
    print(f"relay pid {relay.proc.pid}: idle RSS {rss_mb(relay.proc.pid):.1f} MB")
    start = time.monotonic()
    procs = []
    per = count // clients
    for i in range(clients):
        n = per if i < clients - 1 else count - per * (clients - 1)
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "bench" / "reservation_clients.py"), relay.addr(), str(n),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=ENV,
            )
        )
    total = 0
    for p in procs:
        line = (await asyncio.wait_for(p.stdout.readline(), 900)).decode()
        total += int(line.split()[1])
    elapsed = time.monotonic() - start
    await asyncio.sleep(2)
    rss = rss_mb(relay.proc.pid)
    print(f"reservations held: {total} / {count} in {elapsed:.1f} s; relay RSS {rss:.1f} MB "
          f"({rss * 1024 / max(total, 1):.1f} KiB per reservation)")
    for p in procs:
        p.stdin.close()
    for p in procs:
        await asyncio.wait_for(p.wait(), 120)
    await relay.stop()


async def send_through(client: Network, addr: str, size: int) -> float:
    peer = await client.connect(addr)
    stream = await client.new_stream(peer, [SINK])
    chunk = bytes(range(256)) * 256
    t0 = time.perf_counter()
    sent = 0
    while sent < size:
        await stream.write(chunk)
        sent += len(chunk)
    await stream.close()
    count = int.from_bytes(await stream.readexactly(8, timeout=300), "big")
    assert count == size
    mibs = size / MIB / (time.perf_counter() - t0)
    for c in client.connections(peer):
        await c.close()
    return mibs


async def start_sink(relay_addr: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "sink_peer.py"), "--relay", relay_addr,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=ENV,
    )
    circuit = None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        if line == "ready":
            break
        if not line:
            raise RuntimeError("sink peer exited")
        if "/p2p-circuit/" in line:
            circuit = line
    return proc, circuit


async def throughput(mib: int, runs: int) -> None:
    require_node()
    size = mib * MIB
    ours = await RelayProcess.start(
        "--listen", "/ip4/127.0.0.1/tcp/0", "--circuit-data", "0", "--circuit-duration", "0"
    )
    theirs = await JsPeer.start("js-relay", "--relay-server", "--relay-unlimited", "--listen", "/ip4/127.0.0.1/tcp/0",
                                "--no-connection-monitor")
    sink_ours, circuit_ours = await start_sink(ours.addr())
    sink_js, circuit_js = await start_sink(theirs.addr("tcp"))
    client = await Network.create(NetworkConfig())
    res: dict[str, list[float]] = {"our relay": [], "js relay": []}
    try:
        for _ in range(runs):
            res["our relay"].append(await send_through(client, circuit_ours, size))
            res["js relay"].append(await send_through(client, circuit_js, size))
    finally:
        await client.close()
        for p in (sink_ours, sink_js):
            p.stdin.close()
            await p.wait()
        await ours.stop()
        await theirs.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"relayed stream, Python -> relay -> Python, TCP, {mib} MiB x {runs} (median MiB/s)")
    for k, v in res.items():
        print(f"  {k:10s} {med[k]:8.1f}   runs: {', '.join(f'{x:.1f}' for x in v)}")
    print(f"  ratio ours / js = {med['our relay'] / med['js relay']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["reservations", "throughput"])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.what == "reservations":
        asyncio.run(reservations(args.count, args.clients))
    else:
        asyncio.run(throughput(args.mib, args.runs))


if __name__ == "__main__":
    main()
