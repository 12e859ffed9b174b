"""WebRTC data channel framing and the per-channel stream machine: vectors, behaviour, fuzz.

The ``JS_*`` vectors were produced by js-libp2p's own encoder path — the protons codec that
``@libp2p/webrtc`` 6.0.x generates from ``src/private-to-public/pb/message.proto``, framed with
``it-length-prefixed`` 11 ``encode.single`` (run from ``tests/interop/js/node_modules``); the
short ones are worked out by hand in the comments. ``encode.single`` returns the prefix and the
body as two buffers, and js 6 sends each as its own RTCDataChannel message (``|`` below).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ConfigError, DarkSwapError, DecodeError, LimitExceeded, StreamClosed, StreamReset
from darkswap_wasm.protocols.webrtc import (
    MAX_MESSAGE_SIZE,
    MAX_PAYLOAD_SIZE,
    PROTOBUF_OVERHEAD,
    ChannelMessage,
    ChannelStream,
    ChannelStreamConfig,
    DataReceived,
    FinAcked,
    FinAckTimedOut,
    Flag,
    MessageDecoder,
    ReadState,
    RemoteClosedWrite,
    RemoteStoppedReading,
    StreamClosedFully,
    StreamResetByPeer,
    WriteState,
    decode_message,
    encode_message,
    max_payload_size,
    protobuf_overhead,
)

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)

# js: lengthPrefixed.encode.single(Message.encode({flag})) -> "prefix|body"
JS_FIN = ("02", "0800")  # 08 = field 1 varint, 00 = FIN
JS_STOP_SENDING = ("02", "0801")
JS_RESET = ("02", "0802")
JS_FIN_ACK = ("02", "0803")
JS_HELLO = ("07", "120568656c6c6f")  # 12 = field 2 bytes, 05 = length, "hello"
JS_EMPTY = ("02", "1200")
# js constants.ts calculateProtobufOverhead(max) for several max sizes
JS_OVERHEAD = {16384: 7, 1024: 7, 262144: 9, 100: 5}


def joined(vec: tuple[str, str]) -> bytes:
    return bytes.fromhex(vec[0] + vec[1])


def pump(a: ChannelStream, b: ChannelStream, msgs: list[bytes], to_b: bool = True):
    """Deliver ``msgs`` from a to b (or b to a); returns the receiver's events."""
    receiver = b if to_b else a
    events = []
    for m in msgs:
        events += receiver.receive_message(m)
    return events


def exchange_replies(a: ChannelStream, b: ChannelStream) -> tuple[list, list]:
    """Move the automatic replies (FIN_ACK) both ways until quiet; returns (a's, b's) events."""
    ea, eb = [], []
    for _ in range(10):
        oa, ob = a.outgoing(), b.outgoing()
        if not oa and not ob:
            return ea, eb
        for m in oa:
            eb += b.receive_message(m)
        for m in ob:
            ea += a.receive_message(m)
    raise AssertionError("replies did not settle")


def kinds(events) -> list[type]:
    return [type(e) for e in events]


# ------------------------------------------------------------------------------ vectors


@pytest.mark.parametrize(
    ("flag", "vec"),
    [
        (Flag.FIN, JS_FIN),
        (Flag.STOP_SENDING, JS_STOP_SENDING),
        (Flag.RESET_STREAM, JS_RESET),
        (Flag.FIN_ACK, JS_FIN_ACK),
    ],
)
def test_flag_vectors(flag, vec):
    assert encode_message(flag, None) == joined(vec)
    assert decode_message(bytes.fromhex(vec[1])) == ChannelMessage(flag, None)


def test_js_flag_name_alias():
    assert Flag.RESET is Flag.RESET_STREAM
    assert [f.name for f in Flag] == ["FIN", "STOP_SENDING", "RESET_STREAM", "FIN_ACK"]


def test_data_vectors():
    assert encode_message(None, b"hello") == joined(JS_HELLO)
    assert encode_message(None, b"") == joined(JS_EMPTY)
    assert decode_message(bytes.fromhex(JS_HELLO[1])) == ChannelMessage(None, b"hello")
    assert decode_message(b"") == ChannelMessage(None, None)
    # flag and data together: flag field first (js writes fields in number order)
    assert encode_message(Flag.FIN, b"x") == bytes.fromhex("05 0800 120178")


