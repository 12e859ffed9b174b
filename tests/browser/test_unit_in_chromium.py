"""The sans-I/O unit tests run inside Pyodide **in Chromium**, on the in-page crypto backend.

Every file of ``tests/unit`` is copied unchanged into the page booted through ``js_glue/boot.js``
(libsodium.js installed as the crypto backend), and run there with pytest — the tests marked
``native_crypto`` included: in a page they run on libsodium.js; the zstd tests run on Pyodide's
own ``compression.zstd``. Only ``native_compression`` (no test carries it today) and ``interop``
are deselected; the page must collect exactly the native test ids minus those.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT, report
from .test_crypto_backends import PAGE_ROOT, RUN_FILE_PY, _prelude

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

UNIT = REPO_ROOT / "tests" / "unit"
DESELECT = "not native_compression and not interop"
PAGE_INI = (
    "[pytest]\nmarkers =\n    native_crypto: crypto backend\n    native_compression: zstandard\n"
    "    interop: js-libp2p\n    browser: chromium\n"
)


def _native_ids() -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", DESELECT, str(UNIT)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    ids = [ln.split("/unit/", 1)[1] for ln in proc.stdout.splitlines() if "::" in ln and "/unit/" in ln]
    assert proc.returncode == 0 and ids, proc.stdout[-3000:] + proc.stderr[-3000:]
    return ids


def test_unit_tests_pass_inside_pyodide_in_chromium(page) -> None:
    page.load_packages(["pytest", "hypothesis"])
    root = f"{PAGE_ROOT}/unit_run"
    page.write_file(f"{root}/pytest.ini", PAGE_INI)
    files = sorted(UNIT.glob("*.py"))  # the tests and their helper modules (fake_zstd.py)
    for f in files:
        page.write_file(f"{root}/unit/{f.name}", f.read_text())
    # importlib mode does not put the test folder on sys.path: its helper modules need it
    path_fix = f"import sys\nsys.path.insert(0, {root + '/unit'!r})\n"
    code = _prelude(ROOT=root, FILE="unit") + path_fix + RUN_FILE_PY.replace(
        '"--hypothesis-profile=dsw_browser"]',
        # importlib mode: the page may already hold a module of the same name (another browser test)
        f'"--hypothesis-profile=dsw_browser", "--import-mode=importlib", "-m", {DESELECT!r}]',
    )
    res = json.loads(page.run_py(code))
    assert res["platform"] == "emscripten" and res["backend"] == "libsodium.js"
    assert not res["collect_errors"], "\n".join(res["collect_errors"])
    failed = {n: r for n, r in res["reports"].items() if any(v == "failed" for v in r.values())}
    assert not failed, json.dumps(failed, indent=1)[:20000] + "\n" + res["terminal"]
    assert res["rc"] == 0, res["terminal"]
    in_page = sorted(n.split("unit/", 1)[1] for n in res["collected"])
    native = sorted(_native_ids())
    assert in_page == native, "the page and the native run collected different unit tests"
    passed = sum(1 for r in res["reports"].values() if r.get("call") == "passed")
    crypto_ran = sum(1 for n in res["reports"] if "test_noise.py" in n or "test_upgrade.py" in n)
    assert crypto_ran > 50  # Noise and the full upgrade ran in the page, on libsodium.js
    zstd_ran = sum(1 for n, r in res["reports"].items() if "test_compression.py" in n and r.get("call") == "passed")
    assert zstd_ran > 20  # the compression tests ran in the page, on compression.zstd
    report(f"tests/unit in Chromium: {passed} passed on libsodium.js and compression.zstd ({len(files)} files)")
