"""libp2p WebRTC (browser-to-browser) signaling ``/webrtc-signaling/0.0.1`` (sans-I/O).

Spec: libp2p/specs ``webrtc/webrtc.md`` ("Connection Establishment", "Signaling Protocol").
Behaviour checked against js-libp2p ``@libp2p/webrtc`` 6.0.x ``src/private-to-private/``:
``initiate-connection.ts`` (dialer), ``signaling-stream-handler.ts`` + ``transport.ts``
(listener), ``util.ts`` (``readCandidatesUntilConnected``) and ``pb/message.proto``.

Wire: every message is ``uvarint(len) || protobuf`` on a stream opened over the relayed
connection::

    message Message {
      enum Type { SDP_OFFER = 0; SDP_ANSWER = 1; ICE_CANDIDATE = 2; }
      optional Type type = 1;    // tag 0x08, always written (also for 0), as js does
      optional string data = 2;  // tag 0x12
    }

e.g. an offer with SDP ``"v=0\\r\\n"`` is ``09 08 00 12 05 76 3d 30 0d 0a``. ``data`` is the SDP
for an offer/answer and ``JSON.stringify(RTCIceCandidate.toJSON())`` for a candidate, i.e. a
compact JSON object ``{"candidate":…,"sdpMid":…,"sdpMLineIndex":…,"usernameFragment":…}``.

The exchange (js, both sides read with one abort signal: 10 s by default — the dial timeout
on the dialer, the inbound upgrade timeout on the listener):

1. The dialer opens the stream over the relayed connection and writes ``SDP_OFFER``; only then
   does it call ``setLocalDescription``, so its candidates trickle after the offer — possibly
   before the answer arrives.
2. The listener's first message must be ``SDP_OFFER``. It writes ``SDP_ANSWER`` and only then
   sets its local description, so its candidates always follow its answer. (The js dialer
   rejects anything but ``SDP_ANSWER`` as its first message: a listener must never send a
   candidate before its answer — :meth:`SignalingListener.add_local_candidate` enforces it.)
3. After the answer both sides read ``ICE_CANDIDATE`` messages until the RTCPeerConnection is
   ``connected`` or the stream ends; any other message type is an error.
4. Once connected, candidates are no longer sent (js drops them) and both sides close the
   signaling stream: the js dialer first waits until its ``init`` data channel has opened and
   closed again, then ``stream.close()``; the js listener closes as soon as it is connected.
   On failure both reset the stream.

End of candidates: js 6 (since Sept 2025) never sends it; earlier js sent ``data = "null"``
(``JSON.stringify(null)``). A receiving js treats ``null``, ``""`` and an absent ``data`` as
end-of-candidates and skips them. :class:`RemoteCandidate` carries ``None`` for those.

Stricter than js (all spec-conformant peers pass): js stops reading candidates — silently —
on a bad message; here a wrong type, bad JSON or a candidate with wrongly typed fields raises
a :class:`~darkswap_wasm.errors.ProtocolError` and the machine fails. A message without
``type`` is refused (js compares it with the expected type and fails too). Unknown ``type``
values are a :class:`~darkswap_wasm.errors.DecodeError` (js's protons decoder throws).
Limits: :class:`SignalingConfig`.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, DecodeError, LimitExceeded, MessageTooLarge, ProtocolError, Timeout, UsageError
from ..wire import protobuf, varint
from ..wire.framing import FrameDecoder

PROTOCOL_ID = "/webrtc-signaling/0.0.1"
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024  # an SDP is a few KiB; js itself reads up to 4 MiB
DEFAULT_TIMEOUT = 10.0  # seconds; js DIAL_TIMEOUT / INBOUND_UPGRADE_TIMEOUT are 10 s
DEFAULT_MAX_CANDIDATES = 64


class MessageType(enum.IntEnum):
    SDP_OFFER = 0
    SDP_ANSWER = 1
    ICE_CANDIDATE = 2


SIGNALING_SCHEMA = {1: ("type", "enum", False), 2: ("data", "string", False)}


@dataclass(frozen=True, slots=True)
class SignalingMessage:
    """One signaling message. ``type`` is ``None`` only when decoded without one."""

    type: MessageType | None
    data: str | None = None

    def to_protobuf(self) -> bytes:
        return protobuf.encode(
            SIGNALING_SCHEMA, {"type": None if self.type is None else int(self.type), "data": self.data}
        )

    def encode(self, max_size: int | None = DEFAULT_MAX_MESSAGE_SIZE) -> bytes:
        """``uvarint(len) || protobuf``; ``MessageTooLarge`` if the protobuf exceeds ``max_size``."""
        body = self.to_protobuf()
        if max_size is not None and len(body) > max_size:
            raise MessageTooLarge(f"webrtc signaling: a {len(body)}-byte message exceeds {max_size} bytes")
        return varint.encode(len(body)) + body

    @classmethod
    def from_protobuf(cls, body: bytes) -> SignalingMessage:
        """Decode a protobuf body (no prefix). ``DecodeError`` on malformed input or unknown type."""
        msg = protobuf.decode(SIGNALING_SCHEMA, bytes(body))
        raw_type = msg.get("type")
        msg_type = None
        if raw_type is not None:
            try:
                msg_type = MessageType(raw_type)
            except ValueError:
                raise DecodeError(f"webrtc signaling: unknown message type {raw_type}") from None
        return cls(msg_type, msg.get("data"))


def encode_signaling_message(
    msg_type: MessageType, data: str | None, *, max_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes:
    return SignalingMessage(MessageType(msg_type), data).encode(max_size)


class SignalingMessageDecoder:
    """Feed stream bytes, get :class:`SignalingMessage` s. A frame over ``max_message_size``
    raises ``LimitExceeded`` as soon as its prefix is read."""

    __slots__ = ("_frames",)

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._frames = FrameDecoder(max_message_size)

    def feed(self, data: bytes) -> list[SignalingMessage]:
        return [SignalingMessage.from_protobuf(body) for body in self._frames.feed(data)]

    def end_of_stream(self) -> None:
        """The stream ended: ``DecodeError`` if it ended inside a message."""
        if self._frames.buffered:
            raise DecodeError("webrtc signaling: stream ended inside a message")


# ------------------------------------------------------------------------------- candidates

CANDIDATE_KEYS = ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")
_MAX_JSON_BRACKETS = 64  # opening brackets allowed in a candidate's JSON (a real one has 1)


def _check_candidate(candidate: Mapping[str, Any], error: type[Exception]) -> dict[str, Any]:
    """A normalized ``RTCIceCandidateInit`` dict with exactly :data:`CANDIDATE_KEYS`."""
    cand = candidate.get("candidate", "")
    mid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    ufrag = candidate.get("usernameFragment")
    if not isinstance(cand, str):
        raise error("ICE candidate: 'candidate' must be a string")
    if mid is not None and not isinstance(mid, str):
        raise error("ICE candidate: 'sdpMid' must be a string or null")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 0xFFFF):
        raise error("ICE candidate: 'sdpMLineIndex' must be an integer in [0, 65535] or null")
    if ufrag is not None and not isinstance(ufrag, str):
        raise error("ICE candidate: 'usernameFragment' must be a string or null")
    return {"candidate": cand, "sdpMid": mid, "sdpMLineIndex": index, "usernameFragment": ufrag}


def candidate_to_json(candidate: Mapping[str, Any] | None) -> str:
    """The wire form of a candidate: compact JSON as ``JSON.stringify(candidate.toJSON())`` gives
    (the four keys in that order, absent ones as ``null``); ``None`` gives ``"null"``
    (end-of-candidates, as js before Sept 2025 sent it). Raises ``ValueError`` on bad types."""
    if candidate is None:
        return "null"
    if not isinstance(candidate, Mapping):
        raise ValueError("ICE candidate must be a mapping or None")
    return json.dumps(_check_candidate(candidate, ValueError), separators=(",", ":"), ensure_ascii=False)


def candidate_from_json(data: str | None) -> dict[str, Any] | None:
    """Parse a candidate's wire form into a dict with :data:`CANDIDATE_KEYS` (unknown keys are
    dropped, a missing ``candidate`` is ``""``). ``None`` for end-of-candidates: absent data,
    ``null`` or ``""``. Raises ``DecodeError`` on anything else that is not such an object."""
    if data is None:
        return None
    if data.count("[") + data.count("{") > _MAX_JSON_BRACKETS:
        # no recursion into hostile nesting (Pyodide's stack is small); a real candidate has one
        raise DecodeError("ICE candidate: JSON nested too deeply")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise DecodeError(f"ICE candidate: invalid JSON ({type(exc).__name__})") from None
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise DecodeError(f"ICE candidate: expected a JSON object, got {type(value).__name__}")
    return _check_candidate(value, DecodeError)


def is_end_of_candidates(candidate: Mapping[str, Any] | None) -> bool:
    """``None`` (gathering finished) or an empty ``candidate`` string (end of a generation)."""
    return candidate is None or candidate.get("candidate", "") == ""


def candidate_address(candidate: Mapping[str, Any] | str) -> str | None:
    """The connection-address of a candidate (RFC 8839 ``candidate-attribute``), or None.

    Takes a candidate dict or the attribute string, with or without ``candidate:`` / ``a=``.
    """
    text = candidate if isinstance(candidate, str) else candidate.get("candidate") or ""
    parts = text.split()
    # foundation component transport priority address port "typ" type ...
    if len(parts) < 6:
        return None
    return parts[4]


def is_mdns_candidate(candidate: Mapping[str, Any] | str) -> bool:
    """True for a candidate whose address is an mDNS name (``<uuid>.local``), which browsers use
    to hide host IPs and which aiortc cannot resolve."""
    address = candidate_address(candidate)
    return address is not None and address.rstrip(".").lower().endswith(".local")


def strip_mdns_candidates(candidates: Iterable[Mapping[str, Any] | None]) -> list[Mapping[str, Any] | None]:
    """``candidates`` without the mDNS ones (end-of-candidates markers are kept)."""
    return [c for c in candidates if c is None or not is_mdns_candidate(c)]


def strip_mdns_from_sdp(sdp: str) -> str:
    """``sdp`` without ``a=candidate:`` lines whose address is an mDNS name (line endings kept)."""
    lines = sdp.splitlines(keepends=True)
    return "".join(
        line for line in lines if not (line.startswith("a=candidate:") and is_mdns_candidate(line.rstrip("\r\n")))
    )


# ------------------------------------------------------------------------------- config/events


@dataclass(frozen=True)
class SignalingConfig:
    """Limits of one signaling exchange."""

    timeout: float = DEFAULT_TIMEOUT  # seconds from the machine's creation until connected()
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE  # protobuf bytes per message, both ways
    max_candidates: int = DEFAULT_MAX_CANDIDATES  # ICE_CANDIDATE messages accepted from the peer
    drop_mdns_candidates: bool = False  # swallow remote ``*.local`` candidates (aiortc can't resolve)

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout, int | float) and math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"SignalingConfig.timeout must be a finite number > 0, got {self.timeout!r}")
        if not isinstance(self.max_message_size, int) or self.max_message_size < 64:
            raise ConfigError(f"SignalingConfig.max_message_size must be an int >= 64, got {self.max_message_size!r}")
        if not isinstance(self.max_candidates, int) or self.max_candidates < 0:
            raise ConfigError(f"SignalingConfig.max_candidates must be an int >= 0, got {self.max_candidates!r}")


@dataclass(frozen=True, slots=True)
class OfferReceived:
    """(listener) The dialer's SDP offer: ``setRemoteDescription`` it, then :meth:`answer`."""

    sdp: str


