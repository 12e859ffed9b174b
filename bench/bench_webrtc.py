"""WebRTC benchmark (run inside the test network namespace: ``./build.sh bench``).

Same process, same run: bulk throughput and small-message rate over
  * a raw aiortc ``RTCDataChannel`` (the floor: aiortc's pure-Python SCTP), and
  * our libp2p /webrtc stream on top of it (framing, multistream, backpressure),
plus the setup time from dialing a ``/p2p-circuit/webrtc`` address to the first echoed message.

    python bench/bench_webrtc.py [--mib 16] [--messages 20000] [--net 10.99.0.0/24]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiortc import RTCConfiguration, RTCPeerConnection

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.host.relay_server import RelayService
from darkswap_wasm.host.webrtc import WebRTCSettings
from darkswap_wasm.protocols.circuit_v2 import RelayConfig
from darkswap_wasm.transports.webrtc_base import WebRTCConfig

MIB = 1024 * 1024
SINK = "/darkswap/sink/1.0.0"
ECHO = "/darkswap/echo/1.0.0"


async def raw_aiortc(size: int, n_small: int) -> tuple[float, float]:
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    ch = a.createDataChannel("bench")
    done = asyncio.get_running_loop().create_future()
    state = {"bytes": 0, "msgs": 0, "target_bytes": size, "target_msgs": None}

    @b.on("datachannel")
    def on_dc(dc):
        @dc.on("message")
        def on_msg(m):
            state["bytes"] += len(m)
            state["msgs"] += 1
            if state["target_msgs"] is not None and state["msgs"] >= state["target_msgs"] and not done.done():
                done.set_result(None)
            elif state["target_msgs"] is None and state["bytes"] >= state["target_bytes"] and not done.done():
                done.set_result(None)

    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    opened = asyncio.Event()
    ch.on("open", opened.set)
    await asyncio.wait_for(opened.wait(), 10)
    low = asyncio.Event()
    ch.bufferedAmountLowThreshold = 512 * 1024
    ch.on("bufferedamountlow", low.set)

    async def send_all(chunks):
        for c in chunks:
            while ch.bufferedAmount > 1024 * 1024:
                low.clear()
                await low.wait()
            ch.send(c)

    chunk = bytes(16 * 1024 - 16)
    t0 = time.perf_counter()
    await send_all([chunk] * (size // len(chunk)))
    state["target_bytes"] = len(chunk) * (size // len(chunk))
    if state["bytes"] >= state["target_bytes"] and not done.done():
        done.set_result(None)
    await asyncio.wait_for(done, 120)
    mibs = state["target_bytes"] / MIB / (time.perf_counter() - t0)

    done = asyncio.get_running_loop().create_future()
    state.update(bytes=0, msgs=0, target_msgs=n_small)
    small = bytes(100)
    t0 = time.perf_counter()
    await send_all([small] * n_small)
    await asyncio.wait_for(done, 120)
    rate = n_small / (time.perf_counter() - t0)
    await a.close()
    await b.close()
    return mibs, rate


async def ours(size: int, n_small: int, net_cidr: str) -> tuple[float, float, float]:
    settings = WebRTCSettings(rtc=WebRTCConfig(allowed_networks=(net_cidr,)))
    relay = await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None, monitor=None))
    svc = RelayService(relay.host, RelayConfig(circuit_data=0, circuit_duration=0))
    svc.start()
    raddr = str(relay.listen_addrs()[0])
    a = await Network.create(NetworkConfig(webrtc=settings, monitor=None))
    b = await Network.create(NetworkConfig(relays=[raddr], webrtc=settings, monitor=None))
    counts: list[int] = []

    async def sink(stream):
        total = 0
        while data := await stream.read():
            total += len(data)
        counts.append(total)
        await stream.write(total.to_bytes(8, "big"))
        await stream.close()

    async def echo(stream):
        while data := await stream.read():
            await stream.write(data)
        await stream.close()

    b.set_stream_handler(SINK, sink)
    b.set_stream_handler(ECHO, echo)
    while not b.reservations():
        await asyncio.sleep(0.02)
    addr = next(str(x) for x in b.listen_addrs() if "/webrtc/" in str(x))
    t0 = time.perf_counter()
    peer = await a.connect(addr)
    s = await a.new_stream(peer, [ECHO])
    await s.write(b"x")
    assert await s.read() == b"x"
    setup = time.perf_counter() - t0
    await s.close()
    assert a.connections(peer)[0].transport == "webrtc"

    s = await a.new_stream(peer, [SINK])
    chunk = bytes(64 * 1024)
    t0 = time.perf_counter()
    for _ in range(size // len(chunk)):
        await s.write(chunk)
    await s.close()
    count = int.from_bytes(await s.readexactly(8, timeout=120), "big")
    mibs = count / MIB / (time.perf_counter() - t0)
    assert count == size // len(chunk) * len(chunk)

    s = await a.new_stream(peer, [SINK])
    small = bytes(100)
    t0 = time.perf_counter()
    for _ in range(n_small):
        await s.write(small)
    await s.close()
    count = int.from_bytes(await s.readexactly(8, timeout=120), "big")
    rate = n_small / (time.perf_counter() - t0)
    assert count == n_small * 100
    await a.close()
    await b.close()
    await svc.close()
    await relay.close()
    return mibs, rate, setup


async def main(args) -> None:
    raw_t, raw_r, our_t, our_r, setups = [], [], [], [], []
    for _ in range(args.runs):
        t, r = await raw_aiortc(args.mib * MIB, args.messages)
        raw_t.append(t)
        raw_r.append(r)
        t, r, s = await ours(args.mib * MIB, args.messages, args.net)
        our_t.append(t)
        our_r.append(r)
        setups.append(s)
    m = statistics.median
    print(f"WebRTC (aiortc), same process, {args.mib} MiB bulk, {args.messages} x 100 B messages, {args.runs} runs")
    print(f"  raw RTCDataChannel   {m(raw_t):7.2f} MiB/s  {m(raw_r):9.0f} msg/s")
    print(f"  our /webrtc stream   {m(our_t):7.2f} MiB/s  {m(our_r):9.0f} msg/s")
    print(f"  ratio ours/raw       {m(our_t) / m(raw_t):7.2f}        {m(our_r) / m(raw_r):9.2f}")
    print(f"  setup: dial /p2p-circuit/webrtc -> first echoed message: median {m(setups) * 1000:.0f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--net", default=os.environ.get("DARKSWAP_TEST_NETNS", "10.99.0.0/24"))
    asyncio.run(main(ap.parse_args()))
