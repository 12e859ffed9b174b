"""``darkswap-node``: run a DarkSwap node and print its full listen multiaddrs, one per line.

    darkswap-node --listen /ip4/127.0.0.1/tcp/4001 --listen /ip4/127.0.0.1/tcp/4002/ws \\
                  --identity ~/.darkswap/node.key

Stopping: SIGINT (Ctrl-C) or SIGTERM stops it within a second or two in every state (starting,
binding, waiting for a reservation, dialing ``--connect``, running); the exit code is then 0.
Errors (an address that cannot be bound, a bad key file, a ``--connect`` that fails) are one
line on stderr and exit code 1. While it waits for a relay reservation it says so on stderr
(after ``--reservation-timeout`` seconds, then every ``--report-interval`` seconds, with the
last error). Only the CLIs configure logging.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

from . import __version__
from .errors import DarkSwapError
from .identity import Identity
from .launch import early_signals, record_signal, record_stop_signals
from .tasks import spawn

log = logging.getLogger("darkswap_wasm.cli")
DEFAULT_LISTEN = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SIGNAL_EXIT_CODE = 0  # a stop asked for by SIGINT/SIGTERM is a clean exit
CLOSE_TIMEOUT = 1.5  # seconds for closing the network after a stop
ECHO_PROTOCOL = "/darkswap/echo/1.0.0"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="darkswap-node", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--listen", action="append", metavar="MULTIADDR", help="repeatable; default: TCP and WS on 127.0.0.1"
    )
    p.add_argument(
        "--identity", metavar="PATH",
        help="key file (created with mode 0600 if missing; its directory must exist)",
    )
    p.add_argument("--connect", action="append", default=[], metavar="MULTIADDR",
                   help="dial and ping at start; exit 1 if that fails")
    p.add_argument("--relay", action="append", default=[], metavar="MULTIADDR", help="reserve on this relay")
    p.add_argument("--bootstrap", action="append", default=[], metavar="MULTIADDR",
                   help="repeatable; a DHT peer to join the Kademlia DHT through (as a client) and find relays")
    p.add_argument("--reservation-timeout", type=float, default=2.0, metavar="SECONDS",
                   help="after this long without a reservation, say so on stderr (and keep waiting)")
    p.add_argument("--report-interval", type=float, default=30.0, metavar="SECONDS",
                   help="then repeat that report, with the last error, this often")
    p.add_argument(
        "--webrtc-network", action="append", default=[], metavar="CIDR",
        help="local networks WebRTC may use for host candidates (default: all but loopback)",
    )
    p.add_argument("--echo", action="store_true",
                   help=f"serve {ECHO_PROTOCOL} and echo every DarkSwap message back (for tests and demos)")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_print_peer_id(p)
    p.add_argument("--version", action="version", version=f"darkswap-wasm {__version__}")
    return p


# -- shared by both CLIs ---------------------------------------------------------------------------
def add_print_peer_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("--print-peer-id", action="store_true",
                   help="print the peer ID of --identity (creating the key file if missing) and exit")


def setup_logging(level: str) -> None:
    """stderr at ``level``; SIGINT/SIGTERM before the event loop runs are recorded (a clean
    stop at the next safe point, see :mod:`darkswap_wasm.launch`), never a traceback."""
    record_stop_signals()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


async def run_until_stopped(body: Coroutine[Any, Any, int]) -> int:
    """Run ``body`` as a task; SIGINT/SIGTERM cancel it wherever it waits (its ``finally`` blocks
    run, bounded by :data:`CLOSE_TIMEOUT` where they close things). Returns ``body``'s result, or
    :data:`SIGNAL_EXIT_CODE` after a signal."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(body)
    got: list[int] = []

    def on_signal(sig: int) -> None:
        if not got:
            log.warning("%s received: stopping", signal.Signals(sig).name)
        got.append(sig)
        task.cancel()  # a second signal also cuts the close short

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    if early_signals:  # one came before these handlers: stop now
        on_signal(early_signals[0])
    try:
        return await task
    except asyncio.CancelledError:
        if got:
            return SIGNAL_EXIT_CODE
        raise
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, record_signal)  # until the interpreter is gone: recorded, no traceback


async def close_quietly(aw: Awaitable[Any], what: str) -> None:
    try:
        await asyncio.wait_for(aw, CLOSE_TIMEOUT)
    except TimeoutError:
        log.warning("closing %s took over %.1fs: leaving", what, CLOSE_TIMEOUT)
    except DarkSwapError as exc:
        log.debug("closing %s: %s", what, exc)


