"""Known-answer tests for the crypto seam: every backend must give these exact bytes.

Ed25519 (RFC 8032 §7.1), X25519 (RFC 7748 §5.2, §6.1), ChaCha20-Poly1305 (RFC 8439 §2.8.2) go
through the active backend and are marked ``native_crypto`` (in Pyodide the libsodium.js backend
arrives later). SHA-256 / HMAC / HKDF come from ``hashlib``/``hmac`` and run everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm import crypto
from darkswap_wasm.crypto import CryptoBackend, DecryptionFailed
from darkswap_wasm.errors import CryptoBackendUnavailable, DarkSwapError

native_crypto = pytest.mark.native_crypto
CRYPTO_FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True)
h = bytes.fromhex


@pytest.fixture
def backend() -> CryptoBackend:
    return crypto.get_backend()


# =========================================================================== Ed25519, RFC 8032 §7.1

RFC8032 = [
    (  # TEST 1
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (  # TEST 2
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (  # TEST 3
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@native_crypto
@pytest.mark.parametrize(("seed", "pub", "msg", "sig"), RFC8032, ids=["test1", "test2", "test3"])
def test_ed25519_rfc8032(backend: CryptoBackend, seed: str, pub: str, msg: str, sig: str) -> None:
    assert backend.ed25519_public_key(h(seed)).hex() == pub
    assert backend.ed25519_sign(h(seed), h(msg)).hex() == sig
    assert backend.ed25519_verify(h(pub), h(msg), h(sig)) is True


@native_crypto
def test_ed25519_verify_rejects_altered_inputs(backend: CryptoBackend) -> None:
    _, pub, _, sig = (h(x) for x in RFC8032[1])
    assert backend.ed25519_verify(pub, b"\x73", sig) is False
    assert backend.ed25519_verify(pub, b"", sig) is False
    assert backend.ed25519_verify(pub, b"\x72", bytes([sig[0] ^ 1]) + sig[1:]) is False
    assert backend.ed25519_verify(h(RFC8032[0][1]), b"\x72", sig) is False
    assert backend.ed25519_verify(pub, b"\x72", sig[:63]) is False
    assert backend.ed25519_verify(pub[:31], b"\x72", sig) is False
    assert backend.ed25519_verify(bytes(32), b"\x72", sig) is False


# =========================================================================== X25519, RFC 7748


@native_crypto
@pytest.mark.parametrize(
    ("scalar", "u", "out"),
    [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ],
)
def test_x25519_rfc7748_section_5_2(backend: CryptoBackend, scalar: str, u: str, out: str) -> None:
    assert backend.x25519(h(scalar), h(u)).hex() == out


@native_crypto
def test_x25519_rfc7748_section_5_2_iterated(backend: CryptoBackend) -> None:
    k = u = (9).to_bytes(32, "little")
    for i in range(1000):
        k, u = backend.x25519(k, u), k
        if i == 0:
            assert k.hex() == "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    assert k.hex() == "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"


@native_crypto
def test_x25519_rfc7748_section_6_1_diffie_hellman(backend: CryptoBackend) -> None:
    a = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    a_pub = backend.x25519_public_key(a)
    b_pub = backend.x25519_public_key(b)
    assert a_pub.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert b_pub.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert backend.x25519(a, b_pub).hex() == shared
    assert backend.x25519(b, a_pub).hex() == shared


@native_crypto
@pytest.mark.parametrize(
    "point",
    [
        "00" * 32,  # 0
        "01" + "00" * 31,  # 1
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1
    ],
)
def test_x25519_with_a_low_order_point_fails(backend: CryptoBackend, point: str) -> None:
    with pytest.raises(DecryptionFailed):
        backend.x25519(h(RFC8032[0][0]), h(point))


# =========================================================================== ChaCha20-Poly1305, RFC 8439 §2.8.2

AEAD_KEY = bytes(range(0x80, 0xA0))
AEAD_NONCE = h("070000004041424344454647")
AEAD_AD = h("50515253c0c1c2c3c4c5c6c7")
AEAD_PT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    b"sunscreen would be it."
)
AEAD_CT = h(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
    "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
)
AEAD_TAG = h("1ae10b594f09e26a7e902ecbd0600691")


@native_crypto
def test_chacha20_poly1305_rfc8439_encrypt(backend: CryptoBackend) -> None:
    assert backend.aead_encrypt(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_PT) == AEAD_CT + AEAD_TAG


@native_crypto
def test_chacha20_poly1305_rfc8439_decrypt(backend: CryptoBackend) -> None:
    assert backend.aead_decrypt(AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CT + AEAD_TAG) == AEAD_PT


@native_crypto
@pytest.mark.parametrize(
    ("key", "nonce", "ad", "ct"),
    [
        (AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CT[:-1] + bytes([AEAD_CT[-1] ^ 1]) + AEAD_TAG),
        (AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CT + AEAD_TAG[:-1] + bytes([AEAD_TAG[-1] ^ 0x80])),
        (AEAD_KEY, AEAD_NONCE, AEAD_AD[:-1], AEAD_CT + AEAD_TAG),
        (AEAD_KEY, AEAD_NONCE, b"", AEAD_CT + AEAD_TAG),
        (AEAD_KEY, bytes(12), AEAD_AD, AEAD_CT + AEAD_TAG),
        (bytes(32), AEAD_NONCE, AEAD_AD, AEAD_CT + AEAD_TAG),
        (AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_CT),  # tag missing
    ],
    ids=["ciphertext", "tag", "short-ad", "no-ad", "nonce", "key", "no-tag"],
)
def test_chacha20_poly1305_rejects_any_alteration(backend: CryptoBackend, key, nonce, ad, ct) -> None:
    with pytest.raises(DecryptionFailed):
        backend.aead_decrypt(key, nonce, ad, ct)


@native_crypto
@pytest.mark.parametrize("length", [0, 1, 15])
def test_aead_decrypt_of_a_ciphertext_shorter_than_the_tag_is_decryption_failed(
    backend: CryptoBackend, length: int
) -> None:
    # Regression: PyNaCl itself raises ValueError("negative array length") for fewer than 16
    # bytes; the backend contract (backend.py) is DecryptionFailed for anything that does not
    # authenticate, so the backend must check the length first.
    with pytest.raises(DecryptionFailed):
        backend.aead_decrypt(AEAD_KEY, AEAD_NONCE, b"", bytes(length))


@native_crypto
def test_empty_plaintext_is_just_the_tag(backend: CryptoBackend) -> None:
    ct = backend.aead_encrypt(AEAD_KEY, AEAD_NONCE, b"", b"")
    assert len(ct) == 16
    assert backend.aead_decrypt(AEAD_KEY, AEAD_NONCE, b"", ct) == b""


# =========================================================================== the seam


@native_crypto
def test_backend_implements_the_protocol(backend: CryptoBackend) -> None:
    assert isinstance(backend, CryptoBackend)
    assert isinstance(backend.name, str) and backend.name
    a, b = backend.random_bytes(32), backend.random_bytes(32)
    assert len(a) == 32 and a != b
    assert backend.random_bytes(0) == b""


def test_set_backend_installs_and_none_redetects(monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = object()
    monkeypatch.setattr(crypto, "_backend", None)
    crypto.set_backend(sentinel)  # type: ignore[arg-type]
    assert crypto.get_backend() is sentinel
    crypto.set_backend(None)
    assert crypto._backend is None


def test_get_backend_without_pynacl_raises_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "_backend", None)
    monkeypatch.setitem(sys.modules, "darkswap_wasm.crypto.nacl_backend", None)  # import now fails
    with pytest.raises(CryptoBackendUnavailable) as info:
        crypto.get_backend()
    assert isinstance(info.value, DarkSwapError)
    assert info.value.code == "CRYPTO_BACKEND_UNAVAILABLE"


# =========================================================================== hashes (pure)


def test_sha256_fips_180_abc() -> None:
    assert crypto.sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_hmac_sha256_rfc4231_case_2() -> None:
    out = crypto.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert out.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_hkdf_rfc5869_case_3() -> None:
    # RFC 5869 A.3: empty salt (== 32 zero bytes as HMAC key), empty info, L = 42.
    o1, o2 = crypto.hkdf_sha256(b"", b"\x0b" * 22, 2)
    okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    assert (o1 + o2)[:42].hex() == okm
    assert crypto.hkdf_sha256(bytes(32), b"\x0b" * 22, 2) == (o1, o2)


@given(st.binary(max_size=40), st.binary(max_size=40))
@settings(max_examples=100, deadline=None, database=None, derandomize=True)
def test_hkdf_is_rfc5869_expand_with_empty_info(ck: bytes, ikm: bytes) -> None:
    prk = hmac.new(ck, ikm, hashlib.sha256).digest()
    t, okm = b"", b""
    for i in (1, 2, 3):
        t = hmac.new(prk, t + bytes([i]), hashlib.sha256).digest()
        okm += t
    three = crypto.hkdf_sha256(ck, ikm, 3)
    assert b"".join(three) == okm
    assert crypto.hkdf_sha256(ck, ikm, 2) == three[:2]


# =========================================================================== properties


@native_crypto
@CRYPTO_FUZZ
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=12, max_size=12), st.binary(max_size=32),
       st.binary(max_size=200))
def test_aead_roundtrip(key: bytes, nonce: bytes, ad: bytes, pt: bytes) -> None:
    backend = crypto.get_backend()
    ct = backend.aead_encrypt(key, nonce, ad, pt)
    assert len(ct) == len(pt) + 16
    assert backend.aead_decrypt(key, nonce, ad, ct) == pt


@native_crypto
@CRYPTO_FUZZ
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=16, max_size=64))
def test_aead_decrypt_of_garbage_raises_only_decryption_failed(key: bytes, garbage: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        crypto.get_backend().aead_decrypt(key, bytes(12), b"", garbage)


@native_crypto
@CRYPTO_FUZZ
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_x25519_is_commutative_or_fails_cleanly(a: bytes, b: bytes) -> None:
    backend = crypto.get_backend()
    pa, pb = backend.x25519_public_key(a), backend.x25519_public_key(b)
    assert backend.x25519(a, pb) == backend.x25519(b, pa)
    try:
        backend.x25519(a, b)  # b as an arbitrary (maybe low-order) point
    except DecryptionFailed:
        pass
