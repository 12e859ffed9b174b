"""libp2p ping (``/ipfs/ping/1.0.0``): 32-byte payloads echoed back.

Pure Python: runs in Pyodide too (no ``native_crypto`` mark).
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DarkSwapError, ProtocolError
from darkswap_wasm.protocols.ping import PING_LENGTH, PROTOCOL_ID, PingDialer, PingResponder

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)
PAYLOAD = bytes(range(32))


def test_protocol_id_and_length_match_the_spec() -> None:
    assert PROTOCOL_ID == "/ipfs/ping/1.0.0"
    assert PING_LENGTH == 32


def test_dialer_accepts_the_exact_echo() -> None:
    dialer = PingDialer(PAYLOAD)
    assert dialer.receive_data(PAYLOAD) is True


def test_dialer_waits_for_a_partial_echo() -> None:
    dialer = PingDialer(PAYLOAD)
    assert dialer.receive_data(PAYLOAD[:31]) is False
    assert dialer.receive_data(PAYLOAD[31:]) is True


def test_dialer_rejects_a_different_echo() -> None:
    dialer = PingDialer(PAYLOAD)
    with pytest.raises(ProtocolError, match="different bytes"):
        dialer.receive_data(PAYLOAD[:-1] + b"\xff")


def test_dialer_keeps_bytes_after_the_echo_for_the_next_round() -> None:
    dialer = PingDialer(PAYLOAD)
    assert dialer.receive_data(PAYLOAD + PAYLOAD[:5]) is True
    assert dialer.receive_data(PAYLOAD[5:]) is True


@pytest.mark.parametrize("size", [0, 31, 33])
def test_payload_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError):
        PingDialer(bytes(size))


def test_responder_echoes_whole_chunks_and_holds_back_a_partial_one() -> None:
    responder = PingResponder()
    assert responder.receive_data(PAYLOAD[:10]) == b""
    assert responder.receive_data(PAYLOAD[10:] + b"x" * 40) == PAYLOAD + b"x" * 32
    assert responder.receive_data(b"y" * 24) == b"x" * 8 + b"y" * 24


def test_dialer_and_responder_back_to_back() -> None:
    responder = PingResponder()
    for i in range(3):
        payload = bytes([i]) * 32
        dialer = PingDialer(payload)
        assert dialer.receive_data(responder.receive_data(payload)) is True


@FUZZ
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_responder_output_is_its_input_in_whole_chunks(data: bytes, cuts: list[int]) -> None:
    responder = PingResponder()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    out = b"".join(responder.receive_data(data[a:b]) for a, b in pairwise(points))
    whole = len(data) - len(data) % 32
    assert out == data[:whole]


@FUZZ
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=80))
def test_dialer_fed_random_bytes_raises_only_package_errors(payload: bytes, data: bytes) -> None:
    dialer = PingDialer(payload)
    try:
        result = dialer.receive_data(data)
    except DarkSwapError:
        assert data[:32] != payload
        return
    assert result is (len(data) >= 32)
