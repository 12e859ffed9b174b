"""Faults on WebRTC: the remote process is killed (SIGKILL) → detected, redialed after restart."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.host.monitor import MonitorConfig

from ..integration.helpers import async_test
from ..integration.procs import NodeProcess, RelayProcess

pytestmark = pytest.mark.native_crypto


@async_test(timeout=120)
async def test_killed_webrtc_peer_is_detected_and_redialed_after_restart(tmp_path, rtc_settings, test_net):
    relay = await RelayProcess.start("--listen", "/ip4/127.0.0.1/tcp/0")
    key = str(tmp_path / "remote.key")
    args = ("--relay", relay.addr(), "--identity", key, "--webrtc-network", test_net, "--echo")
    remote = await NodeProcess.start(*args, expect=2)
    mon = MonitorConfig(interval=0.5, initial_timeout=1.0, max_timeout=1.5, reconnect_initial=0.2, reconnect_max=1.0)
    net = await Network.create(NetworkConfig(relays=[relay.addr()], webrtc=rtc_settings, monitor=mon))
    gone = asyncio.Event()
    net.on("peer:disconnect", lambda p: gone.set())
    try:
        while not net.reservations():
            await asyncio.sleep(0.05)
        peer = remote.peer_id
        net.keep_alive(peer)
        conn = await net.create_webrtc_data_channel(peer)
        assert conn.transport == "webrtc"

        remote.send_signal(signal.SIGKILL)
        await remote.proc.wait()
        killed_at = time.monotonic()
        await asyncio.wait_for(gone.wait(), 15)
        assert net.connections(peer) == []
        detect = time.monotonic() - killed_at
        assert detect < 10, detect

        remote = await NodeProcess.start(*args, expect=2)
        assert remote.peer_id == peer
        deadline = time.monotonic() + 30
        while not net.connections(peer):  # the reconnector finds it again through the shared relay
            assert time.monotonic() < deadline, "killed peer was not redialed after its restart"
            await asyncio.sleep(0.1)
        conn = await net.create_webrtc_data_channel(peer)
        assert conn.transport == "webrtc"
        assert await net.ping(peer) > 0
    finally:
        await net.close()
        await remote.stop()
        await relay.stop()