def test_overhead_and_max_payload_match_js():
    assert PROTOBUF_OVERHEAD == 7 and MAX_PAYLOAD_SIZE == 16377 == MAX_MESSAGE_SIZE - 7
    for size, overhead in JS_OVERHEAD.items():
        assert protobuf_overhead(size) == overhead
        assert max_payload_size(size) == size - overhead


def test_full_message_layout():
    # js: a data message with 16377 bytes -> prefix fc7f (16380) | 12 f97f (16377) ... = 16382 bytes
    msg = encode_message(None, bytes(MAX_PAYLOAD_SIZE))
    assert len(msg) == 16382
    assert msg[:5] == bytes.fromhex("fc7f12f97f")
    # with a flag too it is exactly the 16 KiB the spec allows, one byte more is refused
    assert len(encode_message(Flag.FIN, bytes(MAX_PAYLOAD_SIZE))) == MAX_MESSAGE_SIZE
    with pytest.raises(LimitExceeded):
        encode_message(Flag.FIN, bytes(MAX_PAYLOAD_SIZE + 1))
    assert len(encode_message(None, bytes(20000), max_size=None)) > MAX_MESSAGE_SIZE


def test_decode_unknown_flag_and_duplicates():
    assert decode_message(bytes.fromhex("0807")) == ChannelMessage(7, None)  # kept as a plain int
    assert decode_message(bytes.fromhex("08000803")).flag is Flag.FIN_ACK  # last one wins (js too)
    assert decode_message(bytes.fromhex("1a0100 0801")).flag is Flag.STOP_SENDING  # unknown field skipped
    with pytest.raises(DecodeError):
        decode_message(bytes.fromhex("1205"))  # length past the end
    with pytest.raises(DecodeError):
        decode_message(bytes.fromhex("0a0100"))  # flag with the wrong wire type


# ------------------------------------------------------------------------------ decoder


def test_decoder_js_split_delivery():
    """js 6 sends prefix and body as separate channel messages."""
    dec = MessageDecoder()
    out = []
    for vec in (JS_HELLO, JS_FIN):
        for part in vec:
            out += dec.feed(bytes.fromhex(part))
    assert out == [ChannelMessage(None, b"hello"), ChannelMessage(Flag.FIN, None)]
    assert dec.buffered == 0


def test_decoder_several_frames_in_one_message_and_byte_by_byte():
    wire = joined(JS_HELLO) + joined(JS_FIN_ACK) + joined(JS_EMPTY)
    want = [ChannelMessage(None, b"hello"), ChannelMessage(Flag.FIN_ACK, None), ChannelMessage(None, b"")]
    assert MessageDecoder().feed(wire) == want
    dec = MessageDecoder()
    got = []
    for i in range(len(wire)):
        got += dec.feed(wire[i : i + 1])
    assert got == want


def test_decoder_bounds():
    dec = MessageDecoder(MAX_MESSAGE_SIZE)
    with pytest.raises(LimitExceeded):
        dec.feed(bytes.fromhex("818001"))  # a 16385-byte frame: refused from its prefix alone
    dec = MessageDecoder(MAX_MESSAGE_SIZE)
    dec.feed(bytes.fromhex("808001") + bytes(100))  # a 16384-byte frame is allowed, partially here
    assert dec.buffered == 103
    with pytest.raises(ConfigError):
        MessageDecoder(0)


# ------------------------------------------------------------------------------ stream machine


def test_half_close_both_ways_spec_example():
    """spec: A DATA, A FIN, B FIN_ACK, B DATA, B FIN, A FIN_ACK."""
    a, b = ChannelStream(), ChannelStream()
    ev = pump(a, b, a.send(b"from a"))
    assert ev == [DataReceived(b"from a")]
    ev = pump(a, b, a.close_write(now=1.0))
    assert ev == [RemoteClosedWrite()]
    assert b.read_state is ReadState.CLOSED and a.write_state is WriteState.FIN_SENT
    ea, eb = exchange_replies(a, b)  # B's FIN_ACK reaches A
    assert ea == [FinAcked()] and eb == []
    assert a.write_state is WriteState.CLOSED and a.next_deadline() is None
    assert not a.is_closed and not b.is_closed
    with pytest.raises(StreamClosed):
        a.send(b"more")
    # B can still write after A's FIN
    assert pump(a, b, b.send(b"from b"), to_b=False) == [DataReceived(b"from b")]
    ev = pump(a, b, b.close_write(now=2.0), to_b=False)
    assert ev == [RemoteClosedWrite(), StreamClosedFully()]  # A: FIN_ACK before, FIN now -> may close
    assert a.is_closed and not b.is_closed
    ea, eb = exchange_replies(a, b)
    assert eb == [FinAcked(), StreamClosedFully()] and ea == []
    assert b.is_closed
    # nothing more happens on a closed stream
    assert a.receive_message(joined(JS_FIN)) == [] and a.outgoing() == []
    assert a.reset() == [] and a.close_write(now=3.0) == [] and a.close_read() == []


