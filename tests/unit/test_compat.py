"""Browser detection, feature checks and per-browser workarounds (darkswap_wasm.api.compat).

Pure Python over recorded user agents, UA client hints and feature maps: runs natively and in
Pyodide alike.
"""

from __future__ import annotations

import dataclasses

import pytest

from darkswap_wasm.api import compat
from darkswap_wasm.api.compat import Features, detect_browser, parse_features, plan
from darkswap_wasm.host.webrtc import WebRTCSettings
from darkswap_wasm.protocols.webrtc import ChannelStreamConfig

KIB = 1024
MIB = 1024 * KIB

# recorded here: headless Chromium 156 under selenium (navigator.userAgent / userAgentData)
HEADLESS_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
)
HEADLESS_HINTS = {
    "brands": [{"brand": "Not:A-Brand", "version": "8"}, {"brand": "Chromium", "version": "156"}],
    "fullVersionList": [
        {"brand": "Not:A-Brand", "version": "8.0.0.0"},
        {"brand": "Chromium", "version": "156.0.8078.108"},
    ],
    "mobile": False,
    "platform": "Linux",
}

UAS = {
    "chrome-win": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36",
        ("chrome", "blink", 120, "Windows", False, False),
    ),
    "edge-win": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36 Edg/120.0.2210.91",
        ("edge", "blink", 120, "Windows", False, False),
    ),
    "opera-mac": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 "
        "Safari/537.36 OPR/105.0.0.0",
        ("opera", "blink", 105, "macOS", False, False),
    ),
    "chrome-android": (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Mobile Safari/537.36",
        ("chrome", "blink", 120, "Android", True, False),
    ),
    "samsung": (
        "Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 "
        "Chrome/115.0.0.0 Mobile Safari/537.36",
        ("samsung", "blink", 23, "Android", True, False),
    ),
    "headless": (HEADLESS_UA, ("chrome", "blink", 156, "Linux", False, False)),
    "firefox-linux": (
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        ("firefox", "gecko", 121, "Linux", False, False),
    ),
    "firefox-esr102": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Firefox/102.0",
        ("firefox", "gecko", 102, "Windows", False, False),
    ),
    "firefox-56": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:56.0) Gecko/20100101 Firefox/56.0",
        ("firefox", "gecko", 56, "Windows", False, False),
    ),
    "firefox-android": (
        "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
        ("firefox", "gecko", 121, "Android", True, False),
    ),
    "safari-mac": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 "
        "Safari/605.1.15",
        ("safari", "webkit", 17, "macOS", False, False),
    ),
    "safari-iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 "
        "Mobile/15E148 Safari/604.1",
        ("safari", "webkit", 17, "iOS", True, True),
    ),
    "chrome-iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
        ("chrome", "webkit", 120, "iOS", True, True),
    ),
    "firefox-ipad": (
        "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 "
        "Mobile/15E148 Safari/605.1.15",
        ("firefox", "webkit", 121, "iOS", True, True),
    ),
    "curl": ("curl/8.5.0", ("unknown", "unknown", 0, "", False, False)),
    "empty": ("", ("unknown", "unknown", 0, "", False, False)),
}

MODERN = {
    "rtc_peer_connection": True,
    "create_data_channel": True,
    "connection_state": True,
    "sctp_transport": True,
    "websocket": True,
    "webassembly": True,
    "bigint": True,
    "secure_context": True,
    "adapter": "chrome 156",
}


@pytest.mark.parametrize("name", sorted(UAS))
def test_user_agent_strings(name):
    ua, (bname, engine, version, platform, mobile, ios) = UAS[name]
    b = detect_browser(ua)
    assert (b.name, b.engine, b.version, b.platform, b.mobile, b.ios) == (bname, engine, version, platform, mobile, ios)
    assert b.source == "user-agent"


def test_client_hints_win_over_the_ua_string():
    b = detect_browser(HEADLESS_UA, HEADLESS_HINTS)
    assert (b.name, b.engine, b.version, b.platform, b.source) == ("chromium", "blink", 156, "Linux", "client-hints")
    edge = {
        "brands": [
            {"brand": "Not_A Brand", "version": "8"},
            {"brand": "Chromium", "version": "120"},
            {"brand": "Microsoft Edge", "version": "120"},
        ],
        "mobile": False,
        "platform": "Windows",
    }
    assert detect_browser("whatever", edge).name == "edge"
    chrome = {
        "brands": [{"brand": "Google Chrome", "version": "121"}, {"brand": "Chromium", "version": "121"}],
        "mobile": True,
        "platform": "Android",
    }
    b = detect_browser("", chrome)
    assert (b.name, b.version, b.mobile) == ("chrome", 121, True)


def test_bogus_or_empty_client_hints_fall_back_to_the_ua_string():
    ff = UAS["firefox-linux"][0]
    assert detect_browser(ff, {"brands": [], "mobile": False}).name == "firefox"
    assert detect_browser(ff, {"brands": [{"brand": "Chromium", "version": "80"}]}).name == "firefox"  # < 90: bogus
    assert detect_browser(ff, {"brands": [{"brand": "Not A;Brand", "version": "99"}]}).name == "firefox"
    assert detect_browser(ff, None).name == "firefox"


