"""Crypto backend seam: the few primitives the protocols need, behind one narrow interface.

Natively the backend is PyNaCl (libsodium). In Pyodide, where PyNaCl is not loadable, the page's
glue installs an equivalent backend (libsodium.js, the same C library compiled to WASM) with
:func:`set_backend`. Protocol code calls only the functions of this module; shared test vectors
(``tests/unit/test_crypto_vectors.py``) prove every backend gives identical bytes.

SHA-256 and HMAC come from ``hashlib``/``hmac`` (present in both runtimes); HKDF (RFC 5869) is
composed from HMAC here, once, for every backend.
"""

from __future__ import annotations

import hashlib
import hmac

from ..errors import CryptoBackendUnavailable
from .backend import CryptoBackend, DecryptionFailed

__all__ = [
    "CryptoBackend",
    "DecryptionFailed",
    "get_backend",
    "hkdf_sha256",
    "hmac_sha256",
    "set_backend",
    "sha256",
]

_backend: CryptoBackend | None = None


def set_backend(backend: CryptoBackend | None) -> None:
    """Install ``backend`` for this process (the Pyodide glue calls this); ``None`` re-detects."""
    global _backend
    _backend = backend


def get_backend() -> CryptoBackend:
    """The active backend: the one installed by :func:`set_backend`, else PyNaCl if importable."""
    global _backend
    if _backend is None:
        try:
            from .nacl_backend import NaclBackend
        except ImportError as exc:
            raise CryptoBackendUnavailable(
                "no crypto backend: PyNaCl is not importable here and none was installed with "
                "darkswap_wasm.crypto.set_backend() (in a page, the glue installs libsodium.js)"
            ) from exc
        _backend = NaclBackend()
    return _backend


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf_sha256(chaining_key: bytes, ikm: bytes, outputs: int) -> tuple[bytes, ...]:
    """The Noise HKDF (``noise`` spec §4.3): 2 or 3 outputs of 32 bytes."""
    temp = hmac_sha256(chaining_key, ikm)
    out1 = hmac_sha256(temp, b"\x01")
    out2 = hmac_sha256(temp, out1 + b"\x02")
    if outputs == 2:
        return out1, out2
    out3 = hmac_sha256(temp, out2 + b"\x03")
    return out1, out2, out3
