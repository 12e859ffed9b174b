"""The minimal protobuf codec: encoding-guide vectors, libp2p key vectors, strictness, fuzz, roundtrip.

Pure Python: runs in Pyodide too (no ``native_crypto`` mark).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DarkSwapError, DecodeError
from darkswap_wasm.wire import protobuf, varint

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)

# protobuf.dev "Encoding" guide: Test1 {int32 a = 1}, Test2 {string b = 2}, Test3 {Test1 c = 3}.
TEST1 = {1: ("a", "uint", False)}
TEST2 = {2: ("b", "string", False)}
TEST3 = {3: ("c", TEST1, False)}

# libp2p PublicKey / PrivateKey (peer-ids spec).
KEY = {1: ("type", "enum", False), 2: ("data", "bytes", False)}

INNER = {
    1: ("n", "uint", False),
    2: ("tags", "string", True),
}
SCHEMA = {
    1: ("u", "uint", False),
    2: ("flag", "bool", False),
    3: ("blob", "bytes", False),
    4: ("text", "string", False),
    5: ("nums", "uint", True),
    6: ("blobs", "bytes", True),
    7: ("inner", INNER, False),
    8: ("inners", INNER, True),
    9: ("kind", "enum", False),
}


# --------------------------------------------------------------------------- spec vectors


def test_encoding_guide_varint_150() -> None:
    assert protobuf.encode(TEST1, {"a": 150}).hex() == "089601"
    assert protobuf.decode(TEST1, bytes.fromhex("089601")) == {"a": 150}


def test_encoding_guide_string_testing() -> None:
    raw = bytes.fromhex("120774657374696e67")
    assert protobuf.encode(TEST2, {"b": "testing"}) == raw
    assert protobuf.decode(TEST2, raw) == {"b": "testing"}


def test_encoding_guide_embedded_message() -> None:
    raw = bytes.fromhex("1a03089601")
    assert protobuf.encode(TEST3, {"c": {"a": 150}}) == raw
    assert protobuf.decode(TEST3, raw) == {"c": {"a": 150}}


def test_libp2p_ed25519_public_key_vector() -> None:
    # libp2p/specs peer-ids: "ED25519 public key" test vector.
    raw = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
    msg = protobuf.decode(KEY, raw)
    assert msg == {"type": 1, "data": raw[4:]}
    assert protobuf.encode(KEY, msg) == raw


# --------------------------------------------------------------------------- behaviour


def test_absent_fields_are_missing_and_repeated_fields_default_to_empty_lists() -> None:
    assert protobuf.decode(SCHEMA, b"") == {"nums": [], "blobs": [], "inners": []}


def test_none_means_absent_when_encoding() -> None:
    assert protobuf.encode(SCHEMA, {"u": None, "blob": None, "nums": None}) == b""


def test_fields_are_written_in_field_number_order() -> None:
    out = protobuf.encode(KEY, {"data": b"\xaa", "type": 1})
    assert out == b"\x08\x01\x12\x01\xaa"


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (
        b"\x50\x05"  # field 10, varint
        + b"\x59" + b"\x00" * 8  # field 11, fixed64
        + b"\x62\x02hi"  # field 12, length-delimited
        + b"\x6d" + b"\x00" * 4  # field 13, fixed32
    )
    assert protobuf.decode(TEST1, unknown + b"\x08\x07") == {"a": 7}


def test_last_value_wins_for_a_repeated_scalar_field_occurrence() -> None:
    assert protobuf.decode(TEST1, b"\x08\x01\x08\x02") == {"a": 2}


def test_repeated_fields_keep_their_order() -> None:
    raw = protobuf.encode(SCHEMA, {"nums": [3, 1, 2], "blobs": [b"x", b"", b"y"]})
    assert protobuf.decode(SCHEMA, raw)["nums"] == [3, 1, 2]
    assert protobuf.decode(SCHEMA, raw)["blobs"] == [b"x", b"", b"y"]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\x08", "truncated varint"),
        (b"\x12\x05abc", "runs past the end"),
        (b"\x09\x00\x00", "truncated protobuf fixed64"),
        (b"\x0d\x00", "truncated protobuf fixed32"),
        (b"\x00\x01", "field number 0"),
        (b"\x0b", "wire type 3"),  # start group
        (b"\x0c", "wire type 4"),  # end group
        (b"\x0e", "wire type 6"),
        (b"\x0f", "wire type 7"),
    ],
)
def test_malformed_input_is_a_decode_error(raw: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        protobuf.decode(TEST1, raw)


def test_known_field_with_the_wrong_wire_type_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="expected varint"):
        protobuf.decode(TEST1, b"\x0a\x01\x00")  # field 1 as length-delimited
    with pytest.raises(DecodeError, match="expected length-delimited"):
        protobuf.decode(TEST2, b"\x10\x01")  # field 2 as varint


def test_invalid_utf8_string_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        protobuf.decode(TEST2, b"\x12\x02\xc3\x28")


def test_malformed_nested_message_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        protobuf.decode(TEST3, b"\x1a\x01\x08")


def test_deep_nesting_is_bounded() -> None:
    recursive: dict = {}
    recursive[1] = ("child", recursive, False)
    raw = b""
    for _ in range(20):
        raw = b"\x0a" + varint.encode(len(raw)) + raw
    with pytest.raises(DecodeError, match="too deep"):
        protobuf.decode(recursive, raw)


# --------------------------------------------------------------------------- properties

UINT = st.integers(min_value=0, max_value=(1 << 63) - 1)
TEXT = st.text(max_size=20)
INNER_MSG = st.fixed_dictionaries({}, optional={"n": UINT, "tags": st.lists(TEXT, max_size=3)})
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "u": UINT,
        "flag": st.booleans(),
        "blob": st.binary(max_size=40),
        "text": TEXT,
        "nums": st.lists(UINT, max_size=4),
        "blobs": st.lists(st.binary(max_size=8), max_size=4),
        "inner": INNER_MSG,
        "inners": st.lists(INNER_MSG, max_size=3),
        "kind": st.integers(min_value=0, max_value=5),
    },
)


def _normalised(schema: dict, msg: dict) -> dict:
    """What decode gives back for ``msg``: repeated fields always present, nested ones recursed."""
    out = {}
    for name, kind, repeated in schema.values():
        if repeated:
            values = msg.get(name, [])
            out[name] = [_normalised(kind, v) for v in values] if isinstance(kind, dict) else list(values)
        elif name in msg:
            out[name] = _normalised(kind, msg[name]) if isinstance(kind, dict) else msg[name]
    return out


@FUZZ
@given(MESSAGE)
def test_roundtrip(msg: dict) -> None:
    raw = protobuf.encode(SCHEMA, msg)
    assert protobuf.decode(SCHEMA, raw) == _normalised(SCHEMA, msg)
    # canonical: re-encoding the decoded message gives the same bytes
    assert protobuf.encode(SCHEMA, protobuf.decode(SCHEMA, raw)) == raw


def _decode_only_package_errors(data: bytes) -> None:
    for schema in (SCHEMA, KEY, TEST3, {}):
        try:
            protobuf.decode(schema, data)
        except DarkSwapError:
            pass


@FUZZ
@given(st.binary(max_size=64))
def test_decode_random_bytes_raises_only_package_errors(data: bytes) -> None:
    _decode_only_package_errors(data)


@FUZZ
@given(MESSAGE, st.data())
def test_mutated_encodings_raise_only_package_errors(msg: dict, data: st.DataObject) -> None:
    raw = bytearray(protobuf.encode(SCHEMA, msg))
    if raw:
        for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
            i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
            raw[i] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    _decode_only_package_errors(bytes(raw))
    _decode_only_package_errors(bytes(raw[:cut]))
