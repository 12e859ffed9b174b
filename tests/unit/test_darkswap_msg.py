"""``/darkswap/msg/1.0.0`` sessions: wire vectors, batching, backpressure, acks, resend across
transport cuts, closing, limits, compression negotiation, a lossy-transport property test, fuzz.

Most tests run on sessions with ``compress=False`` or with the pure-Python stand-in backend
(``fake_zstd``: the zstd block format with raw and RLE blocks only); the rest on the real one, the
interpreter's zstd (``compression.zstd``, ``backports.zstd`` below 3.14), natively and in Pyodide.
"""

from __future__ import annotations

import os
import random

import pytest
from fake_zstd import FakeZstd, frame_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkswap_wasm.compression import CompressionError
from darkswap_wasm.errors import (
    ConfigError,
    DarkSwapError,
    DecodeError,
    LimitExceeded,
    MessageTooLarge,
    PeerUnreachable,
    ProtocolError,
    Timeout,
)
from darkswap_wasm.protocols.darkswap_msg import (
    PROTOCOL_ID,
    Acked,
    BufferFull,
    BufferSpace,
    MessageReceived,
    MessageSession,
    MessagingConfig,
    SessionClosed,
    SessionClosing,
    SessionEnded,
    SessionFailed,
    SessionResumed,
    SessionState,
    SessionStats,
)

h = bytes.fromhex
A_ID = b"A" * 16
B_ID = b"B" * 16
C_ID = b"C" * 16
ZERO = bytes(16)
KIB = 1024
MIB = 1024 * 1024


# --------------------------------------------------------------- pure-Python stand-in backend




# ------------------------------------------------------------------------------------ helpers


def session(sid: bytes = A_ID, *, backend=None, now: float = 0.0, **config) -> MessageSession:
    config.setdefault("compress", backend is not None)
    return MessageSession(MessagingConfig(**config), now=now, session_id=sid, backend=backend)


def pump(a: MessageSession, b: MessageSession, now: float = 0.0, rounds: int = 200) -> None:
    for _ in range(rounds):
        x, y = a.data_to_send(), b.data_to_send()
        if not x and not y:
            return
        if x:
            b.receive_data(x, now)
        if y:
            a.receive_data(y, now)
    raise AssertionError("the sessions never went quiet")


def connect(a: MessageSession, b: MessageSession, now: float = 0.0) -> tuple[list, list]:
    a.attach(now)
    b.attach(now)
    pump(a, b, now)
    return a.events_received(), b.events_received()


def of(events: list, kind) -> list:
    return [e for e in events if isinstance(e, kind)]


def messages(events: list) -> list[tuple[int, bytes]]:
    return [(e.seq, e.data) for e in events if isinstance(e, MessageReceived)]


def frame(body: bytes) -> bytes:
    assert len(body) < 128
    return bytes((len(body),)) + body


def hello(sid=C_ID, your=ZERO, send_base=1, recv_next=1, flags=0, extra=b"", dicts=(), window_log=None, final=None):
    body = bytes((0x10 | flags, 1)) + sid + your + bytes((send_base, recv_next))
    if final is not None:
        body += bytes((final,))
    if window_log is not None:
        body += bytes((window_log,))
    body += bytes((len(dicts), *dicts)) + extra
    return frame(body)


# ------------------------------------------------------------------------------------- config


def test_protocol_id():
    assert PROTOCOL_ID == "/darkswap/msg/1.0.0"


def test_config_defaults():
    c = MessagingConfig()
    assert c.max_message_size == 4 * MIB
    assert c.batch_max_bytes == 64 * KIB and c.batch_delay == 0.005
    assert c.send_buffer_bytes == 8 * MIB and c.send_buffer_messages == 10_000
    assert c.ack_delay == 0.02 and c.ack_every == 64
    assert c.compress and c.compression_level == 3 and c.min_compress_size == 64
    assert c.give_up_after == 300.0
    assert dict(c.dictionaries) == {}
    hash(c)  # dictionaries are excluded from the hash


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_message_size": 0},
        {"batch_max_bytes": -1},
        {"ack_every": 0},
        {"send_buffer_messages": True},
        {"batch_delay": -0.1},
        {"ack_delay": float("inf")},
        {"give_up_after": 0},
        {"close_timeout": -1},
        {"max_message_size": 8 * MIB},  # > max_decompressed_frame - 9
        {"batch_max_bytes": 5 * MIB},  # > max_decompressed_frame
        {"max_frame_size": 4 * MIB + 4 * KIB},  # below the zstd bound of a full frame
        {"send_buffer_bytes": MIB},  # < max_message_size
        {"min_compress_size": -1},
        {"compression_level": 23},
        {"window_log": 16},
        {"max_window_log": 28},
        {"dictionaries": {0: b"x"}},
        {"dictionaries": {1 << 32: b"x"}},
        {"dictionaries": {1: b""}},
        {"dictionaries": {i: b"x" for i in range(1, 34)}},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ConfigError):
        MessagingConfig(**kwargs)


def test_config_dictionaries_are_frozen():
    source = {3: b"abc"}
    c = MessagingConfig(dictionaries=source)
    source[4] = b"def"
    assert dict(c.dictionaries) == {3: b"abc"}
    with pytest.raises(TypeError):
        c.dictionaries[5] = b"x"  # type: ignore[index]


def test_session_id_checks():
    with pytest.raises(ConfigError):
        MessageSession(now=0, session_id=b"short")
    with pytest.raises(ConfigError):
        MessageSession(now=0, session_id=ZERO)
    s = MessageSession(MessagingConfig(compress=False), now=0)
    assert len(s.session_id) == 16 and s.session_id != ZERO
    assert s.state is SessionState.OPEN and not s.is_attached and not s.is_connected


# ------------------------------------------------------------------------------- wire vectors


def test_hello_wire_vector():
    a = session(A_ID)
    a.attach(0)
    assert a.data_to_send() == h("25 10 01") + A_ID + ZERO + h("01 01 00")
    # compress=True without a backend (Pyodide before the WASM backend): no ZSTD flag, no dictionaries
    a = session(A_ID, backend=None, compress=True, dictionaries={1: b"d"})
    a.attach(0)
    assert a.data_to_send() == h("25 10 01") + A_ID + ZERO + h("01 01 00")


def test_hello_wire_vector_with_zstd_and_dictionaries():
    a = session(A_ID, backend=FakeZstd(), dictionaries={300: b"d300", 5: b"d5"}, max_window_log=23)
    a.attach(0)
    # flags ZSTD; max_window_log 23 (0x17); two dictionary ids, increasing: 5, 300 (0xac 0x02)
    assert a.data_to_send() == h("29 11 01") + A_ID + ZERO + h("01 01 17 02 05 ac02")
    # the default announces 2**20: a stranger makes us hold at most 1 MiB of zstd window
    b = session(B_ID, backend=FakeZstd())
    b.attach(0)
    assert b.data_to_send() == h("26 11 01") + B_ID + ZERO + h("01 01 14 00")


