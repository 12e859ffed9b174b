"""Bulk throughput over TCP (and WS) + Noise + yamux: Python↔Python, Python↔js-libp2p and
js-libp2p↔js-libp2p, measured in the same run. Each pair is two processes on 127.0.0.1.

    python bench/bench_throughput.py [--mib 64] [--runs 3] [--transport tcp ws]

Sender opens ``/darkswap/sink/1.0.0``, writes N MiB in 64 KiB chunks, half-closes and waits for
the receiver's byte count. Prints a table (median MiB/s) and the ratio ours/js.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from darkswap_wasm import Network, NetworkConfig  # noqa: E402
from tests.interop.jspeer import JsPeer, require_node  # noqa: E402

SINK = "/darkswap/sink/1.0.0"
MIB = 1024 * 1024
CHUNK = 64 * 1024


async def start_py_peer(transport: str):
    listen = "/ip4/127.0.0.1/tcp/0" + ("/ws" if transport == "ws" else "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "sink_peer.py"), listen,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    addrs = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        if line == "ready":
            break
        if not line:
            raise RuntimeError("python sink peer exited")
        addrs.append(line)
    return proc, addrs[0]


async def py_send(net: Network, addr: str, size: int) -> float:
    peer = await net.connect(addr)
    stream = await net.new_stream(peer, [SINK])
    chunk = bytes(range(256)) * (CHUNK // 256)
    start = time.perf_counter()
    sent = 0
    while sent < size:
        await stream.write(chunk)
        sent += len(chunk)
    await stream.close()
    count = int.from_bytes(await stream.readexactly(8, timeout=120), "big")
    elapsed = time.perf_counter() - start
    assert count == size, (count, size)
    return size / MIB / elapsed


async def bench(transport: str, mib: int, runs: int) -> dict[str, list[float]]:
    require_node()
    size = mib * MIB
    listen = "/ip4/127.0.0.1/tcp/0" + ("/ws" if transport == "ws" else "")
    results: dict[str, list[float]] = {"py->py": [], "py->js": [], "js->py": [], "js->js": []}
    py_proc, py_addr = await start_py_peer(transport)
    js_a = await JsPeer.start("js-a", "--listen", listen, "--no-connection-monitor")
    js_b = await JsPeer.start("js-b", "--listen", listen, "--no-connection-monitor")
    client = await Network.create(NetworkConfig())
    try:
        for _ in range(runs):
            results["py->py"].append(await py_send(client, py_addr, size))
            results["py->js"].append(await py_send(client, js_a.addr(transport), size))
            r = await js_b.ok("throughput", peer=py_addr, size=size, timeout=300)
            results["js->py"].append(r["mib_per_s"])
            r = await js_b.ok("throughput", peer=js_a.addr(transport), size=size, timeout=300)
            results["js->js"].append(r["mib_per_s"])
    finally:
        await client.close()
        await js_a.stop()
        await js_b.stop()
        py_proc.stdin.close()
        await asyncio.wait_for(py_proc.wait(), 10)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--transport", nargs="+", default=["tcp", "ws"])
    args = ap.parse_args()
    for transport in args.transport:
        res = asyncio.run(bench(transport, args.mib, args.runs))
        med = {k: statistics.median(v) for k, v in res.items()}
        print(f"\n{transport.upper()} + Noise + yamux, {args.mib} MiB x {args.runs} runs (median MiB/s)")
        for k, v in res.items():
            print(f"  {k:7s} {med[k]:8.1f}   runs: {', '.join(f'{x:.1f}' for x in v)}")
        print(f"  ratio py->py / js->js = {med['py->py'] / med['js->js']:.2f}")
        print(f"  ratio py->js / js->js = {med['py->js'] / med['js->js']:.2f}")
        print(f"  ratio js->py / js->js = {med['js->py'] / med['js->js']:.2f}")


if __name__ == "__main__":
    main()
