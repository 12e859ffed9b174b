"""Kademlia codec vectors made by js-libp2p's own code (``js/kad_vectors.mjs``: @libp2p/kad-dht
16.4.5's protons ``Message`` codec, multiformats' ``CID.decode``, circuit-relay-v2's
``namespaceToCid``): our encoder's bytes must equal theirs, each side must decode the other's,
and the relay key must be what js relays provide and what js decodes as a CIDv0 / sha2-256
multihash. Runs node 22 from ``js/node_modules`` and fails (never skips) when it is missing."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from darkswap_wasm.identity import Identity, PeerId
from darkswap_wasm.protocols.kad import (
    ConnectionType,
    KadMessage,
    KadPeer,
    MessageType,
    is_content_key,
    relay_key,
    sha256_multihash,
)
from darkswap_wasm.protocols.kad_routing import random_key
from darkswap_wasm.wire.multiaddr import Multiaddr

from .jspeer import HERE, require_node

pytestmark = [pytest.mark.interop]

SCRIPT = HERE / "kad_vectors.mjs"

ED = Identity.from_seed(bytes(range(32))).peer_id  # identity-multihash peer ID (12D3KooW...)
RSA_LIKE = PeerId(sha256_multihash(b"a sha2-256 peer id"))  # Qm... form
ADDRS = (
    Multiaddr("/ip4/127.0.0.1/tcp/4001"),
    Multiaddr("/ip6/::1/tcp/4002/ws"),
    Multiaddr(f"/ip4/10.0.0.1/tcp/4001/ws/p2p/{ED}/p2p-circuit"),
    Multiaddr("/dns4/relay.example/tcp/443/wss"),
)
PEERS = (
    KadPeer(ED, ADDRS[:2], ConnectionType.CONNECTED),
    KadPeer(RSA_LIKE, (), None),
    KadPeer(ED, (ADDRS[2],), ConnectionType.NOT_CONNECTED),
    KadPeer(RSA_LIKE, ADDRS, ConnectionType.CAN_CONNECT),
    KadPeer(ED, (ADDRS[3],), ConnectionType.CANNOT_CONNECT),
)

MESSAGES = [
    KadMessage(MessageType.FIND_NODE, key=relay_key()),
    KadMessage(MessageType.FIND_NODE, key=ED.to_bytes(), cluster_level=0),
    KadMessage(MessageType.FIND_NODE, closer_peers=PEERS, cluster_level=0),
    KadMessage(MessageType.GET_PROVIDERS, key=relay_key(), cluster_level=0),
    KadMessage(MessageType.GET_PROVIDERS, key=relay_key(), closer_peers=PEERS[:3], provider_peers=PEERS[3:],
               cluster_level=0),
    KadMessage(MessageType.ADD_PROVIDER, key=relay_key(), provider_peers=(PEERS[0],)),
    KadMessage(MessageType.PUT_VALUE, key=b"/pk/x", record=b"\x0a\x02hi"),
    KadMessage(MessageType.GET_VALUE, key=b"/pk/x"),
    KadMessage(MessageType.PING),
    KadMessage(MessageType.FIND_NODE, key=b"\x12\x20" + bytes(32), cluster_level=2**31 - 1),
    KadMessage(MessageType.FIND_NODE, key=b""),
]

KEYS = [
    relay_key(),
    random_key(lambda n: bytes(range(n))),
    ED.to_bytes(),
    b"\x01\x55" + relay_key(),  # CIDv1, raw codec
    b"\x01\x55\x00\x04" + bytes(4),  # CIDv1 of an identity multihash
    b"\x12\x10" + bytes(16),  # short sha2-256 digest: still a multihash
    b"\x12\x00",  # empty digest (js accepts it)
    b"\x12\x20" + bytes(5),  # truncated digest
    b"\x12\x20",
    b"\x01\x70\x00\x10\x00",  # CIDv1 with a truncated multihash
    b"\x02\x55" + relay_key(),  # CID version 2
    b"\x13\x20" + bytes(32),
    b"\x01\x55\x12",
    b"\xff",
    b"not a multihash at all",
]


def _peer_json(p: KadPeer) -> dict:
    out = {"id": p.peer_id.to_bytes().hex(), "multiaddrs": [a.to_bytes().hex() for a in p.addrs]}
    if p.connection is not None:
        out["connection"] = p.connection.name
    return out


def _message_json(m: KadMessage) -> dict:
    out = {"type": m.type.name, "closer": [_peer_json(p) for p in m.closer_peers],
           "providers": [_peer_json(p) for p in m.provider_peers]}
    if m.key is not None:
        out["key"] = m.key.hex()
    if m.record is not None:
        out["record"] = m.record.hex()
    if m.cluster_level is not None:
        out["clusterLevel"] = m.cluster_level
    return out


@pytest.fixture(scope="module")
def js():
    node = require_node()
    request = {
        "messages": [_message_json(m) for m in MESSAGES],
        "decode": [m.encode_body().hex() for m in MESSAGES],
        "keys": [k.hex() for k in KEYS],
        "namespace": "/libp2p/relay/v2",
    }
    proc = subprocess.run([str(node), str(SCRIPT)], input=json.dumps(request).encode(), capture_output=True,
                          timeout=120, cwd=HERE, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout)


@pytest.mark.parametrize("i", range(len(MESSAGES)), ids=[f"{m.type.name}-{i}" for i, m in enumerate(MESSAGES)])
def test_our_bytes_equal_js_kad_dht_bytes(js, i):
    ours = MESSAGES[i]
    assert ours.encode_body().hex() == js["encoded"][i]
    assert ours.encode().hex() == js["framed"][i]
    assert KadMessage.decode_body(bytes.fromhex(js["encoded"][i])) == ours


@pytest.mark.parametrize("i", range(len(MESSAGES)), ids=[f"{m.type.name}-{i}" for i, m in enumerate(MESSAGES)])
def test_js_decodes_our_bytes_to_the_same_message(js, i):
    want = _message_json(MESSAGES[i])
    got = js["decoded"][i]
    assert got == want


def test_relay_key_matches_js_namespace_cid_and_decodes_as_sha256_multihash(js):
    digest = hashlib.sha256(b"/libp2p/relay/v2").hexdigest()
    ns = js["namespaceCid"]
    assert bytes.fromhex(ns["bytes"]) == relay_key()  # circuit-relay-v2's namespaceToCid
    assert (ns["version"], ns["code"], ns["digest"]) == (0, 0x12, digest)
    decoded = js["keys"][0]
    assert decoded["version"] == 0 and decoded["code"] == 0x12 and decoded["digest"] == digest
    assert bytes.fromhex(decoded["multihash"]) == relay_key()
    assert decoded["string"] == ns["string"] and decoded["string"].startswith("Qm")


def test_our_key_check_agrees_with_js_cid_decode(js):
    for key, verdict in zip(KEYS, js["keys"], strict=True):
        assert is_content_key(key) == ("error" not in verdict), (key.hex(), verdict)
    walk = js["keys"][1]
    assert walk["code"] == 0x12 and bytes.fromhex(walk["multihash"]) == KEYS[1]