def test_data_ack_close_wire_vectors():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    assert a.send(b"hi", 0) == 1
    assert a.send(b"there", 0) == 2
    assert a.data_to_send() == b""  # batching: waits for the timer or flush()
    a.flush(0)
    data = a.data_to_send()
    assert data == h("0a 20 02") + b"hi" + h("05") + b"there"
    b.receive_data(data, 0)
    assert messages(b.events_received()) == [(1, b"hi"), (2, b"there")]
    # B answers before its delayed ACK is due: the ACK rides on its DATA frame
    b.send(b"ok", 0)
    b.flush(0)
    data = b.data_to_send()
    assert data == h("05 24 02 02") + b"ok"
    a.receive_data(data, 0)
    assert a.events_received() == [Acked(2), MessageReceived(1, b"ok")]
    assert a.next_deadline() == pytest.approx(0.02)
    a.handle_timeout(0.02)
    data = a.data_to_send()
    assert data == h("02 30 01")  # standalone ACK, delta 1
    b.receive_data(data, 0.02)
    assert b.events_received() == [Acked(1)]
    # graceful close: A's CLOSE(final 2); B closes too, both end
    a.close(0.03)
    data = a.data_to_send()
    assert data == h("02 40 02")
    b.receive_data(data, 0.03)
    assert b.events_received() == [SessionClosing(by_peer=True), SessionEnded(by_peer=True)]
    data = b.data_to_send()
    assert data == h("02 40 01")
    a.receive_data(data, 0.03)
    assert a.events_received() == [SessionClosing(by_peer=False), SessionEnded(by_peer=False)]
    assert a.state is b.state is SessionState.CLOSED


def test_abort_wire_vector():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"x", 0)
    a.close(0, abort=True)
    data = a.data_to_send()
    assert data.endswith(h("01 41"))
    (failed,) = a.events_received()
    assert isinstance(failed, SessionFailed) and failed.undelivered == range(1, 2)
    assert isinstance(failed.error, SessionClosed)
    b.receive_data(h("01 41"), 0)
    (failed,) = b.events_received()
    assert isinstance(failed, SessionFailed) and "aborted" in failed.reason
    assert b.state is SessionState.FAILED


def test_decoding_hand_made_frames():
    b = session(B_ID)
    b.attach(0)
    b.data_to_send()
    # a peer we never met, whose oldest unacked message is seq 5; trailing HELLO bytes are ignored
    b.receive_data(hello(send_base=5, extra=b"future"), 0)
    (resumed,) = b.events_received()
    assert resumed == SessionResumed(C_ID, 0, False, False, None)
    assert b.peer_session_id == C_ID and b.received_seq == 4
    b.receive_data(frame(h("20 01") + b"x" + h("02") + b"yz") + frame(h("20 00")), 0)
    assert b.events_received() == [MessageReceived(5, b"x"), MessageReceived(6, b"yz"), MessageReceived(7, b"")]
    b.handle_timeout(1)
    assert b.data_to_send() == h("02 30 03")


# ------------------------------------------------------------------------------------ batching


def test_batch_flushes_on_timer():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    for i in range(3):
        a.send(b"m%d" % i, 1.0)
    assert a.data_to_send() == b"" and a.queued_count == 3
    assert a.next_deadline() == pytest.approx(1.005)
    a.handle_timeout(1.004)
    assert a.data_to_send() == b""
    a.handle_timeout(1.005)
    data = a.data_to_send()
    assert data[1] == 0x20 and a.queued_count == 0 and a.stats.frames_out == 1
    b.receive_data(data, 1.005)
    assert [d for _, d in messages(b.events_received())] == [b"m0", b"m1", b"m2"]


def test_batch_flushes_on_size():
    a, b = session(A_ID, batch_max_bytes=1000), session(B_ID)
    connect(a, b)
    for _ in range(3):
        a.send(bytes(300), 0)
    assert a.data_to_send() == b""  # 906 payload bytes queued: below the batch size
    a.send(bytes(300), 0)  # 1208 >= 1000: one full frame (3 entries of 302 bytes) goes now
    assert a.stats.frames_out == 1 and a.stats.messages_out == 3 and a.queued_count == 1
    b.receive_data(a.data_to_send(), 0)
    assert len(messages(b.events_received())) == 3
    a.flush(0)
    b.receive_data(a.data_to_send(), 0)
    assert [s for s, _ in messages(b.events_received())] == [4]


def test_batch_delay_zero_frames_every_message():
    a, b = session(A_ID, batch_delay=0), session(B_ID)
    connect(a, b)
    for i in range(5):
        a.send(b"x%d" % i, 0)
    assert a.stats.frames_out == 5
    b.receive_data(a.data_to_send(), 0)
    assert len(messages(b.events_received())) == 5


def test_a_message_above_the_batch_size_gets_its_own_frame():
    a, b = session(A_ID, batch_max_bytes=100), session(B_ID)
    connect(a, b)
    a.send(b"small", 0)
    a.send(bytes(5000), 0)
    a.send(b"tail", 0)
    a.flush(0)
    assert a.stats.frames_out == 3
    b.receive_data(a.data_to_send(), 0)
    assert [len(d) for _, d in messages(b.events_received())] == [5, 5000, 4]


def test_messages_sent_before_the_transport_wait_for_the_handshake():
    a, b = session(A_ID), session(B_ID)
    a.send(b"early-1", 0)
    a.send(b"early-2", 0)
    assert a.next_deadline() == 300.0  # only the give-up timer: no batch timer without a transport
    a.attach(1)
    out = a.data_to_send()
    assert out[1] == 0x10 and len(out) == 38  # HELLO only: data waits for the peer's HELLO
    b.attach(1)
    b.receive_data(out, 1)
    pump(a, b, 1)
    assert messages(b.events_received()) == [(1, b"early-1"), (2, b"early-2")]
    assert of(a.events_received(), SessionResumed)[0].resent == 0


def test_flush_without_transport_is_a_no_op():
    a = session(A_ID)
    a.send(b"x", 0)
    a.flush(0)
    assert a.data_to_send() == b""
    a.attach(0)
    a.flush(0)
    assert a.data_to_send()[1] == 0x10


# -------------------------------------------------------------------------------- backpressure


