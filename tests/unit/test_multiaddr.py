"""Multiaddr text and binary forms: spec vectors, roundtrips, composition, strictness, fuzz.

Pure Python: runs in Pyodide too (no ``native_crypto`` mark).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import DarkSwapError, DecodeError
from darkswap_wasm.wire import multibase, varint
from darkswap_wasm.wire.multiaddr import MAX_COMPONENTS, MAX_MULTIADDR_BYTES, Multiaddr

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True)

QM = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"  # peer-ids spec, sha256 peer ID
QM_CID = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"  # the same ID as a CIDv1
ED = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"  # peer-ids spec, Ed25519 peer ID
QM_MH = "12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9"
ED_MH = "0024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b"
# libp2p/specs webrtc: a webrtc-direct certhash (sha2-256 multihash, base64url multibase)
CERTHASH = "uEiAsGPzpiPGQzSlVHRXrUCT5EkTV7YFrV4VZ3hpEKTd_zg"
CERTHASH_MH = "12202c18fce988f190cd29551d15eb5024f91244d5ed816b578559de1a4429377fce"
EXAMPLE_COM = b"example.com".hex()

# (text, binary hex). The first two are the multiformats/multiaddr README and test/multiaddr.feature
# examples; the rest follow from the protocols.csv codes (ip6 41, dns 53, dns4 54, dns6 55,
# dnsaddr 56, udp 273, webrtc-direct 280, webrtc 281, p2p-circuit 290, p2p 421, tls 448, sni 449,
# quic-v1 461, certhash 466, ws 477, wss 478).
VECTORS = [
    ("/ip4/127.0.0.1/udp/1234", "047f000001910204d2"),
    ("/ip4/192.0.2.42/tcp/443", "04c000022a0601bb"),
    ("/ip6/::1/tcp/4001", "29" + "00" * 15 + "01" + "060fa1"),
    ("/ip6/2001:db8::1/udp/9090/quic-v1", "2920010db8" + "00" * 10 + "0001" + "91022382" + "cd03"),
    (
        "/dns/example.com/tcp/443/tls/sni/example.com/ws",
        "350b" + EXAMPLE_COM + "0601bb" + "c003" + "c1030b" + EXAMPLE_COM + "dd03",
    ),
    ("/dns4/example.com/tcp/443/wss", "360b" + EXAMPLE_COM + "0601bb" + "de03"),
    ("/dns6/example.com/tcp/80/ws", "370b" + EXAMPLE_COM + "060050" + "dd03"),
    ("/dnsaddr/example.com", "380b" + EXAMPLE_COM),
    ("/ip4/1.2.3.4/tcp/80/p2p/" + QM, "0401020304060050" + "a50322" + QM_MH),
    ("/p2p/" + ED, "a50326" + ED_MH),
    (
        "/ip4/1.2.3.4/tcp/4001/p2p/" + QM + "/p2p-circuit/p2p/" + ED,
        "0401020304060fa1" + "a50322" + QM_MH + "a202" + "a50326" + ED_MH,
    ),
    (
        "/ip4/192.0.2.0/udp/1234/webrtc-direct/certhash/" + CERTHASH,
        "04c0000200910204d2" + "9802" + "d20322" + CERTHASH_MH,
    ),
    ("/p2p/" + ED + "/p2p-circuit/webrtc/p2p/" + QM, "a50326" + ED_MH + "a202" + "9902" + "a50322" + QM_MH),
]


# --------------------------------------------------------------------------- spec vectors


@pytest.mark.parametrize(("text", "hex_"), VECTORS)
def test_text_to_binary_vector(text: str, hex_: str) -> None:
    assert Multiaddr(text).to_bytes().hex() == hex_


@pytest.mark.parametrize(("text", "hex_"), VECTORS)
def test_binary_to_text_vector(text: str, hex_: str) -> None:
    ma = Multiaddr.from_bytes(bytes.fromhex(hex_))
    assert str(ma) == text
    assert ma == Multiaddr(text)


def test_feature_file_components() -> None:
    # multiformats/multiaddr test/multiaddr.feature, "Simple string form".
    ma = Multiaddr("/ip4/192.0.2.42/tcp/443")
    assert len(ma) == 2
    assert ma.components() == [("ip4", "192.0.2.42"), ("tcp", "443")]
    assert ma.raw_value_for("ip4") == bytes.fromhex("c000022a")
    assert ma.raw_value_for("tcp") == bytes.fromhex("01bb")
    assert len(str(ma)) == 23 and len(bytes(ma)) == 8


# --------------------------------------------------------------------------- roundtrips


@pytest.mark.parametrize(
    "text",
    [
        "/ip4/0.0.0.0/tcp/0",
        "/ip4/255.255.255.255/tcp/65535",
        "/ip6/fe80::1/tcp/1",
        "/ip6/2001:db8:85a3::8a2e:370:7334/tcp/443/wss",
        "/dns4/bootstrap.libp2p.io/tcp/443/wss/p2p/" + QM,
        "/dns6/localhost/tcp/1/ws",
        "/dns/xn--bcher-kva.example/udp/1/quic-v1",
        "/dns4/bücher.example/tcp/1",
        "/ip4/127.0.0.1/tcp/1/ws/p2p/" + ED + "/p2p-circuit",
        "/ip4/127.0.0.1/udp/1/webrtc-direct/certhash/" + CERTHASH + "/p2p/" + ED,
        "/p2p-circuit",
        "/webrtc",
        "/webrtc-direct",
        "/p2p-webrtc-direct",
        "/tls/ws",
    ],
)
def test_text_binary_roundtrip(text: str) -> None:
    ma = Multiaddr(text)
    assert str(ma) == text
    assert Multiaddr.from_bytes(ma.to_bytes()) == ma
    assert Multiaddr(str(ma)) == ma


def test_ipfs_is_read_as_p2p() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/tcp/1/ipfs/" + QM)
    assert str(ma) == "/ip4/1.2.3.4/tcp/1/p2p/" + QM
    assert ma == Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/" + QM)


def test_p2p_given_as_cid_is_printed_as_base58() -> None:
    # peer-ids spec: the CIDv1 and the base58 forms name the same peer.
    assert str(Multiaddr("/p2p/" + QM_CID)) == "/p2p/" + QM


def test_trailing_slash_is_ignored() -> None:
    assert Multiaddr("/ip4/1.2.3.4/tcp/1/") == Multiaddr("/ip4/1.2.3.4/tcp/1")


def test_empty_multiaddr_exists_in_binary_only() -> None:
    empty = Multiaddr(b"")
    assert len(empty) == 0 and str(empty) == "" and empty.to_bytes() == b""
    assert Multiaddr("/") == empty
    with pytest.raises(DecodeError):
        Multiaddr("")


def test_ipv4_mapped_ip6_roundtrips_in_binary() -> None:
    ma = Multiaddr("/ip6/::ffff:1.2.3.4/udp/53")
    assert ma.raw_value_for("ip6") == bytes(10) + b"\xff\xff\x01\x02\x03\x04"
    assert Multiaddr.from_bytes(ma.to_bytes()) == ma
    assert Multiaddr(str(ma)) == ma


def test_ip6_is_printed_in_canonical_form() -> None:
    assert str(Multiaddr("/ip6/2001:0DB8:0000:0000:0000:0000:0000:0001")) == "/ip6/2001:db8::1"


# --------------------------------------------------------------------------- views & composition


def test_views() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/tcp/4001/ws/p2p/" + QM)
    assert ma.protocols() == ["ip4", "tcp", "ws", "p2p"]
    assert ma.components() == [("ip4", "1.2.3.4"), ("tcp", "4001"), ("ws", None), ("p2p", QM)]
    assert list(ma) == ma.components()
    assert ma.value_for("tcp") == "4001"
    assert ma.value_for("udp") is None
    assert ma.raw_value_for("udp") is None
    assert repr(ma) == f"Multiaddr('{ma}')"


def test_value_for_returns_the_last_occurrence() -> None:
    ma = Multiaddr("/p2p/" + QM + "/p2p-circuit/p2p/" + ED)
    assert ma.value_for("p2p") == ED


def test_encapsulate_and_decapsulate() -> None:
    base = Multiaddr("/ip4/1.2.3.4/tcp/1")
    full = base.encapsulate("/p2p/" + QM)
    assert str(full) == "/ip4/1.2.3.4/tcp/1/p2p/" + QM
    assert full.decapsulate_last("p2p") == base
    assert full.decapsulate_last("udp") is full
    assert full.without_p2p() == base
    assert base.without_p2p() is base


def test_split_at_first_component() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/" + QM + "/p2p-circuit/p2p/" + ED)
    split = ma.split_at("p2p-circuit")
    assert split is not None
    before, after = split
    assert before == Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/" + QM)
    assert after == Multiaddr("/p2p-circuit/p2p/" + ED)
    assert ma.split_at("webrtc") is None


def test_equality_hash_and_copying() -> None:
    a = Multiaddr("/ip4/1.2.3.4/tcp/1")
    assert a == "/ip4/1.2.3.4/tcp/1"
    assert a != "/ip4/1.2.3.4/tcp/2"
    assert a != "not a multiaddr"
    assert a != 42
    assert Multiaddr(a) == a and hash(Multiaddr(a)) == hash(a)
    assert Multiaddr(bytearray(a.to_bytes())) == a
    assert Multiaddr(memoryview(a.to_bytes())) == a
    assert len({a, Multiaddr(a.to_bytes())}) == 1


def test_non_string_non_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Multiaddr(1234)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ip4/1.2.3.4", "must start with '/'"),
        ("/ip5/1.2.3.4", "unknown multiaddr protocol"),
        ("/ip4", "needs a value"),
        ("/ip4/1.2.3.4/tcp", "needs a value"),
        ("/ip4/1.2.3.256", "invalid /ip4"),
        ("/ip4/::1", "invalid /ip4"),
        ("/ip6/1.2.3.4", "invalid /ip6"),
        ("/ip6/gggg::1", "invalid /ip6"),
        ("/tcp/65536", "invalid /tcp"),
        ("/udp/-1", "invalid /udp"),
        ("/tcp/http", "invalid /tcp"),
        ("/tcp/", "needs a value"),
        ("/dns4//tcp/1", "empty /dns4"),
        ("/p2p/" + "0" * 10, "unsupported multibase prefix"),
        ("/p2p/QmNotBase58!", "invalid base58"),
        ("/p2p/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "neither"),  # dag-pb, not libp2p-key
        ("/certhash/!", "unsupported multibase"),
        ("/" + "ws/" * 2000, "too long"),
    ],
)
def test_malformed_text_is_a_decode_error(text: str, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        Multiaddr(text)


@pytest.mark.parametrize(
    ("hex_", "why"),
    [
        ("04c00002", "truncated /ip4"),
        ("060f", "truncated /tcp"),
        ("2900", "truncated /ip6"),
        ("360b6578", "truncated /dns4"),
        ("3605", "truncated /dns4"),
        ("36", "truncated varint"),
        ("3600", "empty /dns4"),
        ("a50300", "empty /p2p"),
        ("d20300", "empty /certhash"),
        ("3603612f62", "contains '/'"),
        ("3602c328", "not UTF-8"),
        ("ff7f", "unknown multiaddr protocol code"),
        ("07", "unknown multiaddr protocol code"),
        ("8000", "non-minimal"),
        ("dd8300", "non-minimal"),  # ws with a padded code varint
    ],
)
def test_malformed_binary_is_a_decode_error(hex_: str, why: str) -> None:
    with pytest.raises(DecodeError, match=why):
        Multiaddr.from_bytes(bytes.fromhex(hex_))


def test_binary_length_and_component_count_are_bounded() -> None:
    with pytest.raises(DecodeError, match="longer than"):
        Multiaddr.from_bytes(b"\x36\x01a" * (MAX_MULTIADDR_BYTES // 3 + 1))
    with pytest.raises(DecodeError, match="too many"):
        Multiaddr.from_bytes(bytes.fromhex("dd03") * (MAX_COMPONENTS + 1))
    assert len(Multiaddr.from_bytes(bytes.fromhex("dd03") * MAX_COMPONENTS)) == MAX_COMPONENTS


def test_text_component_count_is_bounded() -> None:
    with pytest.raises(DecodeError, match="too many"):
        Multiaddr("/tcp/1" * (MAX_COMPONENTS + 1))


@pytest.mark.parametrize(
    "text",
    [
        "/ws" * (MAX_COMPONENTS + 1),  # value-less components skip the count check
        "/dns4/" + "a" * (MAX_MULTIADDR_BYTES + 1),  # text allows 4x the binary size
    ],
    ids=["33-bare-components", "1025-byte-dns4-name"],
)
def test_text_parser_enforces_the_binary_limits(text: str) -> None:
    # BUG (wire/multiaddr.py _parse_text): the component limit is only checked after valued
    # components (the `continue` for size-0 protocols skips it) and the encoded size is never
    # checked, so Multiaddr(text) accepts addresses whose own to_bytes() from_bytes() rejects.
    with pytest.raises(DecodeError):
        Multiaddr(text)


def test_text_rejects_an_empty_certhash_like_binary_does() -> None:
    # BUG (wire/multiaddr.py _value_to_bytes): "/certhash/u" decodes to an empty value, which
    # the binary parser rejects ("empty /certhash value"); the text parser accepts it.
    with pytest.raises(DecodeError):
        Multiaddr("/ip4/1.2.3.4/udp/1/webrtc-direct/certhash/u")


@pytest.mark.parametrize("text", ["/dns4/\ud800", "/sni/a\udfffb", "/dnsaddr/\udc80"])
def test_text_with_a_lone_surrogate_is_a_decode_error(text: str) -> None:
    # BUG (wire/multiaddr.py _value_to_bytes, `raw = text.encode("utf-8")`): lone surrogates
    # raise UnicodeEncodeError instead of DecodeError.
    with pytest.raises(DecodeError):
        Multiaddr(text)


@pytest.mark.parametrize("port", ["8_0", "+80", " 80", "80 ", "\u0668\u0660"])
def test_port_must_be_plain_ascii_decimal(port: str) -> None:
    # BUG (wire/multiaddr.py _value_to_bytes): int(text, 10) also accepts "_" separators, a
    # sign, surrounding whitespace and non-ASCII digits, so e.g. "/tcp/8_0" parses as port 80.
    with pytest.raises(DecodeError):
        Multiaddr("/ip4/1.2.3.4/tcp/" + port)


def test_ip6_zone_is_not_silently_dropped() -> None:
    # BUG (wire/multiaddr.py _value_to_bytes): ipaddress accepts "fe80::1%eth0" and .packed
    # drops the zone, so the address silently changes. Zones belong in /ip6zone (unsupported
    # here): the value should be rejected.
    with pytest.raises(DecodeError):
        Multiaddr("/ip6/fe80::1%eth0/tcp/1")


# --------------------------------------------------------------------------- properties

NAME = st.text(
    st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=20
)
MULTIHASH = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda d: b"\x12\x20" + d),
    st.binary(max_size=42).map(lambda d: bytes((0, len(d))) + d),
)
VALUED = st.one_of(
    st.ip_addresses(v=4).map(lambda a: f"/ip4/{a}"),
    st.ip_addresses(v=6).map(lambda a: f"/ip6/{a}"),
    st.integers(0, 65535).map(lambda p: f"/tcp/{p}"),
    st.integers(0, 65535).map(lambda p: f"/udp/{p}"),
    st.tuples(st.sampled_from(["dns", "dns4", "dns6", "dnsaddr", "sni"]), NAME).map(lambda t: f"/{t[0]}/{t[1]}"),
    MULTIHASH.map(lambda mh: "/p2p/" + multibase.b58encode(mh)),
    MULTIHASH.map(lambda mh: "/certhash/" + multibase.encode(mh, "u")),
)
BARE = st.sampled_from(
    ["/ws", "/wss", "/tls", "/quic-v1", "/p2p-circuit", "/webrtc", "/webrtc-direct", "/p2p-webrtc-direct"]
)
TEXT_ADDR = st.lists(st.one_of(VALUED, BARE), min_size=1, max_size=8).map("".join)


@FUZZ
@given(TEXT_ADDR)
def test_roundtrip_text_binary_text(text: str) -> None:
    ma = Multiaddr(text)
    assert str(ma) == text
    raw = ma.to_bytes()
    back = Multiaddr.from_bytes(raw)
    assert back == ma and back.to_bytes() == raw and hash(back) == hash(ma)
    assert Multiaddr(str(back)) == ma


@FUZZ
@given(st.binary(max_size=80))
@example(bytes.fromhex("a503" + "03010203"))  # a p2p value that is not a multihash
def test_whatever_from_bytes_accepts_prints_as_text_that_parses_back(data: bytes) -> None:
    # BUG (wire/multiaddr.py): from_bytes() takes any bytes as a /p2p value, but str() prints
    # them in base58 and Multiaddr(text) only reads base58 values starting "Qm"/"1" (i.e.
    # sha2-256 or identity multihashes), so b"\x01\x02\x03" prints as "/p2p/Ldp" and cannot be
    # read back. Both parsers should require a peer-ID multihash for /p2p.
    try:
        ma = Multiaddr.from_bytes(data)
    except DarkSwapError:
        return
    assert ma.to_bytes() == data  # the binary form is canonical
    if data:
        assert Multiaddr(str(ma)) == ma


@FUZZ
@given(st.binary(max_size=80))
def test_from_bytes_random_bytes_raises_only_package_errors(data: bytes) -> None:
    try:
        ma = Multiaddr.from_bytes(data)
    except DarkSwapError:
        return
    str(ma)
    ma.components()


@FUZZ
@given(TEXT_ADDR, st.data())
def test_from_bytes_mutated_encodings_raise_only_package_errors(text: str, data: st.DataObject) -> None:
    raw = bytearray(Multiaddr(text).to_bytes())
    raw += data.draw(st.binary(max_size=4))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        Multiaddr.from_bytes(bytes(raw))
    except DarkSwapError:
        pass


TOKEN = st.one_of(
    st.sampled_from(
        ["ip4", "ip6", "tcp", "udp", "dns", "dns4", "dns6", "dnsaddr", "p2p", "ipfs", "certhash", "sni", "ws",
         "wss", "tls", "quic-v1", "p2p-circuit", "webrtc", "webrtc-direct", "1.2.3.4", "::1", "65535", "", QM, ED,
         QM_CID, CERTHASH, "u", "z", "Qm", "1"]
    ),
    st.text(max_size=12),
)


@FUZZ
@given(st.lists(TOKEN, max_size=10), st.booleans())
def test_text_random_tokens_raise_only_package_errors(tokens: list[str], lead: bool) -> None:
    text = ("/" if lead else "") + "/".join(tokens)
    try:
        Multiaddr(text)
    except DarkSwapError:
        pass


@FUZZ
@given(st.text(max_size=60))
def test_text_random_strings_raise_only_package_errors(text: str) -> None:
    try:
        Multiaddr(text)
    except DarkSwapError:
        pass


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("/ip4/1.2.3.4", 4), ("/tcp/1", 6), ("/dns/x", 53), ("/dns4/x", 54), ("/dns6/x", 55),
        ("/dnsaddr/x", 56), ("/ip6/::1", 41), ("/udp/1", 273), ("/p2p-webrtc-direct", 276),
        ("/webrtc-direct", 280), ("/webrtc", 281), ("/p2p-circuit", 290), ("/p2p/" + ED, 421),
        ("/tls", 448), ("/sni/x", 449), ("/quic-v1", 461), ("/certhash/" + CERTHASH, 466),
        ("/ws", 477), ("/wss", 478),
    ],
)
def test_protocol_codes_match_the_multiaddr_table(text: str, code: int) -> None:
    # multiformats/multiaddr protocols.csv (current names: 280 webrtc-direct, 281 webrtc)
    assert Multiaddr(text).to_bytes().startswith(varint.encode(code))
