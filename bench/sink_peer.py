"""A DarkSwap node in its own process serving the benchmark protocols; prints its addrs (after
its reservations, with ``--relay ADDR``), then runs until stdin closes.

    /darkswap/sink/1.0.0  read everything, answer the byte count (8 bytes, big-endian), close
    /darkswap/echo/1.0.0  write back everything read, close at EOF
"""

from __future__ import annotations

import asyncio
import sys

from darkswap_wasm import Network, NetworkConfig

SINK = "/darkswap/sink/1.0.0"
ECHO = "/darkswap/echo/1.0.0"


async def sink(stream) -> None:
    total = 0
    while True:
        data = await stream.read()
        if not data:
            break
        total += len(data)
    await stream.write(total.to_bytes(8, "big"))
    await stream.close()


async def echo(stream) -> None:
    while True:
        data = await stream.read()
        if not data:
            break
        await stream.write(data)
    await stream.close()


def serve(net: Network) -> None:
    net.set_stream_handler(SINK, sink)
    net.set_stream_handler(ECHO, echo)


async def main() -> None:
    args = sys.argv[1:]
    relays = [args[i + 1] for i, a in enumerate(args) if a == "--relay"]
    listen = [a for i, a in enumerate(args) if a != "--relay" and (i == 0 or args[i - 1] != "--relay")]
    if not listen and not relays:
        listen = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
    net = await Network.create(NetworkConfig(listen_addrs=listen, relays=relays))
    serve(net)
    while relays and not net.reservations():
        await asyncio.sleep(0.05)
    for a in net.listen_addrs():
        print(a, flush=True)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await net.close()


if __name__ == "__main__":
    asyncio.run(main())