def test_backpressure_by_count():
    a, b = session(A_ID, send_buffer_messages=3), session(B_ID)
    connect(a, b)
    for i in range(3):
        a.send(b"%d" % i, 0)
    assert not a.can_send(1)
    with pytest.raises(BufferFull) as info:
        a.send(b"3", 0)
    assert not isinstance(info.value, ProtocolError) and info.value.code == "BUFFER_FULL"
    assert a.unacked_count == 3 and a.next_seq == 4  # the refused message took no seq
    a.flush(0)
    b.receive_data(a.data_to_send(), 0)
    b.handle_timeout(1)
    a.receive_data(b.data_to_send(), 1)
    assert a.events_received() == [Acked(3), BufferSpace()]
    assert a.can_send(1) and a.send(b"3", 1) == 4
    # can_send() refusing arms BufferSpace as well
    a.send(b"4", 1)
    a.send(b"5", 1)
    assert not a.can_send(1)
    a.flush(1)
    b.receive_data(a.data_to_send(), 1)
    b.handle_timeout(2)
    a.receive_data(b.data_to_send(), 2)
    assert a.events_received() == [Acked(6), BufferSpace()]


def test_backpressure_by_bytes_and_memory_stays_bounded():
    a = session(
        A_ID, send_buffer_bytes=4 * MIB, max_message_size=MIB, max_decompressed_frame=MIB + 64, max_frame_size=2 * MIB
    )
    sent = 0
    with pytest.raises(BufferFull):
        for _ in range(10):
            a.send(bytes(MIB), 0)
            sent += 1
    assert sent == 4 and a.buffered_bytes == 4 * MIB
    assert a.can_send(0)  # an empty message still fits
    assert not a.can_send(1)


def test_oversized_message_is_limit_exceeded_not_buffer_full():
    a = session(
        A_ID,
        max_message_size=1000,
        max_decompressed_frame=2000,
        batch_max_bytes=1000,
        max_frame_size=compress_bound_plus(2000),
        send_buffer_bytes=5000,
    )
    with pytest.raises(MessageTooLarge) as info:
        a.send(bytes(1001), 0)
    assert not isinstance(info.value, (BufferFull, ProtocolError))  # our mistake, not the peer's
    assert a.send(bytes(1000), 0) == 1


def _acks_in(wire: bytes) -> int:
    """The messages acknowledged by the standalone ACK frames in ``wire`` (nothing else in it)."""
    from darkswap_wasm.wire import varint

    total = pos = 0
    while pos < len(wire):
        n, pos = varint.decode(wire, pos)
        assert wire[pos] == 0x30  # ACK
        total += varint.decode(wire[pos + 1 : pos + n], 0)[0]
        pos += n
    return total


def _acked_by(b: MessageSession, a: MessageSession) -> int:
    """Deliver b's output to a; a's acked seq afterwards."""
    a.receive_data(b.data_to_send(), 0)
    return a.acked_seq


def test_receive_budget_stops_decoding_and_acking_until_there_is_room():
    a, b = session(A_ID, send_buffer_bytes=16 * MIB), session(B_ID)
    connect(a, b)
    for i in range(10):
        a.send(bytes([i]) * MIB, 0)  # one DATA frame each (above batch_max_bytes)
    a.flush(0)
    wire = a.data_to_send()
    b.receive_data(wire, 0, max_payload=3 * MIB)  # the whole burst in one read, room for 3 MiB
    got = messages(b.events_received())
    assert [seq for seq, _ in got] == [1, 2, 3]  # stopped at the budget, at a frame boundary
    assert b.receive_blocked and b.received_seq == 3
    b.handle_timeout(1)
    assert _acked_by(b, a) == 3  # acked only what was delivered: the rest is not "stored"
    b.receive_data(b"", 1, max_payload=0)  # still no room: nothing happens
    assert b.events_received() == [] and b.receive_blocked
    b.receive_data(b"", 1, max_payload=1)  # some room: one more frame (the overshoot bound)
    assert [seq for seq, _ in messages(b.events_received())] == [4]
    b.receive_data(b"", 1, max_payload=None)
    rest = messages(b.events_received())
    assert [seq for seq, _ in rest] == list(range(5, 11)) and not b.receive_blocked
    assert [d for _, d in got + rest][-1] == bytes([9]) * MIB
    b.handle_timeout(2)
    assert _acked_by(b, a) == 10


def test_undecoded_input_is_resent_after_a_cut_nothing_lost_or_doubled():
    a, b = session(A_ID, send_buffer_bytes=16 * MIB), session(B_ID)
    connect(a, b)
    for i in range(6):
        a.send(bytes([i]) * MIB, 0)
    a.flush(0)
    b.receive_data(a.data_to_send(), 0, max_payload=2 * MIB)
    first = messages(b.events_received())
    assert len(first) == 2 and b.receive_blocked
    b.handle_timeout(1)
    a.receive_data(b.data_to_send(), 1)
    a.detach(1)  # the transport breaks while the rest waits undecoded
    b.detach(1)
    assert not b.receive_blocked
    _, eb = connect(a, b, 2)
    later = messages(eb)
    assert [seq for seq, _ in first + later] == list(range(1, 7))
    assert [d[0] for _, d in first + later] == list(range(6))


def test_bomb_of_1700_frames_each_inflating_to_4_mib_is_refused_at_the_budget(zstd_backend):
    # issue 12, attack 1: ~1,700 tiny zstd frames, each a 4 MiB message, fit in one stream read;
    # decoding them all took the relay from 67 MiB to 873 MiB RSS
    import tracemalloc

    attacker = session(A_ID, backend=zstd_backend, send_buffer_bytes=16 * MIB)
    victim = session(B_ID, backend=zstd_backend)
    connect(attacker, victim)
    message = bytes(4 * MIB - 16)
    frames = []
    for _ in range(3):
        attacker.send(message, 0)
        attacker.flush(0)
        frames.append(attacker.data_to_send())
    assert frames[1] == frames[2]  # a steady state: every later frame is these same bytes
    bomb = frames[0] + frames[1] * 1699
    assert len(bomb) < 300 * KIB and len(frames[1]) < 200  # one stream read's worth
    budget = 16 * MIB  # the inbox room the I/O layer passes (MessagingConfig.inbox_bytes_per_peer)
    tracemalloc.start()
    try:
        victim.receive_data(bomb, 0, max_payload=budget)
        events = victim.events_received()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    got = messages(events)
    delivered = sum(len(d) for _, d in got)
    assert 0 < delivered <= budget + victim.config.max_decompressed_frame  # not 1,700 x 4 MiB
    assert all(d == message for _, d in got)
    assert victim.receive_blocked and victim.state is SessionState.OPEN  # refused, not failed
    assert peak < budget + 4 * victim.config.max_decompressed_frame  # memory bounded by the budget
    victim.handle_timeout(1)
    assert _acks_in(victim.data_to_send()) == len(got)  # nothing acked that was not stored
    # once the application took them, decoding goes on from exactly where it stopped
    del events, got
    victim.receive_data(b"", 1, max_payload=budget)
    more = messages(victim.events_received())
    assert more and more[0][0] == victim.received_seq - len(more) + 1
    assert sum(len(d) for _, d in more) <= budget + victim.config.max_decompressed_frame


