"""Signed envelopes (libp2p/specs ``RFC/0002-signed-envelopes.md``) and circuit relay v2
reservation vouchers (``relay/circuit-v2.md`` §Reservation Vouchers).

Wire form (go-libp2p ``core/record/pb/envelope.proto``, js-libp2p ``@libp2p/peer-record``)::

    message Envelope {
      PublicKey public_key = 1;  // libp2p key protobuf (peer-ids spec)
      bytes payload_type = 2;    // multicodec-prefixed type hint
      bytes payload = 3;
      bytes signature = 5;       // field 5, not 4: the RFC's sketch differs, every implementation uses 5
    }

The signature covers ``uvarint(len(domain)) || domain || uvarint(len(payload_type)) ||
payload_type || uvarint(len(payload)) || payload`` (:func:`signing_input`); the domain is never
on the wire, so a signature made for one domain never verifies in another.

Reservation vouchers: domain ``"libp2p-relay-rsvp"``, payload type ``0x03 0x02`` (go
``circuitv2/proto/voucher.go`` ``RecordCodec``, js ``ReservationVoucherRecord.codec``), payload
``ReservationVoucher {bytes relay = 1; bytes peer = 2; uint64 expiration = 3}`` in canonical
(field-order, proto3 zero-omitting) protobuf, exactly as go and js marshal it.

Only Ed25519 signers are supported (as for every key in this package): an envelope carrying
an RSA/secp256k1/ECDSA key decodes to :class:`~darkswap_wasm.errors.DecodeError`. Vouchers are
advisory in the spec today, so a client should not fail a reservation over one it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DecodeError, ProtocolError
from ..wire import protobuf, varint
from .keys import Identity, PublicKey
from .peer_id import PeerId

ENVELOPE_SCHEMA = {
    1: ("publicKey", "bytes", False),
    2: ("payloadType", "bytes", False),
    3: ("payload", "bytes", False),
    5: ("signature", "bytes", False),
}
MAX_ENVELOPE_BYTES = 8 * 1024  # vouchers are ~220 bytes; a relay message is at most 4 KiB
ED25519_SIGNATURE_BYTES = 64

VOUCHER_DOMAIN = "libp2p-relay-rsvp"
VOUCHER_PAYLOAD_TYPE = b"\x03\x02"
VOUCHER_SCHEMA = {
    1: ("relay", "bytes", False),
    2: ("peer", "bytes", False),
    3: ("expiration", "uint", False),
}


class EnvelopeError(ProtocolError):
    """A signed envelope failed to open: wrong payload type, wrong domain or bad signature,
    or (for vouchers) the signer or the named peers are not the expected ones."""

    CODE = "INVALID_ENVELOPE"


def signing_input(domain: str, payload_type: bytes, payload: bytes) -> bytes:
    """The bytes an envelope signature covers (RFC 0002 §Signature Production)."""
    raw_domain = domain.encode("utf-8")
    return b"".join(
        varint.encode(len(part)) + part for part in (raw_domain, bytes(payload_type), bytes(payload))
    )


@dataclass(frozen=True)
class Envelope:
    public_key: PublicKey
    payload_type: bytes
    payload: bytes
    signature: bytes

    @classmethod
    def seal(cls, identity: Identity, domain: str, payload_type: bytes, payload: bytes) -> Envelope:
        """Sign ``payload`` for ``domain`` with ``identity`` (needs the crypto backend)."""
        if not domain:
            raise ValueError("an envelope domain must not be empty")
        if not payload_type:
            raise ValueError("an envelope payload type must not be empty")
        payload_type, payload = bytes(payload_type), bytes(payload)
        signature = identity.sign(signing_input(domain, payload_type, payload))
        return cls(identity.public_key, payload_type, payload, signature)

    def encode(self) -> bytes:
        return protobuf.encode(
            ENVELOPE_SCHEMA,
            {
                "publicKey": self.public_key.to_protobuf(),
                "payloadType": self.payload_type,
                "payload": self.payload,
                "signature": self.signature,
            },
        )

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Parse an envelope without verifying it (see :meth:`open`). Raises ``DecodeError``."""
        data = bytes(data)
        if len(data) > MAX_ENVELOPE_BYTES:
            raise DecodeError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
        msg = protobuf.decode(ENVELOPE_SCHEMA, data)
        if "publicKey" not in msg:
            raise DecodeError("envelope without a public key")
        key = PublicKey.from_protobuf(msg["publicKey"])
        return cls(key, msg.get("payloadType", b""), msg.get("payload", b""), msg.get("signature", b""))

    @property
    def signer(self) -> PeerId:
        return self.public_key.peer_id

    def open(self, domain: str, expected_payload_type: bytes) -> bytes:
        """Verify the type and the signature for ``domain``; return the payload.

        Raises :class:`EnvelopeError` on a different payload type, domain or a bad signature.
        Needs the crypto backend.
        """
        if self.payload_type != bytes(expected_payload_type):
            raise EnvelopeError(
                f"envelope payload type {self.payload_type.hex()} is not the expected "
                f"{bytes(expected_payload_type).hex()}"
            )
        if len(self.signature) != ED25519_SIGNATURE_BYTES or not self.public_key.verify(
            signing_input(domain, self.payload_type, self.payload), self.signature
        ):
            raise EnvelopeError(f"envelope signature is invalid (or not made for domain {domain!r})")
        return self.payload


