"""Signed peer records (libp2p/specs ``RFC/0003-routing-records.md``), sealed in a signed
envelope (``RFC/0002-signed-envelopes.md``, :mod:`.envelope`).

Envelope domain ``"libp2p-peer-record"``, payload type ``0x03 0x01`` (the multicodec
``libp2p-peer-record``), payload (go-libp2p ``core/peer/pb/peer_record.proto``)::

    message PeerRecord {
      message AddressInfo { bytes multiaddr = 1; }
      bytes peer_id = 1;
      uint64 seq = 2;
      repeated AddressInfo addresses = 3;
    }

A record is valid only when the envelope's signer is the peer it names. Addresses that do not
parse are skipped (a newer peer may know protocols we do not); their number is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DecodeError
from ..wire import protobuf
from ..wire.multiaddr import Multiaddr
from .envelope import Envelope, EnvelopeError
from .keys import Identity
from .peer_id import PeerId

PEER_RECORD_DOMAIN = "libp2p-peer-record"
PEER_RECORD_PAYLOAD_TYPE = b"\x03\x01"
MAX_RECORD_ADDRS = 64
ADDRESS_INFO_SCHEMA = {1: ("multiaddr", "bytes", False)}
PEER_RECORD_SCHEMA = {
    1: ("peer_id", "bytes", False),
    2: ("seq", "uint", False),
    3: ("addresses", ADDRESS_INFO_SCHEMA, True),
}


@dataclass(frozen=True)
class PeerRecord:
    peer_id: PeerId
    seq: int
    addrs: tuple[Multiaddr, ...] = ()

    def to_payload(self) -> bytes:
        return protobuf.encode(
            PEER_RECORD_SCHEMA,
            {
                "peer_id": self.peer_id.to_bytes(),
                "seq": self.seq or None,
                "addresses": [{"multiaddr": a.to_bytes()} for a in self.addrs],
            },
        )

    @classmethod
    def from_payload(cls, data: bytes) -> PeerRecord:
        msg = protobuf.decode(PEER_RECORD_SCHEMA, bytes(data))
        if "peer_id" not in msg:
            raise DecodeError("peer record without a peer ID")
        if len(msg["addresses"]) > MAX_RECORD_ADDRS:
            raise DecodeError(f"peer record with more than {MAX_RECORD_ADDRS} addresses")
        try:
            peer = PeerId(msg["peer_id"])
        except (ValueError, DecodeError) as exc:
            raise DecodeError(f"peer record with an invalid peer ID: {exc}") from None
        addrs = []
        for info in msg["addresses"]:
            try:
                addrs.append(Multiaddr.from_bytes(info.get("multiaddr", b"")))
            except (DecodeError, ValueError):
                continue
        return cls(peer, msg.get("seq", 0), tuple(addrs))


def seal_peer_record(identity: Identity, addrs: list[Multiaddr] | tuple[Multiaddr, ...], seq: int) -> bytes:
    """The encoded envelope of our peer record (``seq`` must grow with every new record)."""
    record = PeerRecord(identity.peer_id, seq, tuple(a.without_p2p() for a in addrs))
    return Envelope.seal(identity, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, record.to_payload()).encode()


def open_peer_record(envelope_bytes: bytes) -> PeerRecord:
    """Decode and verify: right domain and type, valid signature, signed by the peer it names.

    Raises ``DecodeError`` for malformed bytes, :class:`EnvelopeError` for a record that does
    not check out. Needs the crypto backend."""
    envelope = Envelope.decode(envelope_bytes)
    record = PeerRecord.from_payload(envelope.open(PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE))
    if record.peer_id != envelope.signer:
        raise EnvelopeError(f"peer record for {record.peer_id} is signed by {envelope.signer}")
    return record
