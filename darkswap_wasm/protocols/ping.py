"""libp2p ping (spec: libp2p/specs ``ping/ping.md``): 32 random bytes out, the same 32 bytes back.

Sans-I/O: :class:`PingDialer` makes a payload and checks the echo; RTT is measured by the caller
from the times it hands in. The responder side is an echo of 32-byte chunks (:func:`respond`).
"""

from __future__ import annotations

from ..errors import ProtocolError

PROTOCOL_ID = "/ipfs/ping/1.0.0"
PING_LENGTH = 32


class PingDialer:
    def __init__(self, payload: bytes) -> None:
        if len(payload) != PING_LENGTH:
            raise ValueError("a ping payload is 32 bytes")
        self.payload = bytes(payload)
        self._buf = b""

    def receive_data(self, data: bytes) -> bool:
        """Feed echoed bytes; True once the whole echo arrived and matched."""
        self._buf += data
        if len(self._buf) < PING_LENGTH:
            return False
        if self._buf[:PING_LENGTH] != self.payload:
            raise ProtocolError("ping: the peer echoed different bytes")
        self._buf = self._buf[PING_LENGTH:]
        return True


class PingResponder:
    """Echoes whole 32-byte chunks; holds back a partial one until it completes."""

    def __init__(self) -> None:
        self._buf = b""

    def receive_data(self, data: bytes) -> bytes:
        self._buf += data
        whole = len(self._buf) - len(self._buf) % PING_LENGTH
        out, self._buf = self._buf[:whole], self._buf[whole:]
        return out
