"""The relay CLI's DHT flags (issue 13): ``--bootstrap MULTIADDR`` (repeatable). The relay runs
the Kademlia DHT in server mode and provides the relay key (:func:`~..protocols.kad.relay_key`,
the sha2-256 multihash of ``/libp2p/relay/v2``), republished before the record expires, so
clients that know any DHT node find it."""

from __future__ import annotations

import argparse

from ..protocols.kad import relay_key


def add_dht_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", action="append", default=[], metavar="MULTIADDR",
                   help="repeatable; a DHT peer (…/p2p/<id>) to join the Kademlia DHT through; the relay "
                        "serves the DHT and announces itself as a provider of the relay key")
    p.add_argument("--no-dht", action="store_true",
                   help="do not run the Kademlia DHT (/ipfs/kad/1.0.0) nor announce the relay in it")


def relay_dht_options(args: argparse.Namespace) -> dict:
    """``NetworkConfig`` keyword arguments for the relay: DHT server, provide the relay key,
    reserve on no relay ourselves."""
    if args.no_dht:
        return {"relay_reservations": 0}
    return {"bootstrap": list(args.bootstrap), "dht": "server", "dht_provide": [relay_key()],
            "relay_reservations": 0}
