"""The in-page crypto backend: libsodium.js (libsodium compiled to WebAssembly), driven from Pyodide.

The page's glue (``js_glue/boot.js``) awaits ``sodium.ready`` and hands the ``sodium`` object over::

    from darkswap_wasm.crypto import set_backend
    from darkswap_wasm.crypto.libsodium_js import LibsodiumJsBackend
    set_backend(LibsodiumJsBackend(sodium))

This module never imports ``js`` and imports nothing from ``pyodide`` at import time: it is
importable (and testable with a fake ``sodium``) anywhere. Only the constructor, when no
converter is given, imports ``pyodide.ffi.to_js`` / ``JsException``.

Bytes cross the boundary as ``Uint8Array``: every input goes through ``to_js(buffer)`` (one copy
into a fresh JS array; never pass Python ``bytes`` to a JS function as is: it would arrive as a
PyProxy, which libsodium.js rejects); every result comes back with ``.to_bytes()`` (one copy into
Python). Objects coming back (``JsProxy``) are released by Python's refcounting; no PyProxy is
ever created, so there is nothing to ``destroy()``.

Errors are the ones :class:`~darkswap_wasm.crypto.nacl_backend.NaclBackend` raises:
:class:`~darkswap_wasm.crypto.backend.DecryptionFailed` for a tag that does not verify, a
ciphertext shorter than its tag, and an X25519 result that is all zeros (low-order point).
``ed25519_verify`` answers ``False`` (never raises) for wrong lengths or a bad signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import CryptoBackendUnavailable
from .backend import DecryptionFailed

__all__ = ["LibsodiumJsBackend"]

# The libsodium.js functions this backend calls (all present in libsodium-wrappers 0.8.x once
# ``sodium.ready`` has resolved; before that the object has none of them).
REQUIRED_FUNCTIONS = (
    "randombytes_buf",
    "crypto_sign_seed_keypair",
    "crypto_sign_detached",
    "crypto_sign_verify_detached",
    "crypto_scalarmult_base",
    "crypto_scalarmult",
    "crypto_aead_chacha20poly1305_ietf_encrypt",
    "crypto_aead_chacha20poly1305_ietf_decrypt",
)

_KEY = 32
_NONCE = 12
_TAG = 16


def _len(name: str, value: Any, n: int, exc: type[Exception] = ValueError) -> None:
    if len(value) != n:
        raise exc(f"{name} must be {n} bytes long, got {len(value)}")


class LibsodiumJsBackend:
    """:class:`~darkswap_wasm.crypto.backend.CryptoBackend` over a ready libsodium.js ``sodium``.

    ``to_js`` converts a Python buffer to a JS ``Uint8Array`` (default: ``pyodide.ffi.to_js``);
    ``js_error`` is the exception type a throwing JS call raises in Python (default:
    ``pyodide.ffi.JsException``). Pass both to drive the backend outside Pyodide (tests).
    """

    name = "libsodium.js"

    def __init__(
        self,
        sodium: Any,
        *,
        to_js: Callable[[Any], Any] | None = None,
        js_error: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> None:
        if to_js is None or js_error is None:
            try:
                from pyodide.ffi import JsException
                from pyodide.ffi import to_js as pyodide_to_js
            except ImportError as exc:
                raise CryptoBackendUnavailable(
                    "LibsodiumJsBackend needs Pyodide (pyodide.ffi) unless to_js and js_error are given"
                ) from exc
            to_js = to_js or pyodide_to_js
            js_error = js_error or JsException
        missing = [f for f in REQUIRED_FUNCTIONS if not callable(getattr(sodium, f, None))]
        if missing:
            raise CryptoBackendUnavailable(
                f"the sodium object lacks {', '.join(missing)}: pass libsodium-wrappers' default export "
                "after `await sodium.ready` (js_glue/crypto.js: sodiumReady())"
            )
        self._u8 = to_js
        self._js_error = js_error
        version = getattr(sodium, "sodium_version_string", None)
        self.version = str(version()) if callable(version) else "?"
        # Look every function up once: each attribute access on a JsProxy is a round trip.
        self._randombytes_buf = sodium.randombytes_buf
        self._sign_seed_keypair = sodium.crypto_sign_seed_keypair
        self._sign_detached = sodium.crypto_sign_detached
        self._sign_verify_detached = sodium.crypto_sign_verify_detached
        self._scalarmult_base = sodium.crypto_scalarmult_base
        self._scalarmult = sodium.crypto_scalarmult
        self._aead_encrypt = sodium.crypto_aead_chacha20poly1305_ietf_encrypt
        self._aead_decrypt = sodium.crypto_aead_chacha20poly1305_ietf_decrypt

    def __repr__(self) -> str:
        return f"<LibsodiumJsBackend libsodium {self.version}>"

    # ------------------------------------------------------------------ random
    def random_bytes(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("negative argument not allowed")
        if n == 0:
            return b""
        return self._randombytes_buf(n).to_bytes()

    # ------------------------------------------------------------------ Ed25519
    def _secret_key(self, seed: bytes) -> Any:
        _len("Ed25519 seed", seed, 32)
        return self._sign_seed_keypair(self._u8(seed))

    def ed25519_public_key(self, seed: bytes) -> bytes:
        return self._secret_key(seed).publicKey.to_bytes()

    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        keypair = self._secret_key(seed)
        # keypair.privateKey is a JsProxy: it goes back to JS as the same Uint8Array, no copy
        return self._sign_detached(self._u8(message), keypair.privateKey).to_bytes()

    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != 32 or len(signature) != 64:
            return False
        u8 = self._u8
        try:
            return bool(self._sign_verify_detached(u8(signature), u8(message), u8(public_key)))
        except self._js_error:  # libsodium.js throws only on malformed input; lengths were checked
            return False

    # ------------------------------------------------------------------ X25519
    def x25519_public_key(self, private_key: bytes) -> bytes:
        _len("X25519 private key", private_key, 32)
        return self._scalarmult_base(self._u8(private_key)).to_bytes()

    def x25519(self, private_key: bytes, public_key: bytes) -> bytes:
        _len("X25519 private key", private_key, 32)
        _len("X25519 public key", public_key, 32)
        u8 = self._u8
        try:
            return self._scalarmult(u8(private_key), u8(public_key)).to_bytes()
        except self._js_error as exc:  # "weak public key": all-zero output, a low-order point
            raise DecryptionFailed("X25519 with a low-order public key") from exc

    # ------------------------------------------------------------------ ChaCha20-Poly1305 (IETF)
    def aead_encrypt(self, key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes:
        _len("ChaCha20-Poly1305 key", key, _KEY, TypeError)
        _len("ChaCha20-Poly1305 nonce", nonce, _NONCE, TypeError)
        u8 = self._u8
        # (message, additional_data, secret_nonce, public_nonce, key)
        return self._aead_encrypt(u8(plaintext), u8(ad) if ad else None, None, u8(nonce), u8(key)).to_bytes()

    def aead_decrypt(self, key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bytes:
        if len(ciphertext) < _TAG:
            raise DecryptionFailed("ChaCha20-Poly1305 ciphertext shorter than its tag")
        if len(key) != _KEY or len(nonce) != _NONCE:  # as PyNaCl's backend: nothing authenticates
            raise DecryptionFailed("ChaCha20-Poly1305 authentication failed (bad key or nonce length)")
        u8 = self._u8
        try:
            # (secret_nonce, ciphertext, additional_data, public_nonce, key)
            out = self._aead_decrypt(None, u8(ciphertext), u8(ad) if ad else None, u8(nonce), u8(key))
        except self._js_error as exc:
            raise DecryptionFailed("ChaCha20-Poly1305 authentication failed") from exc
        return out.to_bytes()
