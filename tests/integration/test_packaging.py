"""The project as ``pip install darkswap-wasm`` gives it (issue 15, items 2 and 3): the wheel ships
``py.typed`` and the LICENSE, carries the version written once (``darkswap_wasm.__version__``) and
has aiortc only in its ``webrtc`` extra; installed into a fresh venv without extras (no aiortc),
the relay and two nodes run and reach each other through the relay, and native WebRTC says that it
needs ``pip install darkswap-wasm[webrtc]``.

The wheel is built from a copy of the sources that ``scripts/build_dist.py`` ships (no build/ or
egg-info left in the checkout). pip gets the dependencies and the build requirements from
``.cache/wheelhouse`` when ``./build.sh test`` filled it (the test namespace reaches no registry),
else from the indexes pip is configured with."""

from __future__ import annotations

import email.parser
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import darkswap_wasm

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
sys.path.insert(0, str(ROOT))
from scripts import build_dist  # noqa: E402

HINT = "pip install darkswap-wasm[webrtc]"


def pip_sources() -> list[str]:
    if (WHEELHOUSE / "requirements.txt").is_file():
        return ["--no-index", "--find-links", str(WHEELHOUSE)]
    return []


def run(cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd``; a failure is the test's failure (never a skip), with pip's own words."""
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    where = f"wheelhouse {WHEELHOUSE}" if pip_sources() else "pip's configured indexes (no .cache/wheelhouse)"
    assert res.returncode == 0, (
        f"{' '.join(cmd)} failed with {res.returncode} (packages from {where}; ./build.sh test fills the "
        f"wheelhouse):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    )
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for p in build_dist.project_sources(ROOT):
        out = src / p.relative_to(ROOT)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out)
    out = tmp / "out"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *pip_sources(), "-w", str(out), str(src)])
    (found,) = out.glob("*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed and no extras."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", str(root)])
    run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", *pip_sources(), str(wheel)])
    return root


def metadata(wheel: Path) -> tuple[list[str], email.message.Message]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        return names, email.parser.BytesParser().parsebytes(zf.read(meta))


def test_the_wheel_ships_py_typed_the_license_and_the_packages_version(wheel):
    names, meta = metadata(wheel)
    assert "darkswap_wasm/py.typed" in names
    (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    assert f"{dist_info}/licenses/LICENSE" in names, names
    with zipfile.ZipFile(wheel) as zf:
        assert "MIT License" in zf.read(f"{dist_info}/licenses/LICENSE").decode()
    assert meta["Version"] == darkswap_wasm.__version__
    assert dist_info == f"darkswap_wasm-{darkswap_wasm.__version__}.dist-info"
    assert meta["License-Expression"] == "MIT"
    assert "Typing :: Typed" in meta.get_all("Classifier")


def test_aiortc_is_only_in_the_webrtc_extra(wheel):
    _, meta = metadata(wheel)
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    native = {"platform_system": "Linux", "sys_platform": "linux"}
    plain = {r.name for r in reqs if r.marker is None or r.marker.evaluate({**native, "extra": ""})}
    with_webrtc = {r.name for r in reqs if r.marker is not None and r.marker.evaluate({**native, "extra": "webrtc"})}
    page = {"platform_system": "Emscripten", "sys_platform": "emscripten", "extra": "webrtc"}
    assert {"webrtc", "test"} <= set(meta.get_all("Provides-Extra"))
    assert "aiortc" not in plain and {"pynacl", "websockets"} <= plain, plain
    assert "aiortc" in with_webrtc - plain
    assert not any(r.name == "aiortc" and r.marker.evaluate(page) for r in reqs)  # never in a page
    test_extra = {str(r).split(";")[0] for r in reqs if r.marker is not None and r.marker.evaluate({"extra": "test"})}
    assert "darkswap-wasm[webrtc]" in test_extra  # the tests get native WebRTC


def test_only_a_missing_aiortc_is_webrtc_unavailable(monkeypatch):
    """In process, aiortc hidden: the runtime selection names the extra; a module of ours that is
    missing is a broken install and stays a ModuleNotFoundError."""
    from darkswap_wasm.api import network

    monkeypatch.delitem(sys.modules, "darkswap_wasm.transports.webrtc_aiortc", raising=False)
    monkeypatch.setitem(sys.modules, "aioice", None)  # import aioice -> ModuleNotFoundError
    with pytest.raises(network.WebRTCUnavailable, match=r"aiortc.*pip install darkswap-wasm\[webrtc\]") as got:
        network.default_webrtc_runtime()
    assert got.value.code == "RUNTIME_UNAVAILABLE"
    monkeypatch.setitem(sys.modules, "darkswap_wasm.transports.webrtc_aiortc", None)
    with pytest.raises(ModuleNotFoundError, match="darkswap_wasm.transports.webrtc_aiortc"):
        network.default_webrtc_runtime()


class Proc:
    """A console script of the venv, its stdout and stderr lines collected by reader threads."""

    def __init__(self, venv: Path, cwd: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        self.cmd = [str(venv / "bin" / args[0]), *args[1:]]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=str(cwd), env=env)
        self.out: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out.put), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.err.append), daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(pipe, put) -> None:
        for line in pipe:
            put(line.rstrip("\n"))

    def line(self, timeout: float = 20) -> str:
        try:
            got = self.out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.cmd} printed nothing in {timeout}s; stderr: {self.err}") from None
        self.lines.append(got)
        return got

    def wait_for_stderr(self, needle: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.err):
                if needle in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} never appeared on {self.cmd}'s stderr: {self.err}")

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(2)
        while not self.out.empty():
            self.lines.append(self.out.get())
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def procs(venv, tmp_path):
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        p = Proc(venv, tmp_path, *args)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


CLIENT = """
import asyncio, json, sys
from darkswap_wasm import Network, NetworkConfig
from darkswap_wasm.errors import DarkSwapError

async def main(relayed, webrtc_addr):
    out = {}
    async with await Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0"])) as net:
        out["webrtc"] = net.webrtc is not None
        peer = await net.connect(relayed)
        out["transports"] = [c.transport for c in net.connections(peer)]
        await net.send_message(peer, b"order over the relay")
        out["echo"] = (await net.receive_message(peer, timeout=10)).decode()
        for name, attempt in (("channel", lambda: net.create_webrtc_data_channel(peer)),
                              ("dial", lambda: net.connect(webrtc_addr))):
            try:
                await attempt()
                out[name] = "no error"
            except DarkSwapError as exc:
                out[name] = [exc.code, str(exc)]
    print(json.dumps(out))

asyncio.run(main(*sys.argv[1:]))
"""


def test_without_the_webrtc_extra_a_relay_and_two_nodes_run_and_webrtc_says_what_to_install(venv, procs, tmp_path):
    python = str(venv / "bin" / "python")
    res = subprocess.run([python, "-c", "import aiortc"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert res.returncode != 0 and "No module named 'aiortc'" in res.stderr, res
    res = run([python, "-c", "import darkswap_wasm; print(darkswap_wasm.__file__, darkswap_wasm.__version__)"],
              cwd=tmp_path, timeout=30)
    assert res.stdout.split() == [str(next((venv / "lib").glob("python3*/site-packages/darkswap_wasm/__init__.py"))),
                                  darkswap_wasm.__version__]

    relay = procs("darkswap-relay", "--listen", "/ip4/127.0.0.1/tcp/0")
    relay_addr = relay.line()
    peer_a = run([str(venv / "bin" / "darkswap-node"), "--identity", str(tmp_path / "a.key"), "--print-peer-id"],
                 cwd=tmp_path, timeout=30).stdout.strip()
    node_a = procs("darkswap-node", "--identity", "a.key", "--relay", relay_addr, "--echo")
    relayed_a = f"{relay_addr}/p2p-circuit/p2p/{peer_a}"
    assert node_a.line() == relayed_a  # no /webrtc address: it cannot do WebRTC
    assert HINT in node_a.wait_for_stderr("WebRTC is unavailable")

    node_b = procs("darkswap-node", "--relay", relay_addr, "--connect", relayed_a)
    assert "/p2p-circuit/p2p/" in node_b.line()
    node_b.wait_for_stderr(f"connected to {peer_a}, ping")

    webrtc_a = f"{relay_addr}/p2p-circuit/webrtc/p2p/{peer_a}"
    res = run([python, "-c", CLIENT, relayed_a, webrtc_a], cwd=tmp_path, timeout=30)
    got = json.loads(res.stdout)
    assert got["webrtc"] is False and got["transports"] == ["relay"] and got["echo"] == "order over the relay", got
    for attempt in ("channel", "dial"):
        code, message = got[attempt]
        assert code == "RUNTIME_UNAVAILABLE" and "aiortc" in message and HINT in message, got

    node_c = procs("darkswap-node", "--connect", webrtc_a)
    assert node_c.wait() == 1
    assert "Traceback" not in "\n".join(node_c.err), node_c.err
    assert node_c.err[-1].startswith(f"darkswap-node: cannot connect to {webrtc_a}: ") and HINT in node_c.err[-1]
    for p in (node_a, node_b):
        assert p.proc.poll() is None and not any("/webrtc" in a for a in p.lines), (p.cmd, p.lines, p.err)
        assert "Traceback" not in "\n".join(p.err), p.err
    relay_log = "\n".join(relay.err)  # the relay needs no WebRTC: not a word about it
    assert relay.proc.poll() is None and "WebRTC" not in relay_log and "Traceback" not in relay_log, relay.err
