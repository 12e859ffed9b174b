"""base58btc and multibase (``z``, ``u``, ``m``, ``b``, ``f``): spec vectors, strictness, fuzz, roundtrip.

Pure Python: runs in Pyodide too (no ``native_crypto`` mark).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DarkSwapError, DecodeError
from darkswap_wasm.wire import multibase

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)

# multiformats/multibase tests: "yes mani !" in every base we implement.
YES_MANI = b"yes mani !"
SPEC_VECTORS = [
    ("f", "f796573206d616e692021"),
    ("b", "bpfsxgidnmfxgsibb"),
    ("z", "z7paNL19xttacUY"),
    ("m", "meWVzIG1hbmkgIQ"),
    ("u", "ueWVzIG1hbmkgIQ"),
]


# --------------------------------------------------------------------------- spec vectors


@pytest.mark.parametrize(("base", "text"), SPEC_VECTORS)
def test_spec_vector_encodes(base: str, text: str) -> None:
    assert multibase.encode(YES_MANI, base) == text


@pytest.mark.parametrize(("base", "text"), SPEC_VECTORS)
def test_spec_vector_decodes(base: str, text: str) -> None:
    assert multibase.decode(text) == YES_MANI


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"\x00" + YES_MANI, "z17paNL19xttacUY"), (b"\x00\x00" + YES_MANI, "z117paNL19xttacUY")],
)
def test_base58_leading_zero_bytes_become_ones(data: bytes, text: str) -> None:
    assert multibase.encode(data, "z") == text
    assert multibase.decode(text) == data


def test_base64_vectors_differ_only_in_the_alphabet() -> None:
    # multibase tests: "÷ïÿ" is "mw7fDr8O/" in base64 and "uw7fDr8O_" in base64url.
    data = "÷ïÿ".encode()
    assert multibase.encode(data, "m") == "mw7fDr8O/"
    assert multibase.encode(data, "u") == "uw7fDr8O_"
    assert multibase.decode("mw7fDr8O/") == data
    assert multibase.decode("uw7fDr8O_") == data


def test_base16_and_base32_decoding_is_case_insensitive() -> None:
    # multibase tests, case_insensitivity: "f68656c6c6f20776F726C64" is "hello world".
    assert multibase.decode("f68656c6c6f20776F726C64") == b"hello world"
    assert multibase.decode("bPFSXGIDNMFXGSIBB") == YES_MANI


# --------------------------------------------------------------------------- behaviour


def test_empty_input_encodes_to_the_bare_prefix() -> None:
    for base in "zumbf":
        assert multibase.encode(b"", base) == base
        assert multibase.decode(base) == b""


def test_empty_string_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="empty"):
        multibase.decode("")


@pytest.mark.parametrize("text", ["Qabc", "9abc", "Fabcd", "Babcd", "\U0001f680abc"])
def test_unsupported_prefix_is_a_decode_error(text: str) -> None:
    with pytest.raises(DecodeError, match="unsupported multibase prefix"):
        multibase.decode(text)


def test_encode_rejects_an_unknown_base() -> None:
    with pytest.raises(ValueError):
        multibase.encode(b"x", "q")


@pytest.mark.parametrize("text", ["z0", "zO", "zI", "zl", "z+", "z\u00e9"])
def test_base58_rejects_characters_outside_its_alphabet(text: str) -> None:
    with pytest.raises(DecodeError, match="invalid base58 character"):
        multibase.decode(text)


def test_base58_input_length_is_bounded() -> None:
    with pytest.raises(DecodeError, match="longer than"):
        multibase.b58decode("2" * (multibase.MAX_B58_INPUT + 1))


@pytest.mark.parametrize("text", ["fabc", "fzz", "b1", "b0", "mA", "uA"])
def test_malformed_bodies_are_decode_errors(text: str) -> None:
    with pytest.raises(DecodeError):
        multibase.decode(text)


@pytest.mark.parametrize("text", ["m!!!!", "meWVz IG1hbmkgIQ", "ueWVz+G1hbmkgIQ", "ueWVz/G1hbmkgIQ", "mZm9v-Yg"])
def test_base64_rejects_characters_outside_its_alphabet(text: str) -> None:
    # BUG (wire/multibase.py decode): base64.b64decode/urlsafe_b64decode run without
    # validate=True, so characters outside the alphabet are silently dropped ("m!!!!" -> b"").
    with pytest.raises(DecodeError):
        multibase.decode(text)


# --------------------------------------------------------------------------- properties

BASES = st.sampled_from("zumbf")
# text including lone surrogates, which ordinary strategies leave out
ANY_TEXT = st.text(
    st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    max_size=40,
)


@FUZZ
@given(st.binary(max_size=64), BASES)
def test_roundtrip(data: bytes, base: str) -> None:
    text = multibase.encode(data, base)
    assert text[0] == base
    assert multibase.decode(text) == data


@FUZZ
@given(st.binary(max_size=64))
def test_base58_roundtrip(data: bytes) -> None:
    assert multibase.b58decode(multibase.b58encode(data)) == data


def _decode_only_package_errors(text: str) -> None:
    try:
        multibase.decode(text)
    except DarkSwapError:
        pass
    try:
        multibase.b58decode(text)
    except DarkSwapError:
        pass


@FUZZ
@given(ANY_TEXT)
def test_decode_random_text_raises_only_package_errors(text: str) -> None:
    _decode_only_package_errors(text)


@FUZZ
@given(BASES, ANY_TEXT)
def test_decode_random_body_after_each_prefix_raises_only_package_errors(base: str, body: str) -> None:
    _decode_only_package_errors(base + body)


@FUZZ
@given(st.binary(max_size=32), BASES, st.data())
def test_mutated_encodings_raise_only_package_errors(data: bytes, base: str, draw: st.DataObject) -> None:
    text = list(multibase.encode(data, base))
    i = draw.draw(st.integers(min_value=0, max_value=len(text) - 1))
    text[i] = draw.draw(st.characters())
    _decode_only_package_errors("".join(text))
