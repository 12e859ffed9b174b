"""The relay on ``/tls/ws`` (secure WebSocket) with a certificate from the command line
(``--tls-cert`` / ``--tls-key``), reached by native nodes that verify it with the default SSL
context: a throwaway CA made at test time, trusted through ``SSL_CERT_FILE``."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest

from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.errors import DarkSwapError

from .certs import make_certs
from .procs import ROOT, NodeProcess, RelayProcess

pytestmark = pytest.mark.native_crypto
TLS_LISTEN = "/ip4/127.0.0.1/tcp/0/tls/ws"


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path / "certs")


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def start_relay(certs) -> RelayProcess:
    return await RelayProcess.start("--listen", TLS_LISTEN, "--tls-cert", str(certs.cert),
                                    "--tls-key", str(certs.key), "--listen", "/ip4/127.0.0.1/tcp/0")


def test_native_nodes_reserve_and_meet_through_a_tls_ws_relay(certs, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))  # the node process inherits it; so does this one

    async def main():
        relay = await start_relay(certs)
        node = None
        net = None
        try:
            tls_addr = relay.addrs[0]
            assert "/tcp/" in tls_addr and tls_addr.split("/p2p/")[0].endswith("/tls/ws"), relay.addrs
            # the node CLI reserves over /tls/ws and prints its circuit addresses once it has
            node = await NodeProcess.start("--relay", tls_addr, "--echo", expect=1)
            circuit = next(a for a in node.addrs if "/p2p-circuit/p2p/" in a)
            assert circuit.startswith(tls_addr + "/p2p-circuit/"), circuit
            # another node dials the relay by the older /wss spelling and reaches the first through it
            wss_addr = tls_addr.replace("/tls/ws/", "/wss/")
            net = await Network.create(NetworkConfig(relays=[wss_addr], webrtc=None))
            await wait_for(lambda: net.reservations(), 15, "a reservation over /wss")
            [relay_conn] = net.connections(relay.peer_id)
            assert str(relay_conn.remote_addr) == wss_addr.split("/p2p/")[0]  # as dialed
            peer = await net.connect(f"{wss_addr}/p2p-circuit/p2p/{node.peer_id}")
            assert [c.transport for c in net.connections(peer)] == ["relay"]
            await net.send_message(peer, b'{"type":"order","over":"tls/ws"}')
            assert await net.receive_message(peer, timeout=15) == b'{"type":"order","over":"tls/ws"}'
        finally:
            if net is not None:
                await net.close()
            if node is not None:
                await node.stop()
            await relay.stop()

    run(main(), 90)


def test_a_node_that_does_not_trust_the_certificate_says_so(certs, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def main():
        relay = await start_relay(certs)
        net = None
        node = None
        try:
            tls_addr = relay.addrs[0]
            net = await Network.create(NetworkConfig(webrtc=None))
            with pytest.raises(DarkSwapError) as err:
                await net.connect(tls_addr)
            assert "TLS certificate is not trusted" in str(err.value), err.value
            assert "SSL_CERT_FILE" in str(err.value)
            assert net.connections(relay.peer_id) == []
            # the node CLI's waiting line names the reason
            env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
            node = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "darkswap_wasm.cli", "--relay", tls_addr, "--reservation-timeout", "1",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
                env=dict(env, PYTHONPATH=str(ROOT)),
            )
            lines = []
            while not any("not trusted" in line for line in lines):
                line = await asyncio.wait_for(node.stderr.readline(), 20)
                assert line, f"the node exited without naming the certificate: {lines}"
                lines.append(line.decode())
            assert any("certificate verify failed" in line or "unable to get local issuer" in line
                       for line in lines), lines
        finally:
            if node is not None and node.returncode is None:
                node.terminate()
                await node.wait()
            if net is not None:
                await net.close()
            await relay.stop()

    run(main(), 60)


def _relay_cli(*args: str):
    import subprocess

    return subprocess.run([sys.executable, "-m", "darkswap_wasm.relay", *args], capture_output=True, text=True,
                          cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=30)


def test_relay_refuses_tls_ws_without_a_certificate():
    out = _relay_cli("--listen", TLS_LISTEN)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"darkswap-relay: listening on {TLS_LISTEN} (secure WebSocket) needs --tls-cert PATH and --tls-key PATH"
    ]
    wss = _relay_cli("--listen", "/ip4/127.0.0.1/tcp/0/wss")
    assert wss.returncode == 1 and "needs --tls-cert PATH and --tls-key PATH" in wss.stderr


def test_relay_refuses_a_missing_or_mismatched_key(certs, tmp_path):
    half = _relay_cli("--listen", TLS_LISTEN, "--tls-cert", str(certs.cert))
    assert half.returncode == 1
    assert half.stderr.strip().splitlines() == [
        "darkswap-relay: --tls-cert and --tls-key go together (the certificate and its private key)"
    ]
    missing = _relay_cli("--listen", TLS_LISTEN, "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(certs.key))
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1 and "nope.pem" in missing.stderr, missing.stderr
    other = make_certs(tmp_path / "other")
    wrong = _relay_cli("--listen", TLS_LISTEN, "--tls-cert", str(certs.cert), "--tls-key", str(other.key))
    assert wrong.returncode == 1
    assert len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert f"cannot load the TLS certificate {certs.cert}" in wrong.stderr
