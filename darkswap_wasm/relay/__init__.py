"""The relay server: a host with the circuit relay v2 hop service switched on, run as a CLI.

``python -m darkswap_wasm.relay --listen /ip4/127.0.0.1/tcp/4001/ws`` (or ``darkswap-relay``).

Prints each full listen multiaddr on its own line (on ``0.0.0.0`` / ``::``: one per interface
address). SIGINT/SIGTERM stop it within a second or two (exit 0); an address that cannot be bound
or a bad ``--identity`` is one line on stderr and exit 1 (see :mod:`darkswap_wasm.cli`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

from .. import __version__
from ..api import Network, NetworkConfig
from ..cli import add_print_peer_id, cli_main, close_quietly
from ..host.relay_server import RelayService
from ..host.rendezvous import RendezvousServer
from ..identity import Identity
from ..policy.conn_limits import ConnLimitsConfig
from ..protocols.circuit_v2 import RelayConfig
from ..protocols.rendezvous import RendezvousConfig
from .dht_args import add_dht_arguments, relay_dht_options
from .tls_args import add_tls_args, tls_transports

log = logging.getLogger("darkswap_wasm.relay")
DEFAULTS = RelayConfig()
RDV_DEFAULTS = RendezvousConfig()
LIMIT_DEFAULTS = ConnLimitsConfig()
IDLE_TIMEOUT = 120.0  # a relay's connections are strangers': one without streams or a reservation goes


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
    p.add_argument("--max-circuits-per-peer", type=int, default=DEFAULTS.max_circuits_per_peer,
                   help="circuits opened by one peer ID")
    p.add_argument("--max-circuits-per-ip", type=int, default=DEFAULTS.max_circuits_per_ip,
                   help="circuits opened from one source IP")
    p.add_argument("--max-circuits-to-peer", type=int, default=DEFAULTS.max_circuits_to_peer,
                   help="circuits to one destination")
    p.add_argument("--max-circuits-to-peer-per-ip", type=int, default=DEFAULTS.max_circuits_to_peer_per_ip,
                   help="circuits to one destination from one source IP (a stranger's share)")
    p.add_argument("--reservation-rate-per-peer", type=int, default=DEFAULTS.max_reservation_rate_per_peer,
                   metavar="N", help="RESERVE requests per peer ID per minute (0 = unlimited)")
    p.add_argument("--reservation-rate-per-ip", type=int, default=DEFAULTS.max_reservation_rate_per_ip,
                   metavar="N", help="RESERVE requests per source IP per minute (0 = unlimited)")
    p.add_argument("--reservation-ttl", type=float, default=DEFAULTS.reservation_ttl, metavar="SECONDS")
    p.add_argument("--circuit-duration", type=float, default=DEFAULTS.circuit_duration, metavar="SECONDS",
                   help="0 = unlimited")
    p.add_argument("--circuit-data", type=int, default=DEFAULTS.circuit_data, metavar="BYTES", help="0 = unlimited")
    p.add_argument("--max-connections", type=int, default=1024)
    p.add_argument("--max-pending-per-ip", type=int, default=LIMIT_DEFAULTS.max_pending_per_ip, metavar="N",
                   help="inbound connections from one IP (IPv6: one /64) still in the handshake; more are "
                        "closed before any handshake work")
    p.add_argument("--max-pending", type=int, default=LIMIT_DEFAULTS.max_pending, metavar="N",
                   help="inbound connections in the handshake in total; a new one closes the oldest")
    p.add_argument("--max-connections-per-ip", type=int, default=LIMIT_DEFAULTS.max_connections_per_ip,
                   metavar="N", help="inbound connections from one IP (IPv6: one /64), pending ones included")
    p.add_argument("--max-connections-per-peer", type=int, default=LIMIT_DEFAULTS.max_connections_per_peer,
                   metavar="N", help="connections of one peer ID; a new one closes its oldest idle one")
    p.add_argument("--handshake-rate-per-ip", type=float, default=LIMIT_DEFAULTS.handshake_rate_per_ip,
                   metavar="N", help="inbound handshakes per second from one IP (0 = unlimited)")
    p.add_argument("--handshake-burst-per-ip", type=int, default=LIMIT_DEFAULTS.handshake_burst_per_ip,
                   metavar="N", help="handshakes one IP may start at once before --handshake-rate-per-ip applies")
    p.add_argument("--exempt-network", action="append", metavar="CIDR",
                   help="repeatable; networks the per-IP limits and the pending total do not apply to "
                        f"(default: {', '.join(LIMIT_DEFAULTS.exempt)}); 'none' exempts nothing. Behind a "
                        "local reverse proxy every client has the proxy's address: limit clients at the proxy")
    p.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT, metavar="SECONDS",
                   help="close a connection that had no open stream, reservation or circuit for this long "
                        "(0 = never)")
    p.add_argument("--no-rendezvous", action="store_true",
                   help="do not run the rendezvous service (/rendezvous/1.0.0: peers with a reservation "
                        "register under a namespace and discover each other)")
    p.add_argument("--rendezvous-max-registrations", type=int, default=RDV_DEFAULTS.max_registrations,
                   metavar="N", help="registrations held in total")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_tls_args(p)
    add_dht_arguments(p)
    add_print_peer_id(p)
    p.add_argument("--version", action="version", version=f"darkswap-wasm {__version__}")
    return p


async def run(args: argparse.Namespace) -> int:
    from ..host.host import HostConfig

    identity = Identity.load_or_create(args.identity, create_dirs=False) if args.identity else Identity.generate()
    config = RelayConfig(
        max_reservations=args.max_reservations,
        max_reservations_per_peer=args.max_reservations_per_peer,
        max_circuits=args.max_circuits,
        max_circuits_per_peer=args.max_circuits_per_peer,
        max_circuits_per_ip=args.max_circuits_per_ip,
        max_circuits_to_peer=args.max_circuits_to_peer,
        max_circuits_to_peer_per_ip=args.max_circuits_to_peer_per_ip,
        reservation_ttl=args.reservation_ttl,
        max_reservation_rate_per_peer=args.reservation_rate_per_peer or None,
        max_reservation_rate_per_ip=args.reservation_rate_per_ip or None,
        circuit_duration=args.circuit_duration,
        circuit_data=args.circuit_data,
    )
    listen = args.listen or ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"]
    max_connections = fit_to_fd_limit(args.max_connections)
    exempt = LIMIT_DEFAULTS.exempt if args.exempt_network is None else tuple(
        n for n in args.exempt_network if n.lower() != "none"
    )
    limits = ConnLimitsConfig(
        max_pending_per_ip=args.max_pending_per_ip,
        max_pending=args.max_pending,
        max_connections_per_ip=args.max_connections_per_ip,
        max_connections_per_peer=args.max_connections_per_peer,
        handshake_rate_per_ip=args.handshake_rate_per_ip,
        handshake_burst_per_ip=args.handshake_burst_per_ip,
        exempt=exempt,
    )
    net = await Network.create(
        NetworkConfig(
            identity=identity,
            listen_addrs=listen,
            transports=tls_transports(args),  # None: the defaults
            host=HostConfig(max_connections=max_connections, limits=limits,
                            idle_timeout=args.idle_timeout or None),
            # a relay carries circuits: it neither trades (no /darkswap/msg inbox for strangers
            # to fill) nor takes WebRTC offers (each would build a peer connection)
            messaging=None,
            webrtc=None,
            **relay_dht_options(args),
        )
    )
    service = RelayService(net.host, config)
    # a reservation lives on a connection that carries no stream between renewals: not idle
    net.host.add_keep_alive(lambda conn: service.resources.has_reservation(conn.remote_peer, time.monotonic()))
    service.start()
    if not args.no_rendezvous:
        RendezvousServer(net.host, RendezvousConfig(max_registrations=args.rendezvous_max_registrations))
    try:
        for addr in net.listen_addrs():
            print(addr, flush=True)
        log.info("relay %s up: ttl %gs, %d reservations max", net.local_peer_id(), config.reservation_ttl,
                 config.max_reservations)
        await asyncio.Event().wait()  # until SIGINT/SIGTERM cancels us (cli.run_until_stopped)
        return 0
    finally:
        log.info("shutting down")
        await close_quietly(service.close(), "the relay service")
        await close_quietly(net.close(), "the network")


FD_RESERVE = 64  # descriptors besides connections: listeners, logs, the event loop, key file


def fit_to_fd_limit(max_connections: int) -> int:
    """Raise the soft file-descriptor limit to what ``max_connections`` needs (up to the hard
    limit). If it cannot go that high, say so once and lower the connection cap below it: a
    relay at the descriptor limit fails every accept (the log filled with thousands of
    tracebacks) instead of refusing cleanly at its cap."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the file descriptor limit: %s", exc)
    if soft != resource.RLIM_INFINITY and soft < need:
        fitted = max(1, soft - FD_RESERVE)
        log.warning(
            "the file descriptor limit (ulimit -n) is %d, below the %d that --max-connections %d needs: "
            "serving at most %d connections (raise the limit to serve more)",
            soft, need, max_connections, fitted,
        )
        return fitted
    return max_connections


def main(argv: list[str] | None = None) -> int:
    return cli_main("darkswap-relay", run, argv, build_parser())
