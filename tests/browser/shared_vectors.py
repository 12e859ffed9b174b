"""Outputs that must be byte-identical on every crypto backend.

This module runs twice: natively (PyNaCl) and, copied into the page, inside Pyodide with the
libsodium.js backend (``test_crypto_backends.py``). It imports only ``darkswap_wasm`` and the
standard library, and every function returns plain ``str``/``int``/``bool`` data (JSON-able), so
the two runs can be compared key by key.

Everything here is deterministic: fixed Ed25519 seeds, fixed Noise static and ephemeral X25519
keys, deterministic AEAD nonces. :func:`random_handshake` is the exception: random keys, only
its invariants are checked (it exercises ``random_bytes`` and the full NoiseSession flow).
"""

from __future__ import annotations

import hashlib
import time

from darkswap_wasm import crypto
from darkswap_wasm.errors import DarkSwapError
from darkswap_wasm.identity import Identity
from darkswap_wasm.protocols.noise import DataReceived, HandshakeComplete, NoiseSession, State


def _k(label: str) -> bytes:
    """A fixed 32-byte key, derived from a label (SHA-256: backend-independent)."""
    return hashlib.sha256(label.encode()).digest()


SEED_INITIATOR = _k("darkswap browser vectors: initiator identity")
SEED_RESPONDER = _k("darkswap browser vectors: responder identity")
STATIC_INITIATOR = _k("darkswap browser vectors: initiator static")
STATIC_RESPONDER = _k("darkswap browser vectors: responder static")
EPHEMERAL_INITIATOR = _k("darkswap browser vectors: initiator ephemeral")
EPHEMERAL_RESPONDER = _k("darkswap browser vectors: responder ephemeral")
MESSAGE = b"DarkSwap order 42: sell 0.1 BTC for 2000 USDT, expires 2026-12-01T00:00:00Z"
# three transport frames (65519 + 65519 + the rest): the multi-frame path with memoryview slices
BIG = bytes((i * 7 + 3) % 256 for i in range(150_000))


def _hex(b: bytes) -> str:
    return bytes(b).hex()


def primitives() -> dict[str, str]:
    """Ed25519 / X25519 / AEAD outputs on fixed inputs (beyond the RFC vectors)."""
    b = crypto.get_backend()
    out: dict[str, str] = {}
    for name, seed in (("initiator", SEED_INITIATOR), ("responder", SEED_RESPONDER)):
        out[f"ed25519_pub_{name}"] = _hex(b.ed25519_public_key(seed))
        sig = b.ed25519_sign(seed, MESSAGE)
        out[f"ed25519_sig_{name}"] = _hex(sig)
        out[f"ed25519_verify_{name}"] = str(b.ed25519_verify(b.ed25519_public_key(seed), MESSAGE, sig))
    ident = Identity.from_seed(SEED_INITIATOR)
    out["peer_id_initiator"] = str(ident.peer_id)
    out["identity_sig_long"] = _hex(ident.sign(BIG))
    a_pub = b.x25519_public_key(STATIC_INITIATOR)
    b_pub = b.x25519_public_key(STATIC_RESPONDER)
    out["x25519_pub_initiator"] = _hex(a_pub)
    out["x25519_pub_responder"] = _hex(b_pub)
    out["x25519_shared"] = _hex(b.x25519(STATIC_INITIATOR, b_pub))
    out["x25519_shared_commutes"] = str(b.x25519(STATIC_RESPONDER, a_pub) == b.x25519(STATIC_INITIATOR, b_pub))
    key, nonce = _k("aead key"), bytes(4) + (7).to_bytes(8, "little")
    for label, ad, pt in (("empty", b"", b""), ("ad", b"header", MESSAGE), ("big", _k("h"), BIG)):
        ct = b.aead_encrypt(key, nonce, ad, pt)
        out[f"aead_{label}"] = _hex(ct) if len(ct) < 256 else hashlib.sha256(ct).hexdigest()
        out[f"aead_{label}_roundtrip"] = str(b.aead_decrypt(key, nonce, ad, ct) == pt)
    # a memoryview plaintext (the Noise transport passes memoryview slices of the caller's data)
    out["aead_memoryview"] = _hex(b.aead_encrypt(key, nonce, b"", memoryview(BIG)[1000:2000]))
    return out


def _pump(initiator: NoiseSession, responder: NoiseSession) -> list[bytes]:
    """Run the three XX messages; returns them as sent on the wire (with their length prefix)."""
    m1 = initiator.data_to_send()
    responder.receive_data(m1)
    m2 = responder.data_to_send()
    initiator.receive_data(m2)
    m3 = initiator.data_to_send()
    responder.receive_data(m3)
    return [m1, m2, m3]


