"""Host-side tests that run the unit tests inside Pyodide (node) as part of `pytest tests`.

Each test starts ``tests/pyodide/run.sh`` (which refreshes ``dist/pyodide`` with
``scripts/build_dist.py --with-tests``, then runs pytest with ``--run-in-pyodide``) in a
subprocess and reads its junit report. They fail, never skip, when node or the dist
cannot be had. Per-test results of the Pyodide run are in the captured output of a
failure; ``tests/pyodide/run.sh`` alone shows them directly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "tests" / "pyodide" / "run.sh"
CASES = "tests/pyodide/selftest/harness_cases.py"


def _run_in_pyodide(args: list[str], junit: Path, timeout: float) -> tuple[int, str, dict[str, tuple[str, str]]]:
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", str(RUN), *args, f"--junitxml={junit}", "-p", "no:cacheprovider", "-rA"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    print(out)  # shown by pytest when the test fails
    outcomes: dict[str, tuple[str, str]] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome, text = "passed", ""
            for kind in ("failure", "error", "skipped"):
                el = case.find(kind)
                if el is not None:
                    outcome = kind
                    text = (el.get("message") or "") + "\n" + (el.text or "")
                    break
            outcomes[case.get("name", "?")] = (outcome, text)
    return proc.returncode, out, outcomes


def _executed_inside(out: str) -> int:
    m = re.search(r"^pyodide: (\d+) tests executed inside Pyodide", out, re.M)
    assert m, "the Pyodide plugin's summary line is missing: was tests/pyodide/plugin.py loaded?"
    return int(m.group(1))


@pytest.mark.timeout(900)
def test_harness_reports_what_happened_inside_pyodide(tmp_path):
    """Known outcomes come back as they are: a failing assert fails, skips skip, a hang is
    timed out and Pyodide is restarted, native_crypto tests are deselected."""
    rc, out, got = _run_in_pyodide([CASES], tmp_path / "selftest.xml", timeout=600)
    expected = {
        "test_runs_inside_pyodide": "passed",  # asserts sys.platform == "emscripten"
        "test_imports_project": "passed",
        "test_hypothesis_property": "passed",
        "test_hypothesis_deadline_is_off_in_pyodide": "passed",
        "test_asyncio_run_works": "passed",
        "test_deliberate_failure": "failure",
        "test_skipped_inside": "skipped",
        "test_expected_failure": "skipped",  # xfail: junit reports it as skipped
        "test_hang_is_timed_out": "failure",
        "test_runs_after_restart": "passed",
    }
    assert {k: v[0] for k, v in got.items()} == expected, out[-4000:]
    assert rc == 1, f"a failing test must make the run fail (exit {rc})"
    failure = got["test_deliberate_failure"][1]
    assert "assert (1 + 1) == 3" in failure and "captured stdout from pyodide" in failure
    assert "timed out after 3s inside Pyodide" in got["test_hang_is_timed_out"][1]
    assert "skipped inside pyodide" in got["test_skipped_inside"][1]
    assert _executed_inside(out) == 9
    assert re.search(r"1 deselected", out), "the native_crypto case must be deselected"


@pytest.mark.timeout(3600)
def test_unit_tests_pass_inside_pyodide(tmp_path):
    rc, out, got = _run_in_pyodide(["tests/unit"], tmp_path / "unit.xml", timeout=3300)
    failed = sorted(k for k, (o, _t) in got.items() if o in ("failure", "error"))
    assert rc == 0 and not failed, f"Pyodide run failed (exit {rc}); failing: {failed}\n{out[-6000:]}"
    executed = _executed_inside(out)
    passed = sum(1 for o, _t in got.values() if o == "passed")
    assert executed > 0 and passed > 0, f"no unit test ran inside Pyodide\n{out[-3000:]}"
