"""Rendezvous (libp2p/specs ``rendezvous/README.md``): the codec, signed peer records (RFC 0003)
and the rendezvous point's registry with its limits, driven by hand-fed ``now``.

Codec and cookie tests are pure; anything that signs or verifies a record is ``native_crypto``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DecodeError, LimitExceeded, MessageTooLarge, ProtocolError
from darkswap_wasm.identity import Identity
from darkswap_wasm.identity.envelope import Envelope, EnvelopeError
from darkswap_wasm.identity.peer_record import (
    PEER_RECORD_DOMAIN,
    PEER_RECORD_PAYLOAD_TYPE,
    PeerRecord,
    open_peer_record,
    seal_peer_record,
)
from darkswap_wasm.protocols.rendezvous import (
    DEFAULT_TTL,
    MAX_MESSAGE,
    MAX_TTL,
    Discover,
    DiscoverResponse,
    MessageReader,
    Register,
    RegisterResponse,
    Registry,
    RendezvousConfig,
    Status,
    Unregister,
    decode_message,
    encode_body,
    encode_message,
    make_cookie,
    parse_cookie,
)
from darkswap_wasm.wire.multiaddr import Multiaddr

# signing needs a crypto backend: in a page that is libsodium.js (these run in Chromium, not in bare Pyodide)
pytestmark = pytest.mark.native_crypto

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True)
native_crypto = pytest.mark.native_crypto

A = Identity.from_seed(bytes([1]) * 32)
B = Identity.from_seed(bytes([2]) * 32)
RELAY = "/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"


def circuit_of(identity: Identity) -> Multiaddr:
    return Multiaddr(f"{RELAY}/p2p-circuit/p2p/{identity.peer_id}")


def register_msg(identity: Identity, ns: str, ttl: int | None = None, seq: int = 1) -> Register:
    return Register(ns, seal_peer_record(identity, [circuit_of(identity)], seq), ttl)


# --------------------------------------------------------------------------- spec wire form
def test_register_wire_form_follows_the_spec_protobuf():
    # Message{type=REGISTER(0), register{ns="room" (1), signedPeerRecord=b"\x01" (2), ttl=7200 (3)}}
    body = encode_body(Register("room", b"\x01", 7200))
    assert body == bytes.fromhex("0800") + b"\x12\x0c" + b"\x0a\x04room" + b"\x12\x01\x01" + b"\x18\xa0\x38"
    assert decode_message(body) == Register("room", b"\x01", 7200)
    framed = encode_message(Register("room", b"\x01", 7200))
    assert framed[0] == len(body) and framed[1:] == body


def test_discover_response_statuses_use_the_spec_numbers():
    assert [s.value for s in Status] == [0, 100, 101, 102, 103, 200, 300, 400]
    msg = DiscoverResponse(status=Status.E_INVALID_COOKIE, status_text="nope")
    body = encode_body(msg)
    assert body[:2] == b"\x08\x04"  # type DISCOVER_RESPONSE
    assert decode_message(body) == msg


@pytest.mark.parametrize(
    "msg",
    [
        Register("ns", b"rec", None),
        RegisterResponse(Status.OK, ttl=DEFAULT_TTL),
        RegisterResponse(Status.E_INVALID_TTL, "too long"),
        Unregister("ns"),
        Discover("ns", 10, b"\x01" + bytes(8) + b"ns"),
        Discover(),
        DiscoverResponse((Register("ns", b"r1", 5), Register("ns", b"r2", 6)), b"c"),
    ],
)
def test_every_message_round_trips(msg):
    assert decode_message(encode_body(msg)) == msg
    assert MessageReader().receive_data(encode_message(msg)) == [msg]


def test_reader_reassembles_split_messages_and_bounds_the_frame():
    wire = encode_message(Discover("x")) + encode_message(Unregister("y"))
    reader = MessageReader()
    got = []
    for i in range(len(wire)):
        got += reader.receive_data(wire[i : i + 1])
    assert got == [Discover("x"), Unregister("y")]
    with pytest.raises(LimitExceeded):
        MessageReader().receive_data(b"\xff\xff\xff\x7f")  # a 256 MiB frame header


def test_message_without_type_or_body_is_a_decode_error():
    with pytest.raises(DecodeError):
        decode_message(b"")
    with pytest.raises(DecodeError):
        decode_message(b"\x08\x03")  # DISCOVER without its body
    with pytest.raises(DecodeError):
        decode_message(b"\x08\x09\x2a\x00")  # unknown type 9


def test_oversized_message_is_refused_on_encode():
    with pytest.raises(MessageTooLarge):
        encode_message(Register("ns", b"x" * (MAX_MESSAGE + 1)))


def test_cookie_round_trips_and_rejects_foreign_bytes():
    assert parse_cookie(make_cookie(42, "room")) == (42, "room")
    for bad in (b"", b"\x02" + bytes(8), b"\x01\x00", b"\x01" + bytes(8) + b"\xff"):
        with pytest.raises(DecodeError):
            parse_cookie(bad)


# --------------------------------------------------------------------------- peer records
@native_crypto
def test_peer_record_is_signed_by_the_peer_it_names():
    raw = seal_peer_record(A, [circuit_of(A)], 7)
    rec = open_peer_record(raw)
    assert rec.peer_id == A.peer_id and rec.seq == 7
    assert rec.addrs == (circuit_of(A).without_p2p(),)
    env = Envelope.decode(raw)
    assert env.payload_type == PEER_RECORD_PAYLOAD_TYPE


@native_crypto
def test_peer_record_signed_by_another_key_is_refused():
    forged = Envelope.seal(B, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, PeerRecord(A.peer_id, 1).to_payload())
    with pytest.raises(EnvelopeError):
        open_peer_record(forged.encode())
    payload = PeerRecord(A.peer_id, 1).to_payload()
    wrong_domain = Envelope.seal(A, "libp2p-relay-rsvp", PEER_RECORD_PAYLOAD_TYPE, payload)
    with pytest.raises(EnvelopeError):
        open_peer_record(wrong_domain.encode())


# --------------------------------------------------------------------------- registry
@native_crypto
def test_register_then_discover_returns_the_record_with_its_remaining_ttl():
    reg = Registry()
    resp = reg.register(A.peer_id, register_msg(A, "room", 600), now=100.0)
    assert resp == RegisterResponse(Status.OK, ttl=600)
    found = reg.discover(Discover("room"), now=160.0)
    assert found.status is Status.OK
    [r] = found.registrations
    assert r.ns == "room" and r.ttl == 540
    assert open_peer_record(r.signed_peer_record).peer_id == A.peer_id


@native_crypto
def test_default_ttl_is_two_hours_and_at_most_72_hours_is_accepted():
    reg = Registry()
    assert reg.register(A.peer_id, register_msg(A, "a"), 0).ttl == DEFAULT_TTL == 7200
    assert reg.register(A.peer_id, register_msg(A, "b", MAX_TTL), 0).status is Status.OK
    too_long = reg.register(A.peer_id, register_msg(A, "c", MAX_TTL + 1), 0)
    assert too_long.status is Status.E_INVALID_TTL and "259200" in too_long.status_text


@native_crypto
def test_registration_expires_at_its_ttl():
    reg = Registry()
    reg.register(A.peer_id, register_msg(A, "room", 60), now=0.0)
    assert reg.next_expiry() == 60.0
    assert len(reg.discover(Discover("room"), now=59.9).registrations) == 1
    assert reg.discover(Discover("room"), now=60.0).registrations == ()
    assert len(reg) == 0 and reg.next_expiry() is None


@native_crypto
def test_re_registration_extends_the_ttl_without_a_second_entry():
    reg = Registry()
    reg.register(A.peer_id, register_msg(A, "room", 60, seq=1), now=0.0)
    reg.register(A.peer_id, register_msg(A, "room", 60, seq=2), now=50.0)
    assert len(reg) == 1 and reg.registrations_of(A.peer_id) == 1
    assert len(reg.discover(Discover("room"), now=100.0).registrations) == 1
    stale = reg.register(A.peer_id, register_msg(A, "room", 60, seq=1), now=101.0)
    assert stale.status is Status.E_INVALID_SIGNED_PEER_RECORD


@native_crypto
@pytest.mark.parametrize("ns,ok", [("", False), ("x" * 255, True), ("x" * 256, False), ("é" * 128, False)])
def test_namespace_length_is_at_most_255_bytes(ns, ok):
    status = Registry().register(A.peer_id, register_msg(A, ns), 0).status
    assert (status is Status.OK) is ok
    if not ok:
        assert status is Status.E_INVALID_NAMESPACE


@native_crypto
def test_record_of_another_peer_or_garbage_is_refused():
    reg = Registry()
    assert reg.register(B.peer_id, register_msg(A, "room"), 0).status is Status.E_INVALID_SIGNED_PEER_RECORD
    assert reg.register(A.peer_id, Register("room", b"\x00garbage"), 0).status is Status.E_INVALID_SIGNED_PEER_RECORD
    assert len(reg) == 0


@native_crypto
def test_unregister_removes_only_that_namespace():
    reg = Registry()
    reg.register(A.peer_id, register_msg(A, "one"), 0)
    reg.register(A.peer_id, register_msg(A, "two"), 0)
    assert reg.handle(A.peer_id, Unregister("one"), 1) is None
    assert reg.namespaces() == ["two"]
    assert reg.unregister_peer(A.peer_id) == 1 and len(reg) == 0


@native_crypto
def test_limits_refuse_with_spec_status_codes():
    peers = [Identity.from_seed(bytes([10 + i]) * 32) for i in range(4)]
    reg = Registry(
        RendezvousConfig(
            max_namespaces=2, max_registrations_per_namespace=2, max_registrations_per_peer=2, max_registrations=3
        )
    )
    p0 = peers[0]
    assert reg.register(p0.peer_id, register_msg(p0, "n1"), 0).status is Status.OK
    assert reg.register(p0.peer_id, register_msg(p0, "n2"), 0).status is Status.OK
    per_peer = reg.register(p0.peer_id, register_msg(p0, "n3"), 0)
    assert per_peer.status is Status.E_NOT_AUTHORIZED
    p1, p2, p3 = peers[1:]
    assert reg.register(p1.peer_id, register_msg(p1, "n3"), 0).status is Status.E_UNAVAILABLE  # namespaces
    assert reg.register(p1.peer_id, register_msg(p1, "n1"), 0).status is Status.OK
    assert reg.register(p2.peer_id, register_msg(p2, "n1"), 0).status is Status.E_UNAVAILABLE  # per namespace
    assert reg.register(p2.peer_id, register_msg(p2, "n2"), 0).status is Status.E_UNAVAILABLE  # total
    assert len(reg) == 3
    # a refresh of an existing registration is never refused by the counts
    assert reg.register(p0.peer_id, register_msg(p0, "n1", seq=2), 1).status is Status.OK


@native_crypto
def test_discover_pages_with_the_cookie_and_honours_the_limit():
    ids = [Identity.from_seed(bytes([30 + i]) * 32) for i in range(5)]
    reg = Registry(RendezvousConfig(default_discover_limit=3, max_discover_limit=3))
    for i in ids:
        reg.register(i.peer_id, register_msg(i, "room"), 0)
    first = reg.discover(Discover("room", limit=2), 1)
    assert len(first.registrations) == 2
    second = reg.discover(Discover("room", limit=100, cookie=first.cookie), 1)
    assert len(second.registrations) == 3  # capped at max_discover_limit
    third = reg.discover(Discover("room", cookie=second.cookie), 1)
    assert third.registrations == () and third.status is Status.OK
    seen = {open_peer_record(r.signed_peer_record).peer_id for r in first.registrations + second.registrations}
    assert seen == {i.peer_id for i in ids}
    # the cookie shows only what is new since
    late = Identity.from_seed(bytes([99]) * 32)
    reg.register(late.peer_id, register_msg(late, "room"), 2)
    [new] = reg.discover(Discover("room", cookie=third.cookie), 2).registrations
    assert open_peer_record(new.signed_peer_record).peer_id == late.peer_id


def test_bad_cookies_give_e_invalid_cookie():
    reg = Registry()
    assert reg.discover(Discover("room", cookie=b"junk"), 0).status is Status.E_INVALID_COOKIE
    assert reg.discover(Discover("room", cookie=make_cookie(0, "other")), 0).status is Status.E_INVALID_COOKIE
    assert reg.discover(Discover("room", cookie=make_cookie(5, "room")), 0).status is Status.E_INVALID_COOKIE
    assert reg.discover(Discover("x" * 300), 0).status is Status.E_INVALID_NAMESPACE


def test_a_response_sent_to_the_server_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        Registry().handle(A.peer_id, RegisterResponse(Status.OK), 0)


# --------------------------------------------------------------------------- properties
@FUZZ
@given(st.binary(max_size=600))
def test_decode_message_of_random_bytes_gives_a_message_or_a_decode_error(data):
    try:
        msg = decode_message(data)
    except DecodeError:
        return
    assert isinstance(msg, (Register, RegisterResponse, Unregister, Discover, DiscoverResponse))


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_reader_of_random_chunks_raises_only_protocol_errors(chunks):
    reader = MessageReader(max_message=1024)
    try:
        for c in chunks:
            reader.receive_data(c)
    except ProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_peer_record_payload_of_random_bytes_is_a_decode_error_or_a_record(data):
    try:
        rec = PeerRecord.from_payload(data)
    except DecodeError:
        return
    assert isinstance(rec, PeerRecord)


@FUZZ
@given(st.binary(max_size=64))
def test_parse_cookie_of_random_bytes_is_a_decode_error_or_a_pair(data):
    try:
        seq, ns = parse_cookie(data)
    except DecodeError:
        return
    assert seq >= 0 and isinstance(ns, str)


@FUZZ
@given(
    st.text(max_size=40),
    st.binary(max_size=64),
    st.one_of(st.none(), st.integers(1, 2**63 - 1)),
    st.one_of(st.none(), st.binary(min_size=1, max_size=32)),
)
def test_generated_messages_round_trip(ns, record, number, cookie):
    for msg in (Register(ns, record, number), Discover(ns, number, cookie), Unregister(ns)):
        assert decode_message(encode_body(msg)) == msg


@native_crypto
@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=400))
def test_registry_register_with_random_record_answers_with_a_status(data):
    resp = Registry().register(A.peer_id, Register("room", data), 0)
    assert resp.status is Status.E_INVALID_SIGNED_PEER_RECORD