def compress_bound_plus(n: int) -> int:
    from darkswap_wasm.compression import compress_bound

    return compress_bound(n) + 64


# ---------------------------------------------------------------------------------------- acks


def test_acks_every_n_messages_immediately():
    a, b = session(A_ID, batch_delay=0), session(B_ID, ack_every=4)
    connect(a, b)
    for i in range(3):
        a.send(b"%d" % i, 0)
    b.receive_data(a.data_to_send(), 0)
    assert b.data_to_send() == b""  # 3 < ack_every: delayed
    assert b.next_deadline() == pytest.approx(0.02)
    a.send(b"3", 0)
    b.receive_data(a.data_to_send(), 0)
    assert b.data_to_send() == h("02 30 04")
    assert b.next_deadline() is None  # connected, nothing to ack, nothing queued


def test_delayed_ack_and_sender_release():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"x" * 100, 0)
    a.flush(0)
    b.receive_data(a.data_to_send(), 0.5)
    assert b.next_deadline() == pytest.approx(0.52)
    b.handle_timeout(0.519)
    assert b.data_to_send() == b""
    b.handle_timeout(0.52)
    a.receive_data(b.data_to_send(), 0.52)
    assert a.events_received() == [Acked(1)]
    assert a.unacked_count == 0 and a.buffered_bytes == 0 and a.acked_seq == 1


# -------------------------------------------------------------------------------------- resend


def test_resend_after_a_cut_mid_frame():
    a, b = session(A_ID, batch_delay=0), session(B_ID)
    connect(a, b)
    for i in range(1, 6):
        a.send(b"msg-%d" % i, 0)
    data = a.data_to_send()  # five frames of 8 bytes each
    b.receive_data(data[:20], 0)  # frames 1, 2 and half of 3 arrive; the rest is lost in the cut
    assert [s for s, _ in messages(b.events_received())] == [1, 2]
    a.detach(1)
    b.detach(1)
    a.send(b"msg-6", 1)  # while disconnected: queued
    ea, eb = connect(a, b, 2)
    assert of(ea, SessionResumed)[0].resent == 3  # 1..5 were unacked; B's HELLO acks 1..2
    assert Acked(2) in ea
    assert [s for s, _ in messages(eb)] == [3, 4, 5, 6]
    assert a.stats.resent_messages == 3 and a.stats.handshakes == 2


def test_delivered_but_unacked_messages_are_not_resent():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    for i in range(5):
        a.send(b"%d" % i, 0)
    a.flush(0)
    b.receive_data(a.data_to_send(), 0)
    assert len(messages(b.events_received())) == 5
    b.data_to_send()
    a.detach(0.01)  # B's delayed ACK never went out
    b.detach(0.01)
    ea, eb = connect(a, b, 1)
    assert Acked(5) in ea and a.unacked_count == 0
    assert of(ea, SessionResumed)[0].resent == 0
    assert messages(eb) == []


def test_reattach_without_detach_replaces_the_transport():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"lost", 0)
    a.flush(0)
    a.data_to_send()  # written to a transport that dies unnoticed
    ea, eb = connect(a, b, 1)  # attach() again: implicit detach of the old transport
    assert messages(eb) == [(1, b"lost")]


def test_peer_restart_gets_every_unacked_message_again():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"one", 0)
    a.flush(0)
    b.receive_data(a.data_to_send(), 0)
    b.handle_timeout(1)
    a.receive_data(b.data_to_send(), 1)  # acked 1
    a.send(b"two", 1)
    a.send(b"three", 1)
    a.flush(1)
    a.data_to_send()  # lost: B crashes
    a.detach(2)
    b2 = session(b"D" * 16)  # B restarted: a new session, nothing known
    b2.send(b"hello again", 2)
    ea, eb = connect(a, b2, 3)
    resumed = of(ea, SessionResumed)[0]
    assert resumed.peer_restarted and resumed.peer_session_id == b"D" * 16 and resumed.resent == 2
    assert messages(eb) == [(2, b"two"), (3, b"three")]  # B2 adopts A's send_base
    assert messages(ea) == [(1, b"hello again")]


def test_we_restart_and_the_peer_adopts_our_new_numbering():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    for i in range(3):
        a.send(b"%d" % i, 0)
    a.flush(0)
    pump(a, b, 0)
    b.handle_timeout(1)
    pump(a, b, 1)
    b.events_received()
    a2 = session(b"E" * 16)
    a2.send(b"fresh", 2)
    b.detach(2)
    ea, eb = connect(a2, b, 3)
    assert of(eb, SessionResumed)[0].peer_restarted
    assert messages(eb) == [(1, b"fresh")]


def test_hello_lost_on_one_side_still_resumes_consistently():
    a, b = session(A_ID), session(B_ID)
    a.attach(0)
    b.attach(0)
    b.receive_data(a.data_to_send(), 0)  # A's HELLO arrives, B's is lost in a cut
    b.data_to_send()
    a.send(b"x", 0)
    b.send(b"y", 0)
    b.flush(0)
    b.data_to_send()  # lost
    a.detach(1)
    b.detach(1)
    ea, eb = connect(a, b, 2)  # A adopts B's send_base; B resends from it, as A never knew B
    assert messages(eb) == [(1, b"x")] and messages(ea) == [(1, b"y")]
    assert of(ea, SessionResumed)[0].peer_restarted is False


# ------------------------------------------------------------------------------ give-up, close


def test_give_up_without_transport():
    a = session(A_ID, give_up_after=10)
    a.send(b"1", 0)
    a.send(b"2", 0)
    assert a.next_deadline() == 10
    a.handle_timeout(9.9)
    assert a.events_received() == []
    a.handle_timeout(10)
    (failed,) = a.events_received()
    assert isinstance(failed, SessionFailed) and isinstance(failed.error, PeerUnreachable)
    assert failed.undelivered == range(1, 3)
    assert a.state is SessionState.FAILED and a.next_deadline() is None and a.unacked_count == 0
    with pytest.raises(SessionClosed):
        a.send(b"3", 11)
    with pytest.raises(SessionClosed):
        a.attach(11)


def test_give_up_clock_stops_while_connected_and_restarts_on_detach():
    a, b = session(A_ID, give_up_after=10), session(B_ID)
    a.attach(5)
    assert a.next_deadline() == 10  # attached but not handshaken: the clock still runs
    b.attach(5)
    pump(a, b, 5)
    assert a.next_deadline() is None
    a.handle_timeout(100)
    assert a.state is SessionState.OPEN
    a.detach(100)
    assert a.next_deadline() == 110


