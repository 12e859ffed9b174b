"""The interface every crypto backend implements (PyNaCl natively, libsodium.js in a page)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..errors import DarkSwapError


class DecryptionFailed(DarkSwapError):
    """AEAD authentication failed: the ciphertext or its associated data was altered."""

    CODE = "DECRYPTION_FAILED"


@runtime_checkable
class CryptoBackend(Protocol):
    name: str

    def random_bytes(self, n: int) -> bytes: ...

    # Ed25519 (RFC 8032). Private keys are handled as their 32-byte seeds.
    def ed25519_public_key(self, seed: bytes) -> bytes: ...
    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes: ...
    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool: ...

    # X25519 (RFC 7748).
    def x25519_public_key(self, private_key: bytes) -> bytes: ...
    def x25519(self, private_key: bytes, public_key: bytes) -> bytes: ...

    # ChaCha20-Poly1305, IETF variant (RFC 8439): 32-byte key, 12-byte nonce, 16-byte tag.
    def aead_encrypt(self, key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes: ...
    def aead_decrypt(self, key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bytes: ...
