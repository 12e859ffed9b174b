"""The README's shell and Python examples, run exactly as written (issue 10, item 3).

The code comes from README.md itself (tests/readme.py parses it): the relay and the echo node
start with the README's own commands, the ```python block is saved as the ``example.py`` the
README names and run with the README's command line, and what it prints must match the README's
```text block (``…`` standing for IDs, ports and times). Nothing is substituted: the commands
run through ``bash -c`` in a directory standing for the checkout's root, with ``.venv/bin`` first
on PATH (``. .venv/bin/activate``). Ports 4001-4003 are free in the test network namespace, whose
10.99.0.1 interface lets WebRTC connect (the README's output says ``webrtc``).
"""

from __future__ import annotations

import re
import stat
import subprocess

import pytest

from tests import readme
from tests.readme import ShellCommand

pytestmark = pytest.mark.timeout(180)

PEER_ID = r"12D3KooW[1-9A-HJ-NP-Za-km-z]{44}"
CLIS = ("darkswap-relay", "darkswap-node")


def python_block() -> readme.Block:
    return readme.only([b for b in readme.blocks() if b.lang == "python"], "```python block")


def output_block(section: str) -> readme.Block:
    """The ```text block of ``section``: what the README says its example prints."""
    found = [b for b in readme.blocks() if b.lang == "text" and b.section == section]
    return readme.only(found, f"```text block (the example's output) in '{section}'")


def test_the_readme_cli_commands_use_only_options_their_help_lists() -> None:
    used: dict[str, set[str]] = {cli: set() for cli in CLIS}
    for cmd in readme.sh_commands():
        # the command and every $(...) in it: "darkswap-relay --identity relay.key --print-peer-id"
        for part in [re.sub(r"\$\([^)]*\)", "", cmd), *re.findall(r"\$\(([^)]*)\)", cmd)]:
            words = part.split()
            if words and words[0] in CLIS:
                used[words[0]] |= {w.split("=")[0] for w in words if w.startswith("--")}
    assert used["darkswap-relay"] and used["darkswap-node"], f"the README runs neither CLI: {readme.sh_commands()}"
    for cli, flags in used.items():
        res = subprocess.run(
            [str(readme.VENV_BIN / cli), "--help"], capture_output=True, text=True, timeout=60, env=readme.shell_env()
        )
        assert res.returncode == 0, res.stderr
        listed = set(re.findall(r"--[a-z][a-z-]*", res.stdout))
        assert flags <= listed, f"{cli} --help lacks {sorted(flags - listed)}"


def test_the_readme_relay_echo_node_and_python_example_run_as_written(tmp_path) -> None:
    code = python_block()
    (tmp_path / "example.py").write_text(code.code)
    relay = ShellCommand(readme.command("darkswap-relay"), tmp_path)
    node = None
    try:
        relay_lines = relay.read_lines(2)  # "prints its two listen multiaddrs at start"
        node = ShellCommand(readme.command("darkswap-node"), tmp_path)
        node_lines = node.read_lines(3)  # once its reservation is up: direct, circuit, circuit + webrtc
        relay_id = subprocess.run(
            ["bash", "-c", "darkswap-relay --identity relay.key --print-peer-id"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=readme.shell_env(),
            check=True,
        ).stdout.strip()
        assert re.fullmatch(PEER_ID, relay_id), relay_id
        assert relay_lines == [f"/ip4/127.0.0.1/tcp/4001/p2p/{relay_id}", f"/ip4/127.0.0.1/tcp/4002/ws/p2p/{relay_id}"]
        assert stat.S_IMODE((tmp_path / "relay.key").stat().st_mode) == 0o600
        node_id = node_lines[0].rsplit("/p2p/", 1)[-1]
        via = f"/ip4/127.0.0.1/tcp/4001/p2p/{relay_id}/p2p-circuit"
        assert node_lines == [
            f"/ip4/127.0.0.1/tcp/4003/p2p/{node_id}",
            f"{via}/p2p/{node_id}",
            f"{via}/webrtc/p2p/{node_id}",
        ], node.describe()

        run = readme.command("python example.py")
        example = ShellCommand(run, tmp_path)
        rc = example.wait(90)
        out = "\n".join(example.lines)
        assert rc == 0, example.describe()
        expected = output_block(code.section)
        assert readme.matches(expected.code, out), f"`{run}` printed\n{out}\nthe README says it prints\n{expected.code}"
        assert f"/p2p/{relay_id}/p2p-circuit/p2p/" in out and "echo b'hello over webrtc'" in out, out
        assert (tmp_path / "example.key").is_file()
        assert node.proc.poll() is None and relay.proc.poll() is None  # the echo node and relay still up
    finally:
        codes = [p.stop() for p in (node, relay) if p is not None]
    assert codes == [0, 0], f"Ctrl-C/SIGTERM should stop both cleanly: {codes}\n{relay.describe()}"