def test_feature_map_parsing_ignores_unknown_keys_and_coerces():
    f = parse_features({**MODERN, "something_new": True, "bigint": 0})
    assert f.rtc_peer_connection and not f.bigint and f.adapter == "chrome 156"
    assert parse_features(None) == Features()
    assert parse_features({"adapter": ""}).adapter is None


def test_modern_chromium_gets_the_libwebrtc_workarounds():
    p = plan(HEADLESS_UA, HEADLESS_HINTS, MODERN)
    assert p.webrtc is not None and not p.missing and not p.needs_adapter
    assert set(p.applied) == {"libwebrtc-message-size", "libwebrtc-send-queue", "chromium-connection-budget"}
    assert p.webrtc.channel.max_message_size == 16 * KIB  # the libp2p frame size stays (below the 64 KiB cap)
    assert p.webrtc.send_high_water <= 1 * MIB
    d = p.as_dict()
    assert d["webrtc"] is True and d["browser"]["engine"] == "blink" and d["max_message_size"] == 16 * KIB


def test_caps_apply_to_larger_configured_values():
    big = WebRTCSettings(
        channel=ChannelStreamConfig(max_message_size=256 * KIB), send_high_water=8 * MIB, max_connections=1000
    )
    p = plan(UAS["chrome-win"][0], None, MODERN, big)
    assert p.webrtc.channel.max_message_size == 64 * KIB
    assert p.webrtc.send_high_water == 1 * MIB and p.webrtc.max_connections == 400
    ff = plan(UAS["firefox-linux"][0], None, {**MODERN, "adapter": "firefox 121"}, big)
    assert ff.webrtc.channel.max_message_size == 256 * KIB  # Firefox >= 60 sends large messages
    assert ff.webrtc.send_high_water == 8 * MIB and "firefox-remote-close" in ff.applied
    old = plan(UAS["firefox-56"][0], None, {**MODERN, "connection_state": False}, big)
    assert old.webrtc.channel.max_message_size == 16 * KIB
    assert {"firefox-legacy-message-size", "firefox-connection-state", "firefox-datachannel-name"} <= set(old.applied)
    assert old.needs_adapter


def test_safari_and_every_ios_browser_get_the_webkit_workarounds():
    for name in ("safari-mac", "safari-iphone", "chrome-iphone", "firefox-ipad"):
        p = plan(UAS[name][0], None, MODERN)
        assert "webkit-close-on-pc-close" in p.applied and "libwebrtc-send-queue" in p.applied, name
        assert "firefox-remote-close" not in p.applied, name
    assert "webkit-ios-engine" in plan(UAS["chrome-iphone"][0], None, MODERN).applied
    assert "webkit-ios-engine" not in plan(UAS["safari-mac"][0], None, MODERN).applied


def test_firefox_below_113_without_connection_state_needs_the_adapter():
    p = plan(UAS["firefox-esr102"][0], None, {**MODERN, "connection_state": False, "adapter": None})
    assert p.needs_adapter and "firefox-connection-state" in p.applied
    assert any("webrtc-adapter not loaded" in n for n in p.notes)
    p2 = plan(UAS["firefox-esr102"][0], None, {**MODERN, "adapter": "firefox 102"})
    assert "firefox-connection-state" in p2.applied  # by version, even once shimmed


def test_prefixed_constructor_only_means_adapter_and_no_webrtc_until_shimmed():
    raw = {**MODERN, "rtc_peer_connection": False, "prefixed_rtc_peer_connection": True, "create_data_channel": False}
    p = plan(UAS["chrome-win"][0], None, raw)
    assert p.needs_adapter and p.webrtc is None
    assert "RTCPeerConnection" in p.missing


@pytest.mark.parametrize(
    "features",
    [
        {**MODERN, "rtc_peer_connection": False, "create_data_channel": False},  # Tor Browser, some WebViews
        {**MODERN, "create_data_channel": False},
        {},
    ],
)
def test_without_data_channels_traffic_stays_on_the_relay(features):
    p = plan(UAS["firefox-linux"][0], None, features)
    assert p.webrtc is None
    assert any("relayed path" in n for n in p.notes)
    assert p.as_dict()["webrtc"] is False and p.as_dict()["max_message_size"] is None


def test_caller_can_switch_webrtc_off():
    p = plan(HEADLESS_UA, HEADLESS_HINTS, MODERN, want_webrtc=False)
    assert p.webrtc is None and any("switched off" in n for n in p.notes)


def test_unknown_browsers_get_conservative_limits():
    big = WebRTCSettings(channel=ChannelStreamConfig(max_message_size=256 * KIB), send_high_water=8 * MIB)
    p = plan("SomeBrowser/1.0", None, MODERN, big)
    assert p.browser.engine == "unknown" and p.webrtc is not None
    assert p.webrtc.channel.max_message_size == 16 * KIB and p.webrtc.send_high_water == 1 * MIB


def test_every_workaround_is_documented():
    ids = [w.id for w in compat.WORKAROUNDS]
    assert len(ids) == len(set(ids))
    for w in compat.WORKAROUNDS:
        assert w.what and w.action and w.source, w.id
        assert dataclasses.is_dataclass(w)


def test_the_plan_does_not_touch_the_settings_passed_in():
    s = WebRTCSettings(channel=ChannelStreamConfig(max_message_size=256 * KIB))
    plan(UAS["chrome-win"][0], None, MODERN, s)
    assert s.channel.max_message_size == 256 * KIB