@dataclass(frozen=True, slots=True)
class AnswerReceived:
    """(dialer) The listener's SDP answer: ``setRemoteDescription`` it."""

    sdp: str


@dataclass(frozen=True, slots=True)
class RemoteCandidate:
    """A trickled remote candidate (an ``RTCIceCandidateInit`` dict), ``None`` = end-of-candidates."""

    candidate: dict[str, Any] | None

    @property
    def end_of_candidates(self) -> bool:
        return is_end_of_candidates(self.candidate)


@dataclass(frozen=True, slots=True)
class RemoteEnded:
    """The peer closed its side of the signaling stream: no more candidates will come."""


SignalingEvent = OfferReceived | AnswerReceived | RemoteCandidate | RemoteEnded


class SignalingState(enum.Enum):
    NEW = "new"
    OFFER_SENT = "offer_sent"  # dialer: waiting for the answer (its candidates may already go out)
    OFFER_RECEIVED = "offer_received"  # listener: must answer next
    EXCHANGING = "exchanging"  # answer sent/received: trickling candidates both ways
    DONE = "done"  # connected(): close the stream; later input is ignored
    FAILED = "failed"  # error, timeout or abort(): reset the stream


# ------------------------------------------------------------------------------- machines


class _Signaling:
    _role = "signaling"

    def __init__(self, config: SignalingConfig | None, now: float) -> None:
        self.config = config or SignalingConfig()
        self.state = SignalingState.NEW
        self.deadline: float | None = now + self.config.timeout
        self.remote_ended = False
        self.candidates_received = 0
        self.failure: str | None = None
        self._decoder = SignalingMessageDecoder(self.config.max_message_size)

    # -- common API ---------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.state in (SignalingState.DONE, SignalingState.FAILED)

    def add_local_candidate(self, candidate: Mapping[str, Any] | str | None) -> bytes:
        """The message trickling one local candidate (a dict, its JSON, or ``None`` for
        end-of-candidates, sent as ``null``). ``b""`` once finished (js drops candidates after
        connecting). Before our offer/answer went out it is a ``UsageError``."""
        if self.is_finished:
            return b""
        self._check_can_send_candidates()
        if isinstance(candidate, str):
            data = candidate_to_json(candidate_from_json(candidate))
        else:
            data = candidate_to_json(candidate)
        return self._encode(MessageType.ICE_CANDIDATE, data)

    def receive_data(self, data: bytes) -> list[SignalingEvent]:
        """Feed bytes read from the signaling stream. Raises ``ProtocolError`` subclasses (the
        machine is then FAILED: reset the stream)."""
        if self.is_finished or self.remote_ended or not data:
            return []
        events: list[SignalingEvent] = []
        try:
            for msg in self._decoder.feed(data):
                self._handle(msg, events)
        except ProtocolError as exc:
            self._fail(str(exc) or type(exc).__name__)
            raise
        return events

    def receive_eof(self) -> list[SignalingEvent]:
        """The peer closed its write side. An error before the offer/answer arrived."""
        if self.is_finished or self.remote_ended:
            return []
        try:
            self._decoder.end_of_stream()
            self._check_eof()
        except ProtocolError as exc:
            self._fail(str(exc) or type(exc).__name__)
            raise
        self.remote_ended = True
        return [RemoteEnded()]

    def connected(self) -> None:
        """The RTCPeerConnection is connected: the exchange is DONE (close the stream)."""
        if self.state is not SignalingState.EXCHANGING:
            raise UsageError(f"webrtc signaling ({self._role}): connected() in state {self.state.value}")
        self.state = SignalingState.DONE
        self.deadline = None

    def abort(self, reason: str = "aborted") -> None:
        """Give up (the caller resets the stream). No-op once finished."""
        if not self.is_finished:
            self._fail(reason)

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must run, or None once finished."""
        return self.deadline

    def handle_timeout(self, now: float) -> None:
        """Raise :class:`~darkswap_wasm.errors.Timeout` (state FAILED) once the deadline passed."""
        if self.deadline is not None and now >= self.deadline and not self.is_finished:
            self._fail("timed out")
            raise Timeout(f"webrtc signaling ({self._role}) did not connect within {self.config.timeout} s")

    # -- internals ----------------------------------------------------------------------

    def _encode(self, msg_type: MessageType, data: str) -> bytes:
        return SignalingMessage(msg_type, data).encode(self.config.max_message_size)

    def _fail(self, reason: str) -> None:
        self.state = SignalingState.FAILED
        self.deadline = None
        self.failure = reason

    def _candidate(self, msg: SignalingMessage, events: list[SignalingEvent]) -> None:
        self.candidates_received += 1
        if self.candidates_received > self.config.max_candidates:
            raise LimitExceeded(f"webrtc signaling: more than {self.config.max_candidates} ICE candidates")
        candidate = candidate_from_json(msg.data)
        if candidate is not None and self.config.drop_mdns_candidates and is_mdns_candidate(candidate):
            return
        events.append(RemoteCandidate(candidate))

    def _unexpected(self, msg: SignalingMessage, expected: str) -> ProtocolError:
        got = "a message without type" if msg.type is None else msg.type.name
        return ProtocolError(f"webrtc signaling ({self._role}): expected {expected}, got {got}")

    @staticmethod
    def _sdp(msg: SignalingMessage) -> str:
        if not msg.data:
            raise ProtocolError(f"webrtc signaling: {msg.type.name if msg.type else 'message'} without SDP")
        return msg.data

    @staticmethod
    def _check_local_sdp(sdp: str) -> str:
        if not isinstance(sdp, str) or not sdp:
            raise UsageError("webrtc signaling: the SDP must be a non-empty string")
        return sdp

    def _handle(self, msg: SignalingMessage, events: list[SignalingEvent]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _check_eof(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _check_can_send_candidates(self) -> None:  # pragma: no cover
        raise NotImplementedError


class SignalingDialer(_Signaling):
    """The side that opened the signaling stream (the outbound side of the relayed connection).

    ``offer(sdp)`` first; then trickle with ``add_local_candidate``; ``receive_data`` gives
    :class:`AnswerReceived` (always the peer's first message) and then :class:`RemoteCandidate`
    s; call ``connected()`` once the RTCPeerConnection is connected.
    """

    _role = "dialer"

    def __init__(self, config: SignalingConfig | None = None, *, now: float) -> None:
        super().__init__(config, now)

    def offer(self, sdp: str) -> bytes:
        """The ``SDP_OFFER`` message (write it before ``setLocalDescription``, as js does)."""
        if self.state is not SignalingState.NEW:
            raise UsageError(f"webrtc signaling (dialer): offer() in state {self.state.value}")
        out = self._encode(MessageType.SDP_OFFER, self._check_local_sdp(sdp))
        self.state = SignalingState.OFFER_SENT
        return out

    def _check_can_send_candidates(self) -> None:
        if self.state is SignalingState.NEW:
            raise UsageError("webrtc signaling (dialer): a candidate before the offer")

    def _handle(self, msg: SignalingMessage, events: list[SignalingEvent]) -> None:
        state = self.state
        if state is SignalingState.EXCHANGING:
            if msg.type is not MessageType.ICE_CANDIDATE:
                raise self._unexpected(msg, "ICE_CANDIDATE")
            self._candidate(msg, events)
        elif state is SignalingState.OFFER_SENT:
            if msg.type is not MessageType.SDP_ANSWER:
                raise self._unexpected(msg, "SDP_ANSWER")
            events.append(AnswerReceived(self._sdp(msg)))
            self.state = SignalingState.EXCHANGING
        elif state is SignalingState.NEW:
            raise self._unexpected(msg, "nothing before our offer")
        # DONE / FAILED: receive_data returned early

    def _check_eof(self) -> None:
        if self.state in (SignalingState.NEW, SignalingState.OFFER_SENT):
            raise ProtocolError("webrtc signaling (dialer): the stream ended before the SDP answer")


class SignalingListener(_Signaling):
    """The side that accepted the signaling stream.

    ``receive_data`` gives :class:`OfferReceived` (the peer's first message) and the dialer's
    :class:`RemoteCandidate` s (which may arrive before we answer); then ``answer(sdp)``, then
    trickle with ``add_local_candidate``; ``connected()`` once connected.
    """

    _role = "listener"

    def __init__(self, config: SignalingConfig | None = None, *, now: float) -> None:
        super().__init__(config, now)

    def answer(self, sdp: str) -> bytes:
        """The ``SDP_ANSWER`` message (write it before ``setLocalDescription``, as js does)."""
        if self.state is not SignalingState.OFFER_RECEIVED:
            raise UsageError(f"webrtc signaling (listener): answer() in state {self.state.value}")
        out = self._encode(MessageType.SDP_ANSWER, self._check_local_sdp(sdp))
        self.state = SignalingState.EXCHANGING
        return out

    def _check_can_send_candidates(self) -> None:
        if self.state is not SignalingState.EXCHANGING:
            raise UsageError("webrtc signaling (listener): a candidate before the answer (js dialers reject it)")

    def _handle(self, msg: SignalingMessage, events: list[SignalingEvent]) -> None:
        if self.state is SignalingState.NEW:
            if msg.type is not MessageType.SDP_OFFER:
                raise self._unexpected(msg, "SDP_OFFER")
            events.append(OfferReceived(self._sdp(msg)))
            self.state = SignalingState.OFFER_RECEIVED
        elif msg.type is MessageType.ICE_CANDIDATE:  # OFFER_RECEIVED or EXCHANGING
            self._candidate(msg, events)
        else:
            raise self._unexpected(msg, "ICE_CANDIDATE")

    def _check_eof(self) -> None:
        if self.state is SignalingState.NEW:
            raise ProtocolError("webrtc signaling (listener): the stream ended before the SDP offer")
