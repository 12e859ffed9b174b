"""Circuit relay v2 messages, the message reader, relay resource accounting, circuit meters.

The ``JS_*`` vectors are message bodies produced by js-libp2p itself (protons code generated
from ``@libp2p/circuit-relay-v2`` 4.2.13 ``src/pb/index.proto``, run from
``tests/interop/js/node_modules``); the short ones are also worked out by hand below.
Everything here is pure (no signatures): runs in Pyodide too.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ConfigError, DarkSwapError, DecodeError, LimitExceeded, MessageTooLarge, ProtocolError
from darkswap_wasm.identity import PeerId
from darkswap_wasm.protocols.circuit_v2 import (
    HOP_PROTOCOL_ID,
    MAX_MESSAGE,
    STOP_PROTOCOL_ID,
    CircuitMeter,
    HopMessage,
    HopType,
    Limit,
    MalformedMessage,
    MessageReader,
    Peer,
    RelayConfig,
    RelayResources,
    Reservation,
    Status,
    StopMessage,
    StopType,
    status_for_error,
)
from darkswap_wasm.wire import protobuf, varint
from darkswap_wasm.wire.multiaddr import Multiaddr

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)

RELAY_PUB = "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
PEER_PUB = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
RELAY = PeerId.from_string("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq")
PEER = PeerId.from_string("12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5")
RELAY_MH = bytes.fromhex("002408011220" + RELAY_PUB)  # identity multihash of the key protobuf
PEER_MH = bytes.fromhex("002408011220" + PEER_PUB)

# The voucher envelope of test_envelope.py (js-sealed), carried here as opaque bytes.
JS_VOUCHER = bytes.fromhex(
    "0a2408011220" + RELAY_PUB + "120203021a560a26002408011220" + RELAY_PUB + "1226002408011220" + PEER_PUB
    + "1880e2cfaa062a4096eb43cf09635c9de9c56a425338f8ff9e425284fcc01ddaea74975e579cf78d40724e6689a1031429"
    "425eeb47334f0434f0d7aeeb7e35470a89d9775b578b08"
)
RSVP_ADDR = Multiaddr(f"/ip4/1.2.3.4/tcp/4001/p2p/{RELAY}")

# HopMessage{type: STATUS, status: OK, reservation: {expire: 1700000000, addrs: [RSVP_ADDR],
# voucher}, limit: {duration: 120, data: 131072}}
JS_STATUS_OK_RESERVATION = bytes.fromhex(
    "08021a80020880e2cfaa0612310401020304060fa1a50326" + RELAY_MH.hex() + "1ac401" + JS_VOUCHER.hex()
    + "22060878108080082864"
)
# HopMessage{type: CONNECT, peer: {id: PEER, addrs: [/p2p/PEER]}}
JS_CONNECT = bytes.fromhex("080112530a26" + PEER_MH.hex() + "1229a50326" + PEER_MH.hex())
# StopMessage{type: CONNECT, peer: {id: RELAY}, limit: {duration: 120, data: 131072}}
JS_STOP_CONNECT = bytes.fromhex("080012280a26" + RELAY_MH.hex() + "1a06087810808008")
JS_STOP_STATUS_FAILED = bytes.fromhex("080120cb01")  # StopMessage{STATUS, CONNECTION_FAILED=203}
JS_HOP_NO_RESERVATION = bytes.fromhex("080228cc01")  # HopMessage{STATUS, NO_RESERVATION=204}
JS_RESERVE = bytes.fromhex("0800")  # js writes type even when it is 0

LIMIT = Limit(120, 131072)


def frame(body: bytes) -> bytes:
    return varint.encode(len(body)) + body


# --------------------------------------------------------------------------- constants


def test_protocol_ids_and_codes() -> None:
    assert HOP_PROTOCOL_ID == "/libp2p/circuit/relay/0.2.0/hop"
    assert STOP_PROTOCOL_ID == "/libp2p/circuit/relay/0.2.0/stop"
    assert MAX_MESSAGE == 4096
    assert {s.name: int(s) for s in Status} == {
        "UNUSED": 0,
        "OK": 100,
        "RESERVATION_REFUSED": 200,
        "RESOURCE_LIMIT_EXCEEDED": 201,
        "PERMISSION_DENIED": 202,
        "CONNECTION_FAILED": 203,
        "NO_RESERVATION": 204,
        "MALFORMED_MESSAGE": 400,
        "UNEXPECTED_MESSAGE": 401,
    }
    assert [int(t) for t in HopType] == [0, 1, 2]
    assert [int(t) for t in StopType] == [0, 1]


# --------------------------------------------------------------------------- wire vectors


def test_hand_checked_small_messages() -> None:
    # tag = field << 3 | wire type: type 0x08, hop status 5 -> 0x28, stop status 4 -> 0x20
    assert HopMessage(HopType.RESERVE).encode() == b"\x02\x08\x00"
    assert HopMessage(HopType.STATUS, status=Status.OK).encode() == b"\x04\x08\x02\x28\x64"
    assert StopMessage(StopType.STATUS, status=Status.OK).encode() == b"\x04\x08\x01\x20\x64"
    # 203 = 0xcb -> varint cb 01; 204 -> cc 01
    failed = StopMessage(StopType.STATUS, status=Status.CONNECTION_FAILED)
    assert failed.encode_body() == JS_STOP_STATUS_FAILED
    assert HopMessage(HopType.STATUS, status=Status.NO_RESERVATION).encode_body() == JS_HOP_NO_RESERVATION
    # Limit: duration (0x08) 120 = 0x78; data (0x10) 131072 = 2**17 -> 80 80 08
    assert LIMIT.to_protobuf() == bytes.fromhex("0878" "10808008")
    # hop limit is field 4 (0x22), stop limit field 3 (0x1a)
    assert HopMessage(HopType.STATUS, limit=LIMIT, status=Status.OK).encode_body() == bytes.fromhex(
        "0802" "2206087810808008" "2864"
    )


def test_hop_reserve_matches_js() -> None:
    assert HopMessage(HopType.RESERVE).encode_body() == JS_RESERVE
    assert HopMessage.decode_body(JS_RESERVE) == HopMessage(HopType.RESERVE)


def test_hop_status_with_reservation_matches_js() -> None:
    msg = HopMessage(
        HopType.STATUS,
        reservation=Reservation(1700000000, (RSVP_ADDR,), JS_VOUCHER),
        limit=LIMIT,
        status=Status.OK,
    )
    assert msg.encode_body() == JS_STATUS_OK_RESERVATION
    assert HopMessage.decode_body(JS_STATUS_OK_RESERVATION) == msg
    assert HopMessage.decode(msg.encode()) == msg
    # the framed form: uvarint(len) then the body; 2 + 3 + 0x100 + 8 + 2 = 0x10f bytes -> 8f 02
    assert msg.encode()[:2] == b"\x8f\x02" and len(JS_STATUS_OK_RESERVATION) == 0x10F


def test_hop_connect_matches_js() -> None:
    msg = HopMessage(HopType.CONNECT, peer=Peer(PEER, (Multiaddr(f"/p2p/{PEER}"),)))
    assert msg.encode_body() == JS_CONNECT
    assert HopMessage.decode_body(JS_CONNECT) == msg


def test_stop_connect_matches_js() -> None:
    msg = StopMessage(StopType.CONNECT, peer=Peer(RELAY), limit=LIMIT)
    assert msg.encode_body() == JS_STOP_CONNECT
    assert StopMessage.decode_body(JS_STOP_CONNECT) == msg


ROUNDTRIP = [
    HopMessage(HopType.RESERVE),
    HopMessage(HopType.CONNECT, peer=Peer(PEER)),
    HopMessage(
        HopType.CONNECT,
        peer=Peer(PEER, (Multiaddr("/ip4/10.0.0.1/tcp/1"), Multiaddr("/dns4/x.org/tcp/443/wss"))),
    ),
    HopMessage(HopType.STATUS, status=Status.OK, limit=Limit(duration=60)),
    HopMessage(HopType.STATUS, status=Status.OK, limit=Limit(data=1)),
    HopMessage(HopType.STATUS, status=Status.OK, limit=Limit()),
    HopMessage(HopType.STATUS, status=Status.OK, reservation=Reservation(0)),
    HopMessage(HopType.STATUS, status=Status.OK, reservation=Reservation(2**40, (RSVP_ADDR,))),
    *[HopMessage(HopType.STATUS, status=s) for s in Status],
    StopMessage(StopType.CONNECT, peer=Peer(RELAY)),
    StopMessage(StopType.CONNECT, peer=Peer(RELAY, (RSVP_ADDR,)), limit=LIMIT),
    *[StopMessage(StopType.STATUS, status=s) for s in Status],
]


@pytest.mark.parametrize("msg", ROUNDTRIP, ids=lambda m: f"{type(m).__name__}-{m.type.name}")
def test_roundtrip(msg) -> None:
    kind = type(msg)
    assert kind.decode(msg.encode()) == msg
    reader = MessageReader(kind)
    assert reader.feed(msg.encode()) == (msg, b"")


def test_absent_type_means_zero_like_go() -> None:
    # go's GetType() defaults to RESERVE / CONNECT; old go clients sent an empty RESERVE
    assert HopMessage.decode_body(b"") == HopMessage(HopType.RESERVE)
    assert HopMessage.decode(b"\x00") == HopMessage(HopType.RESERVE)
    body = StopMessage(StopType.CONNECT, peer=Peer(RELAY)).encode_body()[2:]  # drop 08 00
    assert StopMessage.decode_body(body) == StopMessage(StopType.CONNECT, peer=Peer(RELAY))


def test_unknown_fields_are_skipped() -> None:
    extra = bytes.fromhex("3007" "3a03616263")  # field 6 varint, field 7 bytes
    assert HopMessage.decode_body(JS_RESERVE + extra) == HopMessage(HopType.RESERVE)
    assert StopMessage.decode_body(JS_STOP_STATUS_FAILED + extra).status is Status.CONNECTION_FAILED


def test_unreadable_addrs_are_skipped() -> None:
    peer = protobuf.encode(
        {1: ("id", "bytes", False), 2: ("addrs", "bytes", True)},
        {"id": PEER.to_bytes(), "addrs": [b"\xff\xff\xff", RSVP_ADDR.to_bytes(), b""]},
    )
    body = b"\x08\x01\x12" + varint.encode(len(peer)) + peer
    assert HopMessage.decode_body(body).peer == Peer(PEER, (RSVP_ADDR,))
    raw = RSVP_ADDR.to_bytes()
    rsvp = Reservation.from_protobuf(b"\x08\x05\x12\x02\xde\xad\x12" + bytes([len(raw)]) + raw)
    assert rsvp == Reservation(5, (RSVP_ADDR,))


def test_missing_required_fields_are_malformed() -> None:
    cases = [
        (HopMessage, b"\x08\x01"),  # CONNECT without peer
        (HopMessage, b"\x08\x02"),  # STATUS without status
        (HopMessage, b"\x08\x01\x12\x00"),  # CONNECT with a Peer without id
        (StopMessage, b"\x08\x00"),  # CONNECT without peer
        (StopMessage, b"\x08\x01"),  # STATUS without status
        (StopMessage, b"\x08\x00\x12\x02\x12\x00"),  # Peer with addrs but no id
    ]
    for kind, body in cases:
        with pytest.raises(MalformedMessage) as info:
            kind.decode_body(body)
        assert isinstance(info.value, ProtocolError)
        assert status_for_error(info.value) is Status.MALFORMED_MESSAGE


def test_bad_values_are_decode_errors() -> None:
    cases = [
        (HopMessage, b"\x08\x03"),  # hop type 3
        (StopMessage, b"\x08\x02"),  # stop type 2
        (HopMessage, b"\x08\x02\x28\x65"),  # status 101
        (HopMessage, b"\x08\x01\x12\x05\x0a\x03abc"),  # peer id is not a multihash
        (HopMessage, b"\x08\x02\x28\x64\x22\x06\x08\x80\x80\x80\x80\x10"),  # duration 2**32
        (HopMessage, b"\x0a\x00"),  # type as bytes
        (HopMessage, b"\x08"),  # truncated
    ]
    for kind, body in cases:
        with pytest.raises(DecodeError):
            kind.decode_body(body)
    assert status_for_error(DecodeError("x")) is Status.MALFORMED_MESSAGE


def test_decode_wants_exactly_one_frame() -> None:
    with pytest.raises(DecodeError):
        HopMessage.decode(b"\x02\x08")  # short
    with pytest.raises(DecodeError):
        HopMessage.decode(b"\x02\x08\x00\x00")  # trailing byte
    with pytest.raises(DecodeError):
        HopMessage.decode(b"")
    with pytest.raises(LimitExceeded):
        HopMessage.decode(varint.encode(MAX_MESSAGE + 1) + b"\x00" * (MAX_MESSAGE + 1))


def test_size_limit_on_encode() -> None:
    addrs = tuple(Multiaddr(f"/dns4/{'a' * 200}.example/tcp/{i}") for i in range(30))
    with pytest.raises(MessageTooLarge):  # ours: a local mistake, not the peer's (not a ProtocolError)
        HopMessage(HopType.CONNECT, peer=Peer(PEER, addrs)).encode()
    with pytest.raises(LimitExceeded):
        HopMessage.decode_body(b"\x08\x00" + b"\x30\x00" * MAX_MESSAGE)


def test_limit_helpers() -> None:
    assert Limit().unlimited and Limit(0, 0).unlimited
    assert Limit(0, 5).duration_limit is None and Limit(0, 5).data_limit == 5
    assert not Limit(7).unlimited
    with pytest.raises(ValueError):
        Limit(duration=2**32)
    with pytest.raises(ValueError):
        Limit(data=-1)


# --------------------------------------------------------------------------- reader


def test_reader_byte_at_a_time_keeps_leftover_exactly() -> None:
    msg = HopMessage(HopType.STATUS, status=Status.OK, limit=LIMIT)
    relayed = b"\x13/multistream/1.0.0\n" + bytes(range(256))
    wire = msg.encode() + relayed
    reader = MessageReader(HopMessage)
    result = None
    for i in range(len(msg.encode())):
        assert not reader.done
        result = reader.feed(wire[i : i + 1])
    assert result == (msg, b"")
    assert reader.done and reader.message == msg
    with pytest.raises(ProtocolError):
        reader.feed(relayed)


def test_reader_leftover_in_the_same_chunk() -> None:
    msg = StopMessage(StopType.CONNECT, peer=Peer(RELAY), limit=LIMIT)
    second = StopMessage(StopType.STATUS, status=Status.OK).encode()  # looks like a frame: stays raw
    reader = MessageReader(StopMessage)
    assert reader.feed(b"") is None
    assert reader.feed(msg.encode()[:1]) is None
    got, leftover = reader.feed(msg.encode()[1:] + second + b"tail")
    assert got == msg and leftover == second + b"tail"


def test_reader_limits_and_errors() -> None:
    reader = MessageReader(HopMessage)
    with pytest.raises(LimitExceeded):
        reader.feed(varint.encode(MAX_MESSAGE + 1))  # refused before the body arrives
    with pytest.raises(ProtocolError):
        reader.feed(b"\x00")  # a failed reader stays failed
    small = MessageReader(HopMessage, max_message=2)
    assert small.feed(b"\x02\x08") is None
    assert small.feed(b"\x00") == (HopMessage(HopType.RESERVE), b"")
    bad = MessageReader(HopMessage)
    with pytest.raises(MalformedMessage):
        bad.feed(b"\x02\x08\x01xyz")
    with pytest.raises(DecodeError):
        MessageReader(HopMessage).feed(b"\xff" * 10)  # overlong varint
    unfinished = MessageReader(StopMessage)
    unfinished.feed(b"\x05\x08")
    with pytest.raises(DecodeError):
        unfinished.end_of_stream()
    with pytest.raises(TypeError):
        MessageReader(Limit)  # type: ignore[type-var]


# --------------------------------------------------------------------------- fuzz


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_hop_decode_body(data: bytes) -> None:
    try:
        HopMessage.decode_body(data)
    except DarkSwapError:
        pass


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_stop_decode_body(data: bytes) -> None:
    try:
        StopMessage.decode_body(data)
    except DarkSwapError:
        pass


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_framed_decode(data: bytes) -> None:
    for kind in (HopMessage, StopMessage):
        try:
            kind.decode(data)
        except DarkSwapError:
            pass


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_sub_messages(data: bytes) -> None:
    for parse in (Peer.from_protobuf, Reservation.from_protobuf, Limit.from_protobuf):
        try:
            parse(data)
        except DarkSwapError:
            pass


@FUZZ
@given(st.sampled_from([HopMessage, StopMessage]), st.lists(st.binary(max_size=64), max_size=8))
def test_fuzz_reader_feed(kind, chunks: list[bytes]) -> None:
    reader = MessageReader(kind)
    for chunk in chunks:
        try:
            result = reader.feed(chunk)
        except DarkSwapError:
            return
        if result is not None:
            return


@FUZZ
@given(st.integers(0, len(JS_STATUS_OK_RESERVATION) - 1), st.integers(1, 255))
def test_fuzz_mutated_vector(pos: int, xor: int) -> None:
    data = bytearray(JS_STATUS_OK_RESERVATION)
    data[pos] ^= xor
    try:
        HopMessage.decode_body(bytes(data))
    except DarkSwapError:
        pass


U32 = st.integers(0, 2**32 - 1)
U63 = st.integers(0, 2**63 - 1)


@FUZZ
@given(
    st.sampled_from(list(HopType)),
    st.sampled_from([None, *Status]),
    st.none() | st.builds(Limit, st.none() | U32, st.none() | U63),
    st.none() | st.builds(Reservation, U63, st.just((RSVP_ADDR,)), st.none() | st.binary(max_size=50)),
    st.binary(max_size=100),
)
def test_property_hop_roundtrip_with_relayed_tail(t, status, limit, rsvp, tail: bytes) -> None:
    if t is HopType.STATUS and status is None:
        status = Status.OK
    msg = HopMessage(t, Peer(PEER) if t is HopType.CONNECT else None, rsvp, limit, status)
    wire = msg.encode() + tail
    reader = MessageReader(HopMessage)
    out = None
    for i in range(0, len(wire), 7):
        out = reader.feed(wire[i : i + 7])
        if out is not None:
            got, leftover = out
            assert got == msg
            assert leftover + wire[i + 7 :] == tail
            break
    assert out is not None


# --------------------------------------------------------------------------- relay resources

P = [PeerId(bytes([0, 36]) + bytes.fromhex("08011220") + bytes([i]) * 32) for i in range(40)]
T0 = 1000.0  # monotonic
U0 = 1_700_000_000.0  # unix


def test_reserve_returns_unix_expiry_and_refresh_keeps_count() -> None:
    res = RelayResources(RelayConfig(reservation_ttl=3600))
    assert res.reserve(P[0], T0, U0) == (Status.OK, 1_700_003_600)
    assert res.reservation_count == 1 and res.has_reservation(P[0], T0 + 1)
    assert res.reserve(P[0], T0 + 100, U0 + 100.9) == (Status.OK, 1_700_003_700)  # floor
    assert res.reservation_count == 1
    assert res.next_deadline() == T0 + 100 + 3600
    assert res.reservation_expiry_unix(P[0]) == 1_700_003_700


def test_global_reservation_cap() -> None:
    res = RelayResources(RelayConfig(max_reservations=3))
    for i in range(3):
        assert res.reserve(P[i], T0, U0)[0] is Status.OK
    assert res.reserve(P[3], T0, U0) == (Status.RESOURCE_LIMIT_EXCEEDED, None)
    assert res.reserve(P[1], T0 + 1, U0 + 1)[0] is Status.OK  # refresh still allowed at the cap
    assert res.unreserve(P[1]) and not res.unreserve(P[1])
    assert res.reserve(P[3], T0, U0)[0] is Status.OK
    assert res.reservation_count == 3


def test_per_source_reservation_cap() -> None:
    res = RelayResources(RelayConfig(max_reservations_per_peer=2))
    assert res.reserve(P[0], T0, U0, source="10.0.0.1")[0] is Status.OK
    assert res.reserve(P[1], T0, U0, source="10.0.0.1")[0] is Status.OK
    assert res.reserve(P[2], T0, U0, source="10.0.0.1")[0] is Status.RESOURCE_LIMIT_EXCEEDED
    assert res.reserve(P[2], T0, U0, source="10.0.0.2")[0] is Status.OK
    assert res.reserve(P[0], T0 + 5, U0 + 5, source="10.0.0.1")[0] is Status.OK  # refresh: same slot
    assert res.reservations_from("10.0.0.1") == 2
    # moving a reservation to a full source is refused and keeps the old one
    assert res.reserve(P[2], T0, U0, source="10.0.0.1")[0] is Status.RESOURCE_LIMIT_EXCEEDED
    assert res.has_reservation(P[2], T0) and res.reservations_from("10.0.0.2") == 1
    # moving to another source frees the old source's slot
    assert res.reserve(P[1], T0, U0, source="10.0.0.3")[0] is Status.OK
    assert res.reservations_from("10.0.0.1") == 1 and res.reservations_from("10.0.0.3") == 1
    res.unreserve(P[0])
    assert res.reservations_from("10.0.0.1") == 0
    assert res.reserve(P[5], T0, U0)[0] is Status.OK  # no source: only the global cap applies


def test_reservation_expiry_with_fake_clock() -> None:
    res = RelayResources(RelayConfig(reservation_ttl=60, max_reservations=2, max_reservations_per_peer=1))
    res.reserve(P[0], T0, U0, source="a")
    res.reserve(P[1], T0 + 30, U0 + 30, source="b")
    assert res.next_deadline() == T0 + 60
    assert res.expire(T0 + 59.9) == []
    assert not res.has_reservation(P[0], T0 + 60)  # expired even before expire() runs
    # P0 is not yet pruned: it still holds source "a"
    assert res.reserve(P[2], T0 + 60, U0 + 60, source="a")[0] is Status.RESOURCE_LIMIT_EXCEEDED
    assert res.expire(T0 + 60) == [P[0]]
    assert res.next_deadline() == T0 + 90 and res.reservations_from("a") == 0
    assert res.reserve(P[2], T0 + 60, U0 + 60, source="a")[0] is Status.OK
    assert set(res.expire(T0 + 1000)) == {P[1], P[2]}
    assert res.reservation_count == 0 and res.next_deadline() is None


def test_expired_reservation_is_renewed_as_new() -> None:
    res = RelayResources(RelayConfig(reservation_ttl=10, max_reservations=1, max_reservations_per_peer=1))
    res.reserve(P[0], T0, U0, source="a")
    # the lapsed (not yet pruned) entry still holds the slot against other peers ...
    assert res.reserve(P[1], T0 + 20, U0 + 20)[0] is Status.RESOURCE_LIMIT_EXCEEDED
    # ... but its own peer re-reserving replaces it, also from the same source
    assert res.reserve(P[0], T0 + 20, U0 + 20, source="a") == (Status.OK, int(U0 + 30))
    assert res.reservation_count == 1 and res.reservations_from("a") == 1


def test_reservation_rate_limit() -> None:
    cfg = RelayConfig(max_reservation_rate_per_peer=2, max_reservation_rate_per_ip=2, reservation_rate_interval=60)
    res = RelayResources(cfg)
    assert res.reserve(P[0], T0, U0)[0] is Status.OK
    assert res.reserve(P[0], T0 + 1, U0)[0] is Status.OK
    assert res.reserve(P[0], T0 + 2, U0)[0] is Status.RESOURCE_LIMIT_EXCEEDED
    assert res.has_reservation(P[0], T0 + 2)  # a refused refresh keeps the reservation
    assert res.reserve(P[1], T0 + 2, U0)[0] is Status.OK  # other peers have their own bucket
    assert res.reserve(P[0], T0 + 32, U0)[0] is Status.OK  # one token back after 30 s
    assert res.reserve(P[0], T0 + 33, U0)[0] is Status.RESOURCE_LIMIT_EXCEEDED
    # per source as well
    assert res.reserve(P[2], T0, U0, source="s")[0] is Status.OK
    assert res.reserve(P[3], T0, U0, source="s")[0] is Status.OK
    assert res.reserve(P[4], T0, U0, source="s")[0] is Status.RESOURCE_LIMIT_EXCEEDED
    res.expire(T0 + 10_000)
    assert res._buckets == {}  # full buckets are forgotten


def test_circuits() -> None:
    res = RelayResources(RelayConfig(max_circuits=5, max_circuits_per_peer=2))
    assert res.open_circuit(P[0], P[1], T0) == (Status.NO_RESERVATION, None)
    for i in range(1, 5):
        res.reserve(P[i], T0, U0)
    st1, c1 = res.open_circuit(P[0], P[1], T0)
    st2, c2 = res.open_circuit(P[0], P[2], T0)
    assert st1 is st2 is Status.OK and c1 != c2
    assert res.open_circuit(P[0], P[3], T0)[0] is Status.RESOURCE_LIMIT_EXCEEDED  # src at its cap
    assert res.open_circuit(P[5], P[1], T0)[0] is Status.OK  # circuits to a peer count for its openers
    assert res.circuits_of(P[0]) == 2 and res.circuits_to(P[1]) == 2 and res.circuits_of(P[1]) == 0
    assert res.close_circuit(c1) and not res.close_circuit(c1)
    assert res.circuits_of(P[0]) == 1 and res.circuit_count == 2
    res.open_circuit(P[7], P[3], T0)
    res.open_circuit(P[8], P[3], T0)
    assert res.circuit_count == 4
    res.open_circuit(P[9], P[4], T0)
    assert res.open_circuit(P[10], P[4], T0)[0] is Status.RESOURCE_LIMIT_EXCEEDED  # global cap
    assert res.open_circuit(P[0], P[1], T0 + 10_000)[0] is Status.NO_RESERVATION  # expired


def test_strangers_cannot_use_up_a_destination() -> None:
    """Issue 12, attack 6: throwaway peer IDs each holding one circuit to a victim made it
    unreachable (the per-peer cap counted circuits *to* it). Now one source address takes at most
    its share of a destination, and of the relay."""
    cfg = RelayConfig(max_circuits_to_peer=6, max_circuits_to_peer_per_ip=2, max_circuits_per_ip=5)
    res = RelayResources(cfg)
    victim, other = P[0], P[1]
    res.reserve(victim, T0, U0)
    res.reserve(other, T0, U0)
    throwaway = iter(P[10:60])
    opened = [res.open_circuit(next(throwaway), victim, T0, source="6.6.6.6")[0] for _ in range(10)]
    assert opened == [Status.OK] * 2 + [Status.RESOURCE_LIMIT_EXCEEDED] * 8  # one IP: its share only
    for i in range(3):  # honest peers on other addresses still get through
        assert res.open_circuit(P[2 + i], victim, T0, source=f"10.0.0.{i}")[0] is Status.OK
    assert res.circuits_to(victim) == 5
    # the attacker's address is capped across destinations too
    assert [res.open_circuit(next(throwaway), other, T0, source="6.6.6.6")[0] for _ in range(4)] == (
        [Status.OK] * 2 + [Status.RESOURCE_LIMIT_EXCEEDED] * 2
    )
    assert res.circuits_from("6.6.6.6") == 4
    # a destination's own cap holds whoever asks
    assert res.open_circuit(P[6], victim, T0, source="10.0.1.1")[0] is Status.OK
    assert res.open_circuit(P[7], victim, T0, source="10.0.1.2")[0] is Status.RESOURCE_LIMIT_EXCEEDED



def test_limit_announcement() -> None:
    assert RelayResources().limit() == Limit(120, 131072)
    assert RelayResources(RelayConfig(circuit_duration=0.5, circuit_data=0)).limit() == Limit(1, None)
    unlimited = RelayResources(RelayConfig(circuit_duration=0, circuit_data=0)).limit()
    assert unlimited == Limit(None, None) and unlimited.unlimited


def test_relay_config_validation() -> None:
    for bad in (
        {"max_reservations": -1},
        {"reservation_ttl": 0},
        {"circuit_duration": -1},
        {"circuit_duration": 2.0**32},
        {"circuit_data": -1},
        {"max_reservation_rate_per_peer": 0},
        {"reservation_rate_interval": 0},
    ):
        with pytest.raises(ConfigError):
            RelayConfig(**bad)


# --------------------------------------------------------------------------- circuit meter


def test_meter_data_limit_per_direction() -> None:
    meter = CircuitMeter(Limit(data=100), T0)
    assert meter.deadline is None and not meter.expired(T0 + 1e9)
    assert meter.on_data(60) and meter.remaining() == 40
    assert meter.on_data(40) and meter.remaining() == 0  # exactly at the limit is fine
    assert meter.on_data(100, reverse=True) and meter.remaining(reverse=True) == 0
    assert not meter.on_data(1)
    assert not meter.on_data(0)  # stays exceeded
    assert meter.forward_bytes == 101 and meter.reverse_bytes == 100
    with pytest.raises(ValueError):
        meter.on_data(-1)


def test_meter_duration() -> None:
    meter = CircuitMeter(Limit(duration=120), T0)
    assert meter.deadline == T0 + 120
    assert not meter.expired(T0 + 119.999)
    assert meter.expired(T0 + 120)
    assert meter.on_data(10**12) and meter.remaining() is None


@pytest.mark.parametrize("limit", [None, Limit(), Limit(0, 0)])
def test_meter_unlimited(limit) -> None:
    meter = CircuitMeter(limit, T0)
    assert meter.deadline is None and meter.on_data(10**15) and meter.remaining(reverse=True) is None