def cli_main(prog: str, run, argv: list[str] | None, parser: argparse.ArgumentParser) -> int:
    """Parse, set up logging and signals, run; a :class:`DarkSwapError` is one line on stderr."""
    args = parser.parse_args(argv)
    if getattr(args, "print_peer_id", False):
        if not args.identity:
            parser.error("--print-peer-id needs --identity PATH")
        try:
            print(Identity.load_or_create(args.identity, create_dirs=False).peer_id, flush=True)
        except DarkSwapError as exc:
            print(f"{prog}: {exc}", file=sys.stderr, flush=True)
            return 1
        return 0
    setup_logging(args.log_level)
    if early_signals:
        return SIGNAL_EXIT_CODE
    try:
        return asyncio.run(run_until_stopped(run(args)))
    except DarkSwapError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return 1


# -- the node ----------------------------------------------------------------------------------
class ReservationReport:
    """Attempts and the last failure per relay, from the host's ``relay:error`` events."""

    def __init__(self, net) -> None:
        self.failures: dict[str, tuple[int, str]] = {}  # one entry per configured relay
        net.on("relay:error", self._on_error)

    def _on_error(self, relay, reason: str) -> None:
        n = self.failures.get(str(relay), (0, ""))[0]
        self.failures[str(relay)] = (n + 1, reason)

    def describe(self, relay_addr: str) -> str:
        peer = relay_addr.rsplit("/p2p/", 1)[-1]
        n, reason = self.failures.get(peer, (0, ""))
        return f"attempt {n}: {reason}" if n else "no answer yet"


async def _wait_for_reservation(net, relays: list[str], report: ReservationReport, first: float,
                                every: float) -> None:
    reserved = asyncio.Event()
    net.on("relay:reserved", lambda _relay: reserved.set())
    log.info("waiting for a reservation on %s", ", ".join(relays))
    started = time.monotonic()
    next_report = started + first
    while not net.reservations():
        reserved.clear()
        try:
            await asyncio.wait_for(reserved.wait(), max(0.0, next_report - time.monotonic()))
        except TimeoutError:
            for r in relays:
                log.warning("waiting for a reservation on %s (%s; %.0fs so far)", r, report.describe(r),
                            time.monotonic() - started)
            next_report = time.monotonic() + every


async def _announced(aw: Awaitable[Any], after: float, what: str) -> Any:
    """``await aw``, saying on stderr that we are still waiting for ``what`` after ``after`` s."""
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait([task], timeout=after)
        if not done:
            log.warning("still waiting for %s", what)
        return await task
    finally:
        task.cancel()


async def _echo(stream) -> None:
    while data := await stream.read():
        await stream.write(data)
    await stream.close()


async def _echo_messages(net, peer) -> None:
    while True:
        data = await net.receive_message(peer)
        await net.send_message(peer, data)


async def run(args: argparse.Namespace) -> int:
    from .api import Network, NetworkConfig
    from .host.webrtc import WebRTCSettings
    from .transports.webrtc_base import WebRTCConfig

    identity = Identity.load_or_create(args.identity, create_dirs=False) if args.identity else Identity.generate()
    webrtc = WebRTCSettings(rtc=WebRTCConfig(allowed_networks=tuple(args.webrtc_network)))
    listen = args.listen or ([] if args.relay else DEFAULT_LISTEN)
    log.info("listening on %s", ", ".join(listen) or "nothing (relayed only)")
    net = await _announced(
        Network.create(NetworkConfig(identity=identity, listen_addrs=listen, relays=args.relay, webrtc=webrtc,
                                     bootstrap=args.bootstrap)),
        args.reservation_timeout, "the network to start",
    )
    report = ReservationReport(net)
    echoes: dict[Any, asyncio.Task] = {}  # one per connected peer: gone peers are dropped

    def on_connect(peer) -> None:
        log.info("peer connected: %s", peer)
        if args.echo and (peer not in echoes or echoes[peer].done()):
            echoes[peer] = spawn(_echo_messages(net, peer), f"message echo for {peer}")

    def on_disconnect(peer) -> None:
        log.info("peer disconnected: %s", peer)
        task = echoes.pop(peer, None)
        if task is not None:
            task.cancel()  # its messages stay queued in the session; a reconnect starts a new echo

    if args.echo:
        net.set_stream_handler(ECHO_PROTOCOL, _echo)
    net.on("peer:connect", on_connect)
    net.on("peer:disconnect", on_disconnect)
    try:
        if args.relay:
            await _wait_for_reservation(net, args.relay, report, args.reservation_timeout, args.report_interval)
        for addr in net.listen_addrs():
            print(addr, flush=True)
        for addr in args.connect:
            log.info("connecting to %s", addr)
            try:
                peer = await _announced(net.connect(addr), args.reservation_timeout, f"a connection to {addr}")
                rtt = await net.ping(peer)
            except DarkSwapError as exc:
                raise DarkSwapError(f"cannot connect to {addr}: {exc}") from exc
            log.warning("connected to %s, ping %.1f ms", peer, rtt * 1000)
        await asyncio.Event().wait()  # until a signal cancels us
        return 0
    finally:
        for t in echoes.values():
            t.cancel()
        await close_quietly(net.close(), "the network")


def main(argv: list[str] | None = None) -> int:
    return cli_main("darkswap-node", run, argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
