"""DarkSwap messaging: wire bytes per payload byte, and the small-message rate, batched or not.

    python bench/bench_messaging.py [--count 5000] [--rate-count 20000] [--batch 10] [--level 3]

Messages come from ``bench/messages.py`` (orders ~230 B JSON, signed orders ~390 B, cancels
~160 B, 50-order book snapshots ~9 KiB, and a gossip-like mix). Compression rows, wire/payload:

* ``gzip per msg``      — ``gzip.compress`` of each message alone (the seed's plan, baseline);
* ``zstd per msg``      — one-shot zstd of each message alone;
* ``zstd batch``        — one-shot zstd of each group of ``--batch`` messages;
* ``session 1/frame``   — our :class:`MessageSession`: streaming zstd, one message per frame
  (``flush()`` after every ``send``): the latency-bound trickle;
* ``session batch``     — our session, ``--batch`` messages per frame (idle flush after a burst);
* ``dict per msg``      — one-shot zstd of each message with a dictionary trained (16 KiB,
  ``compression.zstd.train_dict``) on a separate sample of the same kind;
* ``session+dict ...``  — our session with that dictionary agreed at the handshake.

Session rows count every byte of every DATA frame (headers included, the one-off HELLO not);
the per-message rows count compressed bytes only (no framing at all), which flatters them.

The rate part pushes ``--rate-count`` orders from one session to another, back to back (the
receiver delivers, acks; the sender processes the acks), one message per frame versus bursts
of ``--burst`` messages per ``flush()``, with and without compression.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from messages import MessageGenerator

from darkswap_wasm.compression.zstd_backend import ZstdBackend, zstd
from darkswap_wasm.protocols.darkswap_msg import (
    MessageReceived,
    MessageSession,
    MessagingConfig,
)

KINDS = ("order", "signed", "cancel", "snapshot", "mixed")
BACKEND = ZstdBackend()


def pair(config: MessagingConfig) -> tuple[MessageSession, MessageSession]:
    backend = BACKEND if config.compress else None
    a = MessageSession(config, now=0.0, session_id=b"A" * 16, backend=backend)
    b = MessageSession(config, now=0.0, session_id=b"B" * 16, backend=backend)
    a.attach(0.0)
    b.attach(0.0)
    for _ in range(3):
        x, y = a.data_to_send(), b.data_to_send()
        b.receive_data(x, 0.0)
        a.receive_data(y, 0.0)
    a.events_received()
    b.events_received()
    return a, b


def session_wire(msgs: list[bytes], per_frame: int, level: int, dictionary: bytes | None = None) -> int:
    dicts = {1: dictionary} if dictionary else {}
    a, b = pair(MessagingConfig(compression_level=level, dictionaries=dicts, ack_every=1 << 30, ack_delay=1e9))
    wire = 0
    received = 0
    for i, m in enumerate(msgs, 1):
        a.send(m, 0.0)
        if i % per_frame == 0 or i == len(msgs):
            a.flush(0.0)
            out = a.data_to_send()
            wire += len(out)
            b.receive_data(out, 0.0)
            received += sum(1 for e in b.events_received() if type(e) is MessageReceived)
    assert received == len(msgs)
    return wire


def compression_table(count: int, batch: int, level: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        n = count if kind != "snapshot" else max(50, count // 20)
        msgs = MessageGenerator(seed=1).kind(kind, n)
        train = MessageGenerator(seed=2).kind(kind, max(2000, n))
        zdict = zstd.train_dict(train, 16 * 1024)
        dictionary = zdict.dict_content
        payload = sum(map(len, msgs))

        row = {
            "avg msg B": payload / len(msgs),
            "gzip per msg": sum(len(gzip.compress(m)) for m in msgs),
            "zstd per msg": sum(len(zstd.compress(m, level=level)) for m in msgs),
            f"zstd batch {batch}": sum(
                len(zstd.compress(b"".join(msgs[i : i + batch]), level=level)) for i in range(0, n, batch)
            ),
            "session 1/frame": session_wire(msgs, 1, level),
            f"session batch {batch}": session_wire(msgs, batch, level),
            "dict per msg": sum(len(zstd.compress(m, level=level, zstd_dict=zdict)) for m in msgs),
            "session+dict 1/frame": session_wire(msgs, 1, level, dictionary),
            f"session+dict batch {batch}": session_wire(msgs, batch, level, dictionary),
        }
        results[kind] = {k: (v if k == "avg msg B" else v / payload) for k, v in row.items()}
    return results


def rate(count: int, burst: int, compress: bool, level: int) -> float:
    msgs = MessageGenerator(seed=3).kind("order", count)
    a, b = pair(MessagingConfig(compress=compress, compression_level=level))
    now = 0.0
    got = 0
    start = time.perf_counter()
    for i, m in enumerate(msgs, 1):
        a.send(m, now)
        if i % burst == 0 or i == count:
            a.flush(now)
            b.receive_data(a.data_to_send(), now)
            for e in b.events_received():
                if type(e) is MessageReceived:
                    got += 1
            now += 0.001  # a tick per write: delayed acks go out every 20 ms of this clock
            b.handle_timeout(now)
            acks = b.data_to_send()
            if acks:
                a.receive_data(acks, now)
                a.events_received()
    elapsed = time.perf_counter() - start
    assert got == count and a.unacked_count < 200
    return count / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=5000, help="messages per kind for the ratio table")
    ap.add_argument("--batch", type=int, default=10, help="messages per batch/frame in the batched rows")
    ap.add_argument("--level", type=int, default=3, help="zstd level")
    ap.add_argument("--rate-count", type=int, default=20000)
    ap.add_argument("--burst", type=int, default=100, help="messages per flush() in the batched rate run")
    ap.add_argument("--runs", type=int, default=3, help="rate runs; the best is reported")
    args = ap.parse_args()

    print(
        f"# {platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
        f"zstd {zstd.zstd_version} ({zstd.__name__}), level {args.level}"
    )
    print("\n## wire bytes / payload bytes (lower is better)\n")
    table = compression_table(args.count, args.batch, args.level)
    columns = list(next(iter(table.values())))
    print("| row | " + " | ".join(table) + " |")
    print("|---|" + "---:|" * len(table))
    for col in columns:
        cells = [f"{table[k][col]:.0f}" if col == "avg msg B" else f"{table[k][col]:.3f}" for k in table]
        print(f"| {col} | " + " | ".join(cells) + " |")

    print(f"\n## small-message rate: {args.rate_count} orders, session to session (best of {args.runs})\n")
    print("| mode | msgs/s uncompressed | msgs/s zstd |")
    print("|---|---:|---:|")
    rates = {}
    for label, burst in (("1 message per frame", 1), (f"batched ({args.burst} per flush)", args.burst)):
        rates[burst] = [
            max(rate(args.rate_count, burst, compress, args.level) for _ in range(args.runs))
            for compress in (False, True)
        ]
        print(f"| {label} | {rates[burst][0]:,.0f} | {rates[burst][1]:,.0f} |")
    speedup = [rates[args.burst][i] / rates[1][i] for i in (0, 1)]
    print(f"| batched / unbatched | {speedup[0]:.1f}x | {speedup[1]:.1f}x |")

    orders = table["order"]
    print(
        f"\norders: session batch {args.batch} = {orders[f'session batch {args.batch}']:.3f}, "
        f"session+dict 1/frame = {orders['session+dict 1/frame']:.3f}, "
        f"session 1/frame = {orders['session 1/frame']:.3f} (target <= 0.25); "
        f"batched rate {min(speedup):.1f}x unbatched (target >= 3x)"
    )


if __name__ == "__main__":
    main()
