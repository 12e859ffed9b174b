"""Signed envelopes (libp2p/specs RFC 0002) and circuit relay v2 reservation vouchers.

Cross-implementation vector: ``JS_ENVELOPE`` was produced by js-libp2p itself
(``RecordEnvelope.seal(new ReservationVoucherRecord({relay, peer, expiration: 1700000000n}),
relayKey)`` with @libp2p/peer-record 9.x / @libp2p/circuit-relay-v2 4.2.13 from
``tests/interop/js/node_modules``), relay key = the peer-ids spec test key, peer key = seed
``01`` * 32. Ed25519 is deterministic, so our seal must give the very same bytes.

Decoding and payload handling are pure (run in Pyodide); signing/verifying is ``native_crypto``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DarkSwapError, DecodeError, ProtocolError
from darkswap_wasm.identity import Identity, PeerId, PublicKey
from darkswap_wasm.identity.envelope import (
    MAX_ENVELOPE_BYTES,
    VOUCHER_DOMAIN,
    VOUCHER_PAYLOAD_TYPE,
    Envelope,
    EnvelopeError,
    ReservationVoucher,
    open_voucher,
    seal_voucher,
    signing_input,
)
from darkswap_wasm.wire import protobuf

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)
CRYPTO_FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True)
native_crypto = pytest.mark.native_crypto

RELAY_SEED = bytes.fromhex("7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d")
RELAY_PUB = bytes.fromhex("1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
RELAY_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
PEER_SEED = bytes([1]) * 32
PEER_PUB = bytes.fromhex("8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c")
PEER_ID = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"
EXPIRATION = 1700000000

# ReservationVoucher payload as js marshals it:
#   0a 26 <relay multihash: 00 24 08 01 12 20 RELAY_PUB>   relay = 1
#   12 26 <peer multihash:  00 24 08 01 12 20 PEER_PUB>    peer = 2
#   18 80e2cfaa06                                          expiration = 3 (varint 1700000000)
JS_PAYLOAD = bytes.fromhex(
    "0a26002408011220" + RELAY_PUB.hex() + "1226002408011220" + PEER_PUB.hex() + "1880e2cfaa06"
)
JS_SIGNATURE = bytes.fromhex(
    "96eb43cf09635c9de9c56a425338f8ff9e425284fcc01ddaea74975e579cf78d"
    "40724e6689a1031429425eeb47334f0434f0d7aeeb7e35470a89d9775b578b08"
)
# Envelope: 0a 24 <key protobuf>  12 02 0302  1a 56 <payload>  2a 40 <signature>  (signature is field 5)
JS_ENVELOPE = (
    bytes.fromhex("0a2408011220")
    + RELAY_PUB
    + bytes.fromhex("1202" "0302" "1a56")
    + JS_PAYLOAD
    + bytes.fromhex("2a40")
    + JS_SIGNATURE
)
JS_ENVELOPE_HEX = (
    "0a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e120203021a560a2600"
    "24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e12260024080112208a88"
    "e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c1880e2cfaa062a4096eb43cf09635c9de9"
    "c56a425338f8ff9e425284fcc01ddaea74975e579cf78d40724e6689a1031429425eeb47334f0434f0d7aeeb7e3547"
    "0a89d9775b578b08"
)


def relay() -> Identity:
    return Identity(RELAY_SEED)


def peer() -> Identity:
    return Identity(PEER_SEED)


# --------------------------------------------------------------------------- pure (Pyodide too)


def test_js_vector_is_assembled_as_documented() -> None:
    assert JS_ENVELOPE.hex() == JS_ENVELOPE_HEX
    assert len(JS_PAYLOAD) == 0x56


def test_voucher_constants() -> None:
    # go circuitv2/proto/voucher.go: RecordDomain, RecordCodec; js ReservationVoucherRecord.
    assert VOUCHER_DOMAIN == "libp2p-relay-rsvp"
    assert VOUCHER_PAYLOAD_TYPE == bytes([0x03, 0x02])


def test_signing_input_bytes_by_hand() -> None:
    # RFC 0002: uvarint(len) || domain || uvarint(len) || type || uvarint(len) || payload
    assert signing_input("ab", b"\x03\x02", b"xyz") == b"\x02ab\x02\x03\x02\x03xyz"
    got = signing_input(VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, JS_PAYLOAD)
    assert got == b"\x11libp2p-relay-rsvp" + b"\x02\x03\x02" + b"\x56" + JS_PAYLOAD
    # a 200-byte payload needs a two-byte varint length
    assert signing_input("d", b"t", b"\x00" * 200)[4:6] == b"\xc8\x01"


def test_decode_js_envelope_without_crypto() -> None:
    env = Envelope.decode(JS_ENVELOPE)
    assert env.public_key == PublicKey(RELAY_PUB)
    assert env.payload_type == b"\x03\x02"
    assert env.payload == JS_PAYLOAD
    assert env.signature == JS_SIGNATURE
    assert env.signer == PeerId.from_string(RELAY_ID)
    assert env.encode() == JS_ENVELOPE  # re-encoding is byte-identical (fields 1, 2, 3, 5)


def test_voucher_payload_matches_js() -> None:
    v = ReservationVoucher(PeerId.from_string(RELAY_ID), PeerId.from_string(PEER_ID), EXPIRATION)
    assert v.to_payload() == JS_PAYLOAD
    assert ReservationVoucher.from_payload(JS_PAYLOAD) == v


def test_voucher_zero_expiration_is_omitted_like_proto3() -> None:
    v = ReservationVoucher(PeerId.from_string(RELAY_ID), PeerId.from_string(PEER_ID), 0)
    assert v.to_payload() == JS_PAYLOAD[: 2 + 0x26 + 2 + 0x26]
    assert ReservationVoucher.from_payload(v.to_payload()).expiration == 0


def test_voucher_payload_requires_relay_and_peer() -> None:
    schema = {1: ("relay", "bytes", False), 2: ("peer", "bytes", False), 3: ("e", "uint", False)}
    relay_only = protobuf.encode(schema, {"relay": PeerId.from_string(RELAY_ID).to_bytes(), "e": 5})
    with pytest.raises(DecodeError):
        ReservationVoucher.from_payload(relay_only)
    with pytest.raises(DecodeError):
        ReservationVoucher.from_payload(b"\x0a\x03abc\x12\x03abc")  # not peer IDs


def test_envelope_decode_rejects_junk() -> None:
    with pytest.raises(DecodeError):
        Envelope.decode(b"")  # no public key
    with pytest.raises(DecodeError):
        Envelope.decode(JS_ENVELOPE[:-5])  # truncated signature field
    with pytest.raises(DecodeError):
        Envelope.decode(b"\x0a" + b"\xff" * 12)
    with pytest.raises(DecodeError):
        Envelope.decode(b"\x0a\x00" + b"\x00" * (MAX_ENVELOPE_BYTES + 1))
    # an RSA-typed key (type 0) is not supported
    with pytest.raises(DecodeError):
        Envelope.decode(bytes.fromhex("0a0408001200") + JS_ENVELOPE[38:])


def test_seal_argument_checks() -> None:
    class NoSign:  # never reached: arguments are checked first
        pass

    with pytest.raises(ValueError):
        Envelope.seal(NoSign(), "", b"\x01", b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Envelope.seal(NoSign(), "d", b"", b"x")  # type: ignore[arg-type]


def test_envelope_error_is_a_protocol_error() -> None:
    assert issubclass(EnvelopeError, ProtocolError)
    assert EnvelopeError("x").code == "INVALID_ENVELOPE"


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_envelope_decode_only_raises_package_errors(data: bytes) -> None:
    try:
        Envelope.decode(data)
    except DarkSwapError:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_voucher_payload_only_raises_package_errors(data: bytes) -> None:
    try:
        ReservationVoucher.from_payload(data)
    except DarkSwapError:
        pass


@FUZZ
@given(st.integers(0, len(JS_ENVELOPE) - 1), st.integers(1, 255))
def test_fuzz_mutated_envelope_decode(pos: int, xor: int) -> None:
    data = bytearray(JS_ENVELOPE)
    data[pos] ^= xor
    try:
        Envelope.decode(bytes(data))
    except DarkSwapError:
        pass


# --------------------------------------------------------------------------- signatures


@native_crypto
def test_seal_is_byte_identical_to_js() -> None:
    v = ReservationVoucher(relay().peer_id, peer().peer_id, EXPIRATION)
    assert seal_voucher(relay(), v) == JS_ENVELOPE
    env = Envelope.seal(relay(), VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, JS_PAYLOAD)
    assert env.signature == JS_SIGNATURE
    assert relay().public_key.verify(signing_input(VOUCHER_DOMAIN, b"\x03\x02", JS_PAYLOAD), JS_SIGNATURE)


@native_crypto
def test_open_js_voucher() -> None:
    v = open_voucher(JS_ENVELOPE, PeerId.from_string(RELAY_ID), PeerId.from_string(PEER_ID))
    assert v == ReservationVoucher(PeerId.from_string(RELAY_ID), PeerId.from_string(PEER_ID), EXPIRATION)
    assert open_voucher(JS_ENVELOPE) == v


@native_crypto
def test_envelope_roundtrip_any_domain() -> None:
    ident = Identity.generate()
    env = Envelope.seal(ident, "darkswap-test", b"/x", b"hello")
    again = Envelope.decode(env.encode())
    assert again == env
    assert again.open("darkswap-test", b"/x") == b"hello"


@native_crypto
def test_wrong_domain_rejected() -> None:
    env = Envelope.decode(JS_ENVELOPE)
    with pytest.raises(EnvelopeError):
        env.open("libp2p-routing-state", VOUCHER_PAYLOAD_TYPE)
    env2 = Envelope.seal(relay(), "libp2p-routing-state", VOUCHER_PAYLOAD_TYPE, JS_PAYLOAD)
    with pytest.raises(EnvelopeError):
        open_voucher(env2.encode())


@native_crypto
def test_wrong_payload_type_rejected() -> None:
    env = Envelope.decode(JS_ENVELOPE)
    with pytest.raises(EnvelopeError):
        env.open(VOUCHER_DOMAIN, b"\x03\x01")
    bad = Envelope.seal(relay(), VOUCHER_DOMAIN, b"\x03\x01", JS_PAYLOAD)
    with pytest.raises(EnvelopeError):
        open_voucher(bad.encode())


@native_crypto
@pytest.mark.parametrize("where", ["payload", "type", "signature"])
def test_tampered_envelope_rejected(where: str) -> None:
    env = Envelope.decode(JS_ENVELOPE)
    if where == "payload":
        payload = bytearray(env.payload)
        payload[-1] ^= 1  # expiration changed
        env = Envelope(env.public_key, env.payload_type, bytes(payload), env.signature)
        with pytest.raises(EnvelopeError):
            env.open(VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE)
    elif where == "type":
        env = Envelope(env.public_key, b"\x03\x02\x00", env.payload, env.signature)
        with pytest.raises(EnvelopeError):
            env.open(VOUCHER_DOMAIN, b"\x03\x02\x00")
    else:
        sig = bytearray(env.signature)
        sig[0] ^= 0x80
        env = Envelope(env.public_key, env.payload_type, env.payload, bytes(sig))
        with pytest.raises(EnvelopeError):
            env.open(VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE)
    with pytest.raises(EnvelopeError):
        open_voucher(env.encode())


@native_crypto
def test_short_or_missing_signature_rejected() -> None:
    env = Envelope.decode(JS_ENVELOPE)
    for sig in (b"", env.signature[:63], env.signature + b"\x00"):
        with pytest.raises(EnvelopeError):
            Envelope(env.public_key, env.payload_type, env.payload, sig).open(VOUCHER_DOMAIN, b"\x03\x02")


@native_crypto
def test_voucher_signed_by_someone_else_rejected() -> None:
    # a valid envelope, but signed by the reserving peer, naming the relay
    forged = Envelope.seal(peer(), VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE, JS_PAYLOAD).encode()
    with pytest.raises(EnvelopeError, match="signed by"):
        open_voucher(forged)
    with pytest.raises(ValueError):
        seal_voucher(peer(), ReservationVoucher(relay().peer_id, peer().peer_id, EXPIRATION))


@native_crypto
def test_voucher_for_other_relay_or_peer_rejected() -> None:
    other = Identity.generate().peer_id
    with pytest.raises(EnvelopeError, match="relay"):
        open_voucher(JS_ENVELOPE, expected_relay=other)
    with pytest.raises(EnvelopeError, match="peer"):
        open_voucher(JS_ENVELOPE, expected_peer=other)


@native_crypto
@CRYPTO_FUZZ
@given(st.integers(0, len(JS_ENVELOPE) - 1), st.integers(1, 255))
def test_fuzz_mutated_voucher_never_opens(pos: int, xor: int) -> None:
    data = bytearray(JS_ENVELOPE)
    data[pos] ^= xor
    try:
        v = open_voucher(bytes(data))
    except DarkSwapError:
        return
    # only a change outside the signed fields and the key (protobuf framing) could survive,
    # and then the content must be the original one
    assert v == ReservationVoucher.from_payload(JS_PAYLOAD)


@native_crypto
@CRYPTO_FUZZ
@given(st.binary(max_size=400))
def test_fuzz_open_voucher_only_raises_package_errors(data: bytes) -> None:
    try:
        open_voucher(data)
    except DarkSwapError:
        pass
