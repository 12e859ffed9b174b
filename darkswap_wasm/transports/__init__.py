"""Transports: thin I/O adapters that give the host a duplex of bytes.

Natively: asyncio TCP (:mod:`.tcp`), WebSocket via ``websockets`` (:mod:`.websocket`) and WebRTC
via aiortc (:mod:`.webrtc_aiortc`). In a page: the browser's ``WebSocket``
(:mod:`.browser_ws`) and ``RTCPeerConnection`` (:mod:`.browser_webrtc`), handed in by the page
(these modules never import ``js`` themselves). Everything above this layer is shared by both
runtimes.
"""

from .base import Listener, RawConnection, Transport

__all__ = ["Listener", "RawConnection", "Transport"]