def test_close_write_is_idempotent_and_fin_ack_without_fin_is_ignored():
    a = ChannelStream()
    assert a.receive_message(joined(JS_FIN_ACK)) == []
    assert a.close_write(now=0.0) == [joined(JS_FIN)]
    assert a.close_write(now=0.0) == []
    assert a.receive_message(joined(JS_FIN_ACK)) == [FinAcked()]
    assert a.receive_message(joined(JS_FIN_ACK)) == []  # a second one: nothing


def test_fin_is_acked_every_time_and_later_data_is_dropped():
    b = ChannelStream()
    assert b.receive_message(joined(JS_FIN)) == [RemoteClosedWrite()]
    assert b.outgoing() == [joined(JS_FIN_ACK)]
    assert b.receive_message(joined(JS_HELLO)) == []  # data after FIN: dropped, as js does
    assert b.receive_message(joined(JS_FIN)) == []  # repeated FIN: acked again, no event
    assert b.outgoing() == [joined(JS_FIN_ACK)]
    assert b.close_read() == []  # read side already closed: js sends no STOP_SENDING then


def test_data_and_fin_in_one_message_data_first():
    b = ChannelStream()
    ev = b.receive_message(encode_message(Flag.FIN, b"last"))
    assert ev == [DataReceived(b"last"), RemoteClosedWrite()]


def test_stop_sending():
    a, b = ChannelStream(), ChannelStream()
    assert b.close_read() == [joined(JS_STOP_SENDING)]
    assert b.close_read() == []
    ev = pump(a, b, [joined(JS_STOP_SENDING)], to_b=False)
    assert ev == [RemoteStoppedReading()]
    assert a.write_state is WriteState.STOPPED and a.remote_stopped_reading and not a.can_send
    with pytest.raises(StreamClosed):
        a.send(b"x")
    # data that was already in flight is dropped by B; flags still count (spec MUST)
    assert b.receive_message(joined(JS_HELLO)) == []
    assert pump(a, b, a.close_write(now=0.0)) == [RemoteClosedWrite()]
    ea, _ = exchange_replies(a, b)
    assert ea == [FinAcked()]
    assert a.write_state is WriteState.CLOSED
    # a second STOP_SENDING gives no second event
    assert a.receive_message(joined(JS_STOP_SENDING)) == []


def test_stop_sending_after_fin_sent_keeps_waiting_for_fin_ack():
    a = ChannelStream()
    a.close_write(now=0.0)
    assert a.receive_message(joined(JS_STOP_SENDING)) == [RemoteStoppedReading()]
    assert a.write_state is WriteState.FIN_SENT
    assert a.receive_message(joined(JS_FIN_ACK)) == [FinAcked()]


def test_remote_reset():
    a, b = ChannelStream(), ChannelStream()
    b.send(b"x")
    assert a.reset() == [joined(JS_RESET)]
    assert a.is_closed and a.is_reset and not a.reset_by_peer
    assert a.reset() == []
    with pytest.raises(StreamReset):
        a.send(b"x")
    ev = pump(a, b, [joined(JS_HELLO) + joined(JS_RESET) + joined(JS_HELLO)])
    assert ev == [DataReceived(b"hello"), StreamResetByPeer(), StreamClosedFully()]
    assert b.is_closed and b.reset_by_peer and b.write_state is WriteState.RESET
    with pytest.raises(StreamReset):
        b.send(b"x")
    assert b.close_write(now=0.0) == [] and b.close_read() == [] and b.reset() == []
    assert b.receive_message(joined(JS_FIN)) == [] and b.outgoing() == []  # no FIN_ACK after reset


