#!/usr/bin/env python3
"""js <-> js self-check of the interop peer harness (stdlib only).

Starts two ``peer.mjs`` processes on 127.0.0.1 and drives them through the
same stdin/stdout JSON-lines protocol the Python interop tests use: dial, ping,
identify, echo (10 MiB) and throughput (64 MiB), over TCP and over WebSocket.

Run via ``selftest.sh`` (which installs node 22 + js-libp2p first), or directly:
``python3 tests/interop/js/selftest.py [--throughput-mib 64] [--runs 3]``.

The ``JsPeer`` class below is a minimal reference client for the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jspeer import HERE, MIB, NODE, JsPeer, pattern


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}", flush=True)


async def exercise(a: JsPeer, b: JsPeer, kind: str, tp_mib: int, runs: int) -> list[float]:
    print(f"== {kind}: A -> B ({b.addr(kind)})", flush=True)
    mark_a, mark_b = len(a.events), len(b.events)
    r = await a.ok("dial", addr=b.addr(kind))
    check(r["peerId"] == b.peer_id, f"dial returns B's peer id over {kind}")
    conns = (await a.ok("connections"))["connections"]
    mine = [c for c in conns if c["peer"] == b.peer_id and c["status"] == "open"]
    check(len(mine) >= 1, f"A has an open connection to B ({[c['addr'] for c in mine]})")
    check(any(("/ws" in c["addr"]) == (kind == "ws") for c in mine), f"connection is over {kind}")
    check(
        all(c["multiplexer"] == "/yamux/1.0.0" and c["encryption"] == "/noise" for c in mine),
        "connection uses noise + yamux",
    )
    await b.wait_event(lambda e: e.get("event") == "peer:connect" and e["peer"] == a.peer_id, since=mark_b)
    check(True, "B emitted peer:connect for A")

    r = await a.ok("ping", peer=b.peer_id)
    check(isinstance(r["rtt_ms"], (int, float)) and r["rtt_ms"] >= 0, f"ping rtt_ms={r['rtt_ms']}")

    r = await a.ok("identify", peer=b.peer_id)
    check(r["agentVersion"].startswith("js-libp2p-interop/"), f"identify agentVersion={r['agentVersion']}")
    check(r["protocolVersion"] == "ipfs/0.1.0", f"identify protocolVersion={r['protocolVersion']}")
    check(
        {"/darkswap/echo/1.0.0", "/darkswap/sink/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"}
        <= set(r["protocols"]),
        "identify protocols include echo/sink/ping/id",
    )
    check(
        set(r["listenAddrs"]) == {x.rsplit("/p2p/", 1)[0] for x in b.ready["addrs"]},
        "identify listenAddrs == B's listen addrs",
    )
    check(
        r["observedAddr"] is not None and r["observedAddr"].startswith("/ip4/127.0.0.1/"),
        f"identify observedAddr={r['observedAddr']}",
    )
    check(r["peerStore"]["agentVersion"] == r["agentVersion"], "peerStore has the agent version")
    r2 = await a.ok("identify", peer=b.peer_id, refresh=True)
    check(r2["agentVersion"] == r["agentVersion"], "identify refresh=true re-runs identify")
    rb = await b.ok("identify", peer=a.peer_id)
    check(rb["agentVersion"] == a.ready["agentVersion"], "B identified A too")

    for size in (0, 1, 65535, 65536, 65537, 10 * MIB):
        r = await a.ok("echo", peer=b.peer_id, size=size)
        check(
            r["bytes"] == size and r["sha256"] == hashlib.sha256(pattern(size)).hexdigest(),
            f"echo {size} bytes in {r['ms']:.1f} ms",
        )
    rs = await asyncio.gather(*(a.ok("echo", peer=b.peer_id, size=MIB + i) for i in range(4)))
    check(all(x["bytes"] == MIB + i for i, x in enumerate(rs)), "4 concurrent 1 MiB echoes")
    r = await b.ok("echo", peer=a.peer_id, size=3 * MIB + 7)
    check(r["bytes"] == 3 * MIB + 7, "echo in the other direction (B -> A, inbound connection)")

    r = await a.ok("throughput", peer=b.peer_id, size=1000)
    check(r["bytes"] == 1000, "throughput small (1000 bytes)")
    speeds = []
    for i in range(runs):
        r = await a.ok("throughput", peer=b.peer_id, size=tp_mib * MIB, timeout=600)
        speeds.append(r["mib_per_s"])
        check(
            r["bytes"] == tp_mib * MIB,
            f"throughput {tp_mib} MiB run {i + 1}: {r['ms']:.0f} ms = {r['mib_per_s']:.1f} MiB/s",
        )

    await a.ok("hangup", peer=b.peer_id)
    await a.wait_event(lambda e: e.get("event") == "peer:disconnect" and e["peer"] == b.peer_id, since=mark_a)
    check(
        not [c for c in (await a.ok("connections"))["connections"] if c["peer"] == b.peer_id],
        "hangup closed the connection",
    )
    return speeds


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--throughput-mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not NODE.exists():
        print(f"{NODE} missing: run `npm ci` in {HERE}", file=sys.stderr)
        return 2

    listen = ["--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/tcp/0/ws"]
    a = await JsPeer.start("A", *listen)
    b = await JsPeer.start("B", *listen, "--seed", "11" * 32)
    results: dict[str, list[float]] = {}
    try:
        check(b.peer_id.startswith("12D3KooW"), f"seeded Ed25519 peer id {b.peer_id}")
        # errors are reported, not fatal
        r = await a.call("nosuchcmd")
        check(r["ok"] is False and "unknown cmd" in r["error"], "unknown command -> ok:false")
        r = await a.call("ping", peer="not-a-peer-id")
        check(r["ok"] is False and r["error"], f"bad peer -> ok:false ({r['error'][:60]})")
        r = await a.call("dial", addr="/ip4/127.0.0.1/tcp/1", timeout_ms=5000)
        check(r["ok"] is False, f"dial to closed port -> ok:false ({r['error'][:60]})")

        r = await a.call("identify", peer=b.peer_id, timeout=5)
        check(
            r["ok"] is False and "no open connection" in r["error"],
            "identify without a connection -> ok:false at once",
        )

        for kind in ("tcp", "ws"):
            results[kind] = await exercise(a, b, kind, args.throughput_mib, args.runs)

        # same seed -> same peer id
        c = await JsPeer.start("C", "--listen", "/ip4/127.0.0.1/tcp/0", "--seed", "11" * 32)
        check(c.peer_id == b.peer_id, "same --seed gives the same peer id")
        # stdin close -> exit 0
        assert c.proc.stdin is not None
        c.proc.stdin.close()
        rc = await asyncio.wait_for(c.proc.wait(), 15)
        check(rc == 0, "closing stdin stops the peer with exit code 0")
        await c._reader_task
    finally:
        rca = await a.stop()
        rcb = await b.stop()
    check(rca == 0 and rcb == 0, "stop command exits 0")

    print(f"== js<->js throughput (MiB/s, {args.throughput_mib} MiB per run)")
    for kind, speeds in results.items():
        print(f"  {kind}: runs={[round(s, 1) for s in speeds]} median={statistics.median(speeds):.1f}")
    errors = a.errors + b.errors
    check(not errors, f"no error events ({errors[:3]})")
    print("selftest: PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except AssertionError as e:
        print(f"selftest: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