def test_close_delivers_queued_messages_first():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"last words", 0)
    a.close(0)
    with pytest.raises(SessionClosed):
        a.send(b"too late", 0)
    pump(a, b, 0)
    eb = b.events_received()
    assert messages(eb) == [(1, b"last words")]
    assert eb[-1] == SessionEnded(by_peer=True)
    assert a.events_received()[-1] == SessionEnded(by_peer=False)


def test_peer_close_lets_our_queued_messages_finish():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    b.send(b"b1", 0)
    b.send(b"b2", 0)  # queued in B's batch when A's CLOSE arrives
    a.close(0)
    b.receive_data(a.data_to_send(), 0)
    assert b.state is SessionState.CLOSING
    with pytest.raises(SessionClosed):
        b.send(b"b3", 0)
    pump(a, b, 0)
    assert messages(a.events_received()) == [(1, b"b1"), (2, b"b2")]
    assert a.state is b.state is SessionState.CLOSED


def test_close_without_transport_and_nothing_pending_is_immediate():
    a = session(A_ID)
    a.close(0)
    assert a.events_received() == [SessionEnded(by_peer=False)]
    a.close(1)  # idempotent
    assert a.events_received() == []


def test_close_timeout():
    a = session(A_ID, close_timeout=5)
    a.send(b"x", 0)
    a.close(1)
    assert a.next_deadline() == 6
    a.handle_timeout(6)
    events = a.events_received()
    assert events[0] == SessionClosing(by_peer=False)
    assert isinstance(events[1], SessionFailed) and isinstance(events[1].error, Timeout)
    assert events[1].undelivered == range(1, 2)


def test_close_across_a_reconnect_uses_hello_closing():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"x", 0)
    a.detach(0)
    b.detach(0)
    a.close(1)  # no transport, message pending: linger
    assert a.state is SessionState.CLOSING
    a.attach(2)
    out = a.data_to_send()
    assert out[1] == 0x12  # HELLO with CLOSING
    b.attach(2)
    b.receive_data(out, 2)
    pump(a, b, 2)
    assert messages(b.events_received())[-1] == (1, b"x")
    assert a.state is b.state is SessionState.CLOSED


# ------------------------------------------------------------------------------------- limits


def _connected_b(**config) -> MessageSession:
    b = session(B_ID, **config)
    b.attach(0)
    b.data_to_send()
    b.receive_data(hello(), 0)
    b.events_received()
    return b


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (frame(h("20") + b"x"), ProtocolError),  # DATA before HELLO
        (frame(h("30 01")), ProtocolError),  # ACK before HELLO
        (h("00"), DecodeError),  # empty frame
        (frame(h("50")), DecodeError),  # unknown type
        (hello(flags=0x4), DecodeError),  # unknown HELLO flag
        (frame(h("1002")) + A_ID + ZERO + h("010100"), ProtocolError),  # version 2
        (hello(sid=ZERO), DecodeError),
        (hello(send_base=0), DecodeError),
        (frame(h("1001") + C_ID), DecodeError),  # truncated HELLO
        (hello(dicts=(5, 5)), DecodeError),  # ids must increase
        (hello(flags=0x1, window_log=16), DecodeError),  # window below 128 KiB
        (hello(flags=0x1, window_log=28), DecodeError),
        (frame(h("21 00") + b"\x05" * 3), ProtocolError),  # pre-HELLO anyway
        (b"\xff" * 10, DecodeError),  # overlong varint length
    ],
)
def test_bad_input_before_the_handshake(data, error):
    b = session(B_ID)
    b.attach(0)
    b.data_to_send()
    with pytest.raises(error):
        b.receive_data(data, 0)
    assert b.state is SessionState.FAILED
    assert b.data_to_send() == h("01 41")  # CLOSE+ABORT
    (failed,) = b.events_received()
    assert isinstance(failed, SessionFailed) and isinstance(failed.error, error)
    b.receive_data(hello(), 0)  # ignored from now on


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (hello(), ProtocolError),  # second HELLO
        (frame(h("20")), DecodeError),  # DATA without messages
        (frame(h("23") + b"\x01x"), DecodeError),  # encoding 3
        (frame(h("28") + b"\x01x"), DecodeError),  # unknown DATA flag
        (frame(h("20 05") + b"abc"), DecodeError),  # truncated message
        (frame(h("24 00 01") + b"x"), DecodeError),  # zero ack delta
        (frame(h("24 01 01") + b"x"), ProtocolError),  # ack for a message never sent
        (frame(h("30 01")), ProtocolError),  # same, standalone
        (frame(h("30 00")), DecodeError),
        (frame(h("30 01 00")), DecodeError),  # trailing byte
        (frame(h("31 01")), DecodeError),  # ACK flags
        (frame(h("21") + b"\x28\xb5\x2f\xfd"), ProtocolError),  # ZSTD although we did not announce it
        (frame(h("22") + b"\x01x"), ProtocolError),  # STORED, same
        (frame(h("42 00")), DecodeError),  # CLOSE flags
        (frame(h("41 00")), DecodeError),  # ABORT carries no fields
        (frame(h("40")), DecodeError),  # CLOSE without final_seq
        (frame(h("20 ffffffff0f")), LimitExceeded),  # message length beyond the limit
        (h("e08004") + h("20"), LimitExceeded),  # frame length 65632 > max_frame_size
    ],
)
def test_bad_input_after_the_handshake(data, error):
    b = _connected_b(
        max_message_size=1000,
        max_decompressed_frame=2000,
        batch_max_bytes=1000,
        max_frame_size=compress_bound_plus(2000),
        send_buffer_bytes=5000,
    )
    with pytest.raises(error):
        b.receive_data(data, 0)
    assert b.state is SessionState.FAILED
    assert b.data_to_send().endswith(h("01 41"))
    assert isinstance(b.events_received()[-1], SessionFailed)


def test_data_after_the_peers_final_seq_is_rejected():
    b = _connected_b()
    b.send(b"mine", 0)  # unacked: B cannot finish yet
    b.receive_data(frame(h("20 01") + b"x") + frame(h("40 01")), 0)
    assert messages(b.events_received()) == [(1, b"x")]
    with pytest.raises(ProtocolError):
        b.receive_data(frame(h("20 01") + b"y"), 0)


def test_close_contradicting_delivery_is_rejected():
    b = _connected_b()
    b.receive_data(frame(h("20 01") + b"x" + h("01") + b"y"), 0)
    with pytest.raises(ProtocolError):
        b.receive_data(frame(h("40 01")), 0)  # final 1 < 2 delivered


