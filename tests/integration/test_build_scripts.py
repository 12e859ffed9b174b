"""``./build.sh --help`` and what ``scripts/build_dist.py`` ships (issue 10, item 6): the help is
the script's comment header and nothing else; a plain dist holds no test code (pytest,
hypothesis, pygments, ... and Pyodide's console pages), a ``--with-tests`` dist holds all of it,
and rebuilding one output folder either way round gives exactly the asked-for content.

The dist builds run the real ``build_dist.py`` into a temporary folder, from the download cache
that ``./build.sh`` filled (``.cache/build_dist``) and with the project wheel that cache holds
(``--project-wheel``: building it needs PyPI, which the test namespace cannot reach)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "build_dist"
sys.path.insert(0, str(ROOT))
from scripts import build_dist  # noqa: E402

TEST_PACKAGES = {build_dist.canonical(s.split("==")[0]) for s in build_dist.TEST_WHEELS}
CONSOLE_PAGES = {"console.html", "console-v2.html"}


def test_build_sh_help_is_the_comment_header_only():
    res = subprocess.run(["bash", str(ROOT / "build.sh"), "--help"], capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    header = []
    for line in (ROOT / "build.sh").read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        header.append(line[2:] if line.startswith("# ") else line[1:])
    assert lines == header
    assert "set -euo pipefail" not in res.stdout and "cd " not in res.stdout
    assert "#" not in res.stdout  # the comment markers are stripped
    for job in ("./build.sh demo", "./build.sh test", "./build.sh bench"):
        assert job in res.stdout


def _project_wheel() -> Path:
    found = sorted(CACHE.glob("project/*/darkswap_wasm-*.whl"))
    if not found:
        pytest.fail(f"no project wheel in {CACHE}/project: run ./build.sh (it fills the cache) first")
    return found[-1]


def _build(out: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "build_dist.py"), "--out", str(out), "--browser", "-q"]
    cmd += ["--cache-dir", str(CACHE), "--project-wheel", str(_project_wheel()), *flags]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(ROOT), env=dict(os.environ))
    assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stdout}\n{res.stderr}"
    return res


def _content(out: Path) -> tuple[set[str], set[str], set[str]]:
    """(packages in the lock, wheel files anywhere under out, console pages anywhere under out)"""
    lock = json.loads((out / "pyodide" / "pyodide-lock.json").read_text())["packages"]
    files = [p for p in out.rglob("*") if p.is_file()]
    wheels = {build_dist.parse_wheel_filename(p.name)[0] for p in files if p.suffix == ".whl"}
    pages = {p.name for p in files if p.name in CONSOLE_PAGES}
    return set(lock), wheels, pages


def test_build_dist_ships_test_files_only_with_tests(tmp_path):
    out = tmp_path / "dist"
    for flags, with_tests in (((), False), (("--with-tests",), True), ((), False), (("--with-tests",), True)):
        _build(out, *flags)
        lock, wheels, pages = _content(out)
        assert "darkswap-wasm" in lock and "micropip" in lock
        assert (out / "darkswap.js").is_file() and (out / "js_glue" / "boot.js").is_file()
        assert (out / "pyodide" / "pyodide.asm.wasm").is_file()
        if with_tests:
            assert TEST_PACKAGES <= lock and TEST_PACKAGES <= wheels, (flags, lock, wheels)
            assert pages == CONSOLE_PAGES, (flags, pages)
            # what the browser tests' conftest insists on
            assert {"darkswap-wasm", "pytest", "hypothesis"} <= lock
        else:
            assert not (TEST_PACKAGES & lock) and not (TEST_PACKAGES & wheels), (flags, lock, wheels)
            assert not pages, (flags, pages)
            assert lock == {"darkswap-wasm", "micropip"}, lock
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
        assert not leftovers, leftovers  # no staging folders behind


def test_a_missing_project_wheel_is_one_line(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "build_dist.py"), "--out", str(tmp_path / "d")]
    cmd += ["--cache-dir", str(CACHE), "--project-wheel", str(tmp_path / "nope.whl")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert res.returncode == 1
    errors = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "nope.whl" in errors[0] and "Traceback" not in res.stderr, res.stderr
