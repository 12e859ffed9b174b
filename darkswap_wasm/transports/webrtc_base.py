"""The WebRTC surface the host needs, named after the W3C objects it stands for.

Natively :mod:`.webrtc_aiortc` implements it over aiortc; in a page ``js_glue`` implements it over
the browser's ``RTCPeerConnection``. Everything above (signaling, streams over data channels,
the connection) is shared. Callbacks are plain functions called on the event loop.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WebRTCConfig:
    """ICE and liveness settings for every ``RTCPeerConnection`` we create.

    ``ice_servers``: STUN/TURN URLs for real deployments (none by default: no traffic to
    third-party servers unless asked). ``allowed_networks``: CIDRs whose local addresses may
    become host candidates (empty = all but loopback, the usual WebRTC behaviour); tests pin
    this to their own test network. ``dead_peer_timeout``: how long a silent peer is tolerated
    by ICE consent checks (aiortc's default is ~32 s).
    """

    ice_servers: tuple[str, ...] = ()
    ice_username: str | None = None
    ice_credential: str | None = None
    allowed_networks: tuple[str, ...] = ()
    dead_peer_timeout: float = 6.0
    max_message_size: int = 16 * 1024
    extra: dict = field(default_factory=dict)


class RTCDataChannel(abc.ABC):
    label: str

    @property
    @abc.abstractmethod
    def ready_state(self) -> str:  # "connecting" | "open" | "closing" | "closed"
        ...

    @property
    @abc.abstractmethod
    def buffered_amount(self) -> int: ...

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Queue one binary message; :class:`~darkswap_wasm.errors.ConnectionClosed` when the
        channel cannot take it (not open, its queue full)."""

    def send_packed(self, buf: bytes, sizes: list[int]) -> None:
        """Send ``len(sizes)`` messages laid out back to back in ``buf`` (the framing machine's
        ``send_packed``). The default sends them one by one; an adapter whose ``send`` crosses a
        runtime boundary overrides it to hand the buffer over once."""
        view = memoryview(buf)
        pos = 0
        for n in sizes:
            self.send(view[pos : pos + n])
            pos += n

    @abc.abstractmethod
    def close(self) -> None: ...

    on_open: Callable[[], None] | None = None
    on_message: Callable[[bytes], None] | None = None
    on_close: Callable[[], None] | None = None
    on_buffered_amount_low: Callable[[], None] | None = None

    @abc.abstractmethod
    def set_buffered_amount_low_threshold(self, n: int) -> None: ...


class RTCPeerConnection(abc.ABC):
    """One peer connection. ``on_ice_candidate(None)`` marks the end of local candidates."""

    on_ice_candidate: Callable[[dict | None], None] | None = None
    on_data_channel: Callable[[RTCDataChannel], None] | None = None
    on_connection_state_change: Callable[[str], None] | None = None

    @property
    @abc.abstractmethod
    def connection_state(self) -> str:  # "new" | "connecting" | "connected" | "disconnected" | "failed" | "closed"
        ...

    @abc.abstractmethod
    async def create_offer(self) -> str:
        """Create an offer, set it as the local description, return its SDP."""

    @abc.abstractmethod
    async def create_answer(self) -> str:
        """Create an answer, set it as the local description, return its SDP."""

    @abc.abstractmethod
    async def set_remote_description(self, kind: str, sdp: str) -> None: ...

    @abc.abstractmethod
    async def add_ice_candidate(self, candidate: dict | None) -> None: ...

    @abc.abstractmethod
    def create_data_channel(self, label: str) -> RTCDataChannel: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class WebRTCRuntime(abc.ABC):
    """Creates peer connections; one per runtime (aiortc natively, the browser in a page)."""

    name: str

    @abc.abstractmethod
    def create_peer_connection(self, config: WebRTCConfig) -> RTCPeerConnection: ...
