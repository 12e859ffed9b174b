"""Connection monitoring and keep-alive reconnection against a real peer process."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.host.monitor import MonitorConfig

from .helpers import async_test
from .procs import NodeProcess

pytestmark = pytest.mark.native_crypto


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@async_test(timeout=90)
async def test_frozen_peer_is_detected_within_two_heartbeats_and_a_killed_one_is_redialed(tmp_path):
    key, port = str(tmp_path / "peer.key"), free_port()
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    node = await NodeProcess.start("--listen", listen, "--identity", key)
    addr = node.addrs[0]
    mon = MonitorConfig(interval=0.5, initial_timeout=0.5, max_timeout=1.0, reconnect_initial=0.2, reconnect_max=1.0)
    net = await Network.create(NetworkConfig(monitor=mon, keep_alive=[addr]))
    log: list[tuple[str, float]] = []
    net.on("peer:connect", lambda p: log.append(("connect", time.monotonic())))
    net.on("peer:disconnect", lambda p: log.append(("disconnect", time.monotonic())))
    try:
        peer = await net.connect(addr)
        await asyncio.sleep(1.2)  # a few heartbeats answered: the RTT estimate is in
        assert net.connections(peer)

        # freeze the peer: its socket stays open, only heartbeats can tell it is gone
        node.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        while not any(kind == "disconnect" for kind, _ in log):
            assert time.monotonic() - frozen_at < 10, "frozen peer not detected"
            await asyncio.sleep(0.05)
        detected = next(t for kind, t in log if kind == "disconnect") - frozen_at
        # two heartbeats: at most one interval until the next beat plus two timeouts (and slack)
        assert detected < mon.interval + 2 * mon.max_timeout + 1.0, detected

        # kill it for good and start it again on the same port with the same identity
        node.send_signal(signal.SIGKILL)
        await node.proc.wait()
        node = await NodeProcess.start("--listen", listen, "--identity", key)
        assert node.addrs[0] == addr
        back_from = time.monotonic()
        while not net.connections(peer):
            assert time.monotonic() - back_from < 15, "keep-alive peer was not redialed"
            await asyncio.sleep(0.05)
        assert await net.ping(peer) > 0
        assert [kind for kind, _ in log][-1] == "connect"
    finally:
        await net.close()
        await node.stop()