def test_hello_contradicting_our_state_is_rejected():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"x", 0)
    a.flush(0)
    b.receive_data(a.data_to_send(), 0)
    b.detach(1)
    b.attach(1)
    b.data_to_send()
    # A's id again, but claiming its oldest unacked message is 5: it dropped 2..4 we never got
    with pytest.raises(ProtocolError):
        b.receive_data(hello(sid=A_ID, your=B_ID, send_base=5), 1)
    a2, b2 = session(A_ID), session(B_ID)
    connect(a2, b2)
    a2.detach(1)
    a2.attach(1)
    a2.data_to_send()
    with pytest.raises(ProtocolError):  # B claims to expect seq 9 from us: we never sent 1..8
        a2.receive_data(hello(sid=B_ID, your=A_ID, recv_next=9), 1)


def test_input_while_detached_or_ended_is_ignored():
    b = session(B_ID)
    b.receive_data(b"garbage", 0)  # not attached
    assert b.events_received() == [] and b.stats.wire_bytes_in == 0


# ---------------------------------------------------------------- compression negotiation (fake)


def test_dictionary_negotiation_picks_the_highest_common_id():
    fa, fb = FakeZstd(), FakeZstd()
    a = session(A_ID, backend=fa, dictionaries={1: b"one", 5: b"five", 9: b"nine"})
    b = session(B_ID, backend=fb, dictionaries={5: b"five", 9: b"nine", 12: b"twelve"})
    ea, eb = connect(a, b)
    assert of(ea, SessionResumed)[0].dictionary_id == 9 == of(eb, SessionResumed)[0].dictionary_id
    assert a.compressing and b.compressing and a.dictionary_id == 9
    assert fa.made == [("c", 19, b"nine")]
    for i in range(3):
        a.send(b"order %d " % i * 10, 0)
    a.flush(0)
    pump(a, b, 0)
    assert len(messages(b.events_received())) == 3
    assert fb.made[-1] == ("d", 20, b"nine")  # MessagingConfig.max_window_log


def test_no_common_dictionary_and_window_is_lowered_to_the_peers_max():
    fa, fb = FakeZstd(), FakeZstd()
    a = session(A_ID, backend=fa, dictionaries={1: b"one"}, window_log=22)
    b = session(B_ID, backend=fb, dictionaries={2: b"two"}, max_window_log=20)
    ea, _ = connect(a, b)
    assert of(ea, SessionResumed)[0] == SessionResumed(B_ID, 0, False, True, None)
    assert fa.made == [("c", 20, None)]


def test_a_side_without_compression_gets_plain_frames():
    fa = FakeZstd()
    a = session(A_ID, backend=fa)
    b = session(B_ID)  # compress=False: announces no zstd
    connect(a, b)
    assert not a.compressing and fa.made == []
    a.send(b"z" * 500, 0)
    a.flush(0)
    pump(a, b, 0)
    assert messages(b.events_received()) == [(1, b"z" * 500)]


def test_compressed_and_stored_frames_through_sessions():
    a = session(A_ID, backend=FakeZstd(), min_compress_size=8)
    b = session(B_ID, backend=FakeZstd())
    connect(a, b)
    sent = [b"tiny", b"the first fed frame", b"mixed content %d" % 7, b"b" * 300]
    for m in sent:
        a.send(m, 0)
        a.flush(0)
    pump(a, b, 0)
    assert [d for _, d in messages(b.events_received())] == sent
    st_ = a.stats
    # "tiny" is PLAIN (below min_compress_size); the first fed frame is ZSTD (it carries the zstd
    # frame header); "mixed" does not shrink: STORED; the RLE one shrinks: ZSTD
    assert st_.frames_out == 4 and st_.compressed_frames_out == 2 and st_.stored_frames_out == 1
    assert st_.wire_bytes_out < sum(map(len, sent))


def test_fresh_compression_context_per_transport():
    fa, fb = FakeZstd(), FakeZstd()
    a, b = session(A_ID, backend=fa), session(B_ID, backend=fb)
    connect(a, b)
    a.send(b"q" * 100, 0)
    a.flush(0)
    pump(a, b, 0)
    assert messages(b.events_received()) == [(1, b"q" * 100)]
    a.detach(1)
    b.detach(1)
    connect(a, b, 2)
    a.send(b"r" * 100, 2)
    a.flush(2)
    pump(a, b, 2)
    assert messages(b.events_received()) == [(2, b"r" * 100)]
    assert [m[0] for m in fa.made] == ["c", "c"]  # a new compressor per transport...
    assert [m[0] for m in fb.made if m[0] == "d"] == ["d", "d"]  # ...and a new decompressor


def test_decompressed_frame_cap_applies():
    b = session(
        B_ID,
        backend=FakeZstd(),
        max_message_size=1000,
        max_decompressed_frame=2000,
        batch_max_bytes=1000,
        max_frame_size=compress_bound_plus(2000),
        send_buffer_bytes=5000,
    )
    b.attach(0)
    b.data_to_send()
    b.receive_data(hello(flags=0x1, window_log=20), 0)
    bomb = frame_header(None) + ((100_000 << 3) | 2).to_bytes(3, "little") + b"\x00"  # RLE: 100 kB of zeros
    with pytest.raises(LimitExceeded):
        b.receive_data(frame(h("21") + bomb), 0)
    assert b.state is SessionState.FAILED


# -------------------------------------------------------------------------------- stats, misc


def test_stats_and_properties():
    a, b = session(A_ID), session(B_ID)
    connect(a, b)
    a.send(b"12345", 0)
    a.send(b"678", 0)
    a.flush(0)
    pump(a, b, 0)
    st_a, st_b = a.stats, b.stats
    assert isinstance(st_a, SessionStats)
    assert (st_a.messages_out, st_a.payload_bytes_out, st_a.frames_out) == (2, 8, 1)
    assert st_a.wire_bytes_out == 38 + 12  # HELLO + one DATA frame
    assert (st_b.messages_in, st_b.payload_bytes_in, st_b.frames_in) == (2, 8, 1)
    assert st_b.wire_bytes_in == st_a.wire_bytes_out
    assert a.unacked_count == 2 and a.buffered_bytes == 8 and b.received_seq == 2


# --------------------------------------------------------------- lossy transport, property test


