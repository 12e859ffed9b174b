"""yamux sans-I/O machine: wire vectors, two machines back to back, limits, chunking, fuzz."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from darkswap_wasm.errors import (
    ConfigError,
    ConnectionClosed,
    LimitExceeded,
    ProtocolError,
    ResourceLimitExceeded,
    StreamClosed,
    StreamReset,
)
from darkswap_wasm.protocols.yamux import (
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    TYPE_DATA,
    TYPE_GO_AWAY,
    TYPE_PING,
    TYPE_WINDOW_UPDATE,
    ConnectionState,
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    PongReceived,
    StreamAcknowledged,
    StreamClosedFully,
    StreamEnded,
    StreamOpened,
    StreamRefused,
    StreamResetByPeer,
    WindowUpdated,
    YamuxConfig,
    YamuxConnection,
    decode_header,
    encode_header,
)

KIB = 1024
MIB = 1024 * 1024
INITIAL = 256 * KIB  # every stream's window until its reader has consumed a whole window


def frame(ftype: int, flags: int, sid: int, length: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBHII", 0, ftype, flags, sid, length) + payload


def data_frame(flags: int, sid: int, payload: bytes) -> bytes:
    return frame(TYPE_DATA, flags, sid, len(payload), payload)


def pump(a: YamuxConnection, b: YamuxConnection, rounds: int = 100) -> None:
    """Move bytes both ways until neither side has anything to send."""
    for _ in range(rounds):
        ab = a.data_to_send()
        ba = b.data_to_send()
        if not ab and not ba:
            return
        if ab:
            b.receive_data(ab)
        if ba:
            a.receive_data(ba)
    raise AssertionError("pump did not settle")


def pair(client_cfg: YamuxConfig | None = None, server_cfg: YamuxConfig | None = None):
    c = YamuxConnection(True, client_cfg or YamuxConfig())
    s = YamuxConnection(False, server_cfg or YamuxConfig())
    return c, s


def of_type(events, cls):
    return [e for e in events if isinstance(e, cls)]


def received_bytes(events, sid: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived) and e.stream_id == sid)


# ----------------------------------------------------------------------------- wire vectors


def test_header_vectors_hand_computed():
    # Data, no flags, stream 1, length 5
    assert encode_header(TYPE_DATA, 0, 1, 5) == bytes.fromhex("00 00 0000 00000001 00000005")
    # Window update, SYN, stream 3, delta 256 KiB
    assert encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 3, 0x40000) == bytes.fromhex("00 01 0001 00000003 00040000")
    # Window update, ACK|FIN, stream 2
    assert encode_header(TYPE_WINDOW_UPDATE, FLAG_ACK | FLAG_FIN, 2, 0) == bytes.fromhex("00 01 0006 00000002 00000000")
    # Window update, RST, stream 0x01020304
    assert encode_header(TYPE_WINDOW_UPDATE, FLAG_RST, 0x01020304, 0) == bytes.fromhex("00 01 0008 01020304 00000000")
    # Ping request / reply with opaque 0xdeadbeef
    assert encode_header(TYPE_PING, FLAG_SYN, 0, 0xDEADBEEF) == bytes.fromhex("00 02 0001 00000000 deadbeef")
    assert encode_header(TYPE_PING, FLAG_ACK, 0, 0xDEADBEEF) == bytes.fromhex("00 02 0002 00000000 deadbeef")
    # Go away, protocol error
    assert encode_header(TYPE_GO_AWAY, 0, 0, 1) == bytes.fromhex("00 03 0000 00000000 00000001")
    assert decode_header(bytes.fromhex("00 01 0006 00000002 0000ffff")) == (0, 1, 6, 2, 0xFFFF)


def test_open_stream_bytes_client_and_server():
    c = YamuxConnection(True)
    assert c.open_stream() == 1
    assert c.open_stream() == 3
    # SYN window updates without extra window: streams start at the spec's 256 KiB
    assert c.data_to_send() == bytes.fromhex("00 01 0001 00000001 00000000 00 01 0001 00000003 00000000")
    s = YamuxConnection(False)
    assert s.open_stream() == 2
    assert s.data_to_send() == bytes.fromhex("00 01 0001 00000002 00000000")


def test_send_data_bytes_and_accept_ack_bytes():
    s = YamuxConnection(False)
    s.receive_data(data_frame(FLAG_SYN, 1, b"hello"))
    assert s.events_received() == [StreamOpened(1), DataReceived(1, b"hello")]
    assert s.data_to_send() == b""  # not accepted yet
    assert s.send_data(1, b"hi") == 2
    # implicit ACK (no extra window: it grows with reading), then the data frame
    assert (
        s.data_to_send()
        == bytes.fromhex("00 01 0002 00000001 00000000") + bytes.fromhex("00 00 0000 00000001 00000002") + b"hi"
    )
    s.close_stream(1)
    assert s.data_to_send() == bytes.fromhex("00 01 0004 00000001 00000000")
    s.reset_stream(1)
    assert s.data_to_send() == bytes.fromhex("00 01 0008 00000001 00000000")


def test_ping_is_answered_and_pong_reported():
    s = YamuxConnection(False)
    s.receive_data(frame(TYPE_PING, FLAG_SYN, 0, 0x01020304))
    assert s.data_to_send() == bytes.fromhex("00 02 0002 00000000 01020304")
    assert s.events_received() == []
    s.receive_data(frame(TYPE_PING, FLAG_ACK, 0, 7))
    assert s.events_received() == [PongReceived(7)]


def test_config_validation():
    with pytest.raises(ConfigError):
        YamuxConfig(receive_window=1000)
    with pytest.raises(ConfigError):
        YamuxConfig(max_streams=0)
    with pytest.raises(ConfigError):
        YamuxConfig(receive_window=2**32)
    with pytest.raises(ConfigError):
        YamuxConfig(max_accept_backlog=-1)


# ------------------------------------------------------------------------ back to back


def test_open_accept_ack_and_data_both_ways():
    c, s = pair()
    sid = c.open_stream()
    assert c.send_data(sid, b"ping?") == 5
    pump(c, s)
    assert s.events_received() == [StreamOpened(sid), DataReceived(sid, b"ping?")]
    s.accept_stream(sid)
    assert s.send_data(sid, b"pong!") == 5
    pump(c, s)
    ev = c.events_received()
    assert ev[0] == StreamAcknowledged(sid)
    assert DataReceived(sid, b"pong!") in ev
    # both sides start at the spec's window; nothing was read yet, so nothing grew
    assert c.send_window(sid) == INITIAL - 5
    assert s.send_window(sid) == INITIAL - 5
    assert c.receive_window(sid) == s.receive_window(sid) == INITIAL
    assert c.stream_ids == [sid] and s.stream_ids == [sid]
    assert c.state is ConnectionState.OPEN


def test_js_style_syn_window_update_without_delta_and_ack_on_data():
    # js-libp2p opens with a WindowUpdate SYN of delta 0 and ACKs with the first data frame
    s = YamuxConnection(False)
    s.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))
    assert s.events_received() == [StreamOpened(1)]
    assert s.send_window(1) == 256 * KIB
    c = YamuxConnection(True)
    sid = c.open_stream()
    c.data_to_send()
    c.receive_data(data_frame(FLAG_ACK, sid, b"abc") + frame(TYPE_WINDOW_UPDATE, 0, sid, 1000))
    assert c.events_received() == [StreamAcknowledged(sid), DataReceived(sid, b"abc"), WindowUpdated(sid)]
    assert c.send_window(sid) == 256 * KIB + 1000
    # ACK with a window delta in one frame
    sid2 = c.open_stream()
    c.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_ACK, sid2, 5000))
    assert c.events_received() == [StreamAcknowledged(sid2), WindowUpdated(sid2)]
    assert c.send_window(sid2) == 256 * KIB + 5000


def test_data_frame_with_syn_and_fin():
    s = YamuxConnection(False)
    s.receive_data(data_frame(FLAG_SYN | FLAG_FIN, 1, b"one-shot"))
    assert s.events_received() == [StreamOpened(1), DataReceived(1, b"one-shot"), StreamEnded(1)]
    s.send_data(1, b"reply")
    s.close_stream(1)
    assert s.events_received() == [StreamClosedFully(1)]
    assert s.stream_ids == []


def test_flow_control_sender_stops_and_resumes():
    cfg = YamuxConfig(receive_window=256 * KIB)  # no growth: the spec's 256 KiB window
    c, s = pair(cfg, cfg)
    sid = c.open_stream()
    payload = bytes(range(256)) * (4 * KIB)  # 1 MiB
    sent = c.send_data(sid, payload)
    assert sent == 256 * KIB
    assert c.send_data(sid, payload[sent:]) == 0
    assert c.send_window(sid) == 0
    pump(c, s)
    ev = s.events_received()
    assert received_bytes(ev, sid) == payload[:sent]
    s.accept_stream(sid)
    s.acknowledge(sid, 100 * KIB)  # below half the window: no update yet
    pump(c, s)
    assert of_type(c.events_received(), WindowUpdated) == []
    assert c.send_window(sid) == 0
    s.acknowledge(sid, 28 * KIB)  # 128 KiB consumed = half: update
    pump(c, s)
    assert of_type(c.events_received(), WindowUpdated) == [WindowUpdated(sid)]
    assert c.send_window(sid) == 128 * KIB
    assert c.send_data(sid, payload[sent:]) == 128 * KIB


def test_unread_stream_stays_at_256_kib():
    # attack 4 of issue 12: every accepted stream used to get 16 MiB at once, read or not
    c, s = pair()
    sid = c.open_stream()
    assert c.send_data(sid, b"x" * MIB) == INITIAL
    pump(c, s)
    assert received_bytes(s.events_received(), sid) == b"x" * INITIAL
    s.accept_stream(sid)
    pump(c, s)
    assert of_type(c.events_received(), WindowUpdated) == []
    assert c.send_window(sid) == 0  # the sender is stopped at the spec's window
    assert c.send_data(sid, b"x") == 0
    assert s.receive_window(sid) == INITIAL and s.receive_credit(sid) == 0
    # the same for a stream we opened and never read
    out = s.open_stream()
    pump(c, s)
    assert c.send_data(out, b"y" * MIB) == INITIAL
    pump(c, s)
    assert s.receive_window(out) == INITIAL and c.send_window(out) == 0


def test_slow_reader_does_not_grow_its_window():
    # a reader that always leaves most of the window unread is the bottleneck: no growth
    c, s = pair()
    sid = c.open_stream()
    held = consumed = 0
    while consumed < 32 * MIB:
        c.send_data(sid, b"z" * MIB)
        pump(c, s)
        held += sum(len(e.data) for e in s.events_received() if isinstance(e, DataReceived))
        if held > INITIAL // 2:  # consume, but always leave half a window unread
            s.acknowledge(sid, held - INITIAL // 2)
            consumed += held - INITIAL // 2
            held = INITIAL // 2
        pump(c, s)
        c.events_received()
        assert s.receive_window(sid) == INITIAL


def test_reading_stream_grows_to_16_mib_and_no_further():
    c, s = pair()
    sid = c.open_stream()
    windows = [c.send_window(sid)]
    payload = b"r" * (40 * MIB)
    got = 0
    off = 0
    while got < len(payload):
        off += c.send_data(sid, memoryview(payload)[off:])
        windows.append(c.send_window(sid))
        pump(c, s)
        for e in s.events_received():
            if isinstance(e, DataReceived):
                got += len(e.data)
                s.acknowledge(sid, len(e.data))
        pump(c, s)
        c.events_received()
        windows.append(c.send_window(sid))
    assert got == len(payload)
    assert s.receive_window(sid) == 16 * MIB
    assert max(windows) == 16 * MIB  # the sender saw the whole 16 MiB, never more
    assert c.receive_window(sid) == INITIAL  # nothing read the other way


def test_growth_stops_at_the_connection_budget_and_inbound_streams_are_refused():
    budget = 2 * MIB
    c, s = pair(None, YamuxConfig(connection_receive_budget=budget))
    a = c.open_stream()
    got = 0
    while got < 20 * MIB:
        c.send_data(a, b"g" * MIB)
        pump(c, s)
        for e in s.events_received():
            if isinstance(e, DataReceived):
                got += len(e.data)
                s.acknowledge(a, len(e.data))
        pump(c, s)
        c.events_received()
    # growth uses three quarters of the budget: room stays for new streams
    assert s.receive_window(a) == budget * 3 // 4 and s.receive_window_total == budget * 3 // 4
    opened = [c.open_stream() for _ in range(3)]
    pump(c, s)
    assert s.events_received() == [
        StreamOpened(opened[0]),
        StreamOpened(opened[1]),
        StreamRefused(opened[2], "receive_budget"),
    ]
    assert c.events_received() == [StreamResetByPeer(opened[2])]  # refused with RST, nothing opened
    assert s.refused_streams == 1 and not s.has_stream(opened[2]) and s.receive_window_total == budget
    # closing the big stream frees its window for new ones
    c.close_stream(a)
    s.close_stream(a)
    pump(c, s)
    assert s.receive_window_total == 2 * INITIAL
    d = c.open_stream()
    pump(c, s)
    assert StreamOpened(d) in s.events_received()
    assert s.receive_window_total == 3 * INITIAL


def test_close_read_drops_data_without_credit_and_forgets_the_stream():
    c, s = pair()
    sid = c.open_stream()
    c.send_data(sid, b"q" * (100 * KIB))
    pump(c, s)
    s.events_received()
    s.send_data(sid, b"answer")
    s.close_stream(sid)  # FIN, then stop reading: the stream is forgotten at once
    s.close_read(sid)
    assert s.events_received() == [StreamClosedFully(sid)]
    assert not s.has_stream(sid) and s.receive_window_total == 0
    pump(c, s)
    assert received_bytes(c.events_received(), sid) == b"answer"
    # the peer may still send what its window allows: skipped, never buffered, never credited
    assert c.send_data(sid, b"w" * MIB) == INITIAL - 100 * KIB
    c.close_stream(sid)
    pump(c, s)
    assert s.events_received() == [] and of_type(c.events_received(), WindowUpdated) == []
    assert c.send_window(sid) == 0


def test_close_read_before_write_close():
    c, s = pair()
    sid = c.open_stream()
    pump(c, s)
    s.events_received()
    s.close_read(sid)
    c.send_data(sid, b"k" * 1000)
    pump(c, s)
    assert s.events_received() == []  # dropped
    s.acknowledge(sid, 1000)  # nothing to acknowledge: ignored
    assert s.send_data(sid, b"still writable") == 14
    s.close_stream(sid)
    assert s.events_received() == [StreamClosedFully(sid)]


def transfer(c, s, sid, payload, chunk=None):
    """Send payload c -> s through the windows, acknowledging as the app consumes."""
    got = []
    off = 0
    rounds = 0
    while True:
        rounds += 1
        assert rounds < 10_000
        if off < len(payload):
            off += c.send_data(sid, memoryview(payload)[off:])
        out = c.data_to_send()
        if chunk:
            for i in range(0, len(out), chunk):
                s.receive_data(out[i : i + chunk])
        elif out:
            s.receive_data(out)
        for e in s.events_received():
            if isinstance(e, DataReceived):
                got.append(e.data)
                s.acknowledge(sid, len(e.data))
        back = s.data_to_send()
        if back:
            c.receive_data(back)
        c.events_received()
        if off == len(payload) and not out and not back:
            break
    return b"".join(got)


@pytest.mark.parametrize("receive_window", [256 * KIB, 16 * MIB])
def test_10_mib_transfer_through_windows(receive_window):
    cfg = YamuxConfig(receive_window=receive_window)
    c, s = pair(cfg, cfg)
    sid = c.open_stream()
    payload = bytes(i * 7 % 251 for i in range(10 * MIB))
    got = transfer(c, s, sid, payload)
    assert got == payload


def test_transfer_with_small_transport_chunks():
    c, s = pair()
    sid = c.open_stream()
    payload = bytes(i % 253 for i in range(3 * MIB))
    assert transfer(c, s, sid, payload, chunk=65_537) == payload


def test_outgoing_frames_split_at_max_frame_payload():
    c = YamuxConnection(True, YamuxConfig(max_frame_payload=1000))
    sid = c.open_stream()
    c.data_to_send()
    assert c.send_data(sid, b"a" * 2500) == 2500
    out = c.data_to_send()
    lengths = []
    pos = 0
    while pos < len(out):
        _v, t, _f, i, n = decode_header(out, pos)
        assert t == TYPE_DATA and i == sid
        lengths.append(n)
        pos += 12 + n
    assert lengths == [1000, 1000, 500]


def test_send_accepts_bytearray_and_memoryview_and_copies_mutable():
    c, s = pair()
    sid = c.open_stream()
    buf = bytearray(b"mutable!")
    assert c.send_data(sid, buf) == 8
    buf[:] = b"XXXXXXXX"  # reused by the caller before the bytes went out
    assert c.send_data(sid, memoryview(b"-view")) == 5
    assert c.send_data(sid, b"") == 0
    pump(c, s)
    assert received_bytes(s.events_received(), sid) == b"mutable!-view"


def test_half_close():
    c, s = pair()
    sid = c.open_stream()
    c.send_data(sid, b"request")
    c.close_stream(sid)
    c.close_stream(sid)  # idempotent
    with pytest.raises(StreamClosed):
        c.send_data(sid, b"more")
    assert c.send_window(sid) == 0
    pump(c, s)
    ev = s.events_received()
    assert ev[-2:] == [DataReceived(sid, b"request"), StreamEnded(sid)]
    s.send_data(sid, b"response")  # the other half is still open
    s.close_stream(sid)
    assert s.events_received() == [StreamClosedFully(sid)]
    pump(c, s)
    ev = c.events_received()
    assert ev == [
        StreamAcknowledged(sid),
        DataReceived(sid, b"response"),
        StreamEnded(sid),
        StreamClosedFully(sid),
    ]
    assert c.stream_ids == [] and s.stream_ids == []
    with pytest.raises(StreamClosed):
        c.send_data(sid, b"x")


def test_reset_and_late_frames_are_ignored():
    c, s = pair()
    sid = c.open_stream()
    pump(c, s)
    s.events_received()
    s.send_data(sid, b"in flight")  # crosses the RST on the wire
    c.reset_stream(sid)
    c.reset_stream(sid)  # no-op
    late = s.data_to_send()
    s.receive_data(c.data_to_send())
    assert s.events_received() == [StreamResetByPeer(sid)]
    c.receive_data(late)  # data for a forgotten stream: dropped, connection lives
    assert c.events_received() == []
    assert not c.is_terminated
    with pytest.raises(StreamReset):
        c.send_data(sid, b"x")
    with pytest.raises(StreamReset):
        s.send_data(sid, b"x")
    s.close_stream(sid)  # no-op on a reset stream
    s.acknowledge(sid, 9)  # ignored: the stream is gone
    assert c.stream_ids == [] and s.stream_ids == []
    # a big frame for the forgotten stream is skipped, even split across reads
    big = data_frame(0, sid, b"z" * 200_000)
    c.receive_data(big[:50_000])
    c.receive_data(big[50_000:])
    assert c.events_received() == [] and not c.is_terminated


def test_rst_window_update_length_is_an_error_code_not_a_delta():
    c = YamuxConnection(True)
    sid = c.open_stream()
    c.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_RST, sid, 42))
    assert c.events_received() == [StreamResetByPeer(sid)]
    assert c.send_window(sid) == 0


def test_rst_refusing_our_syn():
    c = YamuxConnection(True)
    sid = c.open_stream()
    c.send_data(sid, b"early data")
    c.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_RST, sid, 0))
    assert c.events_received() == [StreamResetByPeer(sid)]
    assert c.stream_ids == []


def test_syn_with_rst_opens_nothing():
    s = YamuxConnection(False)
    s.receive_data(data_frame(FLAG_SYN | FLAG_RST, 1, b"gone"))
    assert s.events_received() == [] and s.stream_ids == []


def test_ping_pong_back_to_back():
    c, s = pair()
    c.ping(12345)
    s.ping(0xFFFFFFFF)
    pump(c, s)
    assert c.events_received() == [PongReceived(12345)]
    assert s.events_received() == [PongReceived(0xFFFFFFFF)]
    with pytest.raises(ValueError):
        c.ping(2**32)


def test_go_away_normal_drains():
    c, s = pair()
    sid = c.open_stream()
    pump(c, s)
    s.events_received()
    c.go_away()
    assert c.state is ConnectionState.DRAINING
    with pytest.raises(ConnectionClosed):
        c.open_stream()
    late = s.open_stream()  # the server opens before it sees our Go Away
    pump(c, s)
    ev = s.events_received()
    assert GoAwayReceived(0) in ev
    assert StreamResetByPeer(late) in ev  # refused: we are going away
    with pytest.raises(ConnectionClosed):
        s.open_stream()
    # existing streams keep working
    s.send_data(sid, b"still here")
    pump(c, s)
    assert received_bytes(c.events_received(), sid) == b"still here"
    assert not c.is_terminated and not s.is_terminated


def test_go_away_with_error_terminates_both():
    c, s = pair()
    sid = c.open_stream()
    pump(c, s)
    c.go_away(2)
    assert c.is_terminated
    assert c.events_received()[-1] == ConnectionTerminated("we sent Go Away with code 2")
    pump(c, s)
    ev = s.events_received()
    assert ev[-2:] == [GoAwayReceived(2), ConnectionTerminated("peer sent Go Away with code 2")]
    assert s.is_terminated and s.stream_ids == []
    with pytest.raises(ConnectionClosed):
        s.send_data(sid, b"x")
    with pytest.raises(ConnectionClosed):
        s.open_stream()
    s.receive_data(b"\xff" * 100)  # ignored after termination


def test_stream_cap_inbound_rst_and_outbound_limit():
    c, s = pair(YamuxConfig(max_streams=3), YamuxConfig(max_streams=2))
    ids = [c.open_stream() for _ in range(3)]
    with pytest.raises(ResourceLimitExceeded) as info:  # a local budget, not the peer's fault
        c.open_stream()
    assert not isinstance(info.value, ProtocolError) and info.value.code == "RESOURCE_LIMIT_EXCEEDED"
    pump(c, s)
    assert of_type(s.events_received(), StreamOpened) == [StreamOpened(1), StreamOpened(3)]
    assert c.events_received() == [StreamResetByPeer(ids[2])]
    assert sorted(s.stream_ids) == [1, 3]
    # closing one frees a slot
    c.reset_stream(1)
    pump(c, s)
    sid = c.open_stream()
    pump(c, s)
    assert StreamOpened(sid) in s.events_received()


def test_accept_backlog_rst():
    c, s = pair(None, YamuxConfig(max_accept_backlog=2))
    ids = [c.open_stream() for _ in range(3)]
    pump(c, s)
    assert c.events_received() == [StreamResetByPeer(ids[2])]
    s.accept_stream(ids[0])  # frees a backlog slot
    sid = c.open_stream()
    pump(c, s)
    assert StreamOpened(sid) in s.events_received()
    assert StreamResetByPeer(sid) not in c.events_received()


def test_streams_are_forgotten():
    c, s = pair()
    for _ in range(3000):
        sid = c.open_stream()
        c.send_data(sid, b"x")
        c.close_stream(sid)
        pump(c, s)
        for e in s.events_received():
            if isinstance(e, DataReceived):
                s.acknowledge(e.stream_id, 1)
        s.close_stream(sid)
        pump(c, s)
        c.events_received()
        s.events_received()
    assert c.num_streams == 0 and s.num_streams == 0
    assert len(c._recent) <= 1024 and len(s._recent) <= 1024


# ------------------------------------------------------------------------- protocol errors


def assert_protocol_error(conn: YamuxConnection, data: bytes, exc=ProtocolError):
    with pytest.raises(exc):
        conn.receive_data(data)
    assert conn.is_terminated
    assert conn.state is ConnectionState.TERMINATED
    assert conn.data_to_send().endswith(bytes.fromhex("00 03 0000 00000000 00000001"))
    assert isinstance(conn.events_received()[-1], ConnectionTerminated)
    conn.receive_data(data)  # ignored afterwards, no exception
    assert conn.data_to_send() == b""


def test_exceeding_window_is_a_protocol_error():
    s = YamuxConnection(False)
    assert_protocol_error(s, data_frame(FLAG_SYN, 1, b"x" * (256 * KIB + 1)), LimitExceeded)


def test_exceeding_window_on_established_stream():
    c, s = pair(None, YamuxConfig(receive_window=256 * KIB))
    sid = c.open_stream()
    pump(c, s)
    s.receive_data(data_frame(0, sid, b"a" * (200 * KIB)))
    # the header alone is enough: the oversize payload is never buffered
    assert_protocol_error(s, frame(TYPE_DATA, 0, sid, 100 * KIB), LimitExceeded)


def test_window_check_before_buffering_payload():
    s = YamuxConnection(False)
    with pytest.raises(LimitExceeded):
        s.receive_data(frame(TYPE_DATA, FLAG_SYN, 1, 0xFFFFFFFF)[:12])
    with pytest.raises(LimitExceeded):
        YamuxConnection(False).receive_data(frame(TYPE_DATA, 0, 7, 0xFFFFFFFF)[:12])


@pytest.mark.parametrize(
    "raw",
    [
        bytes.fromhex("01 00 0000 00000001 00000000"),  # version 1
        bytes.fromhex("00 04 0000 00000000 00000000"),  # unknown type
        bytes.fromhex("00 7f 0001 00000001 00000000"),  # unknown type
        data_frame(FLAG_SYN, 2, b"x"),  # server receives a SYN with its own (even) parity
        data_frame(0, 0, b"x"),  # data on stream 0
        frame(TYPE_WINDOW_UPDATE, 0, 0, 5),  # window update on stream 0
        frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0) + frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0),  # reuse
        data_frame(FLAG_SYN | FLAG_FIN, 1, b"a") + data_frame(0, 1, b"b"),  # data after FIN
    ],
)
def test_protocol_errors(raw):
    assert_protocol_error(YamuxConnection(False), raw)


def test_reuse_of_recently_closed_id_is_an_error():
    s = YamuxConnection(False)
    s.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN | FLAG_RST, 1, 0))
    assert_protocol_error(s, frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))


def test_zero_length_frames_after_fin_are_fine():
    s = YamuxConnection(False)
    s.receive_data(data_frame(FLAG_SYN | FLAG_FIN, 1, b"a") + data_frame(FLAG_FIN, 1, b""))
    s.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_FIN, 1, 10))
    assert s.events_received() == [StreamOpened(1), DataReceived(1, b"a"), StreamEnded(1), WindowUpdated(1)]
    assert not s.is_terminated


def test_events_before_the_error_are_kept():
    s = YamuxConnection(False)
    with pytest.raises(ProtocolError):
        s.receive_data(data_frame(FLAG_SYN, 1, b"ok") + bytes.fromhex("00 09 0000 00000000 00000000"))
    ev = s.events_received()
    assert ev[:2] == [StreamOpened(1), DataReceived(1, b"ok")]
    assert isinstance(ev[2], ConnectionTerminated)


def test_over_acknowledge_is_rejected_locally():
    s = YamuxConnection(False)
    s.receive_data(data_frame(FLAG_SYN, 1, b"abc"))
    with pytest.raises(ProtocolError):
        s.acknowledge(1, 4)
    assert not s.is_terminated
    s.acknowledge(1, 3)
    s.acknowledge(99, 3)  # unknown: ignored


def test_receive_eof_terminates():
    s = YamuxConnection(False)
    s.receive_data(data_frame(FLAG_SYN, 1, b"abc")[:5])
    s.receive_eof()
    assert s.is_terminated
    assert s.events_received() == [ConnectionTerminated("transport closed")]


# ------------------------------------------------------------------------------- hypothesis


def scripted_stream() -> bytes:
    """A client-side byte stream exercising most frame kinds."""
    c = YamuxConnection(True, YamuxConfig(max_frame_payload=700))
    a = c.open_stream()
    b = c.open_stream()
    c.send_data(a, bytes(range(256)) * 9)
    c.ping(5)
    c.send_data(b, b"hello")
    c.close_stream(b)
    c.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_ACK, a, 0))
    c.send_data(a, b"tail")
    c.reset_stream(a)
    d = c.open_stream()
    c.send_data(d, b"x" * 3000)
    c.go_away(0)
    return c.data_to_send()


_SCRIPT = scripted_stream()


def server_events(chunks):
    s = YamuxConnection(False)
    for chunk in chunks:
        s.receive_data(chunk)
    return s.events_received(), s.data_to_send()


_WHOLE = server_events([_SCRIPT])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=len(_SCRIPT)), max_size=40))
def test_arbitrary_split_points_give_the_same_events(cuts):
    points = [0, *sorted(cuts), len(_SCRIPT)]
    chunks = [_SCRIPT[i:j] for i, j in itertools.pairwise(points)]
    assert server_events(chunks) == _WHOLE


def test_whole_script_events():
    ev, out = _WHOLE
    assert StreamOpened(1) in ev and StreamOpened(3) in ev and StreamOpened(5) in ev
    assert received_bytes(ev, 1) == bytes(range(256)) * 9 + b"tail"
    assert received_bytes(ev, 3) == b"hello"
    assert StreamEnded(3) in ev and StreamResetByPeer(1) in ev and GoAwayReceived(0) in ev
    assert out == bytes.fromhex("00 02 0002 00000000 00000005")  # the pong


def _feed_fuzz(conn: YamuxConnection, chunks) -> None:
    for chunk in chunks:
        try:
            conn.receive_data(chunk)
        except ProtocolError:
            assert conn.is_terminated
            conn.receive_data(chunk)  # ignored afterwards
            return
        conn.events_received()
        conn.data_to_send()


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(st.binary(max_size=200), max_size=10))
def test_fuzz_random_bytes_raise_only_protocol_errors(is_client, chunks):
    _feed_fuzz(YamuxConnection(is_client), chunks)


_frames = st.tuples(
    st.sampled_from([0, 0, 0, 1, 1, 2, 3, 4]),  # type
    st.integers(min_value=0, max_value=15),  # flags
    st.integers(min_value=0, max_value=8),  # stream id
    st.one_of(st.integers(min_value=0, max_value=64), st.integers(min_value=0, max_value=2**32 - 1)),
    st.binary(max_size=64),
)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(_frames, max_size=20), st.integers(min_value=1, max_value=50))
def test_fuzz_structured_frames(is_client, frames, chunk):
    cfg = YamuxConfig(max_streams=3, max_accept_backlog=2)
    conn = YamuxConnection(is_client, cfg)
    mine = conn.open_stream()
    conn.send_data(mine, b"hi")
    raw = b""
    for ftype, flags, sid, length, payload in frames:
        if ftype == TYPE_DATA:
            raw += frame(ftype, flags, sid, len(payload), payload)
        else:
            raw += frame(ftype, flags, sid, length)
    _feed_fuzz(conn, [raw[i : i + chunk] for i in range(0, len(raw), chunk)])
    # the local API never raises anything unexpected afterwards
    for sid in range(9):
        try:
            conn.send_data(sid, b"x")
        except (StreamClosed, StreamReset, ConnectionClosed):
            pass
        conn.acknowledge(sid, 0)
        conn.close_stream(sid)
        conn.reset_stream(sid)
    assert conn.num_streams <= cfg.max_streams


def test_typed_buffers_stream_id_exhaustion_and_properties():
    import array

    c, s = pair()
    sid = c.open_stream()
    assert c.send_data(sid, array.array("H", [0x0102, 0x0304])) == 4
    pump(c, s)
    assert received_bytes(s.events_received(), sid) == array.array("H", [0x0102, 0x0304]).tobytes()
    assert s.has_stream(sid) and not s.has_stream(sid + 2)
    c._next_id = 2**32 + 1
    with pytest.raises(LimitExceeded):
        c.open_stream()
    assert c.local_go_away is None and c.remote_go_away is None and c.termination_reason is None
    c.go_away()
    pump(c, s)
    assert c.local_go_away == 0 and s.remote_go_away == 0


def test_no_window_update_after_peer_fin():
    cfg = YamuxConfig(receive_window=256 * KIB)
    s = YamuxConnection(False, cfg)
    s.receive_data(data_frame(FLAG_SYN, 1, b"a" * (200 * KIB)) + frame(TYPE_WINDOW_UPDATE, FLAG_FIN, 1, 0))
    s.accept_stream(1)
    s.data_to_send()
    s.acknowledge(1, 200 * KIB)
    assert s.data_to_send() == b""


def test_rst_data_frame_payload_is_discarded():
    s = YamuxConnection(False)
    s.receive_data(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))
    s.receive_data(data_frame(FLAG_RST, 1, b"ignored"))
    assert s.events_received() == [StreamOpened(1), StreamResetByPeer(1)]
    assert not s.is_terminated


# ------------------------------------------------------------- window accounting (stateful)


class WindowAccounting(RuleBasedStateMachine):
    """Two machines, random opens/sends/reads/closes and deliveries in any order: no side ever
    exceeds a window (no LimitExceeded), no window or credit goes negative or past its limits,
    and what a sender may still send never exceeds what its receiver still credits."""

    BUDGET = 3 * MIB

    def __init__(self) -> None:
        super().__init__()
        cfg = YamuxConfig(receive_window=2 * MIB, connection_receive_budget=self.BUDGET, max_frame_payload=64 * KIB)
        self.side = {"c": YamuxConnection(True, cfg), "s": YamuxConnection(False, cfg)}
        self.wire: dict[str, list[bytes]] = {"c": [], "s": []}  # bytes written by that side, not yet read
        self.unread: dict[str, dict[int, int]] = {"c": {}, "s": {}}  # delivered, not acknowledged

    def _other(self, name: str) -> str:
        return "s" if name == "c" else "c"

    def _collect(self, name: str) -> None:
        out = self.side[name].data_to_send()
        if out:
            self.wire[name].append(out)

    def _streams(self, name: str) -> list[int]:
        return sorted(self.side[name].stream_ids)

    @rule(name=st.sampled_from("cs"))
    def open(self, name):
        conn = self.side[name]
        if conn.num_streams < conn.config.max_streams:
            conn.open_stream()
            self._collect(name)

    @rule(name=st.sampled_from("cs"), pick=st.integers(0, 7), size=st.integers(1, 3 * MIB))
    def send(self, name, pick, size):
        ids = self._streams(name)
        if ids:
            sid = ids[pick % len(ids)]
            try:
                self.side[name].send_data(sid, bytes(size))
            except StreamClosed:
                pass
            self._collect(name)

    @rule(name=st.sampled_from("cs"), count=st.integers(1, 4))
    def deliver(self, name, count):
        """Deliver the oldest ``count`` writes of ``name`` to the other side."""
        other = self._other(name)
        conn = self.side[other]
        for _ in range(min(count, len(self.wire[name]))):
            conn.receive_data(self.wire[name].pop(0))  # never raises: no window is ever exceeded
            for e in conn.events_received():
                if isinstance(e, DataReceived):
                    self.unread[other][e.stream_id] = self.unread[other].get(e.stream_id, 0) + len(e.data)
                elif isinstance(e, StreamResetByPeer | StreamClosedFully):
                    self.unread[other].pop(e.stream_id, None)
            self._collect(other)

    @rule(name=st.sampled_from("cs"), pick=st.integers(0, 7), rounds=st.integers(1, 8))
    def bulk(self, name, pick, rounds):
        """A reader that keeps up: send, deliver, read everything, deliver the updates."""
        ids = self._streams(name)
        if not ids:
            return
        sid = ids[pick % len(ids)]
        other = self._other(name)
        for _ in range(rounds):
            try:
                self.side[name].send_data(sid, bytes(MIB))
            except (StreamClosed, StreamReset):  # closed by us, or reset by the peer meanwhile
                return
            self._collect(name)
            self.deliver(name, len(self.wire[name]))
            for peer_sid in list(self.unread[other]):
                self.read(other, sorted(self.unread[other]).index(peer_sid), 1.0)
            self.deliver(other, len(self.wire[other]))

    @rule(name=st.sampled_from("cs"), pick=st.integers(0, 7), fraction=st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0]))
    def read(self, name, pick, fraction):
        unread = self.unread[name]
        ids = sorted(unread)
        if ids:
            sid = ids[pick % len(ids)]
            n = int(unread[sid] * fraction)
            self.side[name].acknowledge(sid, n)
            unread[sid] -= n
            self._collect(name)

    @rule(name=st.sampled_from("cs"), pick=st.integers(0, 7), how=st.sampled_from(["close", "close_read", "reset"]))
    def finish(self, name, pick, how):
        ids = self._streams(name)
        if ids:
            sid = ids[pick % len(ids)]
            conn = self.side[name]
            {"close": conn.close_stream, "close_read": conn.close_read, "reset": conn.reset_stream}[how](sid)
            if how != "close":
                self.unread[name].pop(sid, None)
            for e in conn.events_received():
                if isinstance(e, StreamClosedFully):
                    self.unread[name].pop(e.stream_id, None)
            self._collect(name)

    def _in_flight(self, name: str, sid: int) -> int:
        """Data bytes ``name`` wrote on ``sid`` that the other side has not read yet."""
        total = 0
        for blob in self.wire[name]:
            pos = 0
            while pos < len(blob):
                _v, ftype, _flags, fsid, length = decode_header(blob, pos)
                pos += 12
                if ftype == TYPE_DATA:
                    if fsid == sid:
                        total += length
                    pos += length
        return total

    @invariant()
    def windows_are_sane(self):
        for name, conn in self.side.items():
            cfg = conn.config
            ids = conn.stream_ids
            total = sum(conn.receive_window(sid) for sid in ids)
            assert conn.receive_window_total == total
            # growth only happens within 3/4 of the budget (our own streams always open, at 256 KiB)
            assert total - cfg.initial_window * len(ids) <= self.BUDGET * 3 // 4 - cfg.initial_window
            for sid in ids:
                assert cfg.initial_window <= conn.receive_window(sid) <= cfg.receive_window
                assert 0 <= conn.receive_credit(sid) <= conn.receive_window(sid)
                assert conn.send_window(sid) >= 0
                assert self.unread[name].get(sid, 0) >= 0
                # the peer may send at most what we still credit, counting what is on the wire
                peer = self.side[self._other(name)]
                if peer.has_stream(sid) and peer.send_window(sid):
                    assert peer.send_window(sid) + self._in_flight(self._other(name), sid) <= conn.receive_credit(sid)


test_window_accounting = WindowAccounting.TestCase
test_window_accounting.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
