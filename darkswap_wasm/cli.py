"""``darkswap-node``: run a DarkSwap node and print its full listen multiaddrs, one per line.

    darkswap-node --listen /ip4/127.0.0.1/tcp/4001 --listen /ip4/127.0.0.1/tcp/4002/ws \\
                  --identity ~/.darkswap/node.key

Stops cleanly on SIGINT/SIGTERM. Only this CLI configures logging.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from . import __version__
from .api import Network, NetworkConfig
from .errors import DarkSwapError
from .host.webrtc import WebRTCSettings
from .identity import Identity
from .transports.webrtc_base import WebRTCConfig

log = logging.getLogger("darkswap_wasm.cli")
DEFAULT_LISTEN = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="darkswap-node", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--listen", action="append", metavar="MULTIADDR", help="repeatable; default: TCP and WS on 127.0.0.1"
    )
    p.add_argument("--identity", metavar="PATH", help="key file (created with mode 0600 if missing)")
    p.add_argument("--connect", action="append", default=[], metavar="MULTIADDR", help="dial and ping at start")
    p.add_argument("--relay", action="append", default=[], metavar="MULTIADDR", help="reserve on this relay")
    p.add_argument(
        "--webrtc-network", action="append", default=[], metavar="CIDR",
        help="local networks WebRTC may use for host candidates (default: all but loopback)",
    )
    p.add_argument("--echo", action="store_true", help="serve /darkswap/echo/1.0.0 (for tests and demos)")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--version", action="version", version=f"darkswap-wasm {__version__}")
    return p


async def _echo(stream) -> None:
    while data := await stream.read():
        await stream.write(data)
    await stream.close()


async def run(args: argparse.Namespace) -> int:
    identity = Identity.load_or_create(args.identity) if args.identity else Identity.generate()
    webrtc = WebRTCSettings(rtc=WebRTCConfig(allowed_networks=tuple(args.webrtc_network)))
    net = await Network.create(
        NetworkConfig(
            identity=identity,
            listen_addrs=args.listen or ([] if args.relay else DEFAULT_LISTEN),
            relays=args.relay,
            webrtc=webrtc,
        )
    )
    if args.echo:
        net.set_stream_handler("/darkswap/echo/1.0.0", _echo)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    net.on("peer:connect", lambda p: log.info("peer connected: %s", p))
    net.on("peer:disconnect", lambda p: log.info("peer disconnected: %s", p))
    try:
        while args.relay and not net.reservations():
            await asyncio.sleep(0.05)
        for addr in net.listen_addrs():
            print(addr, flush=True)
        for addr in args.connect:
            try:
                peer = await net.connect(addr)
                rtt = await net.ping(peer)
                log.warning("connected to %s, ping %.1f ms", peer, rtt * 1000)
            except DarkSwapError as exc:
                log.error("cannot reach %s: %s", addr, exc)
        await stop.wait()
    finally:
        await net.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return asyncio.run(run(args))
    except DarkSwapError as exc:
        print(f"darkswap-node: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