@dataclass(frozen=True)
class ReservationVoucher:
    relay: PeerId
    peer: PeerId
    expiration: int  # unix seconds (UTC)

    def __post_init__(self) -> None:
        if not 0 <= self.expiration < 1 << 63:
            raise ValueError(f"voucher expiration out of range: {self.expiration}")

    def to_payload(self) -> bytes:
        """Canonical protobuf, byte-identical to go's and js's marshalling (0 expiration omitted)."""
        return protobuf.encode(
            VOUCHER_SCHEMA,
            {
                "relay": self.relay.to_bytes(),
                "peer": self.peer.to_bytes(),
                "expiration": self.expiration or None,
            },
        )

    @classmethod
    def from_payload(cls, data: bytes) -> ReservationVoucher:
        data = bytes(data)
        if len(data) > MAX_ENVELOPE_BYTES:
            raise DecodeError("voucher payload too large")
        msg = protobuf.decode(VOUCHER_SCHEMA, data)
        if "relay" not in msg or "peer" not in msg:
            raise DecodeError("reservation voucher without relay or peer")
        expiration = msg.get("expiration", 0)
        if expiration >= 1 << 63:
            raise DecodeError("reservation voucher expiration out of range")
        return cls(PeerId(msg["relay"]), PeerId(msg["peer"]), expiration)


def seal_voucher(identity: Identity, voucher: ReservationVoucher) -> bytes:
    """The encoded envelope a relay puts in ``Reservation.voucher``. ``identity`` must be the relay."""
    if voucher.relay != identity.peer_id:
        raise ValueError("a reservation voucher is signed by the relay it names")
    return Envelope.seal(identity, VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, voucher.to_payload()).encode()


def open_voucher(
    envelope_bytes: bytes,
    expected_relay: PeerId | None = None,
    expected_peer: PeerId | None = None,
) -> ReservationVoucher:
    """Decode and verify a voucher envelope: right domain and type, valid signature, signed by
    the relay it names, and (when given) naming ``expected_relay`` / ``expected_peer``.

    Raises ``DecodeError`` for malformed bytes and :class:`EnvelopeError` for a voucher that
    does not check out. Needs the crypto backend.
    """
    envelope = Envelope.decode(envelope_bytes)
    voucher = ReservationVoucher.from_payload(envelope.open(VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE))
    if envelope.signer != voucher.relay:
        raise EnvelopeError(f"voucher for relay {voucher.relay} is signed by {envelope.signer}")
    if expected_relay is not None and voucher.relay != expected_relay:
        raise EnvelopeError(f"voucher names relay {voucher.relay}, expected {expected_relay}")
    if expected_peer is not None and voucher.peer != expected_peer:
        raise EnvelopeError(f"voucher names peer {voucher.peer}, expected {expected_peer}")
    return voucher
