"""Kademlia codec properties (hypothesis): any message round-trips; random and mutated bytes
never raise anything but the package's ProtocolError family (DecodeError, LimitExceeded)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ProtocolError
from darkswap_wasm.identity import PeerId
from darkswap_wasm.protocols.kad import (
    ConnectionType,
    KadConfig,
    KadMessage,
    KadMessageReader,
    KadPeer,
    MessageType,
    is_content_key,
)
from darkswap_wasm.wire.multiaddr import Multiaddr

SMALL = KadConfig(max_peers_per_message=6, max_addrs_per_peer=3, max_key_length=40, max_message_size=2048)

peer_ids = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda d: PeerId(b"\x12\x20" + d)),
    st.binary(min_size=32, max_size=32).map(lambda d: PeerId(b"\x00\x24\x08\x01\x12\x20" + d)),
)
addrs = st.sampled_from([
    Multiaddr("/ip4/127.0.0.1/tcp/4001"),
    Multiaddr("/ip6/::1/tcp/1/ws"),
    Multiaddr("/dns4/a.example/tcp/443/wss"),
])
peers = st.builds(KadPeer, peer_ids, st.lists(addrs, max_size=3).map(tuple),
                  st.one_of(st.none(), st.sampled_from(list(ConnectionType))))
messages = st.builds(
    KadMessage,
    st.sampled_from(list(MessageType)),
    st.one_of(st.none(), st.binary(max_size=40)),
    st.one_of(st.none(), st.binary(max_size=64)),
    st.lists(peers, max_size=3).map(tuple),
    st.lists(peers, max_size=3).map(tuple),
    st.one_of(st.none(), st.integers(0, 2**31 - 1)),
)


def _decodes_cleanly(data: bytes, config=SMALL) -> None:
    try:
        KadMessage.decode_body(data, config)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(messages)
def test_every_message_round_trips(msg):
    assert KadMessage.decode_body(msg.encode_body(SMALL), SMALL) == msg
    assert KadMessageReader(SMALL).receive_data(msg.encode(SMALL)) == [msg]


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_protocol_errors(data):
    _decodes_cleanly(data)
    _decodes_cleanly(data, KadConfig())


@settings(max_examples=500, deadline=None)
@given(messages, st.data())
def test_mutated_messages_only_raise_protocol_errors(msg, data):
    raw = bytearray(msg.encode_body(SMALL))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _decodes_cleanly(bytes(raw))
    _decodes_cleanly(bytes(raw[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 200), max_size=20))
def test_stream_reader_fed_random_chunks_only_raises_protocol_errors(data, sizes):
    reader = KadMessageReader(SMALL)
    pos = 0
    try:
        for size in sizes + [len(data)]:
            reader.receive_data(data[pos : pos + size])
            pos += size
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_content_key_check_never_raises(key):
    assert is_content_key(key) in (True, False)


def test_a_too_long_frame_is_a_limit_error():
    from darkswap_wasm.errors import LimitExceeded
    from darkswap_wasm.wire import varint

    try:
        KadMessageReader(SMALL).receive_data(varint.encode(4096) + b"\x08")
    except LimitExceeded:
        return
    raise AssertionError("a frame over max_message_size was accepted")
