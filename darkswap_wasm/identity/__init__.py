"""Peer identity: Ed25519 keys and libp2p peer IDs (spec: libp2p/specs ``peer-ids/peer-ids.md``)."""

from .keys import Identity, PublicKey
from .peer_id import PeerId

__all__ = ["Identity", "PeerId", "PublicKey"]
