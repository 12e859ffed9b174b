"""The native crypto backend: PyNaCl (libsodium)."""

from __future__ import annotations

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from .backend import DecryptionFailed


class NaclBackend:
    name = "pynacl"

    def random_bytes(self, n: int) -> bytes:
        return nacl.utils.random(n)

    def ed25519_public_key(self, seed: bytes) -> bytes:
        pk, _sk = sodium.crypto_sign_seed_keypair(bytes(seed))
        return pk

    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        _pk, sk = sodium.crypto_sign_seed_keypair(bytes(seed))
        return sodium.crypto_sign(bytes(message), sk)[:64]

    def ed25519_verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != 32 or len(signature) != 64:
            return False
        try:
            sodium.crypto_sign_open(bytes(signature) + bytes(message), bytes(public_key))
        except nacl.exceptions.BadSignatureError:
            return False
        return True

    def x25519_public_key(self, private_key: bytes) -> bytes:
        return sodium.crypto_scalarmult_base(bytes(private_key))

    def x25519(self, private_key: bytes, public_key: bytes) -> bytes:
        try:
            return sodium.crypto_scalarmult(bytes(private_key), bytes(public_key))
        except nacl.exceptions.RuntimeError as exc:  # all-zero output: low-order point
            raise DecryptionFailed("X25519 with a low-order public key") from exc

    def aead_encrypt(self, key: bytes, nonce: bytes, ad: bytes, plaintext: bytes) -> bytes:
        return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(bytes(plaintext), ad or None, nonce, key)

    def aead_decrypt(self, key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bytes:
        if len(ciphertext) < 16:
            raise DecryptionFailed("ChaCha20-Poly1305 ciphertext shorter than its tag")
        try:
            return sodium.crypto_aead_chacha20poly1305_ietf_decrypt(bytes(ciphertext), ad or None, nonce, key)
        except nacl.exceptions.CryptoError as exc:
            raise DecryptionFailed("ChaCha20-Poly1305 authentication failed") from exc
