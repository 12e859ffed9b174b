"""Microbenchmark: yamux throughput between two in-process machines (stdlib only).

Moves ``--mib`` MiB (default 64) over one stream from a client to a server machine, back to
back, with the receiver acknowledging every DataReceived (so window updates flow as they
would in a real run). Reports MiB/s for whole-batch delivery and for transport-sized reads.

    python bench/bench_yamux.py [--mib 64] [--read-size 65536]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from darkswap_wasm.protocols.yamux import DataReceived, YamuxConnection


def run(total: int, read_size: int | None, block: int = 1024 * 1024) -> tuple[float, int]:
    client = YamuxConnection(True)
    server = YamuxConnection(False)
    sid = client.open_stream()
    block_data = os.urandom(block)
    view = memoryview(block_data)
    sent = received = 0
    pending = view[:0]
    start = time.perf_counter()
    while received < total:
        # the application writes 1 MiB blocks as fast as the window allows
        while sent < total:
            if not pending:
                pending = view[: min(block, total - sent)]
            n = client.send_data(sid, pending)
            if n == 0:
                break
            pending = pending[n:]
            sent += n
        out = client.data_to_send()
        if read_size:
            for i in range(0, len(out), read_size):
                server.receive_data(out[i : i + read_size])
        elif out:
            server.receive_data(out)
        for event in server.events_received():
            if type(event) is DataReceived:
                n = len(event.data)
                received += n
                server.acknowledge(sid, n)
        back = server.data_to_send()
        if back:
            client.receive_data(back)
        client.events_received()
    elapsed = time.perf_counter() - start
    return total / (1024 * 1024) / elapsed, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--read-size", type=int, default=65536)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    total = args.mib * 1024 * 1024
    for label, read_size in (("whole batches", None), (f"{args.read_size}-byte reads", args.read_size)):
        best = 0.0
        for _ in range(args.repeat):
            rate, received = run(total, read_size)
            assert received == total
            best = max(best, rate)
        print(f"yamux {args.mib} MiB, 256 KiB frames, {label}: {best:,.0f} MiB/s (best of {args.repeat})")


if __name__ == "__main__":
    main()