def _complete(session: NoiseSession, expected: Identity) -> HandshakeComplete:
    events = session.events_received()
    done = [e for e in events if isinstance(e, HandshakeComplete)]
    assert len(done) == 1, events
    assert done[0].remote_peer == expected.peer_id, (done[0].remote_peer, expected.peer_id)
    assert done[0].remote_public_key == expected.public_key
    assert session.state is State.TRANSPORT
    return done[0]


def _transfer(sender: NoiseSession, receiver: NoiseSession, data: bytes) -> bytes:
    wire = sender.encrypt(data)
    receiver.receive_data(wire)
    got = b"".join(e.data for e in receiver.events_received() if isinstance(e, DataReceived))
    assert got == data, (len(got), len(data))
    return wire


def noise_transcript() -> dict[str, str]:
    """A Noise XX handshake and transport messages with fixed keys: every byte on the wire."""
    ident_i, ident_r = Identity.from_seed(SEED_INITIATOR), Identity.from_seed(SEED_RESPONDER)
    initiator = NoiseSession(
        ident_i,
        is_initiator=True,
        expected_peer=ident_r.peer_id,
        static_private_key=STATIC_INITIATOR,
        ephemeral_private_key=EPHEMERAL_INITIATOR,
    )
    responder = NoiseSession(
        ident_r,
        is_initiator=False,
        static_private_key=STATIC_RESPONDER,
        ephemeral_private_key=EPHEMERAL_RESPONDER,
    )
    m1, m2, m3 = _pump(initiator, responder)
    _complete(initiator, ident_r)
    _complete(responder, ident_i)
    assert initiator.handshake_hash == responder.handshake_hash
    out = {
        "noise_msg1": _hex(m1),
        "noise_msg2": _hex(m2),
        "noise_msg3": _hex(m3),
        "noise_handshake_hash": _hex(initiator.handshake_hash),
        "noise_remote_peer_of_initiator": str(initiator.remote_peer),
        "noise_remote_peer_of_responder": str(responder.remote_peer),
    }
    out["noise_t1_i2r"] = _hex(_transfer(initiator, responder, MESSAGE))
    out["noise_t2_r2i"] = _hex(_transfer(responder, initiator, b"ack " + MESSAGE))
    out["noise_t3_empty"] = _hex(_transfer(initiator, responder, b""))
    big_wire = _transfer(responder, initiator, BIG)
    out["noise_t4_big_sha256"] = hashlib.sha256(big_wire).hexdigest()
    out["noise_t4_big_len"] = str(len(big_wire))
    return out


def fixed_vectors() -> dict[str, str]:
    """Everything deterministic, plus the backend's name (the one key expected to differ)."""
    return {"backend": crypto.get_backend().name, **primitives(), **noise_transcript()}


def random_handshake(transfer_bytes: int = 4 << 20) -> dict[str, object]:
    """A full handshake between two NoiseSessions with random keys, then traffic and tampering."""
    ident_i, ident_r = Identity.generate(), Identity.generate()
    initiator = NoiseSession(ident_i, is_initiator=True, expected_peer=ident_r.peer_id)
    responder = NoiseSession(ident_r, is_initiator=False)
    t0 = time.perf_counter()
    _pump(initiator, responder)
    handshake_s = time.perf_counter() - t0
    _complete(initiator, ident_r)
    _complete(responder, ident_i)
    assert initiator.handshake_hash == responder.handshake_hash
    for data in (b"ping", b"", BIG, b"pong" * 1000):
        _transfer(initiator, responder, data)
        _transfer(responder, initiator, data)

    chunk = bytes(range(256)) * 256  # 64 KiB
    t0 = time.perf_counter()
    sent = 0
    while sent < transfer_bytes:
        responder.receive_data(initiator.encrypt(chunk))
        for e in responder.events_received():
            assert isinstance(e, DataReceived)
            sent += len(e.data)
    transfer_s = time.perf_counter() - t0

    # a flipped bit in a transport frame: a clean DarkSwapError, and the session is failed
    wire = bytearray(initiator.encrypt(b"tamper me"))
    wire[5] ^= 0x01
    try:
        responder.receive_data(bytes(wire))
    except DarkSwapError as exc:
        tamper = type(exc).__name__
    else:
        raise AssertionError("a tampered Noise frame was accepted")
    assert responder.state is State.FAILED

    # a wrong expected peer: the handshake fails cleanly
    other = Identity.generate()
    a = NoiseSession(ident_i, is_initiator=True, expected_peer=other.peer_id)
    b = NoiseSession(ident_r, is_initiator=False)
    try:
        _pump(a, b)
    except DarkSwapError as exc:
        wrong_peer = type(exc).__name__
    else:
        raise AssertionError("a handshake with the wrong peer succeeded")

    return {
        "backend": crypto.get_backend().name,
        "handshake_ms": round(handshake_s * 1000, 2),
        "transfer_mb_per_s": round(sent / transfer_s / 1e6, 1),
        "transfer_bytes": sent,
        "tamper_error": tamper,
        "wrong_peer_error": wrong_peer,
    }
