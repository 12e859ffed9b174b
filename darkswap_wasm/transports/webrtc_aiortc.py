"""The WebRTC runtime of the native side: aiortc behind :mod:`.webrtc_base`.

Two aiortc defaults are changed on purpose:

* aiortc adds a public Google STUN server when none is configured; we pass exactly the
  configured ``ice_servers`` (none by default), so nothing talks to third parties unasked.
* aioice offers every non-loopback address as a host candidate. ``allowed_networks`` narrows
  that to the given CIDRs (tests pin it to their own network namespace). aioice reads its
  interfaces through a module function, so the filter is installed there once, and applies to
  the peer connections this runtime creates while a filter is set.
* Dead-peer detection: aioice's consent checks run every 5 s and give up after 6 failures
  (~32 s); ``dead_peer_timeout`` shortens that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import aioice.ice
from aiortc import RTCConfiguration, RTCIceCandidate, RTCIceServer, RTCSessionDescription
from aiortc import RTCPeerConnection as _AioPeerConnection
from aiortc.exceptions import InvalidStateError
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from ..errors import ConnectionClosed
from .webrtc_base import RTCDataChannel, RTCPeerConnection, WebRTCConfig, WebRTCRuntime

log = logging.getLogger(__name__)

_original_get_host_addresses = aioice.ice.get_host_addresses
_allowed: list = []


def _filtered_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addrs = _original_get_host_addresses(use_ipv4, use_ipv6)
    if not _allowed:
        return addrs
    return [a for a in addrs if any(ipaddress.ip_address(a) in net for net in _allowed)]


aioice.ice.get_host_addresses = _filtered_host_addresses


class AiortcDataChannel(RTCDataChannel):
    def __init__(self, channel) -> None:
        self._ch = channel
        self.label = channel.label
        self.on_open = None
        self.on_message = None
        self.on_close = None
        self.on_buffered_amount_low = None
        channel.on("open", lambda: self.on_open and self.on_open())
        channel.on("message", self._message)
        channel.on("close", lambda: self.on_close and self.on_close())
        channel.on("bufferedamountlow", lambda: self.on_buffered_amount_low and self.on_buffered_amount_low())

    def _message(self, msg) -> None:
        if self.on_message is not None:
            self.on_message(msg.encode() if isinstance(msg, str) else bytes(msg))

    @property
    def ready_state(self) -> str:
        return self._ch.readyState

    @property
    def buffered_amount(self) -> int:
        return self._ch.bufferedAmount

    def set_buffered_amount_low_threshold(self, n: int) -> None:
        self._ch.bufferedAmountLowThreshold = n

    def send(self, data: bytes) -> None:
        try:
            self._ch.send(bytes(data))
        except InvalidStateError as exc:  # not open (any more): as the browser adapter reports it
            raise ConnectionClosed(f"data channel send failed: {exc}") from None

    def close(self) -> None:
        self._ch.close()


class AiortcPeerConnection(RTCPeerConnection):
    def __init__(self, config: WebRTCConfig) -> None:
        servers = [
            RTCIceServer(urls=url, username=config.ice_username, credential=config.ice_credential)
            for url in config.ice_servers
        ]
        self._pc = _AioPeerConnection(RTCConfiguration(iceServers=servers))
        self._skipped_mdns = False
        self.on_ice_candidate = None
        self.on_data_channel = None
        self.on_connection_state_change = None
        self._pc.on("datachannel", lambda ch: self.on_data_channel and self.on_data_channel(AiortcDataChannel(ch)))
        self._pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        if self.on_connection_state_change is not None:
            self.on_connection_state_change(self._pc.connectionState)

    @property
    def connection_state(self) -> str:
        return self._pc.connectionState

    async def _local(self, description) -> str:
        # aiortc gathers every candidate during setLocalDescription and puts them in the SDP;
        # it does not trickle, so the end of candidates follows at once
        await self._pc.setLocalDescription(description)
        if self.on_ice_candidate is not None:
            self.on_ice_candidate(None)
        return self._pc.localDescription.sdp

    async def create_offer(self) -> str:
        return await self._local(await self._pc.createOffer())

    async def create_answer(self) -> str:
        return await self._local(await self._pc.createAnswer())

    async def set_remote_description(self, kind: str, sdp: str) -> None:
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))

    async def add_ice_candidate(self, candidate: dict | None) -> None:
        if candidate is None or not candidate.get("candidate"):
            if self._skipped_mdns:
                # aioice would fail ICE at once on "no candidate pairs", while the peer's checks
                # (a peer-reflexive pair) are about to arrive: leave the remote side open
                return
            await self._pc.addIceCandidate(None)
            return
        text = candidate["candidate"]
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        cand: RTCIceCandidate = candidate_from_sdp(text)
        if cand.ip.endswith(".local"):
            log.debug("skipping mDNS candidate %s (aiortc cannot resolve it)", cand.ip)
            self._skipped_mdns = True
            return
        cand.sdpMid = candidate.get("sdpMid")
        cand.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self._pc.addIceCandidate(cand)

    def create_data_channel(self, label: str) -> RTCDataChannel:
        return AiortcDataChannel(self._pc.createDataChannel(label, ordered=True))

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pc.close(), 5.0)
        except TimeoutError:
            log.debug("aiortc close timed out")


class AiortcRuntime(WebRTCRuntime):
    name = "aiortc"

    def create_peer_connection(self, config: WebRTCConfig) -> RTCPeerConnection:
        global _allowed
        _allowed = [ipaddress.ip_network(n, strict=False) for n in config.allowed_networks]
        interval = max(0.2, config.dead_peer_timeout / 4)
        aioice.ice.CONSENT_INTERVAL = interval
        aioice.ice.CONSENT_FAILURES = max(2, round(config.dead_peer_timeout / interval))
        return AiortcPeerConnection(config)


__all__ = ["AiortcRuntime", "candidate_to_sdp"]
