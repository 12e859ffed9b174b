"""WebRTC tests run inside the network namespace that ``./build.sh test`` creates (loopback plus
one veth test host): ICE needs a non-loopback interface, and tests must never send to this
machine's outside address. Outside that namespace these tests fail (never skip)."""

from __future__ import annotations

import os

import pytest

from darkswap_wasm.host.webrtc import WebRTCSettings
from darkswap_wasm.transports.webrtc_base import WebRTCConfig


@pytest.fixture
def test_net() -> str:
    net = os.environ.get("DARKSWAP_TEST_NETNS")
    if not net:
        pytest.fail("WebRTC tests must run in the test network namespace: use ./build.sh test [pytest args]")
    return net


@pytest.fixture
def rtc_settings(test_net: str) -> WebRTCSettings:
    return WebRTCSettings(rtc=WebRTCConfig(allowed_networks=(test_net,), dead_peer_timeout=3.0))
