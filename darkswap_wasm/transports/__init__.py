"""Transports: thin I/O adapters that give the host a duplex of bytes.

Natively: asyncio TCP (:mod:`.tcp`) and WebSocket via ``websockets`` (:mod:`.websocket`). In a
page, ``js_glue`` provides the same interface over the browser's ``WebSocket`` and
``RTCPeerConnection``. Everything above this layer is shared by both runtimes.
"""

from .base import Listener, RawConnection, Transport

__all__ = ["Listener", "RawConnection", "Transport"]
