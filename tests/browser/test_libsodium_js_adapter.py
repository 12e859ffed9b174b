"""LibsodiumJsBackend without a browser: driven through a fake ``sodium`` that mimics libsodium.js.

The fake has libsodium-wrappers' signatures and behaviour (argument order, ``null`` for absent
additional data, ``Uint8Array`` in and out, a thrown JS ``Error`` for "weak public key" and
"ciphertext cannot be decrypted") and computes with PyNaCl. It rejects raw Python ``bytes``: in a
page those would arrive as a PyProxy, which libsodium.js refuses. The real thing runs in
``test_crypto_backends.py`` (headless Chromium); this file pins the adapter's logic natively, fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import nacl.bindings as nb
import nacl.exceptions
import pytest

from darkswap_wasm import crypto
from darkswap_wasm.crypto import CryptoBackend, DecryptionFailed
from darkswap_wasm.crypto.libsodium_js import REQUIRED_FUNCTIONS, LibsodiumJsBackend
from darkswap_wasm.crypto.nacl_backend import NaclBackend
from darkswap_wasm.errors import CryptoBackendUnavailable

from ..unit.test_crypto_vectors import AEAD_AD, AEAD_CT, AEAD_KEY, AEAD_NONCE, AEAD_PT, AEAD_TAG, RFC8032
from . import shared_vectors

h = bytes.fromhex


class U8:
    """Stands for a JsProxy of a Uint8Array."""

    __slots__ = ("b",)

    def __init__(self, b: bytes) -> None:
        self.b = b

    def to_bytes(self) -> bytes:
        return self.b


class FakeJsError(Exception):
    """Stands for pyodide.ffi.JsException."""


def to_js(buf) -> U8:
    return U8(memoryview(buf).tobytes())  # like pyodide.ffi.to_js: any buffer, copied


def _in(x) -> bytes:
    if not isinstance(x, U8):
        raise FakeJsError(f"TypeError: unsupported input type ({type(x).__name__}): not a Uint8Array")
    return x.b


class FakeSodium:
    """libsodium-wrappers 0.8.4's API for the functions the backend uses, computed by PyNaCl."""

    def __init__(self) -> None:
        self.calls = 0

    def sodium_version_string(self) -> str:
        return "fake"

    def randombytes_buf(self, n: int) -> U8:
        return U8(os.urandom(n))

    def crypto_sign_seed_keypair(self, seed: U8):
        pk, sk = nb.crypto_sign_seed_keypair(_in(seed))
        return SimpleNamespace(publicKey=U8(pk), privateKey=U8(sk), keyType="ed25519")

    def crypto_sign_detached(self, message: U8, private_key: U8) -> U8:
        return U8(nb.crypto_sign(_in(message), _in(private_key))[:64])

    def crypto_sign_verify_detached(self, signature: U8, message: U8, public_key: U8) -> bool:
        try:
            nb.crypto_sign_open(_in(signature) + _in(message), _in(public_key))
        except nacl.exceptions.BadSignatureError:
            return False
        return True

    def crypto_scalarmult_base(self, private_key: U8) -> U8:
        return U8(nb.crypto_scalarmult_base(_in(private_key)))

    def crypto_scalarmult(self, private_key: U8, public_key: U8) -> U8:
        try:
            return U8(nb.crypto_scalarmult(_in(private_key), _in(public_key)))
        except nacl.exceptions.RuntimeError:
            raise FakeJsError("Error: weak public key") from None

    def crypto_aead_chacha20poly1305_ietf_encrypt(self, message, additional_data, secret_nonce, public_nonce, key):
        assert secret_nonce is None
        ad = None if additional_data is None else _in(additional_data)
        self.calls += 1
        return U8(nb.crypto_aead_chacha20poly1305_ietf_encrypt(_in(message), ad, _in(public_nonce), _in(key)))

    def crypto_aead_chacha20poly1305_ietf_decrypt(self, secret_nonce, ciphertext, additional_data, public_nonce, key):
        assert secret_nonce is None
        ad = None if additional_data is None else _in(additional_data)
        ct = _in(ciphertext)
        if len(ct) < 16:
            raise FakeJsError("TypeError: ciphertext is too short")
        try:
            return U8(nb.crypto_aead_chacha20poly1305_ietf_decrypt(ct, ad, _in(public_nonce), _in(key)))
        except nacl.exceptions.CryptoError:
            raise FakeJsError("Error: ciphertext cannot be decrypted using that key") from None


@pytest.fixture
def backend() -> LibsodiumJsBackend:
    return LibsodiumJsBackend(FakeSodium(), to_js=to_js, js_error=FakeJsError)


def test_it_is_a_crypto_backend(backend: LibsodiumJsBackend) -> None:
    assert isinstance(backend, CryptoBackend)
    assert backend.name == "libsodium.js"
    assert "LibsodiumJsBackend" in repr(backend)