def test_reset_while_waiting_for_fin_ack_clears_the_deadline():
    a = ChannelStream()
    a.close_write(now=5.0)
    assert a.receive_message(joined(JS_RESET)) == [StreamResetByPeer(), StreamClosedFully()]
    assert a.next_deadline() is None and a.handle_timeout(100.0) == []


def test_fin_ack_timeout_with_fake_clock():
    a = ChannelStream(ChannelStreamConfig(fin_ack_timeout=10.0))
    assert a.next_deadline() is None and a.handle_timeout(1e9) == []
    a.close_write(now=100.0)
    assert a.next_deadline() == 110.0
    assert a.handle_timeout(109.999) == []
    assert a.handle_timeout(110.0) == [FinAckTimedOut()]
    assert a.write_state is WriteState.CLOSED and a.next_deadline() is None
    assert a.handle_timeout(200.0) == []
    assert a.receive_message(joined(JS_FIN_ACK)) == []  # too late: ignored
    assert a.receive_message(joined(JS_FIN)) == [RemoteClosedWrite(), StreamClosedFully()]
    assert a.is_closed


def test_fin_ack_timeout_after_remote_fin_closes_fully():
    a = ChannelStream()
    a.receive_message(joined(JS_FIN))
    a.close_write(now=0.0)
    assert a.handle_timeout(10.0) == [FinAckTimedOut(), StreamClosedFully()]
    assert a.is_closed


def test_chunking_1_mib_reassembles():
    a, b = ChannelStream(), ChannelStream()
    data = bytes(range(256)) * 4096  # 1 MiB
    msgs = a.send(data)
    assert len(msgs) == math.ceil(len(data) / MAX_PAYLOAD_SIZE) == 65
    assert all(len(m) <= MAX_MESSAGE_SIZE for m in msgs)
    assert all(len(m) == 16382 for m in msgs[:-1])
    events = pump(a, b, msgs)
    assert all(isinstance(e, DataReceived) for e in events)
    assert b"".join(e.data for e in events) == data
    # also when every message is cut js-style (prefix | body) or glued together
    dec = MessageDecoder()
    got = []
    for m in msgs:
        n = 2 if len(m) > 128 else 1
        got += dec.feed(m[:n]) + dec.feed(m[n:])
    assert b"".join(x.payload for x in got) == data
    assert b"".join(x.payload for x in MessageDecoder().feed(b"".join(msgs))) == data


def test_a_batch_of_messages_decodes_as_one_payload_with_flags_in_place():
    """The page hands over several channel messages joined (js_glue/ffi.js batchMessages): the
    payloads of consecutive data frames come out as one, a flag frame keeps its place."""
    a = ChannelStream()
    data = bytes(range(256)) * 200  # 51,200 B: four data messages
    msgs = a.send(data)
    assert len(msgs) == 4
    wire = b"".join(msgs) + joined(JS_FIN) + joined(JS_HELLO)
    want = [ChannelMessage(None, data), ChannelMessage(Flag.FIN, None), ChannelMessage(None, b"hello")]
    assert MessageDecoder().feed(wire) == want
    # cut inside a frame: the held part is completed by the next batch
    dec = MessageDecoder()
    cut = len(msgs[0]) + 3
    first, second = dec.feed(wire[:cut]), dec.feed(wire[cut:])
    assert first == [ChannelMessage(None, data[: a.max_payload])] and dec.buffered == 0
    assert b"".join(m.payload for m in second[:1]) == data[a.max_payload :] and second[1:] == want[1:]
    # the machine: one DataReceived for the batch, then the FIN (answered), later data dropped
    b = ChannelStream()
    events = b.receive_message(wire)
    assert events == [DataReceived(data), RemoteClosedWrite()]
    assert b.outgoing() == [joined(JS_FIN_ACK)]


def test_send_packed_is_send_laid_out_in_one_buffer():
    a, b = ChannelStream(), ChannelStream()
    data = bytes(range(251)) * 300
    buf, sizes = a.send_packed(data)
    msgs = b.send(data)
    assert buf == b"".join(msgs) and sizes == [len(m) for m in msgs]
    assert len(set(sizes[:-1])) == 1 and sizes[-1] <= sizes[0]
    assert a.send_packed(b"") == (b"", [])


