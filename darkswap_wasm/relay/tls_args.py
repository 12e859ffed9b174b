"""The relay's secure WebSocket listener: ``--tls-cert PATH --tls-key PATH`` for ``/tls/ws``.

``darkswap-relay --listen /ip4/0.0.0.0/tcp/443/tls/ws --tls-cert fullchain.pem --tls-key privkey.pem``
serves browsers on https pages (which may only open ``wss://``) without a reverse proxy. The
certificate must name the address browsers dial (its DNS name, or the IP address for an
``/ip4/…/tls/ws`` address). A ``/tls/ws`` (or ``/wss``) listen address without both flags is
refused at start (one line on stderr, exit 1), as is either flag alone.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..transports.base import Transport
from ..wire.multiaddr import Multiaddr


def add_tls_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", metavar="PATH",
                        help="PEM certificate (chain) for /tls/ws listen addresses (secure WebSocket, what https "
                             "pages need); with --tls-key")
    parser.add_argument("--tls-key", metavar="PATH", help="PEM private key of --tls-cert")


def tls_transports(args: argparse.Namespace) -> list[Transport] | None:
    """The relay's transports when ``--tls-cert``/``--tls-key`` are given (TCP, and WebSocket with
    that certificate); None (the defaults) without them. :class:`ConfigError` when a ``/tls/ws``
    listen address has no certificate, one flag comes without the other, or the files cannot be
    loaded."""
    from ..transports.websocket import WebSocketTransport, server_ssl_context, ws_kind

    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    secure = [a for a in (args.listen or []) if ws_kind(Multiaddr(a)) == "tls/ws"]
    if bool(cert) != bool(key):
        raise ConfigError("--tls-cert and --tls-key go together (the certificate and its private key)")
    if not cert:
        if secure:
            raise ConfigError(f"listening on {secure[0]} (secure WebSocket) needs --tls-cert PATH and --tls-key PATH")
        return None
    from ..transports.tcp import TcpTransport

    return [TcpTransport(), WebSocketTransport(server_ssl=server_ssl_context(cert, key))]