def test_without_pyodide_and_without_a_converter_it_is_unavailable() -> None:
    with pytest.raises(CryptoBackendUnavailable, match="Pyodide"):
        LibsodiumJsBackend(FakeSodium())


def test_a_sodium_object_before_ready_is_refused() -> None:
    not_ready = SimpleNamespace(ready=object())  # libsodium-wrappers before `await sodium.ready`
    with pytest.raises(CryptoBackendUnavailable, match="sodium.ready"):
        LibsodiumJsBackend(not_ready, to_js=to_js, js_error=FakeJsError)
    partial = SimpleNamespace(**{f: (lambda *a: None) for f in REQUIRED_FUNCTIONS[:-1]})
    with pytest.raises(CryptoBackendUnavailable, match=REQUIRED_FUNCTIONS[-1]):
        LibsodiumJsBackend(partial, to_js=to_js, js_error=FakeJsError)


def test_importing_the_module_needs_neither_js_nor_pyodide() -> None:
    code = (
        "import sys, darkswap_wasm.crypto.libsodium_js\n"
        "bad = [m for m in sys.modules if m == 'js' or m.split('.')[0] in ('pyodide', 'nacl')]\n"
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("seed", "pub", "msg", "sig"), RFC8032, ids=["test1", "test2", "test3"])
def test_ed25519_rfc8032(backend, seed, pub, msg, sig) -> None:
    assert backend.ed25519_public_key(h(seed)).hex() == pub
    assert backend.ed25519_sign(h(seed), h(msg)).hex() == sig
    assert backend.ed25519_verify(h(pub), h(msg), h(sig)) is True
    assert backend.ed25519_verify(h(pub), h(msg) + b"x", h(sig)) is False


def test_ed25519_verify_wrong_lengths_is_false_not_an_error(backend) -> None:
    _, pub, msg, sig = (h(x) for x in RFC8032[1])
    assert backend.ed25519_verify(pub[:31], msg, sig) is False
    assert backend.ed25519_verify(pub, msg, sig[:63]) is False
    assert backend.ed25519_verify(pub + b"\0", msg, sig) is False


def test_ed25519_bad_seed_is_a_value_error_as_with_pynacl(backend) -> None:
    with pytest.raises(ValueError):
        backend.ed25519_public_key(bytes(31))
    with pytest.raises(ValueError):
        NaclBackend().ed25519_public_key(bytes(31))


def test_x25519_rfc7748_6_1_and_low_order(backend) -> None:
    a = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    assert backend.x25519_public_key(a).hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    shared = backend.x25519(a, backend.x25519_public_key(b))
    assert shared.hex() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    with pytest.raises(DecryptionFailed):
        backend.x25519(a, bytes(32))
    with pytest.raises(ValueError):
        backend.x25519(a, bytes(31))


def test_aead_rfc8439_and_failures(backend) -> None:
    assert backend.aead_encrypt(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_PT) == AEAD_CT + AEAD_TAG
    assert backend.aead_decrypt(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CT + AEAD_TAG) == AEAD_PT
    assert backend.aead_encrypt(AEAD_KEY, AEAD_NONCE, b"", memoryview(AEAD_PT)[:10]) == NaclBackend().aead_encrypt(
        AEAD_KEY, AEAD_NONCE, b"", AEAD_PT[:10]
    )
    for bad in (
        (AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CT + AEAD_TAG[:-1] + b"\0"),
        (AEAD_KEY, AEAD_NONCE, b"", AEAD_CT + AEAD_TAG),
        (AEAD_KEY, AEAD_NONCE, AEAD_AD, bytes(15)),
        (AEAD_KEY, AEAD_NONCE, AEAD_AD, b""),
        (AEAD_KEY[:31], AEAD_NONCE, AEAD_AD, AEAD_CT + AEAD_TAG),
    ):
        with pytest.raises(DecryptionFailed):
            backend.aead_decrypt(*bad)
    with pytest.raises(TypeError):
        backend.aead_encrypt(AEAD_KEY[:31], AEAD_NONCE, b"", b"x")
    with pytest.raises(TypeError):
        backend.aead_encrypt(AEAD_KEY, AEAD_NONCE[:11], b"", b"x")


def test_random_bytes(backend) -> None:
    assert backend.random_bytes(0) == b""
    assert len(backend.random_bytes(33)) == 33
    with pytest.raises(ValueError):
        backend.random_bytes(-1)


def test_shared_vectors_are_identical_through_the_adapter(monkeypatch: pytest.MonkeyPatch, backend) -> None:
    monkeypatch.setattr(crypto, "_backend", NaclBackend())
    native = shared_vectors.fixed_vectors()
    monkeypatch.setattr(crypto, "_backend", backend)
    adapted = shared_vectors.fixed_vectors()
    assert native.pop("backend") == "pynacl" and adapted.pop("backend") == "libsodium.js"
    assert adapted == native
    assert shared_vectors.random_handshake(transfer_bytes=1 << 20)["backend"] == "libsodium.js"
