"""The relay server: a host with the circuit relay v2 hop service switched on, run as a CLI.

``python -m darkswap_wasm.relay --listen /ip4/127.0.0.1/tcp/4001/ws`` (or ``darkswap-relay``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .. import __version__
from ..api import Network, NetworkConfig
from ..errors import DarkSwapError
from ..host.relay_server import RelayService
from ..identity import Identity
from ..protocols.circuit_v2 import RelayConfig

log = logging.getLogger("darkswap_wasm.relay")
DEFAULTS = RelayConfig()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="darkswap-relay", description="DarkSwap circuit relay v2 server (libp2p).")
    p.add_argument(
        "--listen", action="append", metavar="MULTIADDR", help="repeatable; TCP and WS (default: both on 127.0.0.1:0)"
    )
    p.add_argument(
        "--identity", metavar="PATH", help="key file, created (mode 0600) if missing; a restarted relay keeps its ID"
    )
    p.add_argument("--max-reservations", type=int, default=DEFAULTS.max_reservations)
    p.add_argument("--max-reservations-per-peer", type=int, default=DEFAULTS.max_reservations_per_peer,
                   help="reservations per source IP")
    p.add_argument("--max-circuits", type=int, default=DEFAULTS.max_circuits)
    p.add_argument("--max-circuits-per-peer", type=int, default=DEFAULTS.max_circuits_per_peer)
    p.add_argument("--reservation-ttl", type=float, default=DEFAULTS.reservation_ttl, metavar="SECONDS")
    p.add_argument("--circuit-duration", type=float, default=DEFAULTS.circuit_duration, metavar="SECONDS",
                   help="0 = unlimited")
    p.add_argument("--circuit-data", type=int, default=DEFAULTS.circuit_data, metavar="BYTES", help="0 = unlimited")
    p.add_argument("--max-connections", type=int, default=1024)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--version", action="version", version=f"darkswap-wasm {__version__}")
    return p


async def run(args: argparse.Namespace) -> int:
    from ..host.host import HostConfig

    identity = Identity.load_or_create(args.identity) if args.identity else Identity.generate()
    config = RelayConfig(
        max_reservations=args.max_reservations,
        max_reservations_per_peer=args.max_reservations_per_peer,
        max_circuits=args.max_circuits,
        max_circuits_per_peer=args.max_circuits_per_peer,
        reservation_ttl=args.reservation_ttl,
        circuit_duration=args.circuit_duration,
        circuit_data=args.circuit_data,
    )
    listen = args.listen or ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
    net = await Network.create(
        NetworkConfig(identity=identity, listen_addrs=listen, host=HostConfig(max_connections=args.max_connections))
    )
    service = RelayService(net.host, config)
    service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for addr in net.listen_addrs():
            print(addr, flush=True)
        log.info("relay %s up: ttl %gs, %d reservations max", net.local_peer_id(), config.reservation_ttl,
                 config.max_reservations)
        await stop.wait()
        log.info("shutting down")
    finally:
        await service.close()
        await net.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return asyncio.run(run(args))
    except DarkSwapError as exc:
        print(f"darkswap-relay: {exc}", file=sys.stderr)
        return 1