class LossyLink:
    """Two sessions over a transport that may be cut at any point: bytes in flight at the cut are
    delivered up to a random prefix, the rest is lost; no reordering."""

    def __init__(self, a: MessageSession, b: MessageSession) -> None:
        self.a, self.b = a, b
        self.ab = bytearray()
        self.ba = bytearray()
        self.up = False
        self.now = 0.0
        self.sent: dict[str, list[bytes]] = {"a": [], "b": []}
        self.got: dict[str, list[tuple[int, bytes]]] = {"a": [], "b": []}

    def collect(self) -> None:
        for name, s, pipe in (("a", self.a, self.ab), ("b", self.b, self.ba)):
            data = s.data_to_send()
            if self.up:
                pipe += data
            for e in s.events_received():
                if isinstance(e, MessageReceived):
                    self.got[name].append((e.seq, e.data))
                elif isinstance(e, SessionFailed):
                    raise AssertionError(f"session {name} failed: {e}")

    def deliver(self, ab: bool, n: int) -> None:
        pipe, dst = (self.ab, self.b) if ab else (self.ba, self.a)
        chunk = bytes(pipe[:n])
        del pipe[:n]
        if chunk:
            dst.receive_data(chunk, self.now)
        self.collect()

    def cut(self, keep_ab: int, keep_ba: int) -> None:
        if self.up:
            self.deliver(True, keep_ab)
            self.deliver(False, keep_ba)
        self.ab.clear()
        self.ba.clear()
        self.up = False
        self.a.detach(self.now)
        self.b.detach(self.now)
        self.collect()

    def reconnect(self) -> None:
        self.cut(0, 0)
        self.up = True
        self.a.attach(self.now)
        self.b.attach(self.now)
        self.collect()

    def send(self, side: str, data: bytes) -> None:
        s = self.a if side == "a" else self.b
        try:
            s.send(data, self.now)
        except BufferFull:
            return
        self.sent[side].append(data)
        self.collect()

    def tick(self, dt: float) -> None:
        self.now += dt
        self.a.handle_timeout(self.now)
        self.b.handle_timeout(self.now)
        self.collect()

    def settle(self) -> None:
        if not self.up:
            self.reconnect()
        for _ in range(1000):
            self.a.flush(self.now)
            self.b.flush(self.now)
            self.collect()
            if not self.ab and not self.ba:
                self.tick(1.0)
                if not self.ab and not self.ba:
                    return
            self.deliver(True, len(self.ab))
            self.deliver(False, len(self.ba))
        raise AssertionError("never settled")

    def check(self) -> None:
        for side, other in (("a", "b"), ("b", "a")):
            got = self.got[other]
            assert [s for s, _ in got] == list(range(1, len(got) + 1)), "each seq once, in order"
            assert [d for _, d in got] == self.sent[side]
        assert self.a.unacked_count == 0 and self.b.unacked_count == 0


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from("ab"), st.integers(0, 400)),
        st.tuples(st.just("flush"), st.sampled_from("ab"), st.just(0)),
        st.tuples(st.just("deliver"), st.booleans(), st.integers(0, 300)),
        st.tuples(st.just("cut"), st.integers(0, 200), st.integers(0, 200)),
        st.tuples(st.just("reconnect"), st.just(0), st.just(0)),
        st.tuples(st.just("tick"), st.sampled_from([0.001, 0.004, 0.02, 0.5]), st.just(0)),
    ),
    min_size=10,
    max_size=150,
)
PROPERTY = settings(
    max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def run_lossy(ops, make_backend=None) -> LossyLink:
    def make(sid):
        backend = make_backend() if make_backend else None
        return session(
            sid,
            backend=backend,
            batch_max_bytes=300,
            ack_every=3,
            send_buffer_messages=12,
            give_up_after=1e9,
            min_compress_size=16,
        )

    link = LossyLink(make(A_ID), make(B_ID))
    rng = random.Random(len(ops))
    link.reconnect()
    counter = 0
    for op, x, y in ops:
        if op == "send":
            counter += 1
            body = (b"%s-%d|" % (x.encode(), counter)) + bytes(rng.choice(b"abc") for _ in range(y))
            link.send(x, body)
        elif op == "flush":
            (link.a if x == "a" else link.b).flush(link.now)
            link.collect()
        elif op == "deliver":
            if link.up:
                link.deliver(x, y)
        elif op == "cut":
            link.cut(x, y)
        elif op == "reconnect":
            link.reconnect()
        else:
            link.tick(x)
    link.settle()
    link.check()
    return link


@given(OPS)
@PROPERTY
def test_property_lossy_transport_exactly_once_in_order(ops):
    run_lossy(ops)


@given(OPS)
@PROPERTY
def test_property_lossy_transport_with_compression_contexts(ops):
    run_lossy(ops, FakeZstd)


def test_lossy_transport_long_random_run():
    rng = random.Random(2024)
    ops = []
    for _ in range(3000):
        r = rng.random()
        if r < 0.45:
            ops.append(("send", rng.choice("ab"), rng.randint(0, 300)))
        elif r < 0.75:
            ops.append(("deliver", rng.random() < 0.5, rng.randint(0, 400)))
        elif r < 0.80:
            ops.append(("cut", rng.randint(0, 300), rng.randint(0, 300)))
        elif r < 0.83:
            ops.append(("reconnect", 0, 0))
        elif r < 0.90:
            ops.append(("flush", rng.choice("ab"), 0))
        else:
            ops.append(("tick", rng.choice([0.001, 0.004, 0.02]), 0))
    link = run_lossy(ops, FakeZstd)
    assert len(link.sent["a"]) > 100 and len(link.sent["b"]) > 100
    assert link.a.stats.handshakes > 50 and link.a.stats.resent_messages > 100
    assert link.a.stats.stored_frames_out > 100 and link.a.stats.compressed_frames_out > 50


# ------------------------------------------------------------------------------------------ fuzz

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True)


@given(st.binary(max_size=200))
@FUZZ
def test_fuzz_random_bytes_into_a_fresh_session(data):
    b = session(B_ID)
    b.attach(0)
    try:
        b.receive_data(data, 0)
    except DarkSwapError:
        assert b.state is SessionState.FAILED


@given(st.binary(max_size=200), st.booleans())
@FUZZ
def test_fuzz_random_bytes_after_a_valid_hello(data, zstd_flag):
    backend = FakeZstd() if zstd_flag else None
    b = session(B_ID, backend=backend)
    b.attach(0)
    b.receive_data(hello(flags=0x1, window_log=20) if zstd_flag else hello(), 0)
    try:
        b.receive_data(data, 0)
        b.handle_timeout(1)
    except DarkSwapError:
        pass


def _recorded_stream(make_backend) -> bytes:
    a = session(A_ID, backend=make_backend() if make_backend else None, batch_max_bytes=200, min_compress_size=8)
    b = session(B_ID, backend=make_backend() if make_backend else None)
    a.attach(0)
    b.attach(0)
    recorded = bytearray()
    rng = random.Random(1)
    for i in range(40):
        a.send(b"order-%d " % i + bytes(rng.choice(b"xy") for _ in range(rng.randint(0, 120))), 0)
        if i % 5 == 0:
            a.flush(0)
        out = a.data_to_send()
        recorded += out
        b.receive_data(out, 0)
        a.receive_data(b.data_to_send(), 0)
    a.flush(0)
    recorded += a.data_to_send()
    return bytes(recorded)


