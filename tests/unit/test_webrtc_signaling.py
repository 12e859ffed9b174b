"""``/webrtc-signaling/0.0.1``: message vectors, candidate JSON, dialer/listener sequencing, fuzz.

The ``JS_*`` vectors come from js-libp2p's encoder path: the protons codec ``@libp2p/webrtc``
6.0.x generates from ``src/private-to-private/pb/message.proto`` plus ``it-length-prefixed``
``encode.single`` (run from ``tests/interop/js/node_modules``); ``JS_CANDIDATE_JSON`` is
``JSON.stringify`` of an ``RTCIceCandidate.toJSON()``-shaped object.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import (
    ConfigError,
    DarkSwapError,
    DecodeError,
    LimitExceeded,
    MessageTooLarge,
    ProtocolError,
    Timeout,
    UsageError,
)
from darkswap_wasm.protocols.webrtc_signaling import (
    PROTOCOL_ID,
    AnswerReceived,
    MessageType,
    OfferReceived,
    RemoteCandidate,
    RemoteEnded,
    SignalingConfig,
    SignalingDialer,
    SignalingListener,
    SignalingMessage,
    SignalingMessageDecoder,
    SignalingState,
    candidate_address,
    candidate_from_json,
    candidate_to_json,
    encode_signaling_message,
    is_end_of_candidates,
    is_mdns_candidate,
    strip_mdns_candidates,
    strip_mdns_from_sdp,
)

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)

SDP = "v=0\r\n"
# 09 = length; 08 00 = type SDP_OFFER (written although 0); 12 05 = data, 5 bytes "v=0\r\n"
JS_OFFER = bytes.fromhex("09 0800 1205 763d300d0a")
JS_ANSWER = bytes.fromhex("09 0801 1205 763d300d0a")
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "abcd",
}
JS_CANDIDATE_JSON = (
    '{"candidate":"candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host",'
    '"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}'
)
JS_CANDIDATE = bytes.fromhex(
    "850108021280017b2263616e646964617465223a2263616e6469646174653a312031207564702032313232323630"
    "323233203139322e3136382e312e322035343332312074797020686f7374222c227364704d6964223a2230222c22"
    "7364704d4c696e65496e646578223a302c22757365726e616d65467261676d656e74223a2261626364227d"
)
# js < 6 (before Sept 2025) end-of-candidates: data = JSON.stringify(null)
END_OF_CANDIDATES = bytes.fromhex("08 0802 1204") + b"null"
MDNS = dict(
    CANDIDATE, candidate="candidate:2 1 udp 2122260223 0b7a7ea4-1c2d-4e5f-8a9b-123456789abc.local 6000 typ host"
)


def frame(msg_type, data) -> bytes:
    return SignalingMessage(msg_type, data).encode()


def handshake(now: float = 0.0, config: SignalingConfig | None = None):
    d = SignalingDialer(config, now=now)
    lst = SignalingListener(config, now=now)
    assert lst.receive_data(d.offer(SDP)) == [OfferReceived(SDP)]
    assert d.receive_data(lst.answer("answer-sdp")) == [AnswerReceived("answer-sdp")]
    return d, lst


# ------------------------------------------------------------------------------ vectors


def test_protocol_id():
    assert PROTOCOL_ID == "/webrtc-signaling/0.0.1"


def test_message_vectors():
    assert encode_signaling_message(MessageType.SDP_OFFER, SDP) == JS_OFFER
    assert encode_signaling_message(MessageType.SDP_ANSWER, SDP) == JS_ANSWER
    assert candidate_to_json(CANDIDATE) == JS_CANDIDATE_JSON
    assert encode_signaling_message(MessageType.ICE_CANDIDATE, JS_CANDIDATE_JSON) == JS_CANDIDATE
    assert SignalingMessage.from_protobuf(JS_OFFER[1:]) == SignalingMessage(MessageType.SDP_OFFER, SDP)
    assert SignalingMessageDecoder().feed(JS_CANDIDATE + JS_ANSWER) == [
        SignalingMessage(MessageType.ICE_CANDIDATE, JS_CANDIDATE_JSON),
        SignalingMessage(MessageType.SDP_ANSWER, SDP),
    ]


def test_decode_edge_cases():
    assert SignalingMessage.from_protobuf(b"") == SignalingMessage(None, None)
    assert SignalingMessage.from_protobuf(bytes.fromhex("0802")) == SignalingMessage(MessageType.ICE_CANDIDATE)
    with pytest.raises(DecodeError):
        SignalingMessage.from_protobuf(bytes.fromhex("0803"))  # unknown type: js throws too
    with pytest.raises(DecodeError):
        SignalingMessage.from_protobuf(bytes.fromhex("120280ff"))  # invalid UTF-8
    dec = SignalingMessageDecoder(100)
    with pytest.raises(LimitExceeded):
        dec.feed(bytes.fromhex("65"))  # 101 bytes announced
    dec = SignalingMessageDecoder()
    dec.feed(JS_OFFER[:4])
    with pytest.raises(DecodeError):
        dec.end_of_stream()


def test_local_message_size_limit():
    with pytest.raises(MessageTooLarge):
        encode_signaling_message(MessageType.SDP_OFFER, "x" * (64 * 1024))
    d = SignalingDialer(SignalingConfig(max_message_size=100), now=0.0)
    with pytest.raises(MessageTooLarge):
        d.offer("x" * 200)
    assert d.state is SignalingState.NEW  # nothing was sent


# ------------------------------------------------------------------------------ candidates


def test_candidate_json_round_trip_and_end_markers():
    assert candidate_from_json(JS_CANDIDATE_JSON) == CANDIDATE
    assert candidate_to_json(None) == "null"
    for end in (None, "null", '""', " null "):
        assert candidate_from_json(end) is None
    # minimal init: missing keys become defaults, unknown keys are dropped
    assert candidate_from_json('{"candidate":"c","sdpMid":"0","x":[1]}') == {
        "candidate": "c",
        "sdpMid": "0",
        "sdpMLineIndex": None,
        "usernameFragment": None,
    }
    assert candidate_to_json({"candidate": "c", "sdpMLineIndex": 1}) == (
        '{"candidate":"c","sdpMid":null,"sdpMLineIndex":1,"usernameFragment":null}'
    )
    assert is_end_of_candidates(None)
    assert is_end_of_candidates(candidate_from_json('{"candidate":"","sdpMid":"0"}'))
    assert not is_end_of_candidates(CANDIDATE)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "{",
        "[1]",
        "42",
        "true",
        '"a string"',
        '{"candidate": 5}',
        '{"candidate": null}',
        '{"candidate":"c","sdpMid":1}',
        '{"candidate":"c","sdpMLineIndex":"0"}',
        '{"candidate":"c","sdpMLineIndex":true}',
        '{"candidate":"c","sdpMLineIndex":-1}',
        '{"candidate":"c","sdpMLineIndex":65536}',
        '{"candidate":"c","sdpMLineIndex":0.5}',
        '{"candidate":"c","sdpMLineIndex":NaN}',
        '{"candidate":"c","usernameFragment":{}}',
        "[" * 100_000 + "]" * 100_000,
        '{"sdpMLineIndex":' + "9" * 5000 + "}",
    ],
)
def test_candidate_from_json_rejects(bad):
    with pytest.raises(DecodeError):
        candidate_from_json(bad)


def test_candidate_to_json_rejects_bad_types():
    with pytest.raises(ValueError):
        candidate_to_json({"candidate": 1})
    with pytest.raises(ValueError):
        candidate_to_json(["candidate"])  # type: ignore[arg-type]


def test_mdns_helpers():
    assert candidate_address(CANDIDATE) == "192.168.1.2"
    assert candidate_address("candidate:1 1 udp") is None
    assert candidate_address({"candidate": ""}) is None
    assert is_mdns_candidate(MDNS) and not is_mdns_candidate(CANDIDATE)
    assert is_mdns_candidate("a=candidate:2 1 udp 1 host-1.LOCAL 6000 typ host")
    assert strip_mdns_candidates([CANDIDATE, MDNS, None]) == [CANDIDATE, None]
    sdp = (
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        "a=candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 abc.local 6000 typ host\r\n"
        "a=end-of-candidates\r\n"
    )
    assert strip_mdns_from_sdp(sdp) == sdp.replace("a=candidate:2 1 udp 2122260223 abc.local 6000 typ host\r\n", "")


# ------------------------------------------------------------------------------ sequencing


def test_full_exchange_js_order():
    d = SignalingDialer(now=0.0)
    lst = SignalingListener(now=0.0)
    # dialer: offer, then (after setLocalDescription) its candidates — possibly before the answer
    wire = d.offer(SDP) + d.add_local_candidate(CANDIDATE) + d.add_local_candidate(JS_CANDIDATE_JSON)
    assert wire[: len(JS_OFFER)] == JS_OFFER and wire[len(JS_OFFER) :] == JS_CANDIDATE * 2
    assert d.state is SignalingState.OFFER_SENT
    # the listener sees the offer and the early candidates, byte by byte even
    events = []
    for i in range(len(wire)):
        events += lst.receive_data(wire[i : i + 1])
    assert events == [OfferReceived(SDP), RemoteCandidate(CANDIDATE), RemoteCandidate(CANDIDATE)]
    assert lst.state is SignalingState.OFFER_RECEIVED
    back = lst.answer("answer-sdp") + lst.add_local_candidate(MDNS) + lst.add_local_candidate(None)
    assert lst.state is SignalingState.EXCHANGING
    assert d.receive_data(back) == [AnswerReceived("answer-sdp"), RemoteCandidate(MDNS), RemoteCandidate(None)]
    assert back.endswith(END_OF_CANDIDATES)
    assert d.candidates_received == 2 and lst.candidates_received == 2
    # connected: both are done; js then closes the stream
    d.connected()
    lst.connected()
    assert d.state is lst.state is SignalingState.DONE
    assert d.next_deadline() is None and lst.next_deadline() is None
    assert d.add_local_candidate(CANDIDATE) == b""  # js drops candidates once connected
    assert d.receive_data(JS_CANDIDATE + b"\xff\xff") == []  # later input is ignored
    assert d.receive_eof() == []


def test_listener_may_receive_candidates_then_end():
    d, lst = handshake()
    assert lst.receive_data(END_OF_CANDIDATES) == [RemoteCandidate(None)]
    assert lst.receive_eof() == [RemoteEnded()]
    assert lst.remote_ended and lst.receive_data(JS_CANDIDATE) == []
    assert lst.receive_eof() == []
    assert lst.state is SignalingState.EXCHANGING  # ICE can still connect
    lst.connected()
    assert d.receive_eof() == [RemoteEnded()]


@pytest.mark.parametrize(
    "first",
    [JS_ANSWER, JS_CANDIDATE, END_OF_CANDIDATES, frame(None, SDP), frame(MessageType.SDP_OFFER, None)],
)
def test_listener_rejects_anything_but_an_offer_first(first):
    lst = SignalingListener(now=0.0)
    with pytest.raises(ProtocolError):
        lst.receive_data(first)
    assert lst.state is SignalingState.FAILED and lst.failure
    assert lst.next_deadline() is None
    assert lst.receive_data(JS_OFFER) == []  # failed: ignored from now on


@pytest.mark.parametrize("second", [JS_OFFER, JS_ANSWER, frame(None, "x")])
def test_listener_rejects_non_candidates_after_the_offer(second):
    lst = SignalingListener(now=0.0)
    lst.receive_data(JS_OFFER)
    with pytest.raises(ProtocolError):
        lst.receive_data(second)
    assert lst.state is SignalingState.FAILED


@pytest.mark.parametrize(
    "first", [JS_CANDIDATE, END_OF_CANDIDATES, JS_OFFER, frame(None, SDP), frame(MessageType.SDP_ANSWER, "")]
)
def test_dialer_needs_the_answer_first(first):
    d = SignalingDialer(now=0.0)
    d.offer(SDP)
    with pytest.raises(ProtocolError):
        d.receive_data(first)
    assert d.state is SignalingState.FAILED


def test_dialer_rejects_input_before_its_offer_and_a_second_answer():
    d = SignalingDialer(now=0.0)
    with pytest.raises(ProtocolError):
        d.receive_data(JS_ANSWER)
    d, _ = handshake()
    with pytest.raises(ProtocolError):
        d.receive_data(JS_ANSWER)


def test_local_calls_out_of_order():
    d = SignalingDialer(now=0.0)
    with pytest.raises(UsageError):
        d.add_local_candidate(CANDIDATE)  # before the offer
    with pytest.raises(UsageError):
        d.connected()
    with pytest.raises(UsageError):
        d.offer("")
    d.offer(SDP)
    with pytest.raises(UsageError):
        d.offer(SDP)
    lst = SignalingListener(now=0.0)
    with pytest.raises(UsageError):
        lst.answer(SDP)  # before the offer
    lst.receive_data(JS_OFFER)
    with pytest.raises(UsageError):
        lst.add_local_candidate(CANDIDATE)  # before the answer: a js dialer would reject it
    lst.answer(SDP)
    with pytest.raises(UsageError):
        lst.answer(SDP)
    with pytest.raises(DecodeError):
        lst.add_local_candidate("{not json")


def test_eof_before_offer_or_answer_fails():
    lst = SignalingListener(now=0.0)
    with pytest.raises(ProtocolError):
        lst.receive_eof()
    assert lst.state is SignalingState.FAILED
    d = SignalingDialer(now=0.0)
    d.offer(SDP)
    with pytest.raises(ProtocolError):
        d.receive_eof()
    d, lst = handshake()
    lst.receive_data(JS_CANDIDATE[:10])
    with pytest.raises(DecodeError):
        lst.receive_eof()  # ended inside a message


def test_abort():
    d = SignalingDialer(now=0.0)
    d.abort("ice failed")
    assert d.state is SignalingState.FAILED and d.failure == "ice failed"
    assert d.add_local_candidate(CANDIDATE) == b""
    d.abort("again")
    assert d.failure == "ice failed"


# ------------------------------------------------------------------------------ deadlines & limits


def test_deadline_with_fake_clock():
    d = SignalingDialer(SignalingConfig(timeout=10.0), now=100.0)
    assert d.next_deadline() == 110.0
    d.handle_timeout(109.999)
    d.offer(SDP)
    d.handle_timeout(105.0)
    with pytest.raises(Timeout):
        d.handle_timeout(110.0)
    assert d.state is SignalingState.FAILED and d.next_deadline() is None
    d.handle_timeout(1000.0)  # finished: no second raise
    # the default is 10 s and the deadline covers the whole exchange, candidates included
    d, lst = handshake(now=5.0)
    assert d.next_deadline() == lst.next_deadline() == 15.0
    with pytest.raises(Timeout):
        lst.handle_timeout(15.0)
    d.connected()
    d.handle_timeout(1e9)


def test_candidate_limit():
    d, lst = handshake(config=SignalingConfig(max_candidates=3))
    assert len(lst.receive_data(JS_CANDIDATE * 3)) == 3
    with pytest.raises(LimitExceeded):
        lst.receive_data(END_OF_CANDIDATES)  # end markers count too
    assert lst.state is SignalingState.FAILED


def test_oversize_remote_message():
    lst = SignalingListener(SignalingConfig(max_message_size=1024), now=0.0)
    with pytest.raises(LimitExceeded):
        lst.receive_data(frame(MessageType.SDP_OFFER, "x" * 2000)[:3])


def test_drop_mdns_candidates():
    _, lst = handshake(config=SignalingConfig(drop_mdns_candidates=True))
    wire = frame(MessageType.ICE_CANDIDATE, candidate_to_json(MDNS)) + JS_CANDIDATE + END_OF_CANDIDATES
    assert lst.receive_data(wire) == [RemoteCandidate(CANDIDATE), RemoteCandidate(None)]
    assert lst.candidates_received == 3
    _, lst = handshake()
    assert lst.receive_data(frame(MessageType.ICE_CANDIDATE, candidate_to_json(MDNS))) == [RemoteCandidate(MDNS)]


def test_bad_candidate_json_fails_the_exchange():
    d, lst = handshake()
    with pytest.raises(DecodeError):
        d.receive_data(frame(MessageType.ICE_CANDIDATE, "{nope"))
    assert d.state is SignalingState.FAILED
    # absent data and "" mean end-of-candidates (js: JSON.parse(data ?? 'null'))
    assert lst.receive_data(frame(MessageType.ICE_CANDIDATE, None)) == [RemoteCandidate(None)]
    assert lst.receive_data(frame(MessageType.ICE_CANDIDATE, '""')) == [RemoteCandidate(None)]


def test_config_validation():
    assert SignalingConfig().timeout == 10.0 and SignalingConfig().max_candidates == 64
    for kwargs in ({"timeout": 0}, {"timeout": float("inf")}, {"max_message_size": 10}, {"max_candidates": -1}):
        with pytest.raises(ConfigError):
            SignalingConfig(**kwargs)


# ------------------------------------------------------------------------------ fuzz


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_message_decode(data):
    try:
        SignalingMessage.from_protobuf(data)
    except DarkSwapError:
        pass
    try:
        SignalingMessageDecoder(256).feed(data)
    except DarkSwapError:
        pass


def _machines():
    d = SignalingDialer(SignalingConfig(max_candidates=8), now=0.0)
    d.offer(SDP)
    d2, _ = handshake(config=SignalingConfig(max_candidates=8))
    return [SignalingListener(SignalingConfig(max_candidates=8), now=0.0), d, d2]


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=80),
            st.builds(
                lambda t, s: SignalingMessage(t, s).encode(),
                st.one_of(st.none(), st.sampled_from(list(MessageType))),
                st.one_of(st.none(), st.text(max_size=40), st.just(JS_CANDIDATE_JSON), st.just("null")),
            ),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_fuzz_machines(chunks, eof):
    for m in _machines():
        try:
            for c in chunks:
                for ev in m.receive_data(c):
                    assert isinstance(ev, OfferReceived | AnswerReceived | RemoteCandidate)
            if eof:
                m.receive_eof()
        except DarkSwapError:
            assert m.state is SignalingState.FAILED


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        json_values.map(json.dumps),
        st.fixed_dictionaries(
            {},
            optional={
                "candidate": json_values,
                "sdpMid": json_values,
                "sdpMLineIndex": json_values,
                "usernameFragment": json_values,
            },
        ).map(json.dumps),
    )
)
def test_fuzz_candidate_json(text):
    try:
        cand = candidate_from_json(text)
    except DarkSwapError:
        return
    if cand is not None:
        assert set(cand) == {"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"}
        assert candidate_from_json(candidate_to_json(cand)) == cand
        is_mdns_candidate(cand)
