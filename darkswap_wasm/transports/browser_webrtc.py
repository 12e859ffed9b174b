"""The in-page WebRTC runtime: :mod:`.webrtc_base` over the page's ``RTCPeerConnection``.

The counterpart of :mod:`.webrtc_aiortc`; everything above (signaling, data-channel streams, the
connection) is shared. The page hands its constructor over::

    import js
    from darkswap_wasm.transports.browser_webrtc import BrowserWebRTCRuntime
    NetworkConfig(webrtc_runtime=BrowserWebRTCRuntime(js.RTCPeerConnection), ...)

Like :mod:`.browser_ws` it never imports ``js`` (nor ``pyodide``) at import time.

Browser semantics, mapped onto the shared interface:

* ICE trickles: each ``icecandidate`` event becomes ``on_ice_candidate(candidate.toJSON())`` (a
  dict). The end of gathering (the final ``null`` candidate, or ``iceGatheringState`` ``complete``)
  becomes ``on_ice_candidate(None)`` only with ``signal_end_of_candidates=True``. By default it is
  not signalled, as js-libp2p 6 does: a browser hides its host addresses behind mDNS names
  (``<uuid>.local``) that a native peer (aiortc) cannot resolve and drops; told "no more
  candidates" with none left, aioice fails ICE at once, although the browser's connectivity checks
  that reach it a few milliseconds later would have made a working peer-reflexive pair.
* ``create_offer``/``create_answer`` set the local description and return the SDP the browser
  created, without candidates: every candidate trickles (as js-libp2p does). With
  ``wait_for_gathering`` (the default) they first wait, up to ``gathering_timeout``, for ICE
  gathering to complete, so that the candidates are already queued when the offer or answer goes
  out: the host sends what is queued right after it, and nothing depends on candidates found
  later. (Candidates in the SDP would not help: aiortc tries to resolve a browser's mDNS names
  found there for ~1 s before it answers, and cannot.)
* ``ice_servers`` (with username/credential) go into the ``RTCConfiguration``;
  ``config.extra["rtc_configuration"]`` (a dict) is merged into it (e.g. ``iceTransportPolicy``).
  ``allowed_networks`` and ``dead_peer_timeout`` have no browser counterpart (the browser picks
  its interfaces and its consent timers).
* data channels: ``createDataChannel(label, {ordered: true})``, ``binaryType = "arraybuffer"``,
  bytes out through ``to_js`` (``send(b"x")`` would send the text ``"b'x'"``), in with
  ``.to_bytes()``; ``bufferedamountlow`` with ``bufferedAmountLowThreshold``. With the bulk
  paths of ``js_glue/ffi.js`` (``JsBridge.ffi``, registered by ``boot.js``) a write is one call
  that sends views of the frames where they lie in the wasm heap, and the messages of a burst
  reach Python joined, in one call (flushed before the channel's close is reported). Messages and the
  close of a channel that arrive before the host installed its callbacks are kept, in order, and
  delivered when it does (nothing is lost between the ``datachannel`` event and the stream).
* the connection state is ``connectionState`` (``connectionstatechange``), derived from
  ``iceConnectionState`` where a browser lacks it (Firefox < 113).
* ``close()`` closes the peer connection, then reports what the browser does not: every channel
  still open gets its ``on_close`` and the connection its ``"closed"`` state (as aiortc does).
  Every proxy (peer connection and channels) is destroyed then; a channel's are destroyed as
  soon as it closes. :func:`live_proxies` counts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, ConnectionClosed
from .browser_ws import JsBridge, JsListeners, live_proxies, pyodide_bridge
from .webrtc_base import RTCDataChannel, RTCPeerConnection, WebRTCConfig, WebRTCRuntime

__all__ = [
    "BrowserDataChannel",
    "BrowserPeerConnection",
    "BrowserWebRTCRuntime",
    "live_proxies",
    "rtc_configuration",
]

log = logging.getLogger(__name__)

GATHERING_TIMEOUT = 2.0
# js_glue/ffi.js batchMessages: a batch goes at this size at the latest; while traffic is dense
# (the last batch held BATCH_DENSE messages or more) a batch gathers for BATCH_DELAY_MS
BATCH_BYTES = 1024 * 1024
BATCH_DELAY_MS = 3
BATCH_DENSE = 4


def rtc_configuration(config: WebRTCConfig) -> dict:
    """The ``RTCConfiguration`` (as a dict) for ``config``."""
    servers = []
    for url in config.ice_servers:
        server: dict[str, Any] = {"urls": url}
        if config.ice_username is not None:
            server["username"] = config.ice_username
        if config.ice_credential is not None:
            server["credential"] = config.ice_credential
        servers.append(server)
    out: dict[str, Any] = {"iceServers": servers}
    extra = config.extra.get("rtc_configuration") if isinstance(config.extra, dict) else None
    if extra:
        out.update(extra)
    return out


class BrowserDataChannel(RTCDataChannel):
    """A page ``RTCDataChannel``."""

    def __init__(self, channel: Any, bridge: JsBridge, owner: BrowserPeerConnection | None = None) -> None:
        self._ch = channel
        self._bridge = bridge
        self._owner = owner
        self.label = str(channel.label)
        self.on_open = None
        self._on_message: Callable[[bytes], None] | None = None
        self._on_close: Callable[[], None] | None = None
        self.on_buffered_amount_low = None
        self._pending: deque[bytes | None] = deque()  # messages, then None for the close
        self._flush_scheduled = False
        self._close_reported = False
        self._batch: Any = None  # js_glue/ffi.js batchMessages handle, when the page has it
        channel.binaryType = "arraybuffer"
        self._listeners = JsListeners(bridge)
        self._listeners.add(channel, "open", self._js_open)
        ffi = bridge.ffi
        if ffi is not None:
            self._listeners.attach("message", self._js_batch, self._start_batches)
        else:
            self._listeners.add(channel, "message", self._js_message)
        self._listeners.add(channel, "close", self._js_close)
        self._listeners.add(channel, "bufferedamountlow", self._js_low)
        self._listeners.add(channel, "error", self._js_error)

    # -- callbacks that keep early events ---------------------------------------------------------
    @property
    def on_message(self) -> Callable[[bytes], None] | None:
        return self._on_message

    @on_message.setter
    def on_message(self, fn: Callable[[bytes], None] | None) -> None:
        self._on_message = fn
        self._schedule_flush()

    @property
    def on_close(self) -> Callable[[], None] | None:
        return self._on_close

    @on_close.setter
    def on_close(self, fn: Callable[[], None] | None) -> None:
        self._on_close = fn
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending:
            item = self._pending[0]
            if item is None:
                if self._on_close is None:
                    return
                self._pending.popleft()
                self._on_close()
            else:
                if self._on_message is None:
                    return
                self._pending.popleft()
                self._on_message(item)

    def _deliver_message(self, data: bytes) -> None:
        if self._pending or self._on_message is None:
            self._pending.append(data)
            self._schedule_flush()
        else:
            self._on_message(data)

    def _report_close(self) -> None:
        if self._close_reported:
            return
        self._close_reported = True
        if self._pending or self._on_close is None:
            self._pending.append(None)
            self._schedule_flush()
        else:
            self._on_close()

    # -- JS events ---------------------------------------------------------------------------------
    def _js_open(self, _event: Any) -> None:
        if self.on_open is not None:
            self.on_open()

    def _js_message(self, event: Any) -> None:
        self._js_batch(event.data)

    def _start_batches(self, proxy: Any) -> Callable[[], None]:
        self._batch = self._bridge.ffi.batchMessages(self._ch, proxy, BATCH_BYTES, BATCH_DELAY_MS, BATCH_DENSE)
        return self._batch.stop

    def _js_batch(self, data: Any) -> None:
        """One message, or a batch from js_glue/ffi.js (the channel's messages since the last
        one, joined: the framing is self-delimiting), or one text message."""
        self._deliver_message(data.encode() if isinstance(data, str) else data.to_bytes())

    def _flush_batch(self) -> None:
        """Deliver what the batcher holds now: before the channel's close is reported, so that
        no message is lost or overtaken by the close."""
        if self._batch is not None and not self._listeners.destroyed:
            self._batch.flush()

    def _js_close(self, _event: Any) -> None:
        self._flush_batch()
        self._listeners.destroy_soon()
        if self._owner is not None:
            self._owner._forget(self)
        self._report_close()

    def _js_low(self, _event: Any) -> None:
        if self.on_buffered_amount_low is not None:
            self.on_buffered_amount_low()

    def _js_error(self, event: Any) -> None:
        err = getattr(event, "error", None)
        log.debug("data channel %r error: %s", self.label, getattr(err, "message", err))

    def _released(self) -> None:
        """The peer connection closed: report the close (if not yet) and drop the proxies."""
        self._flush_batch()
        self._listeners.destroy()
        self._report_close()

    # -- RTCDataChannel ----------------------------------------------------------------------------
    @property
    def ready_state(self) -> str:
        return str(self._ch.readyState)

    @property
    def buffered_amount(self) -> int:
        return int(self._ch.bufferedAmount)

    def set_buffered_amount_low_threshold(self, n: int) -> None:
        self._ch.bufferedAmountLowThreshold = n

    def send(self, data: bytes) -> None:
        try:
            self._ch.send(self._bridge.to_js(data))
        except self._bridge.js_error as exc:  # not open (InvalidStateError), queue full (OperationError)
            raise ConnectionClosed(f"data channel send failed: {exc}") from None

    def send_packed(self, buf, sizes: list[int]) -> None:
        """Send back-to-back messages from one buffer: with js_glue/ffi.js, one call that sends
        views of the buffer where it lies in the wasm heap; else one copy into JS, then views."""
        ffi = self._bridge.ffi
        if ffi is not None and sizes and all(n == sizes[0] for n in sizes[:-1]) and sizes[-1] <= sizes[0]:
            try:
                ffi.sendSplit(self._ch, buf, sizes[0])
            except self._bridge.js_error as exc:
                raise ConnectionClosed(f"data channel send failed: {exc}") from None
            return
        u8 = self._bridge.to_js(buf)
        subarray = getattr(u8, "subarray", None)
        pos = 0
        try:
            for n in sizes:
                if subarray is not None:
                    self._ch.send(subarray(pos, pos + n))
                else:
                    self._ch.send(self._bridge.to_js(bytes(buf[pos : pos + n])))
                pos += n
        except self._bridge.js_error as exc:
            raise ConnectionClosed(f"data channel send failed: {exc}") from None

    def close(self) -> None:
        try:
            self._ch.close()
        except self._bridge.js_error as exc:
            log.debug("data channel close: %r", exc)

    def __repr__(self) -> str:
        return f"<BrowserDataChannel {self.label!r} {self.ready_state}>"


class BrowserPeerConnection(RTCPeerConnection):
    """A page ``RTCPeerConnection``."""

    def __init__(
        self,
        ctor: Any,
        config: WebRTCConfig,
        bridge: JsBridge,
        *,
        wait_for_gathering: bool = False,
        gathering_timeout: float = GATHERING_TIMEOUT,
        signal_end_of_candidates: bool = False,
    ) -> None:
        self._bridge = bridge
        self._signal_end = signal_end_of_candidates
        self._wait_for_gathering = wait_for_gathering
        self._gathering_timeout = gathering_timeout
        try:
            self._pc = ctor.new(bridge.to_js_object(rtc_configuration(config)))
        except bridge.js_error as exc:
            raise ConfigError(f"RTCPeerConnection refused the configuration: {exc}") from None
        self.on_ice_candidate = None
        self.on_data_channel = None
        self.on_connection_state_change = None
        self._channels: list[BrowserDataChannel] = []
        self._end_of_candidates = False
        self._gathered = asyncio.Event()
        self._closed = False
        self._state_reported = ""
        self._listeners = JsListeners(bridge)
        self._listeners.add(self._pc, "icecandidate", self._js_candidate)
        self._listeners.add(self._pc, "icegatheringstatechange", self._js_gathering)
        self._listeners.add(self._pc, "datachannel", self._js_datachannel)
        self._listeners.add(self._pc, "connectionstatechange", self._js_state)
        self._listeners.add(self._pc, "iceconnectionstatechange", self._js_state)

    # -- JS events ---------------------------------------------------------------------------------
    def _js_candidate(self, event: Any) -> None:
        cand = event.candidate
        if self._bridge.is_null(cand) or not cand.candidate:
            self._candidates_done()
            return
        if self.on_ice_candidate is not None:
            self.on_ice_candidate(cand.toJSON().to_py())

    def _js_gathering(self, _event: Any) -> None:
        if self._pc.iceGatheringState == "complete":
            self._candidates_done()

    def _candidates_done(self) -> None:
        self._gathered.set()
        if self._end_of_candidates:
            return
        self._end_of_candidates = True
        if self._signal_end and self.on_ice_candidate is not None:
            self.on_ice_candidate(None)

    def _js_datachannel(self, event: Any) -> None:
        channel = self._track(BrowserDataChannel(event.channel, self._bridge, self))
        if self.on_data_channel is not None:
            self.on_data_channel(channel)
        else:
            channel.close()

    def _js_state(self, _event: Any) -> None:
        state = self._current_state()
        if state != self._state_reported:
            log.debug("RTCPeerConnection %s", state)
        self._report_state(state)

    def _current_state(self) -> str:
        state = getattr(self._pc, "connectionState", None)
        if not self._bridge.is_null(state):
            return str(state)
        # no connectionState (Firefox < 113): derive it from the ICE state
        ice = str(getattr(self._pc, "iceConnectionState", "new"))
        return {"checking": "connecting", "completed": "connected"}.get(ice, ice)

    def _report_state(self, state: str) -> None:
        if state == self._state_reported:
            return
        self._state_reported = state
        if self.on_connection_state_change is not None:
            self.on_connection_state_change(state)

    def _track(self, channel: BrowserDataChannel) -> BrowserDataChannel:
        if self._closed:
            channel._released()
        else:
            self._channels.append(channel)
        return channel

    def _forget(self, channel: BrowserDataChannel) -> None:
        try:
            self._channels.remove(channel)
        except ValueError:
            pass

    # -- RTCPeerConnection -------------------------------------------------------------------------
    @property
    def connection_state(self) -> str:
        return "closed" if self._closed else self._current_state()

    async def _local(self, description: Any) -> str:
        sdp = str(description.sdp)
        if self._closed:
            raise ConnectionClosed("RTCPeerConnection is closed")
        try:
            await self._pc.setLocalDescription(description)
        except self._bridge.js_error as exc:
            raise ConnectionClosed(f"setLocalDescription failed: {exc}") from None
        if self._wait_for_gathering and self._pc.iceGatheringState != "complete":
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(self._gathered.wait(), self._gathering_timeout)
                log.debug("ICE gathering complete after %.1f ms", (time.monotonic() - t0) * 1000)
            except TimeoutError:
                log.debug("ICE gathering not complete after %gs: sending the SDP as it is", self._gathering_timeout)
        if self._closed:
            raise ConnectionClosed("RTCPeerConnection is closed")
        return sdp

    async def create_offer(self) -> str:
        try:
            offer = await self._pc.createOffer()
        except self._bridge.js_error as exc:
            raise ConnectionClosed(f"createOffer failed: {exc}") from None
        return await self._local(offer)

    async def create_answer(self) -> str:
        try:
            answer = await self._pc.createAnswer()
        except self._bridge.js_error as exc:
            raise ConnectionClosed(f"createAnswer failed: {exc}") from None
        return await self._local(answer)

    async def set_remote_description(self, kind: str, sdp: str) -> None:
        try:
            await self._pc.setRemoteDescription(self._bridge.to_js_object({"type": kind, "sdp": sdp}))
        except self._bridge.js_error as exc:
            raise ConnectionClosed(f"setRemoteDescription({kind}) failed: {exc}") from None

    async def add_ice_candidate(self, candidate: dict | None) -> None:
        if self._closed:
            return
        if candidate is None or not candidate.get("candidate"):
            try:  # end of candidates: the browser does fine without it
                await self._pc.addIceCandidate()
            except self._bridge.js_error as exc:
                log.debug("end-of-candidates refused: %s", exc)
            return
        init = {k: v for k, v in candidate.items() if v is not None}
        try:
            await self._pc.addIceCandidate(self._bridge.to_js_object(init))
        except self._bridge.js_error as exc:  # e.g. an mDNS name that does not resolve
            log.debug("remote candidate %r refused: %s", candidate.get("candidate"), exc)

    def create_data_channel(self, label: str) -> RTCDataChannel:
        if self._closed:
            raise ConnectionClosed("RTCPeerConnection is closed")
        try:
            ch = self._pc.createDataChannel(label, self._bridge.to_js_object({"ordered": True}))
        except self._bridge.js_error as exc:
            raise ConnectionClosed(f"createDataChannel failed: {exc}") from None
        return self._track(BrowserDataChannel(ch, self._bridge, self))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._gathered.set()
        try:
            self._pc.close()
        except self._bridge.js_error as exc:
            log.debug("RTCPeerConnection close: %r", exc)
        self._listeners.destroy()
        channels, self._channels = self._channels, []
        for ch in channels:
            ch._released()
        self._report_state("closed")

    def __repr__(self) -> str:
        return f"<BrowserPeerConnection {self.connection_state}>"


class BrowserWebRTCRuntime(WebRTCRuntime):
    """Peer connections from the page's ``RTCPeerConnection`` constructor."""

    name = "browser"

    def __init__(
        self,
        rtc_peer_connection: Any,
        *,
        bridge: JsBridge | None = None,
        wait_for_gathering: bool = False,
        gathering_timeout: float = GATHERING_TIMEOUT,
        signal_end_of_candidates: bool = False,
    ) -> None:
        if rtc_peer_connection is None:
            raise ConfigError("BrowserWebRTCRuntime needs the page's RTCPeerConnection (WebRTC unavailable)")
        self._ctor = rtc_peer_connection
        self._bridge = bridge
        self.wait_for_gathering = wait_for_gathering
        self.gathering_timeout = gathering_timeout
        self.signal_end_of_candidates = signal_end_of_candidates

    @property
    def bridge(self) -> JsBridge:
        if self._bridge is None:
            self._bridge = pyodide_bridge()
        return self._bridge

    def create_peer_connection(self, config: WebRTCConfig) -> RTCPeerConnection:
        return BrowserPeerConnection(
            self._ctor,
            config,
            self.bridge,
            wait_for_gathering=self.wait_for_gathering,
            gathering_timeout=self.gathering_timeout,
            signal_end_of_candidates=self.signal_end_of_candidates,
        )