@pytest.mark.parametrize("with_backend", [False, True])
@given(data=st.data())
@FUZZ
def test_fuzz_mutated_valid_streams(with_backend, data):
    stream = _recorded_stream(FakeZstd if with_backend else None)
    mutated = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    b = session(B_ID, backend=FakeZstd() if with_backend else None)
    b.attach(0)
    try:
        split = data.draw(st.integers(0, len(mutated)))
        b.receive_data(bytes(mutated[:split]), 0)
        b.receive_data(bytes(mutated[split:]), 0)
    except DarkSwapError:
        pass


# ---------------------------------------------------- the interpreter's zstd (compression.zstd)


@pytest.fixture
def zstd_backend():
    # a dependency (backports.zstd) below Python 3.14, the standard library above and in Pyodide: fail if missing
    from darkswap_wasm.compression.zstd_backend import ZstdBackend

    return ZstdBackend()


def _orders(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    makers = [f"12D3KooW{rng.getrandbits(260):066x}"[:52] for _ in range(20)]
    pairs = ["BTC/RUNE:840000:3", "BTC/RUNE:840000:28", "BTC/ALKANE:2:16", "BTC/RUNE:845764:84"]
    return [
        (
            f'{{"type":"order","id":"{rng.getrandbits(128):032x}","maker":"{rng.choice(makers)}",'
            f'"side":"{rng.choice(["buy", "sell"])}","pair":"{rng.choice(pairs)}",'
            f'"amount":"{rng.choice([10, 100, 1000])}","price":"{rng.uniform(1, 5000):.8f}",'
            f'"expiry":{1718003600 + i},"ts":{1718000000 + i}}}'
        ).encode()
        for i in range(n)
    ]


def test_default_session_uses_the_process_backend(zstd_backend):
    a = MessageSession(now=0, session_id=A_ID)
    b = MessageSession(now=0, session_id=B_ID)
    ea, _ = connect(a, b)
    assert of(ea, SessionResumed)[0].compressing and a.compressing


def test_zstd_session_round_trip_later_frames_smaller(zstd_backend):
    a = session(A_ID, backend=zstd_backend)
    b = session(B_ID, backend=zstd_backend)
    connect(a, b)
    orders = _orders(300, seed=1)
    sizes = []
    for order in orders:
        a.send(order, 0)
        a.flush(0)
        out = a.data_to_send()
        sizes.append(len(out))
        b.receive_data(out, 0)
    assert [d for _, d in messages(b.events_received())] == orders
    assert a.stats.compressed_frames_out == 300
    payload = sum(map(len, orders))
    assert sum(sizes[200:]) / 100 < 0.5 * sizes[0]  # the context carries across frames
    assert sum(sizes) < 0.45 * payload


def test_zstd_session_dictionary_negotiation_and_gain(zstd_backend):
    from darkswap_wasm.compression.zstd_backend import zstd

    trained = zstd.train_dict(_orders(3000, seed=2), 8 * KIB).dict_content
    orders = _orders(50, seed=3)

    def first_frames(dicts_a, dicts_b):
        a = session(A_ID, backend=zstd_backend, dictionaries=dicts_a)
        b = session(B_ID, backend=zstd_backend, dictionaries=dicts_b)
        ea, _ = connect(a, b)
        sizes = []
        for order in orders[:5]:
            a.send(order, 0)
            a.flush(0)
            out = a.data_to_send()
            sizes.append(len(out))
            b.receive_data(out, 0)
        assert [d for _, d in messages(b.events_received())] == orders[:5]
        return of(ea, SessionResumed)[0].dictionary_id, sizes

    dict_id, with_dict = first_frames({7: trained, 3: b"other"}, {7: trained, 9: b"more"})
    no_id, without = first_frames({7: trained}, {})
    assert dict_id == 7 and no_id is None
    assert with_dict[0] < 0.5 * without[0]  # the first frame has no history but the dictionary
    assert sum(with_dict) < 0.8 * sum(without)


def test_zstd_incompressible_frames_go_stored_and_the_stream_stays_in_sync(zstd_backend):
    a = session(A_ID, backend=zstd_backend)
    b = session(B_ID, backend=zstd_backend)
    connect(a, b)
    blob = os.urandom(200 * KIB)
    sent = [_orders(1, 4)[0], blob, b"json again " * 20, blob[5000:150_000]]
    for m in sent:
        a.send(m, 0)
        a.flush(0)
    out = a.data_to_send()
    b.receive_data(out, 0)
    assert [d for _, d in messages(b.events_received())] == sent
    assert a.stats.stored_frames_out == 1  # the random blob went as it is...
    assert len(out) < len(blob) + 2000  # ...and its later slice referenced the context


def test_zstd_zip_bomb_frame_is_rejected(zstd_backend):
    from darkswap_wasm.compression.zstd_backend import zstd

    entry = b"\xff\xff\xff\x01"  # a 4 MiB - 1 message... followed by 60 MiB of zeros
    cobj = zstd.ZstdCompressor(level=3)  # a 2 MiB window: level 3's for large inputs
    bomb = cobj.compress(entry) + b"".join(cobj.compress(bytes(MIB)) for _ in range(60))
    bomb += cobj.flush(zstd.ZstdCompressor.FLUSH_BLOCK)
    assert len(bomb) < 64 * KIB
    for max_window_log, error in ((23, LimitExceeded), (20, CompressionError)):
        # with room for its window, the output cap stops it; by default its window is refused first
        b = session(B_ID, backend=zstd_backend, max_window_log=max_window_log)
        b.attach(0)
        b.data_to_send()
        b.receive_data(hello(flags=0x1, window_log=20), 0)
        with pytest.raises(error):
            b.receive_data(frame_long(h("21") + bomb), 0)
        assert b.state is SessionState.FAILED


def frame_long(body: bytes) -> bytes:
    from darkswap_wasm.wire import varint

    return varint.encode(len(body)) + body


NATIVE_PROPERTY = settings(PROPERTY, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@given(ops=OPS)
@NATIVE_PROPERTY
def test_property_lossy_transport_with_real_zstd(zstd_backend, ops):
    run_lossy(ops, lambda: zstd_backend)  # the backend object is stateless: one per test is fine


@given(data=st.data())
@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_mutated_zstd_streams(zstd_backend, data):
    stream = _recorded_stream(lambda: zstd_backend)
    mutated = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    b = session(B_ID, backend=zstd_backend)
    b.attach(0)
    try:
        b.receive_data(bytes(mutated), 0)
    except DarkSwapError:
        pass
