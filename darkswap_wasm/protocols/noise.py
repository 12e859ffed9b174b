"""Noise XX secure channel as libp2p specifies it (spec: libp2p/specs ``noise/README.md``).

``Noise_XX_25519_ChaChaPoly_SHA256``, empty prologue. Handshake and transport messages are
framed with a 2-byte big-endian length (at most 65535 bytes). The handshake payload is the
protobuf ``NoiseHandshakePayload{identity_key=1, identity_sig=2, extensions=4}``; the signature
covers ``"noise-libp2p-static-key:" || static X25519 public key`` and binds the Noise static key
to the libp2p identity key. After the handshake, plaintext is cut into frames of at most
65535 - 16 bytes.

Sans-I/O: :meth:`receive_data` / :meth:`data_to_send` / :meth:`events_received`; the handshake
deadline is :attr:`deadline` and :meth:`handle_timeout` enforces it. Crypto goes through
:mod:`darkswap_wasm.crypto` only.

Deliberate choices: extensions are parsed (stream muxers, webtransport certhashes) and exposed,
but we send none, so early muxer negotiation is not used and the muxer is picked with
multistream-select, which every libp2p implementation supports.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from .. import crypto
from ..crypto import DecryptionFailed
from ..errors import DecodeError, HandshakeError, LimitExceeded, ProtocolError, Timeout, UsageError
from ..identity import Identity, PeerId, PublicKey
from ..wire import protobuf

PROTOCOL_ID = "/noise"
PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
SIGNATURE_PREFIX = b"noise-libp2p-static-key:"
MAX_FRAME = 65535
TAG_LEN = 16
MAX_PLAINTEXT = MAX_FRAME - TAG_LEN
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
_MAX_NONCE = (1 << 64) - 1

EXTENSIONS_SCHEMA = {
    1: ("webtransport_certhashes", "bytes", True),
    2: ("stream_muxers", "string", True),
}
PAYLOAD_SCHEMA = {
    1: ("identity_key", "bytes", False),
    2: ("identity_sig", "bytes", False),
    4: ("extensions", EXTENSIONS_SCHEMA, False),
}

_LEN = struct.Struct(">H")


class State(enum.Enum):
    HANDSHAKE = "handshake"
    TRANSPORT = "transport"
    FAILED = "failed"


@dataclass(frozen=True)
class HandshakeComplete:
    remote_peer: PeerId
    remote_public_key: PublicKey
    stream_muxers: tuple[str, ...] = ()
    webtransport_certhashes: tuple[bytes, ...] = field(default=())


@dataclass(frozen=True)
class DataReceived:
    data: bytes


class _CipherState:
    __slots__ = ("_backend", "key", "nonce")

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.nonce = 0
        self._backend = crypto.get_backend()

    def _nonce_bytes(self) -> bytes:
        if self.nonce >= _MAX_NONCE:
            raise ProtocolError("noise nonce exhausted")
        n = b"\x00\x00\x00\x00" + self.nonce.to_bytes(8, "little")
        self.nonce += 1
        return n

    def encrypt(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.key is None:
            return bytes(plaintext)
        return self._backend.aead_encrypt(self.key, self._nonce_bytes(), ad, plaintext)

    def decrypt(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self.key is None:
            return bytes(ciphertext)
        try:
            return self._backend.aead_decrypt(self.key, self._nonce_bytes(), ad, ciphertext)
        except DecryptionFailed as exc:
            raise HandshakeError("noise: message authentication failed") from exc


class _SymmetricState:
    def __init__(self) -> None:
        self.h = PROTOCOL_NAME if len(PROTOCOL_NAME) == 32 else crypto.sha256(PROTOCOL_NAME)
        self.ck = self.h
        self.cipher = _CipherState()
        self.mix_hash(b"")  # empty prologue

    def mix_hash(self, data: bytes) -> None:
        self.h = crypto.sha256(self.h + data)

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = crypto.hkdf_sha256(self.ck, ikm, 2)
        self.cipher = _CipherState(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ct = self.cipher.encrypt(self.h, plaintext)
        self.mix_hash(ct)
        return ct

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        pt = self.cipher.decrypt(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return pt

    def split(self) -> tuple[_CipherState, _CipherState]:
        k1, k2 = crypto.hkdf_sha256(self.ck, b"", 2)
        return _CipherState(k1), _CipherState(k2)


class NoiseSession:
    """One side of a libp2p Noise XX session.

    ``NoiseSession(identity, is_initiator=True, expected_peer=None, now=0.0)``. The initiator's
    first message is ready in :meth:`data_to_send` right away. ``expected_peer`` (a dialer that
    knows whom it dials) makes the handshake fail on any other peer.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        is_initiator: bool,
        expected_peer: PeerId | None = None,
        now: float = 0.0,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        static_private_key: bytes | None = None,
        ephemeral_private_key: bytes | None = None,
    ) -> None:
        self._backend = crypto.get_backend()
        self._identity = identity
        self.is_initiator = is_initiator
        self.expected_peer = expected_peer
        self.state = State.HANDSHAKE
        self.deadline: float | None = now + handshake_timeout
        self.remote_peer: PeerId | None = None
        self._s = static_private_key or self._backend.random_bytes(32)
        self._s_pub = self._backend.x25519_public_key(self._s)
        self._e = ephemeral_private_key or self._backend.random_bytes(32)
        self._e_pub = self._backend.x25519_public_key(self._e)
        self._re: bytes | None = None
        self._rs: bytes | None = None
        self._ss = _SymmetricState()
        self._step = 0  # handshake messages processed (sent or received)
        self._inbuf = bytearray()
        self._out: list[bytes] = []
        self._events: list[object] = []
        self._send_cs: _CipherState | None = None
        self._recv_cs: _CipherState | None = None
        if is_initiator:
            self._write_message_1()

    # -- public API ----------------------------------------------------------------
    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def events_received(self) -> list[object]:
        ev, self._events = self._events, []
        return ev

    def handle_timeout(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline and self.state is State.HANDSHAKE:
            self.state = State.FAILED
            raise Timeout("noise handshake timed out")

    def send(self, data: bytes) -> None:
        """Encrypt application data (transport phase) into frames of at most 65535 bytes."""
        if self.state is not State.TRANSPORT:
            raise UsageError(f"noise: cannot send application data in state {self.state.value}")
        assert self._send_cs is not None
        mv = memoryview(data)
        enc = self._send_cs.encrypt
        out = self._out
        for off in range(0, len(mv), MAX_PLAINTEXT):
            ct = enc(b"", mv[off : off + MAX_PLAINTEXT])
            out.append(_LEN.pack(len(ct)))
            out.append(ct)

    def encrypt(self, data: bytes) -> bytes:
        """:meth:`send` then :meth:`data_to_send`: the framed ciphertext for ``data``."""
        self.send(data)
        return self.data_to_send()

    def receive_data(self, data: bytes) -> None:
        if self.state is State.FAILED:
            raise ProtocolError("noise: data after the session failed")
        self._inbuf += data
        try:
            self._process()
        except (ProtocolError, DecodeError):
            self.state = State.FAILED
            raise

    # -- internals -----------------------------------------------------------------
    def _process(self) -> None:
        buf = self._inbuf
        pos = 0
        plain: list[bytes] = []
        n = len(buf)
        while n - pos >= 2:
            (length,) = _LEN.unpack_from(buf, pos)
            if n - pos - 2 < length:
                break
            frame = bytes(buf[pos + 2 : pos + 2 + length])
            pos += 2 + length
            if self.state is State.HANDSHAKE:
                self._read_handshake(frame)
            else:
                assert self._recv_cs is not None
                if length < TAG_LEN:
                    raise DecodeError("noise transport frame shorter than its tag")
                plain.append(self._recv_cs.decrypt(b"", frame))
        if pos:
            del buf[:pos]
        if plain:
            self._events.append(DataReceived(b"".join(plain)))

    def _read_handshake(self, msg: bytes) -> None:
        if self.is_initiator:
            if self._step == 1:
                self._read_message_2(msg)
                self._write_message_3()
                self._finish()
            else:
                raise ProtocolError(f"noise: unexpected handshake message at step {self._step}")
        else:
            if self._step == 0:
                self._read_message_1(msg)
                self._write_message_2()
            elif self._step == 2:
                self._read_message_3(msg)
                self._finish()
            else:
                raise ProtocolError(f"noise: unexpected handshake message at step {self._step}")

    def _dh(self, private: bytes, public: bytes) -> bytes:
        try:
            return self._backend.x25519(private, public)
        except DecryptionFailed as exc:
            raise HandshakeError("noise: peer sent a low-order X25519 key") from exc

    def _emit(self, body: bytes) -> None:
        if len(body) > MAX_FRAME:
            raise LimitExceeded("noise handshake message over 65535 bytes")
        self._out.append(_LEN.pack(len(body)) + body)

    def _payload(self) -> bytes:
        sig = self._identity.sign(SIGNATURE_PREFIX + self._s_pub)
        return protobuf.encode(
            PAYLOAD_SCHEMA,
            {"identity_key": self._identity.public_key.to_protobuf(), "identity_sig": sig},
        )

    # -> e
    def _write_message_1(self) -> None:
        ss = self._ss
        ss.mix_hash(self._e_pub)
        body = self._e_pub + ss.encrypt_and_hash(b"")
        self._emit(body)
        self._step = 1

    def _read_message_1(self, msg: bytes) -> None:
        if len(msg) < 32:
            raise DecodeError("noise message 1 shorter than an ephemeral key")
        ss = self._ss
        self._re = msg[:32]
        ss.mix_hash(self._re)
        ss.decrypt_and_hash(msg[32:])  # payload: ignored (empty in libp2p)
        self._step = 1

    # <- e, ee, s, es
    def _write_message_2(self) -> None:
        ss = self._ss
        assert self._re is not None
        ss.mix_hash(self._e_pub)
        ss.mix_key(self._dh(self._e, self._re))
        enc_s = ss.encrypt_and_hash(self._s_pub)
        ss.mix_key(self._dh(self._s, self._re))
        body = self._e_pub + enc_s + ss.encrypt_and_hash(self._payload())
        self._emit(body)
        self._step = 2

    def _read_message_2(self, msg: bytes) -> None:
        if len(msg) < 32 + 32 + TAG_LEN + TAG_LEN:
            raise DecodeError("noise message 2 too short")
        ss = self._ss
        self._re = msg[:32]
        ss.mix_hash(self._re)
        ss.mix_key(self._dh(self._e, self._re))
        self._rs = ss.decrypt_and_hash(msg[32 : 32 + 32 + TAG_LEN])
        ss.mix_key(self._dh(self._e, self._rs))
        payload = ss.decrypt_and_hash(msg[32 + 32 + TAG_LEN :])
        self._verify_payload(payload)
        self._step = 2

    # -> s, se
    def _write_message_3(self) -> None:
        ss = self._ss
        assert self._re is not None
        enc_s = ss.encrypt_and_hash(self._s_pub)
        ss.mix_key(self._dh(self._s, self._re))
        body = enc_s + ss.encrypt_and_hash(self._payload())
        self._emit(body)
        self._step = 3

    def _read_message_3(self, msg: bytes) -> None:
        if len(msg) < 32 + TAG_LEN + TAG_LEN:
            raise DecodeError("noise message 3 too short")
        ss = self._ss
        self._rs = ss.decrypt_and_hash(msg[: 32 + TAG_LEN])
        assert self._rs is not None
        ss.mix_key(self._dh(self._e, self._rs))
        payload = ss.decrypt_and_hash(msg[32 + TAG_LEN :])
        self._verify_payload(payload)
        self._step = 3

    def _verify_payload(self, payload: bytes) -> None:
        msg = protobuf.decode(PAYLOAD_SCHEMA, payload)
        key_pb = msg.get("identity_key")
        sig = msg.get("identity_sig")
        if not key_pb or not sig:
            raise HandshakeError("noise payload lacks the identity key or its signature")
        try:
            key = PublicKey.from_protobuf(key_pb)
        except DecodeError as exc:
            raise HandshakeError(f"noise payload: bad identity key: {exc}") from exc
        assert self._rs is not None
        if not key.verify(SIGNATURE_PREFIX + self._rs, sig):
            raise HandshakeError("noise payload: identity signature does not verify")
        peer = key.peer_id
        if self.expected_peer is not None and peer != self.expected_peer:
            raise HandshakeError(f"noise: expected peer {self.expected_peer}, the remote is {peer}")
        ext = msg.get("extensions") or {}
        self.remote_peer = peer
        self._remote_key = key
        self._ext = ext

    def _finish(self) -> None:
        c1, c2 = self._ss.split()
        self._send_cs, self._recv_cs = (c1, c2) if self.is_initiator else (c2, c1)
        self.state = State.TRANSPORT
        self.deadline = None
        assert self.remote_peer is not None
        self._events.append(
            HandshakeComplete(
                remote_peer=self.remote_peer,
                remote_public_key=self._remote_key,
                stream_muxers=tuple(self._ext.get("stream_muxers", ())),
                webtransport_certhashes=tuple(self._ext.get("webtransport_certhashes", ())),
            )
        )

    @property
    def handshake_hash(self) -> bytes:
        return self._ss.h
