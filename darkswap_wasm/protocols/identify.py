"""libp2p identify (spec: libp2p/specs ``identify/README.md``).

``/ipfs/id/1.0.0``: the side that opens the stream listens; the other writes one
varint-length-prefixed ``Identify`` message and closes. ``/ipfs/id/push/1.0.0``: the opener
writes its message. Messages are bounded (:data:`MAX_MESSAGE`); the public key, when present,
must match the peer the connection authenticated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DecodeError, MessageTooLarge, ProtocolError
from ..identity import PeerId, PublicKey
from ..wire import protobuf
from ..wire.framing import FrameDecoder, encode_frame
from ..wire.multiaddr import Multiaddr

PROTOCOL_ID = "/ipfs/id/1.0.0"
PUSH_PROTOCOL_ID = "/ipfs/id/push/1.0.0"
PROTOCOL_VERSION = "ipfs/0.1.0"
MAX_MESSAGE = 8 * 1024  # js-libp2p's default as well
MAX_ADDRS = 64
MAX_PROTOCOLS = 256

SCHEMA = {
    1: ("publicKey", "bytes", False),
    2: ("listenAddrs", "bytes", True),
    3: ("protocols", "string", True),
    4: ("observedAddr", "bytes", False),
    5: ("protocolVersion", "string", False),
    6: ("agentVersion", "string", False),
    8: ("signedPeerRecord", "bytes", False),
}


@dataclass(frozen=True)
class IdentifyInfo:
    protocol_version: str | None = None
    agent_version: str | None = None
    public_key: PublicKey | None = None
    listen_addrs: tuple[Multiaddr, ...] = ()
    observed_addr: Multiaddr | None = None
    protocols: tuple[str, ...] = field(default=())

    def encode(self) -> bytes:
        """The length-prefixed wire message."""
        body = protobuf.encode(
            SCHEMA,
            {
                "protocolVersion": self.protocol_version,
                "agentVersion": self.agent_version,
                "publicKey": self.public_key.to_protobuf() if self.public_key else None,
                "listenAddrs": [a.to_bytes() for a in self.listen_addrs],
                "observedAddr": self.observed_addr.to_bytes() if self.observed_addr else None,
                "protocols": list(self.protocols),
            },
        )
        if len(body) > MAX_MESSAGE:
            raise MessageTooLarge(f"identify message of {len(body)} bytes exceeds {MAX_MESSAGE}")
        return encode_frame(body)

    @classmethod
    def decode_body(cls, body: bytes, *, remote_peer: PeerId | None = None) -> IdentifyInfo:
        msg = protobuf.decode(SCHEMA, body)
        key = None
        if "publicKey" in msg:
            key = PublicKey.from_protobuf(msg["publicKey"])
            if remote_peer is not None and key.peer_id != remote_peer:
                raise ProtocolError("identify: public key does not belong to the connected peer")
        if len(msg["listenAddrs"]) > MAX_ADDRS or len(msg["protocols"]) > MAX_PROTOCOLS:
            raise DecodeError("identify: too many addresses or protocols")
        addrs = []
        for raw in msg["listenAddrs"]:
            try:
                addrs.append(Multiaddr.from_bytes(raw))
            except DecodeError:
                continue  # an address we cannot read is skipped, not fatal
        observed = None
        if "observedAddr" in msg:
            try:
                observed = Multiaddr.from_bytes(msg["observedAddr"])
            except DecodeError:
                observed = None
        return cls(
            protocol_version=msg.get("protocolVersion"),
            agent_version=msg.get("agentVersion"),
            public_key=key,
            listen_addrs=tuple(addrs),
            observed_addr=observed,
            protocols=tuple(msg["protocols"]),
        )


class IdentifyReader:
    """Collects one length-prefixed identify message from a stream."""

    def __init__(self, remote_peer: PeerId | None = None) -> None:
        self._decoder = FrameDecoder(MAX_MESSAGE)
        self._remote = remote_peer
        self.result: IdentifyInfo | None = None

    def receive_data(self, data: bytes) -> IdentifyInfo | None:
        if self.result is not None:
            return self.result
        frames = self._decoder.feed(data)
        if frames:
            self.result = IdentifyInfo.decode_body(frames[0], remote_peer=self._remote)
        return self.result

    def end_of_stream(self) -> IdentifyInfo:
        if self.result is None:
            raise DecodeError("identify: stream ended before a whole message arrived")
        return self.result
