"""Unsigned varints (multiformats/unsigned-varint) and the varint-length-prefixed framing built on
them (``wire/framing.py``): spec vectors, strictness, fuzz, roundtrip.

Pure Python: runs in Pyodide too (no ``native_crypto`` mark).
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DarkSwapError, DecodeError, LimitExceeded
from darkswap_wasm.wire import varint
from darkswap_wasm.wire.framing import FrameDecoder, encode_frame

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True)

# multiformats/unsigned-varint README, "Examples".
SPEC_VECTORS = [
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (255, "ff01"),
    (300, "ac02"),
    (16384, "808001"),
]


# --------------------------------------------------------------------------- spec vectors


@pytest.mark.parametrize(("value", "hex_"), SPEC_VECTORS)
def test_spec_vector_encodes(value: int, hex_: str) -> None:
    assert varint.encode(value).hex() == hex_


@pytest.mark.parametrize(("value", "hex_"), SPEC_VECTORS)
def test_spec_vector_decodes(value: int, hex_: str) -> None:
    raw = bytes.fromhex(hex_)
    assert varint.decode(raw) == (value, len(raw))


def test_zero_is_one_zero_byte() -> None:
    assert varint.encode(0) == b"\x00"
    assert varint.decode(b"\x00") == (0, 1)


def test_largest_value_is_nine_bytes() -> None:
    top = (1 << 63) - 1
    raw = varint.encode(top)
    assert raw == b"\xff" * 8 + b"\x7f"
    assert varint.decode(raw) == (top, 9)


# --------------------------------------------------------------------------- behaviour


def test_decode_at_offset_returns_the_new_offset() -> None:
    buf = b"\xaa\xbb" + varint.encode(300) + b"\x05"
    assert varint.decode(buf, 2) == (300, 4)
    assert varint.decode(buf, 4) == (5, 5)


@pytest.mark.parametrize("value", [-1, 1 << 63, 1 << 64])
def test_encode_rejects_out_of_range_values(value: int) -> None:
    with pytest.raises(ValueError):
        varint.encode(value)


@pytest.mark.parametrize("raw", [b"", b"\x80", b"\xff\xff", b"\x80\x80\x80"])
def test_truncated_varint_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError, match="truncated"):
        varint.decode(raw)


@pytest.mark.parametrize("raw", [b"\x80\x00", b"\x81\x00", b"\xff\x80\x00", b"\x80\x80\x80\x00"])
def test_non_minimal_encoding_is_rejected(raw: bytes) -> None:
    with pytest.raises(DecodeError, match="non-minimal"):
        varint.decode(raw)


def test_ten_byte_varint_is_rejected() -> None:
    # 2**63 would need a 10th byte; the spec caps varints at 9 bytes (63 bits).
    with pytest.raises(DecodeError, match="longer than 9"):
        varint.decode(b"\x80" * 9 + b"\x01")


def test_try_decode_needs_more_bytes_on_a_partial_varint() -> None:
    assert varint.try_decode(b"") is None
    assert varint.try_decode(b"\x80") is None
    assert varint.try_decode(b"\xff" * 8) is None
    assert varint.try_decode(b"\xac\x02") == (300, 2)


def test_try_decode_rejects_an_overlong_varint_without_waiting() -> None:
    with pytest.raises(DecodeError):
        varint.try_decode(b"\x80" * 9)


def test_try_decode_still_rejects_non_minimal_encodings() -> None:
    with pytest.raises(DecodeError, match="non-minimal"):
        varint.try_decode(b"\x80\x00")


# --------------------------------------------------------------------------- properties

VALUES = st.integers(min_value=0, max_value=(1 << 63) - 1)


@FUZZ
@given(VALUES)
def test_roundtrip(value: int) -> None:
    raw = varint.encode(value)
    assert varint.decode(raw) == (value, len(raw))
    assert varint.try_decode(raw) == (value, len(raw))
    assert 1 <= len(raw) <= 9


@FUZZ
@given(VALUES, st.binary(max_size=8))
def test_decode_ignores_trailing_bytes(value: int, tail: bytes) -> None:
    raw = varint.encode(value)
    assert varint.decode(raw + tail) == (value, len(raw))


@FUZZ
@given(VALUES)
def test_every_strict_prefix_is_truncated(value: int) -> None:
    raw = varint.encode(value)
    for i in range(len(raw)):
        assert varint.try_decode(raw[:i]) is None
        with pytest.raises(DecodeError):
            varint.decode(raw[:i])


@FUZZ
@given(st.binary(max_size=16), st.integers(min_value=0, max_value=16))
def test_decode_random_bytes_raises_only_package_errors(data: bytes, offset: int) -> None:
    for fn in (varint.decode, varint.try_decode):
        try:
            result = fn(data, offset)
        except DarkSwapError:
            continue
        if result is not None:
            value, end = result
            assert 0 <= value < 1 << 63
            assert offset < end <= len(data)
            # whatever decodes is the canonical encoding of its value
            assert data[offset:end] == varint.encode(value)


@FUZZ
@given(VALUES, st.data())
def test_mutated_encodings_raise_only_package_errors(value: int, data: st.DataObject) -> None:
    raw = bytearray(varint.encode(value))
    i = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[i] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        varint.decode(bytes(raw))
    except DarkSwapError:
        pass


# =========================================================================== framing


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)]


def test_encode_frame_is_uvarint_length_then_payload() -> None:
    assert encode_frame(b"") == b"\x00"
    assert encode_frame(b"abc") == b"\x03abc"
    assert encode_frame(b"x" * 300) == b"\xac\x02" + b"x" * 300


def test_decoder_returns_every_whole_frame_of_a_feed() -> None:
    dec = FrameDecoder(100)
    assert dec.feed(b"\x01a\x00\x02bc\x03de") == [b"a", b"", b"bc"]
    assert dec.buffered == 3
    assert dec.feed(b"f") == [b"def"]
    assert dec.buffered == 0


def test_decoder_waits_for_a_split_header() -> None:
    dec = FrameDecoder(1000)
    frame = encode_frame(b"y" * 300)
    assert dec.feed(frame[:1]) == []
    assert dec.feed(frame[1:]) == [b"y" * 300]


def test_decoder_refuses_an_oversized_frame_from_its_header() -> None:
    dec = FrameDecoder(10)
    assert dec.feed(b"\x0a" + b"z" * 10) == [b"z" * 10]
    with pytest.raises(LimitExceeded, match="exceeds the limit of 10"):
        dec.feed(b"\x0b")


def test_decoder_rejects_a_malformed_header() -> None:
    with pytest.raises(DecodeError):
        FrameDecoder(10).feed(b"\x80\x00")
    with pytest.raises(DecodeError):
        FrameDecoder(10).feed(b"\xff" * 9)


def test_take_rest_hands_over_the_unparsed_tail() -> None:
    dec = FrameDecoder(100)
    assert dec.feed(b"\x01a\x05par") == [b"a"]
    assert dec.take_rest() == b"\x05par"
    assert dec.buffered == 0 and dec.take_rest() == b""


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=6), st.lists(st.integers(0, 2000), max_size=8))
def test_frames_roundtrip_through_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    dec = FrameDecoder(300)
    out = []
    for chunk in _chunks(wire, cuts):
        out += dec.feed(chunk)
        assert dec.buffered <= 300 + 9
    assert out == frames
    assert dec.buffered == 0


@FUZZ
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6), st.integers(0, 300))
def test_decoder_fed_random_bytes_raises_only_package_errors(data: bytes, cuts: list[int], limit: int) -> None:
    dec = FrameDecoder(limit)
    try:
        for chunk in _chunks(data, cuts):
            for frame in dec.feed(chunk):
                assert len(frame) <= limit
            assert dec.buffered <= limit + 9
    except DarkSwapError:
        pass
