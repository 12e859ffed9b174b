"""``scripts/demo.py`` as a new user runs it (issue 10, item 6): a port in use is one line naming
it and a non-zero exit (no traceback); Ctrl-C (SIGINT to the whole process group, as a terminal
sends it) and SIGTERM stop it cleanly (exit 0, no traceback, the relay gone) while it builds,
while it waits for the relay and while it runs; the printed URL names the relay and a room."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from .demo_proc import DEMO, ROOT, Demo, bindable, free_port

pytestmark = pytest.mark.native_crypto


def _one_error_line(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("which", ["ws", "tcp", "http"])
def test_a_port_in_use_is_one_line_naming_it(which, tmp_path):
    ports = {"http": free_port(), "tcp": free_port(), "ws": free_port()}
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[which]))
        s.listen()
        cmd = [
            *DEMO,
            "--http-port", str(ports["http"]),
            "--relay-tcp-port", str(ports["tcp"]),
            "--relay-ws-port", str(ports["ws"]),
            "--identity", str(tmp_path / "relay.key"),
        ]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    line = _one_error_line(res, str(ports[which]))
    assert "in use" in line, line
    assert "/demo/index.html" not in res.stdout
    # nothing is left listening on the other ports
    assert all(bindable(p) for k, p in ports.items() if k != which), ports


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_running_demo_prints_a_room_url_and_stops_cleanly(how, tmp_path):
    demo = Demo(tmp=tmp_path)
    try:
        url = demo.url()
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert q["relay"][0].startswith(f"/ip4/127.0.0.1/tcp/{demo.ports['ws']}/ws/p2p/12D3KooW"), url
        assert len(q["room"][0]) >= 6 and q["room"][0].isalnum(), url
        assert url.startswith(f"http://127.0.0.1:{demo.ports['http']}/demo/index.html?"), url
        code, out, err = demo.stop(how)
    finally:
        demo.kill()
    assert code == 0 and "Traceback" not in err + out, (code, out, err)
    assert all(bindable(p) for p in demo.ports.values()), demo.ports  # the relay and the server are gone


def test_two_runs_print_different_rooms_and_room_can_be_given(tmp_path):
    rooms = []
    for args in ((), (), ("--room", "trading-desk")):
        demo = Demo(*args, tmp=tmp_path)
        try:
            url = demo.url()
            rooms.append(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["room"][0])
            code, _out, err = demo.stop("sigterm")
            assert code == 0, err
        finally:
            demo.kill()
    assert rooms[0] != rooms[1] and rooms[2] == "trading-desk", rooms


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``"""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stops_cleanly_while_waiting_for_the_relay(how, tmp_path):
    # the relay's key file is a FIFO nobody writes to: the relay blocks reading it (a relay that
    # does not come up), and demo.py waits for its addresses
    os.mkfifo(tmp_path / "relay.key")
    demo = Demo(tmp=tmp_path)
    try:
        deadline = time.monotonic() + 20
        relays: list[tuple[int, str]] = []
        while time.monotonic() < deadline and not relays:
            relays = [c for c in _children(demo.proc.pid) if "darkswap_wasm.relay" in c[1]]
            time.sleep(0.05)
        assert relays, "demo.py started no relay"
        time.sleep(1.0)  # the relay is stuck on its key file; demo.py waits for its addresses
        assert demo.proc.poll() is None and _alive(relays[0][0])
        code, out, err = demo.stop(how)
    finally:
        demo.kill()
    assert code == 0 and "Traceback" not in err + out, (code, out, err)
    assert "/demo/index.html" not in out
    assert not _alive(relays[0][0]), "the relay outlived demo.py"
    assert all(bindable(p) for p in demo.ports.values()), demo.ports


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stops_cleanly_while_building(how, tmp_path):
    dist = tmp_path / "dist"
    demo = Demo("--build", tmp=tmp_path, dist=dist)
    try:
        demo.wait_for_line("[build_dist]")  # the build is under way
        code, out, err = demo.stop(how)
    finally:
        demo.kill()
    assert "/demo/index.html" not in out, "the build ended before the signal: nothing tested"
    assert code == 0 and "Traceback" not in err + out, (code, out, err)
    assert all(bindable(p) for p in demo.ports.values()), demo.ports
    assert not [p for p in dist.glob(".*")], list(dist.glob(".*"))  # no staging folder left behind