def test_smaller_configured_message_size():
    cfg = ChannelStreamConfig(max_message_size=1024)
    a = ChannelStream(cfg)
    assert a.max_payload == 1024 - 7
    msgs = a.send(bytes(5000))
    assert all(len(m) <= 1024 for m in msgs) and len(msgs) == 5
    assert a.send(b"") == []
    assert a.send(bytearray(b"ab")) == [encode_message(None, b"ab")]
    assert a.send(memoryview(b"abc")) == [encode_message(None, b"abc")]


def test_empty_and_unknown_flag_messages_are_harmless():
    b = ChannelStream()
    assert b.receive_message(b"") == []
    assert b.receive_message(joined(JS_EMPTY)) == []  # empty data: no event
    assert b.receive_message(bytes.fromhex("00")) == []  # empty protobuf
    assert b.receive_message(bytes.fromhex("05 0809 1201") + b"z") == [DataReceived(b"z")]  # flag 9 ignored
    assert b.read_state is ReadState.OPEN and b.write_state is WriteState.OPEN


def test_protocol_error_resets_and_raises():
    b = ChannelStream()
    with pytest.raises(DecodeError):
        b.receive_message(bytes.fromhex("021205"))  # data field longer than the message
    assert b.is_reset and b.is_closed
    assert b.outgoing() == [joined(JS_RESET)]
    assert b.receive_message(joined(JS_HELLO)) == []
    c = ChannelStream()
    with pytest.raises(LimitExceeded):
        c.receive_message(bytes.fromhex("ffff03"))
    assert c.outgoing() == [joined(JS_RESET)]
    d = ChannelStream()
    with pytest.raises(DecodeError):
        d.receive_message("text")  # type: ignore[arg-type]
    assert d.is_reset


def test_channel_closed_underneath():
    a = ChannelStream()
    a.close_write(now=0.0)
    assert a.channel_closed() == [RemoteClosedWrite(), StreamClosedFully()]
    assert a.is_closed and a.next_deadline() is None
    assert a.channel_closed() == []
    b = ChannelStream()
    b.receive_message(joined(JS_FIN))
    assert b.channel_closed() == [StreamClosedFully()]  # read side already ended: no second EOF
    c = ChannelStream()
    c.reset()
    assert c.channel_closed() == []


def test_read_side_stopped_keeps_stream_open_until_remote_fin():
    a = ChannelStream()
    a.close_read()
    a.close_write(now=0.0)
    assert a.receive_message(joined(JS_FIN_ACK)) == [FinAcked()]
    assert not a.is_closed  # like js: the peer's FIN (or the channel closing) is still needed
    assert a.receive_message(joined(JS_FIN)) == [RemoteClosedWrite(), StreamClosedFully()]
    assert a.is_closed


def test_config_validation():
    for kwargs in ({"max_message_size": 8}, {"max_receive_message_size": 0}, {"fin_ack_timeout": 0}):
        with pytest.raises(ConfigError):
            ChannelStreamConfig(**kwargs)
    assert ChannelStreamConfig().fin_ack_timeout == 10.0


# ------------------------------------------------------------------------------ properties / fuzz


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_decode_message(data):
    try:
        decode_message(data)
    except DarkSwapError:
        pass


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_fuzz_message_decoder(chunks):
    dec = MessageDecoder(1024)
    try:
        for c in chunks:
            dec.feed(c)
            assert dec.buffered <= 1024 + 9
    except DarkSwapError:
        pass


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.builds(
                encode_message,
                st.one_of(st.none(), st.sampled_from(list(Flag))),
                st.one_of(st.none(), st.binary(max_size=32)),
            ),
        ),
        max_size=12,
    )
)
def test_fuzz_channel_stream(msgs):
    s = ChannelStream()
    for m in msgs:
        try:
            s.receive_message(m)
        except DarkSwapError:
            assert s.is_reset
            break
        s.outgoing()
        if s.is_closed:
            assert s.receive_message(joined(JS_HELLO)) == []


@FUZZ
@given(st.binary(max_size=40_000), st.lists(st.integers(1, 20_000), max_size=6))
def test_send_then_receive_any_split(data, cuts):
    a, b = ChannelStream(), ChannelStream()
    wire = b"".join(a.send(data))
    pieces, pos = [], 0
    for c in cuts:
        pieces.append(wire[pos : pos + c])
        pos += c
    pieces.append(wire[pos:])
    got = b""
    for p in pieces:
        got += b"".join(e.data for e in b.receive_message(p))
    assert got == data
