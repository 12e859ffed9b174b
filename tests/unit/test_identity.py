"""Ed25519 identities, libp2p key protobufs and peer IDs (libp2p/specs ``peer-ids/peer-ids.md``).

Peer-ID parsing and key-protobuf decoding are pure and run in Pyodide; everything that derives,
signs or verifies keys needs the crypto backend and is marked ``native_crypto``.
"""

from __future__ import annotations

import os
import stat
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ConfigError, DarkSwapError, DecodeError
from darkswap_wasm.identity import Identity, PeerId, PublicKey
from darkswap_wasm.wire import multibase

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)
CRYPTO_FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True)
native_crypto = pytest.mark.native_crypto

# peer-ids spec, "Test vectors" (hex-encoded protobufs).
SPEC_PRIVATE = bytes.fromhex(
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"
    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
SPEC_PUBLIC = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
SPEC_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"  # identity multihash of SPEC_PUBLIC
# peer-ids spec, "String representation" examples.
QM = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
QM_CID = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"
ED = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

# RFC 8032 §7.1, TEST 1 and TEST 2.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


# =========================================================================== pure: peer IDs


def test_spec_public_key_protobuf_decodes_and_gives_the_spec_peer_id() -> None:
    key = PublicKey.from_protobuf(SPEC_PUBLIC)
    assert key.raw == SPEC_PUBLIC[4:]
    assert key.to_protobuf() == SPEC_PUBLIC
    assert str(key.peer_id) == SPEC_PEER_ID
    # 36 bytes <= 42: identity multihash, so the ID embeds the key
    assert key.peer_id.to_bytes() == b"\x00\x24" + SPEC_PUBLIC
    assert key.peer_id.public_key_protobuf() == SPEC_PUBLIC


def test_spec_base58_and_cid_forms_name_the_same_peer() -> None:
    a = PeerId.from_string(QM)
    b = PeerId.from_string(QM_CID)
    assert a == b and hash(a) == hash(b)
    assert str(b) == QM  # displayed in the legacy base58 form
    assert a.to_bytes()[:2] == b"\x12\x20"
    assert a.public_key_protobuf() is None


def test_spec_ed25519_peer_id_embeds_its_key() -> None:
    pid = PeerId.from_string(ED)
    pk = pid.public_key_protobuf()
    assert pk is not None and pk[:4] == b"\x08\x01\x12\x20"
    assert PublicKey.from_protobuf(pk).peer_id == pid


def test_peer_id_string_roundtrip() -> None:
    for text in (QM, ED, SPEC_PEER_ID):
        pid = PeerId.from_string(text)
        assert str(pid) == text
        assert repr(pid) == f"PeerId({text!r})"
        assert PeerId(bytes(pid)) == pid
        assert PeerId.from_string(str(pid)) == pid


def test_peer_id_cid_in_other_multibases() -> None:
    pid = PeerId.from_string(ED)
    cid = b"\x01\x72" + pid.to_bytes()
    for base in "bzfmu":
        assert PeerId.from_string(multibase.encode(cid, base)) == pid


def test_large_keys_are_hashed_with_sha256() -> None:
    big = b"\x08\x00\x12\x27" + bytes(39)  # 43 bytes > 42
    pid = PeerId.from_public_key_protobuf(big)
    assert pid.to_bytes()[:2] == b"\x12\x20"
    assert str(pid).startswith("Qm")
    assert pid.public_key_protobuf() is None
    small = b"\x08\x00\x12\x26" + bytes(38)  # exactly 42: still inline
    assert PeerId.from_public_key_protobuf(small).to_bytes() == b"\x00\x2a" + small


def test_coerce_and_equality() -> None:
    pid = PeerId.from_string(ED)
    assert PeerId.coerce(pid) is pid
    assert PeerId.coerce(ED) == pid
    assert PeerId.coerce(pid.to_bytes()) == pid
    assert pid == ED
    assert pid != QM
    assert pid != PeerId.from_string(QM)
    assert pid.__eq__(42) is NotImplemented
    assert len({pid, PeerId.coerce(ED)}) == 1


def test_from_string_needs_a_str() -> None:
    with pytest.raises(TypeError):
        PeerId.from_string(b"Qm")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mh", "why"),
    [
        (b"", "multihash of 0 bytes"),
        (b"\x00" * 129, "multihash of 129 bytes"),
        (b"\x11\x14" + bytes(20), "unsupported hash code"),  # sha1
        (b"\x12\x10" + bytes(16), "must be 32 bytes"),
        (b"\x12\x20" + bytes(31), "does not match"),
        (b"\x12\x20" + bytes(33), "does not match"),
        (b"\x00\x05abc", "does not match"),
        (b"\x12", "truncated varint"),
        (b"\x80\x00\x00", "non-minimal"),
    ],
)
def test_invalid_multihashes_are_rejected(mh: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        PeerId(mh)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Qm",
        "1",
        "QmNotBase58Il0O",
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # a dag-pb CID, not libp2p-key
        "b",
        "xyz",
        "Qm" + "z" * 300,
    ],
)
def test_invalid_peer_id_strings_are_decode_errors(text: str) -> None:
    with pytest.raises(DecodeError):
        PeerId.from_string(text)


