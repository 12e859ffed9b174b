"""libp2p identify messages (libp2p/specs ``identify/README.md``): wire bytes, checks, limits, fuzz.

Building and parsing messages (public keys included: ``PublicKey`` is plain bytes here) is pure
and runs in Pyodide; only the test that derives a key from a seed is ``native_crypto``.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DarkSwapError, DecodeError, LimitExceeded, MessageTooLarge, ProtocolError
from darkswap_wasm.identity import PeerId, PublicKey
from darkswap_wasm.protocols.identify import (
    MAX_ADDRS,
    MAX_MESSAGE,
    MAX_PROTOCOLS,
    PROTOCOL_ID,
    PUSH_PROTOCOL_ID,
    IdentifyInfo,
    IdentifyReader,
)
from darkswap_wasm.wire import varint
from darkswap_wasm.wire.framing import encode_frame
from darkswap_wasm.wire.multiaddr import Multiaddr

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)

# peer-ids spec Ed25519 test vector and its peer ID
SPEC_PUBLIC = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
SPEC_PEER_ID = PeerId.from_string("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq")
KEY = PublicKey(SPEC_PUBLIC[4:])
OTHER_PEER = PeerId.from_string("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")

LISTEN = Multiaddr("/ip4/127.0.0.1/tcp/4001")
OBSERVED = Multiaddr("/ip4/192.0.2.42/tcp/443")

INFO = IdentifyInfo(
    protocol_version="ipfs/0.1.0",
    agent_version="x",
    public_key=KEY,
    listen_addrs=(LISTEN,),
    observed_addr=OBSERVED,
    protocols=("/ipfs/id/1.0.0",),
)
# Identify {publicKey=1, listenAddrs=2, protocols=3, observedAddr=4, protocolVersion=5,
# agentVersion=6}, in field-number order, with a uvarint length prefix.
INFO_BODY = (
    b"\x0a\x24" + SPEC_PUBLIC
    + b"\x12\x08" + bytes.fromhex("047f000001060fa1")
    + b"\x1a\x0e/ipfs/id/1.0.0"
    + b"\x22\x08" + bytes.fromhex("04c000022a0601bb")
    + b"\x2a\x0aipfs/0.1.0"
    + b"\x32\x01x"
)


def body(**fields: bytes) -> bytes:
    """Hand-made identify body from raw field values (lists for repeated fields)."""
    numbers = {"publicKey": 1, "listenAddrs": 2, "protocols": 3, "observedAddr": 4, "protocolVersion": 5,
               "agentVersion": 6, "signedPeerRecord": 8}
    out = b""
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            out += varint.encode(numbers[name] << 3 | 2) + varint.encode(len(v)) + v
    return out


# --------------------------------------------------------------------------- wire vectors


def test_protocol_ids() -> None:
    assert PROTOCOL_ID == "/ipfs/id/1.0.0"
    assert PUSH_PROTOCOL_ID == "/ipfs/id/push/1.0.0"


def test_encode_wire_bytes() -> None:
    assert INFO.encode() == varint.encode(len(INFO_BODY)) + INFO_BODY


def test_decode_wire_bytes() -> None:
    assert IdentifyInfo.decode_body(INFO_BODY) == INFO


def test_empty_message_is_valid() -> None:
    assert IdentifyInfo().encode() == b"\x00"
    assert IdentifyInfo.decode_body(b"") == IdentifyInfo()


# --------------------------------------------------------------------------- behaviour


def test_public_key_must_belong_to_the_connected_peer() -> None:
    assert IdentifyInfo.decode_body(INFO_BODY, remote_peer=SPEC_PEER_ID).public_key == KEY
    with pytest.raises(ProtocolError, match="does not belong"):
        IdentifyInfo.decode_body(INFO_BODY, remote_peer=OTHER_PEER)


def test_message_without_a_key_passes_the_peer_check() -> None:
    info = IdentifyInfo.decode_body(body(agentVersion=b"a"), remote_peer=OTHER_PEER)
    assert info.public_key is None and info.agent_version == "a"


@pytest.mark.parametrize(
    "key",
    [
        b"\x08\x00\x12\x03abc",  # RSA
        b"\x08\x01\x12\x03abc",  # Ed25519, 3 bytes
        b"\xff",
    ],
)
def test_bad_public_key_is_a_decode_error(key: bytes) -> None:
    with pytest.raises(DecodeError):
        IdentifyInfo.decode_body(body(publicKey=key))


def test_unreadable_addresses_are_skipped_not_fatal() -> None:
    good = LISTEN.to_bytes()
    info = IdentifyInfo.decode_body(body(listenAddrs=[b"\xff\xff", good, b"\x04\x01"], observedAddr=b"\x99"))
    assert info.listen_addrs == (LISTEN,)
    assert info.observed_addr is None


def test_signed_peer_record_and_unknown_fields_are_ignored() -> None:
    raw = body(signedPeerRecord=b"envelope", agentVersion=b"go") + b"\x78\x01"  # + field 15 varint
    assert IdentifyInfo.decode_body(raw) == IdentifyInfo(agent_version="go")


def test_address_and_protocol_counts_are_bounded() -> None:
    addr = LISTEN.to_bytes()
    assert len(IdentifyInfo.decode_body(body(listenAddrs=[addr] * MAX_ADDRS)).listen_addrs) == MAX_ADDRS
    with pytest.raises(DecodeError, match="too many"):
        IdentifyInfo.decode_body(body(listenAddrs=[addr] * (MAX_ADDRS + 1)))
    with pytest.raises(DecodeError, match="too many"):
        IdentifyInfo.decode_body(body(protocols=[b"/p"] * (MAX_PROTOCOLS + 1)))


def test_invalid_utf8_text_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        IdentifyInfo.decode_body(body(agentVersion=b"\xff"))


def test_encoding_refuses_an_oversized_message() -> None:
    big = IdentifyInfo(protocols=tuple(f"/p/{i:05d}/" + "x" * 100 for i in range(80)))
    with pytest.raises(MessageTooLarge, match="exceeds"):
        big.encode()


def test_reader_collects_one_message_across_chunks() -> None:
    wire = INFO.encode()
    reader = IdentifyReader(remote_peer=SPEC_PEER_ID)
    for i in range(len(wire) - 1):
        assert reader.receive_data(wire[i : i + 1]) is None
    assert reader.receive_data(wire[-1:] + b"trailing") == INFO
    assert reader.receive_data(b"more") == INFO
    assert reader.end_of_stream() == INFO


def test_reader_rejects_a_wrong_peer() -> None:
    with pytest.raises(ProtocolError):
        IdentifyReader(remote_peer=OTHER_PEER).receive_data(INFO.encode())


def test_reader_end_of_stream_before_a_message_is_a_decode_error() -> None:
    reader = IdentifyReader()
    reader.receive_data(INFO.encode()[:5])
    with pytest.raises(DecodeError, match="ended before"):
        reader.end_of_stream()


def test_reader_refuses_an_oversized_frame_before_buffering_it() -> None:
    with pytest.raises(LimitExceeded):
        IdentifyReader().receive_data(varint.encode(MAX_MESSAGE + 1))


@pytest.mark.native_crypto
def test_identify_of_a_real_identity_checks_against_the_authenticated_peer() -> None:
    from darkswap_wasm.identity import Identity

    ident = Identity(bytes(range(32)))
    info = IdentifyInfo(agent_version="darkswap", public_key=ident.public_key)
    reader = IdentifyReader(remote_peer=ident.peer_id)
    assert reader.receive_data(info.encode()) == info


# --------------------------------------------------------------------------- properties

ADDRS = st.sampled_from(
    [LISTEN, OBSERVED, Multiaddr("/ip6/::1/udp/1/quic-v1"), Multiaddr("/dns4/example.com/tcp/443/wss"),
     Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit")]
)
TEXT = st.text(max_size=16)
INFOS = st.builds(
    IdentifyInfo,
    protocol_version=st.none() | TEXT,
    agent_version=st.none() | TEXT,
    public_key=st.none() | st.binary(min_size=32, max_size=32).map(PublicKey),
    listen_addrs=st.lists(ADDRS, max_size=4).map(tuple),
    observed_addr=st.none() | ADDRS,
    protocols=st.lists(TEXT, max_size=4).map(tuple),
)


@FUZZ
@given(INFOS)
def test_roundtrip(info: IdentifyInfo) -> None:
    wire = info.encode()
    length, start = varint.decode(wire)
    assert length == len(wire) - start
    assert IdentifyInfo.decode_body(wire[start:]) == info
    remote = info.public_key.peer_id if info.public_key else None
    assert IdentifyReader(remote_peer=remote).receive_data(wire) == info


@FUZZ
@given(st.binary(max_size=120))
def test_decode_body_random_bytes_raises_only_package_errors(data: bytes) -> None:
    try:
        IdentifyInfo.decode_body(data, remote_peer=SPEC_PEER_ID)
    except DarkSwapError:
        pass


@FUZZ
@given(INFOS, st.data())
def test_decode_body_mutated_messages_raise_only_package_errors(info: IdentifyInfo, data: st.DataObject) -> None:
    raw = bytearray(info.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        IdentifyInfo.decode_body(bytes(raw[1:]))
    except DarkSwapError:
        pass
    try:
        IdentifyReader().receive_data(bytes(raw))
    except DarkSwapError:
        pass


@FUZZ
@given(st.binary(max_size=120), st.lists(st.integers(0, 120), max_size=5))
def test_reader_fed_random_chunks_raises_only_package_errors(data: bytes, cuts: list[int]) -> None:
    reader = IdentifyReader()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    try:
        for a, b in pairwise(points):
            reader.receive_data(data[a:b])
    except DarkSwapError:
        pass


def test_frame_helper_matches_encode() -> None:
    assert encode_frame(INFO_BODY) == INFO.encode()
