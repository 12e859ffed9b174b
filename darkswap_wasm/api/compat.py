"""Browser compatibility: what the page can do, which browser it is, and the per-browser
workarounds applied to :class:`~darkswap_wasm.host.webrtc.WebRTCSettings`.

Pure Python over values handed in (no ``js`` import): ``js_glue/compat.js`` collects them in the
page (feature tests, ``navigator.userAgentData`` or else ``navigator.userAgent``) and the JS API
passes them to :func:`plan`. Tests feed recorded user agents and feature maps.

Decisions:

* **no WebRTC** — when ``RTCPeerConnection`` (standard or prefixed) or ``createDataChannel`` is
  missing, :func:`plan` returns ``webrtc=None``: the network runs without the WebRTC service and
  every ``send_webrtc_message`` goes over the relayed WebSocket path (the caller sees the same
  API; ``connections()`` says ``relay``). The same happens at run time when an upgrade fails
  (``WebRTCService`` gives up after its attempts and the session stays relayed).
* **prefixed or legacy APIs** — ``webkitRTCPeerConnection``/``mozRTCPeerConnection``, a missing
  ``connectionState`` (Firefox < 113), ``DataChannel`` instead of ``RTCDataChannel`` (Firefox
  < 60): ``webrtc-adapter`` (loaded by ``js_glue/compat.js`` before anything touches WebRTC)
  shims them; :func:`plan` reports ``needs_adapter`` and the notes say which shim matters.
* **per-browser limits** — :data:`WORKAROUNDS` below, each with its source.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "WORKAROUNDS",
    "BrowserInfo",
    "Features",
    "Plan",
    "Workaround",
    "detect_browser",
    "parse_features",
    "plan",
]

KIB = 1024
MIB = 1024 * KIB


# ------------------------------------------------------------------------------ the browser


@dataclass(frozen=True)
class BrowserInfo:
    name: str  # chrome | chromium | edge | opera | brave | samsung | firefox | safari | unknown
    engine: str  # blink | gecko | webkit | unknown
    version: int  # major version of the browser (0 when unknown)
    mobile: bool = False
    platform: str = ""
    ios: bool = False  # every iOS/iPadOS browser runs WebKit, whatever its brand
    source: str = "user-agent"  # client-hints | user-agent


_BRANDS = [  # (client-hint brand, name), most specific first
    ("Microsoft Edge", "edge"),
    ("Opera", "opera"),
    ("Brave", "brave"),
    ("Samsung Internet", "samsung"),
    ("Google Chrome", "chrome"),
    ("Chromium", "chromium"),
]


def _major(text: str | None) -> int:
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else 0


def _from_client_hints(ua_data: Mapping[str, Any]) -> BrowserInfo | None:
    brands = {}
    for b in list(ua_data.get("fullVersionList") or []) + list(ua_data.get("brands") or []):
        if isinstance(b, Mapping) and b.get("brand") and b.get("brand") not in brands:
            brands[str(b["brand"])] = str(b.get("version", ""))
    if not brands:
        return None
    for brand, name in _BRANDS:
        if brand in brands:
            version = _major(brands[brand])
            # UA client hints exist in Chromium only, from 90 on (an older "Chromium" is bogus)
            if brand == "Chromium" and version < 90:
                return None
            return BrowserInfo(
                name=name,
                engine="blink",
                version=version,
                mobile=bool(ua_data.get("mobile", False)),
                platform=str(ua_data.get("platform", "")),
                source="client-hints",
            )
    return None


def _platform(ua: str) -> tuple[str, bool, bool]:
    ios = bool(re.search(r"\b(iPhone|iPad|iPod)\b", ua)) or ("Macintosh" in ua and "Mobile/" in ua)
    if ios:
        return "iOS", True, True
    if "Android" in ua:
        return "Android", True, False
    for key, name in (("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "Chrome OS"), ("Linux", "Linux")):
        if key in ua:
            return name, "Mobile" in ua, False
    return "", "Mobile" in ua, False


def _from_user_agent(ua: str) -> BrowserInfo:
    platform, mobile, ios = _platform(ua)

    def found(name: str, engine: str, pattern: str) -> BrowserInfo:
        m = re.search(pattern, ua)
        return BrowserInfo(name, "webkit" if ios else engine, int(m.group(1)) if m else 0, mobile, platform, ios)

    if ios:  # the brand's own version token, engine WebKit
        for token, name in (("EdgiOS", "edge"), ("CriOS", "chrome"), ("FxiOS", "firefox"), ("OPiOS", "opera")):
            if token + "/" in ua:
                return found(name, "webkit", token + r"/(\d+)")
    for token, name in (("Edg", "edge"), ("EdgA", "edge"), ("OPR", "opera"), ("SamsungBrowser", "samsung")):
        if re.search(rf"\b{token}/\d", ua):
            return found(name, "blink", rf"\b{token}/(\d+)")
    if re.search(r"\bFirefox/\d", ua):
        return found("firefox", "gecko", r"\bFirefox/(\d+)")
    if re.search(r"\bChromium/\d", ua):
        return found("chromium", "blink", r"\bChromium/(\d+)")
    if re.search(r"\b(Headless)?Chrome/\d", ua):
        return found("chrome", "blink", r"\b(?:Headless)?Chrome/(\d+)")
    if "AppleWebKit/" in ua and re.search(r"\bVersion/\d", ua) and "Safari/" in ua:
        return found("safari", "webkit", r"\bVersion/(\d+)")
    if "AppleWebKit/" in ua:
        return BrowserInfo("unknown", "webkit", 0, mobile, platform, ios)
    return BrowserInfo("unknown", "unknown", 0, mobile, platform, ios)


def detect_browser(user_agent: str, ua_data: Mapping[str, Any] | None = None) -> BrowserInfo:
    """The browser from UA client hints (``navigator.userAgentData``: ``brands``, ``mobile``,
    ``platform``, optionally ``fullVersionList``) when present, else from the UA string."""
    if ua_data:
        info = _from_client_hints(ua_data)
        if info is not None:
            return info
    return _from_user_agent(user_agent or "")


# ------------------------------------------------------------------------------ features


@dataclass(frozen=True)
class Features:
    rtc_peer_connection: bool = False  # standard RTCPeerConnection (after the adapter ran)
    prefixed_rtc_peer_connection: bool = False  # webkit/moz prefixed constructor only
    create_data_channel: bool = False
    connection_state: bool = False  # RTCPeerConnection.prototype.connectionState
    sctp_transport: bool = False  # RTCPeerConnection.prototype.sctp
    websocket: bool = False
    webassembly: bool = False
    bigint: bool = False
    secure_context: bool = False
    adapter: str | None = None  # webrtc-adapter's version when it was loaded


def parse_features(raw: Mapping[str, Any] | None) -> Features:
    """A :class:`Features` from the map ``js_glue/compat.js`` reports (unknown keys ignored)."""
    raw = raw or {}
    kw = {}
    for f in dataclasses.fields(Features):
        if f.name in raw:
            v = raw[f.name]
            kw[f.name] = (str(v) if v else None) if f.name == "adapter" else bool(v)
    return Features(**kw)


# ------------------------------------------------------------------------------ workarounds


@dataclass(frozen=True)
class Workaround:
    id: str
    applies: Callable[[BrowserInfo, Features], bool]
    what: str  # the quirk
    action: str  # what we do about it
    source: str
    max_message_size: int | None = None  # cap for one data-channel message we send
    send_high_water: int | None = None  # cap for RTCDataChannel.bufferedAmount before writes wait
    max_connections: int | None = None


def _is(engine: str | None = None, name: str | None = None, below: int | None = None, at_least: int | None = None):
    def check(b: BrowserInfo, _f: Features) -> bool:
        if engine is not None and b.engine != engine:
            return False
        if name is not None and b.name != name:
            return False
        if below is not None and not (b.version and b.version < below):
            return False
        return not (at_least is not None and b.version < at_least)

    return check


WORKAROUNDS: list[Workaround] = [
    Workaround(
        "libwebrtc-message-size",
        lambda b, f: b.engine in ("blink", "webkit"),
        "libwebrtc (Chromium, Safari) advertises 256 KiB messages; above 64 KiB they do not reach the peer reliably",
        "data-channel messages capped at 64 KiB (libp2p /webrtc frames are 16 KiB anyway)",
        "webrtc-adapter 9.0.6 src/js/common_shim.js shimMaxMessageSize (webrtc issue 8419)",
        max_message_size=64 * KIB,
    ),
    Workaround(
        "libwebrtc-send-queue",
        lambda b, f: b.engine in ("blink", "webkit"),
        "libwebrtc closes a data channel whose send queue (bufferedAmount) passes 16 MiB",
        "writes wait while bufferedAmount is above 1 MiB",
        "measured here on Chromium 156 (FACTS.md: send queue 16 MiB)",
        send_high_water=1 * MIB,
    ),
    Workaround(
        "firefox-legacy-message-size",
        _is(engine="gecko", below=60),
        "Firefox < 57 fragments at 16 KiB (deprecated PPID); 57-59 reset the remote max to 64 KiB",
        "data-channel messages capped at 16 KiB",
        "webrtc-adapter 9.0.6 common_shim.js shimMaxMessageSize (bugzilla 1426831, 1425697)",
        max_message_size=16 * KIB,
    ),
    Workaround(
        "firefox-connection-state",
        lambda b, f: (
            (b.engine == "gecko" and 0 < b.version < 113) or (f.rtc_peer_connection and not f.connection_state)
        ),
        "no RTCPeerConnection.connectionState / connectionstatechange (Firefox < 113), no RTCSctpTransport",
        "webrtc-adapter shims connectionState from iceConnectionState (shimConnectionState) and pc.sctp",
        "webrtc-adapter 9.0.6 common_shim.js shimConnectionState, shimMaxMessageSize (bugzilla 1278299)",
    ),
    Workaround(
        "firefox-datachannel-name",
        _is(engine="gecko", below=60),
        "RTCDataChannel was called DataChannel before Firefox 60",
        "webrtc-adapter renames it (shimRTCDataChannel)",
        "webrtc-adapter 9.0.6 firefox/firefox_shim.js (bugzilla 1173851)",
    ),
    Workaround(
        "firefox-remote-close",
        _is(engine="gecko"),
        "Firefox may not fire `close` on a data channel the (Chromium) peer closed",
        "streams end on FIN/FIN_ACK with a timeout and connections on ping failures, never on `close` alone",
        "peers/peerjs#1200",
    ),
    Workaround(
        "webkit-close-on-pc-close",
        _is(engine="webkit"),
        "WebKit does not fire `close` on data channels when their RTCPeerConnection closes",
        "closing a peer connection closes its channels in Python (BrowserPeerConnection.close reports it)",
        "w3c/webrtc-pc#3085; fixed by WebKit/WebKit#55471 (Dec 2025)",
    ),
    Workaround(
        "webkit-ios-engine",
        lambda b, f: b.ios,
        "every browser on iOS/iPadOS is WebKit, whatever its brand",
        "the WebKit workarounds apply to Chrome/Firefox/Edge on iOS too",
        "Apple App Store Review Guidelines 2.5.6",
    ),
    Workaround(
        "chromium-connection-budget",
        lambda b, f: b.engine == "blink",
        "Chromium allows about 500 RTCPeerConnections per page over its lifetime",
        "at most 400 live WebRTC connections; further peers stay relayed",
        "WebRTCSettings.max_connections (host/webrtc.py)",
        max_connections=400,
    ),
]


# ------------------------------------------------------------------------------ the plan


@dataclass
class Plan:
    browser: BrowserInfo
    features: Features
    webrtc: Any  # WebRTCSettings | None (None: stay on the relayed path)
    needs_adapter: bool
    applied: list[str] = field(default_factory=list)  # workaround ids
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # features the page lacks

    def as_dict(self) -> dict:
        return {
            "browser": dataclasses.asdict(self.browser),
            "features": dataclasses.asdict(self.features),
            "webrtc": self.webrtc is not None,
            "needs_adapter": self.needs_adapter,
            "applied": list(self.applied),
            "notes": list(self.notes),
            "missing": list(self.missing),
            "max_message_size": self.webrtc.channel.max_message_size if self.webrtc is not None else None,
            "send_high_water": self.webrtc.send_high_water if self.webrtc is not None else None,
        }


def plan(
    user_agent: str,
    ua_data: Mapping[str, Any] | None,
    features: Mapping[str, Any] | Features | None,
    settings: Any = None,
    *,
    want_webrtc: bool = True,
) -> Plan:
    """Detect the browser, check the features, apply :data:`WORKAROUNDS` to ``settings`` (a
    ``WebRTCSettings``; its defaults when ``None``)."""
    from ..host.webrtc import WebRTCSettings

    browser = detect_browser(user_agent, ua_data)
    feats = features if isinstance(features, Features) else parse_features(features)
    missing = [
        name
        for name, ok in (
            ("WebSocket", feats.websocket),
            ("WebAssembly", feats.webassembly),
            ("BigInt", feats.bigint),
            ("RTCPeerConnection", feats.rtc_peer_connection),
            ("RTCPeerConnection.createDataChannel", feats.create_data_channel),
        )
        if not ok
    ]
    needs_adapter = feats.prefixed_rtc_peer_connection or (feats.rtc_peer_connection and not feats.connection_state)
    out = Plan(browser, feats, None, needs_adapter, missing=missing)
    if needs_adapter and not feats.adapter:
        out.notes.append("prefixed/legacy WebRTC API and webrtc-adapter not loaded")
    if not want_webrtc:
        out.notes.append("WebRTC switched off by the caller: messages use the relayed path")
        return out
    if not (feats.rtc_peer_connection and feats.create_data_channel):
        out.notes.append("no usable RTCPeerConnection/createDataChannel: messages use the relayed path")
        return out
    s = settings if settings is not None else WebRTCSettings()
    channel = s.channel
    for w in WORKAROUNDS:
        if not w.applies(browser, feats):
            continue
        out.applied.append(w.id)
        out.notes.append(f"{w.id}: {w.action}")
        if w.max_message_size is not None and channel.max_message_size > w.max_message_size:
            channel = dataclasses.replace(channel, max_message_size=w.max_message_size)
        if w.send_high_water is not None and s.send_high_water > w.send_high_water:
            s = dataclasses.replace(s, send_high_water=w.send_high_water)
        if w.max_connections is not None and s.max_connections > w.max_connections:
            s = dataclasses.replace(s, max_connections=w.max_connections)
    if browser.engine == "unknown":
        out.notes.append("unknown browser: conservative limits (16 KiB messages, 1 MiB send queue)")
        channel = dataclasses.replace(channel, max_message_size=min(channel.max_message_size, 16 * KIB))
        s = dataclasses.replace(s, send_high_water=min(s.send_high_water, 1 * MIB))
    out.webrtc = dataclasses.replace(s, channel=channel)
    return out
