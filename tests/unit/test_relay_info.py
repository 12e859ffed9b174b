"""/darkswap/relay-info/1.0.0 codec: vectors, load, versioning, bounds, hypothesis."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ConfigError, DecodeError, LimitExceeded, MessageTooLarge, ProtocolError
from darkswap_wasm.protocols.relay_info import PROTOCOL_ID, RelayInfo, RelayInfoConfig, RelayInfoReader
from darkswap_wasm.wire import varint

U32 = 2**32 - 1


def test_vector_and_protocol_id():
    info = RelayInfo(reservations=3, reservation_limit=128, circuits=0, circuit_limit=16)
    body = bytes.fromhex("0801" "1003" "188001" "2810")  # circuits=0 is omitted
    assert PROTOCOL_ID == "/darkswap/relay-info/1.0.0"
    assert info.encode_body() == body
    assert info.encode() == bytes([len(body)]) + body
    assert RelayInfo.decode_body(body) == info


def test_load_is_the_fuller_use_capped_and_none_without_limits():
    assert RelayInfo(90, 100, 1, 16).load == pytest.approx(0.9)
    assert RelayInfo(10, 100, 12, 16).load == pytest.approx(0.75)
    assert RelayInfo(200, 100).load == 1.0
    assert RelayInfo(5, 0, 5, 0).load is None
    assert RelayInfo(0, 0, 4, 8).load == 0.5


def test_newer_version_with_unknown_fields_still_decodes():
    body = RelayInfo(1, 10, 2, 20, version=7).encode_body()
    extra = b"\x30\x05" + b"\x3a\x03abc" + b"\x45\x01\x02\x03\x04"  # varint, bytes, fixed32 fields
    assert RelayInfo.decode_body(body + extra) == RelayInfo(1, 10, 2, 20, version=7)


@pytest.mark.parametrize("body", [
    b"",  # no version
    b"\x08\x00\x10\x01",  # version 0
    b"\x08\x01\x10" + varint.encode(2**32),  # over uint32
    b"\x08\x01\x12\x01\x00",  # reservations with the wrong wire type
    b"\x08",  # truncated
])
def test_bad_bodies_are_decode_errors(body):
    with pytest.raises(DecodeError):
        RelayInfo.decode_body(body)


def test_size_is_bounded_before_buffering():
    with pytest.raises(LimitExceeded):
        RelayInfo.decode_body(b"\x08\x01" + b"\x30\x00" * 200)
    with pytest.raises(LimitExceeded):
        RelayInfoReader().receive_data(varint.encode(10_000))
    with pytest.raises(ConfigError):
        RelayInfoConfig(max_message_size=8)


def test_reader_takes_one_message_in_pieces_and_nothing_after():
    wire = RelayInfo(1, 2, 3, 4).encode()
    reader = RelayInfoReader()
    assert reader.receive_data(wire[:1]) is None
    assert reader.receive_data(wire[1:4]) is None
    assert reader.receive_data(wire[4:]) == RelayInfo(1, 2, 3, 4)
    assert reader.receive_data(b"") is None
    with pytest.raises(DecodeError):
        reader.receive_data(b"\x00")
    with pytest.raises(DecodeError):
        RelayInfoReader().receive_data(wire + b"\x02\x08\x01")


def test_values_we_cannot_send_are_usage_errors():
    with pytest.raises(MessageTooLarge):
        RelayInfo(reservations=U32 + 1)
    with pytest.raises(MessageTooLarge):
        RelayInfo(circuits=-1)
    with pytest.raises(MessageTooLarge):
        RelayInfo(version=0)


u32 = st.integers(0, U32)


@settings(max_examples=300, deadline=None)
@given(u32, u32, u32, u32, st.integers(1, U32))
def test_round_trip(r, rl, c, cl, v):
    info = RelayInfo(r, rl, c, cl, version=v)
    assert RelayInfo.decode_body(info.encode_body()) == info
    assert RelayInfoReader().receive_data(info.encode()) == info
    assert info.load is None or 0.0 <= info.load <= 1.0


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_protocol_errors(data):
    for feed in (lambda: RelayInfo.decode_body(data), lambda: RelayInfoReader().receive_data(data)):
        try:
            feed()
        except ProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(u32, u32, st.data())
def test_mutated_messages_only_raise_protocol_errors(r, c, data):
    raw = bytearray(RelayInfo(r, 100, c, 50).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        RelayInfoReader().receive_data(bytes(raw))
    except ProtocolError:
        pass