# =========================================================================== pure: key protobufs


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "unsupported key type None"),
        (b"\x08\x00\x12\x20" + bytes(32), "unsupported key type 0"),  # RSA
        (b"\x08\x02\x12\x21" + bytes(33), "unsupported key type 2"),  # secp256k1
        (b"\x08\x01", "without data"),
        (b"\x08\x01\x12\x1f" + bytes(31), "must be 32 bytes"),
        (b"\x08\x01\x12\x21" + bytes(33), "must be 32 bytes"),
        (b"\x08\x01\x12\x20" + bytes(31), "runs past the end"),
        (bytes(1025), "too large"),
    ],
)
def test_public_key_from_protobuf_rejects(raw: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        PublicKey.from_protobuf(raw)


def test_public_key_must_be_32_bytes() -> None:
    with pytest.raises(DecodeError):
        PublicKey(b"\x01" * 31)


def test_identity_rejects_a_seed_of_the_wrong_length_before_touching_crypto() -> None:
    with pytest.raises(ConfigError):
        Identity(b"\x00" * 31)


# =========================================================================== crypto: vectors


@native_crypto
@pytest.mark.parametrize(("seed", "pub", "msg", "sig"), RFC8032)
def test_rfc8032_vectors(seed: str, pub: str, msg: str, sig: str) -> None:
    ident = Identity.from_seed(bytes.fromhex(seed))
    assert ident.public_key.raw.hex() == pub
    assert ident.sign(bytes.fromhex(msg)).hex() == sig
    assert ident.public_key.verify(bytes.fromhex(msg), bytes.fromhex(sig))


@native_crypto
def test_spec_private_key_protobuf_loads_and_reencodes() -> None:
    ident = Identity.from_private_key_protobuf(SPEC_PRIVATE)
    assert ident.public_key.to_protobuf() == SPEC_PUBLIC
    assert str(ident.peer_id) == SPEC_PEER_ID
    assert ident.private_key_protobuf() == SPEC_PRIVATE
    assert repr(ident) == f"Identity({SPEC_PEER_ID})"


@native_crypto
def test_seed_only_private_key_is_accepted() -> None:
    seed_only = b"\x08\x01\x12\x20" + SPEC_PRIVATE[4:36]
    assert str(Identity.from_private_key_protobuf(seed_only).peer_id) == SPEC_PEER_ID


@native_crypto
@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\x08\x00\x12\x40" + SPEC_PRIVATE[4:], "unsupported private key type"),
        (b"\x08\x01", "must be 32 or 64 bytes, got 0"),
        (b"\x08\x01\x12\x10" + bytes(16), "must be 32 or 64 bytes"),
        (SPEC_PRIVATE[:-1] + bytes([SPEC_PRIVATE[-1] ^ 1]), "public half does not match"),
        (bytes(1025), "too large"),
        (b"\x08", "truncated"),
    ],
)
def test_private_key_protobuf_rejects(raw: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        Identity.from_private_key_protobuf(raw)


# =========================================================================== crypto: behaviour


@native_crypto
def test_verify_rejects_altered_message_signature_and_key() -> None:
    ident = Identity(bytes(range(32)))
    other = Identity(bytes(range(1, 33)))
    sig = ident.sign(b"message")
    assert ident.public_key.verify(b"message", sig)
    assert not ident.public_key.verify(b"messagf", sig)
    assert not ident.public_key.verify(b"message", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not ident.public_key.verify(b"message", sig[:63])
    assert not ident.public_key.verify(b"message", sig + b"\x00")
    assert not other.public_key.verify(b"message", sig)


@native_crypto
def test_generate_gives_distinct_identities() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.peer_id != b.peer_id
    assert str(a.peer_id).startswith("12D3KooW")


@native_crypto
def test_load_or_create_writes_0600_and_reloads_same_peer_id(tmp_path) -> None:
    path = tmp_path / "keys" / "node.key"  # the parent does not exist yet
    ident = Identity.load_or_create(path)
    assert path.read_bytes() == ident.private_key_protobuf()
    if sys.platform != "emscripten" and os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Identity.load_or_create(path)
    assert again.peer_id == ident.peer_id
    assert again.private_key_protobuf() == ident.private_key_protobuf()
    # no temporary files left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["node.key"]


@native_crypto
def test_load_or_create_reads_a_go_or_js_key_file(tmp_path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(SPEC_PRIVATE)
    assert str(Identity.load_or_create(path).peer_id) == SPEC_PEER_ID


@native_crypto
def test_load_or_create_refuses_a_corrupt_key_file(tmp_path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(b"\x08\x01\x12\x40garbage")
    with pytest.raises(DecodeError):
        Identity.load_or_create(path)
    assert path.read_bytes() == b"\x08\x01\x12\x40garbage"  # not overwritten


# =========================================================================== properties

MULTIHASH = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda d: b"\x12\x20" + d),
    st.binary(max_size=42).map(lambda d: bytes((0, len(d))) + d),
)


@FUZZ
@given(MULTIHASH)
def test_peer_id_string_and_cid_roundtrip(mh: bytes) -> None:
    pid = PeerId(mh)
    assert PeerId.from_string(str(pid)) == pid
    assert PeerId.from_string(multibase.encode(b"\x01\x72" + mh, "b")) == pid
    assert PeerId(pid.to_bytes()) == pid


@FUZZ
@given(st.binary(max_size=140))
def test_peer_id_from_random_bytes_raises_only_package_errors(data: bytes) -> None:
    try:
        pid = PeerId(data)
    except DarkSwapError:
        return
    str(pid)
    pid.public_key_protobuf()


@FUZZ
@given(st.one_of(st.text(max_size=60), st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
                                                max_size=60).map(lambda s: "Qm" + s),
                 st.binary(max_size=50).map(lambda b: multibase.encode(b, "b"))))
def test_peer_id_from_random_strings_raises_only_package_errors(text: str) -> None:
    try:
        PeerId.from_string(text)
    except DarkSwapError:
        pass


@FUZZ
@given(st.binary(max_size=80))
def test_public_key_from_random_protobuf_raises_only_package_errors(data: bytes) -> None:
    try:
        PublicKey.from_protobuf(data)
    except DarkSwapError:
        pass


@FUZZ
@given(st.data())
def test_public_key_from_mutated_protobuf_raises_only_package_errors(data: st.DataObject) -> None:
    raw = bytearray(SPEC_PUBLIC)
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        key = PublicKey.from_protobuf(bytes(raw))
    except DarkSwapError:
        return
    assert len(key.raw) == 32


@native_crypto
@CRYPTO_FUZZ
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64))
def test_sign_verify_roundtrip(seed: bytes, message: bytes) -> None:
    ident = Identity(seed)
    assert ident.public_key.verify(message, ident.sign(message))
    assert Identity.from_private_key_protobuf(ident.private_key_protobuf()).peer_id == ident.peer_id


@native_crypto
@CRYPTO_FUZZ
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=32), st.binary(max_size=70))
def test_verify_of_garbage_returns_false_and_never_raises(key: bytes, message: bytes, sig: bytes) -> None:
    assert PublicKey(key).verify(message, sig) is False
