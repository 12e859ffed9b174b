"""Interop with js-libp2p 3 (npm), a peer we did not write: TCP and WebSocket, both directions.

Ping, identify (what each side learns), and a custom echo protocol carrying 10 MiB on a yamux
stream. The js peer is ``js/peer.mjs`` on Node 22; a missing install fails these tests.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from darkswap_wasm import Identity, Network, NetworkConfig
from darkswap_wasm.host.host import AGENT_VERSION

from ..integration.helpers import async_test, echo_handler, echo_roundtrip
from .jspeer import JsPeer, pattern, require_node

pytestmark = [pytest.mark.interop, pytest.mark.native_crypto]

ECHO = "/darkswap/echo/1.0.0"
LISTEN = {"tcp": "/ip4/127.0.0.1/tcp/0", "ws": "/ip4/127.0.0.1/tcp/0/ws"}
TEN_MIB = 10 * 1024 * 1024


class Pair:
    def __init__(self, js: JsPeer, net: Network) -> None:
        self.js = js
        self.net = net

    @classmethod
    async def start(cls, kind: str) -> Pair:
        require_node()
        js = await JsPeer.start("js", "--listen", LISTEN[kind])
        net = await Network.create(NetworkConfig(listen_addrs=[LISTEN[kind]]))
        net.set_stream_handler(ECHO, echo_handler)
        return cls(js, net)

    async def stop(self) -> None:
        await self.net.close()
        code = await self.js.stop()
        assert code == 0
        assert self.js.errors == [], f"js peer reported errors: {self.js.errors}"


def _our_addr(net: Network, kind: str) -> str:
    addrs = [str(a) for a in net.listen_addrs()]
    return next(a for a in addrs if ("/ws/" in a) == (kind == "ws"))


@pytest.mark.parametrize("kind", ["tcp", "ws"])
@async_test(timeout=120)
async def test_we_dial_js(kind):
    pair = await Pair.start(kind)
    try:
        js, net = pair.js, pair.net
        peer = await net.connect(js.addr(kind))
        assert str(peer) == js.peer_id
        assert [c.transport for c in net.connections(peer)] == [kind]

        # ping: ours -> theirs
        assert 0 < await net.ping(peer) < 5

        # identify: what we learn about them
        info = await net.identify(peer)
        assert info.agent_version.startswith("js-libp2p-interop/")
        assert info.protocol_version == "ipfs/0.1.0"
        assert ECHO in info.protocols and "/ipfs/ping/1.0.0" in info.protocols
        assert info.public_key is not None and str(info.public_key.peer_id) == js.peer_id
        assert str(info.listen_addrs[0].encapsulate(f"/p2p/{peer}")) == js.addr(kind)
        local_port = net.connections(peer)[0].raw.local_addr.value_for("tcp")
        assert info.observed_addr is not None and info.observed_addr.value_for("tcp") == local_port

        # identify: what they learn about us
        theirs = await js.ok("identify", peer=str(net.local_peer_id()))
        assert theirs["agentVersion"] == AGENT_VERSION
        assert ECHO in theirs["protocols"] and "/ipfs/id/1.0.0" in theirs["protocols"]
        assert theirs["publicKey"] == net.local_peer_id().public_key_protobuf().hex()
        assert any(a.startswith(_our_addr(net, kind).split("/p2p/")[0]) for a in theirs["listenAddrs"])

        # 10 MiB through their echo handler
        stream = await net.new_stream(peer, [ECHO])
        payload = pattern(TEN_MIB)
        back = await echo_roundtrip(stream, payload)
        assert len(back) == TEN_MIB and back == payload

        # and they can ping us back over the same connection
        r = await js.ok("ping", peer=str(net.local_peer_id()))
        assert r["rtt_ms"] >= 0
        assert len(net.connections(peer)) == 1
    finally:
        await pair.stop()


@pytest.mark.parametrize("kind", ["tcp", "ws"])
@async_test(timeout=120)
async def test_js_dials_us(kind):
    pair = await Pair.start(kind)
    try:
        js, net = pair.js, pair.net
        connected = asyncio.Event()
        net.on("peer:connect", lambda p: connected.set())
        r = await js.ok("dial", addr=_our_addr(net, kind))
        assert r["peerId"] == str(net.local_peer_id())
        await asyncio.wait_for(connected.wait(), 10)
        peer = net.peers()[0]
        assert str(peer) == js.peer_id
        assert [c.transport for c in net.connections(peer)] == [kind]

        # ping: theirs -> ours
        r = await js.ok("ping", peer=str(net.local_peer_id()))
        assert 0 <= r["rtt_ms"] < 5000

        # identify both ways
        theirs = await js.ok("identify", peer=str(net.local_peer_id()))
        assert theirs["agentVersion"] == AGENT_VERSION
        assert theirs["protocolVersion"] == "ipfs/0.1.0"
        assert theirs["observedAddr"] is not None and "/ip4/127.0.0.1/tcp/" in theirs["observedAddr"]
        ours = await net.identify(peer)
        assert ours.agent_version.startswith("js-libp2p-interop/")
        assert ours.observed_addr is not None
        assert ours.observed_addr.value_for("tcp") == _our_addr(net, kind).split("/tcp/")[1].split("/")[0]

        # 10 MiB through OUR echo handler, driven by them
        r = await js.ok("echo", peer=str(net.local_peer_id()), size=TEN_MIB, timeout=90)
        assert r["bytes"] == TEN_MIB
        assert r["sha256"] == hashlib.sha256(pattern(TEN_MIB)).hexdigest()
    finally:
        await pair.stop()


@async_test(timeout=60)
async def test_seed_gives_the_peer_id_js_libp2p_gives():
    require_node()
    seeds = [bytes(32), bytes(range(32)), hashlib.sha256(b"darkswap").digest()]
    for seed in seeds:
        js = await JsPeer.start("js", "--seed", seed.hex(), "--listen", LISTEN["tcp"])
        try:
            assert js.peer_id == str(Identity.from_seed(seed).peer_id)
        finally:
            await js.stop()


@async_test(timeout=60)
async def test_many_streams_at_once_with_js():
    pair = await Pair.start("tcp")
    try:
        peer = await pair.net.connect(pair.js.addr("tcp"))

        async def one(i: int) -> bool:
            s = await pair.net.new_stream(peer, [ECHO])
            payload = pattern(10_000 + 997 * i)
            return await echo_roundtrip(s, payload) == payload

        assert all(await asyncio.gather(*(one(i) for i in range(50))))
    finally:
        await pair.stop()
