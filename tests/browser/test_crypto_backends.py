"""Both crypto backends give the same bytes: PyNaCl natively, libsodium.js in headless Chromium.

The page is ``dist/`` served on 127.0.0.1, booted the way any page boots: ``js_glue/boot.js``
(Pyodide from ``dist/pyodide``, the project wheel from the dist's lock, libsodium.js from
``dist/vendor``, ``set_backend(LibsodiumJsBackend(sodium))``). Then, inside the page:

* ``tests/unit/test_crypto_vectors.py`` runs unchanged under pytest, *including* the tests marked
  ``native_crypto`` (RFC 8032 Ed25519, RFC 7748 X25519, RFC 8439 ChaCha20-Poly1305, error mapping,
  Hypothesis properties), against the libsodium.js backend;
* ``shared_vectors.fixed_vectors()`` (Ed25519 signatures, X25519, AEAD, and a Noise XX transcript
  made with fixed static and ephemeral keys) must equal, key by key, the same function run here
  natively with PyNaCl;
* a full handshake between two NoiseSession objects with random keys, traffic and tampering.

Fixtures (conftest.py) fail, never skip, when Chromium, chromedriver or the dist are missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from darkswap_wasm import crypto

from . import shared_vectors
from .conftest import REPO_ROOT, report

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PAGE_ROOT = "/home/pyodide/dsw_browser"
VECTORS_FILE = REPO_ROOT / "tests" / "unit" / "test_crypto_vectors.py"
SHARED_FILE = Path(shared_vectors.__file__)
PAGE_INI = "[pytest]\nmarkers =\n    native_crypto: needs a real crypto backend\n    interop: js-libp2p peer\n"

RUN_FILE_PY = r"""
import contextlib, io, json, os, sys
import pytest
from hypothesis import HealthCheck, settings
from darkswap_wasm import crypto

settings.register_profile("dsw_browser", deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Recorder:
    def __init__(self):
        self.collected, self.collect_errors, self.reports = [], [], {}

    def pytest_collection_finish(self, session):
        self.collected = [item.nodeid for item in session.items]

    def pytest_collectreport(self, report):
        if report.outcome != "passed":
            self.collect_errors.append(report.longreprtext[-3000:])

    def pytest_runtest_logreport(self, report):
        r = self.reports.setdefault(report.nodeid, {})
        r[report.when] = report.outcome
        if report.outcome != "passed":
            r[report.when + "_text"] = report.longreprtext[-3000:]


os.chdir(ROOT)
rec = Recorder()
term = io.StringIO()
with contextlib.redirect_stdout(term):
    rc = pytest.main([FILE, "-c", ROOT + "/pytest.ini", "--rootdir", ROOT, "-p", "no:cacheprovider",
                      "--color=no", "-q", "--hypothesis-profile=dsw_browser"], plugins=[rec])
json.dumps({"rc": int(rc), "collected": rec.collected, "collect_errors": rec.collect_errors,
            "reports": rec.reports, "backend": crypto.get_backend().name, "platform": sys.platform,
            "terminal": term.getvalue()[-6000:]})
"""


def _prelude(**names: str) -> str:
    return "".join(f"{k} = {v!r}\n" for k, v in names.items())


def _native_node_ids(path: Path) -> list[str]:
    """The test ids of ``path`` as the native pytest collects them (the part after ``::``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids = [ln.split("::", 1)[1] for ln in proc.stdout.splitlines() if "::" in ln]
    assert proc.returncode == 0 and ids, f"native collection of {path} failed:\n{proc.stdout}\n{proc.stderr}"
    return ids


def test_boot_installs_the_libsodium_js_backend(page) -> None:
    info = page.boot_info
    assert info["backend"].startswith("<LibsodiumJsBackend libsodium 1.0."), info
    out = json.loads(
        page.run_py(
            "import json, sys, importlib.util\n"
            "from darkswap_wasm import crypto\n"
            "from darkswap_wasm.crypto.libsodium_js import LibsodiumJsBackend\n"
            "b = crypto.get_backend()\n"
            "json.dumps({'platform': sys.platform, 'name': b.name, 'is_js': isinstance(b, LibsodiumJsBackend),\n"
            "            'protocol': isinstance(b, crypto.CryptoBackend),\n"
            "            'nacl': importlib.util.find_spec('nacl') is not None,\n"
            "            'r': [len(b.random_bytes(n)) for n in (0, 1, 32, 100000)],\n"
            "            'distinct': b.random_bytes(32) != b.random_bytes(32)})"
        )
    )
    assert out == {
        "platform": "emscripten",
        "name": "libsodium.js",
        "is_js": True,
        "protocol": True,
        "nacl": False,  # really not PyNaCl: it has no Pyodide build here
        "r": [0, 1, 32, 100000],
        "distinct": True,
    }


def test_crypto_vectors_file_passes_in_the_page(page) -> None:
    page.load_packages(["pytest", "hypothesis"])
    page.write_file(f"{PAGE_ROOT}/pytest.ini", PAGE_INI)
    page.write_file(f"{PAGE_ROOT}/{VECTORS_FILE.name}", VECTORS_FILE.read_text())
    res = json.loads(page.run_py(_prelude(ROOT=PAGE_ROOT, FILE=VECTORS_FILE.name) + RUN_FILE_PY))
    assert res["platform"] == "emscripten" and res["backend"] == "libsodium.js"
    assert not res["collect_errors"], "\n".join(res["collect_errors"])
    bad = {n: r for n, r in res["reports"].items() if any(v not in ("passed",) for k, v in r.items() if "_" not in k)}
    assert not bad, json.dumps(bad, indent=1) + "\n" + res["terminal"]
    assert res["rc"] == 0, res["terminal"]
    in_page = [n.split("::", 1)[1] for n in res["collected"]]
    native = _native_node_ids(VECTORS_FILE)
    assert sorted(in_page) == sorted(native), "the page and the native run collected different tests"
    passed = [n for n, r in res["reports"].items() if r.get("call") == "passed"]
    assert len(passed) == len(native)
    # the vectors that need a real backend ran too (they are deselected in the node Pyodide run)
    for must in (
        "test_ed25519_rfc8032[",
        "test_x25519_rfc7748_section_5_2_iterated",
        "test_x25519_with_a_low_order_point_fails[",
        "test_chacha20_poly1305_rfc8439_encrypt",
        "test_chacha20_poly1305_rejects_any_alteration[",
        "test_aead_decrypt_of_garbage_raises_only_decryption_failed",
    ):
        assert any(n.split("::", 1)[1].startswith(must) for n in passed), must
    report(f"in the page: {len(passed)} tests of {VECTORS_FILE.name} passed on libsodium.js")


def test_fixed_vectors_and_noise_transcript_are_identical_natively_and_in_the_page(
    page, monkeypatch: pytest.MonkeyPatch
) -> None:
    from darkswap_wasm.crypto.nacl_backend import NaclBackend

    monkeypatch.setattr(crypto, "_backend", NaclBackend())
    native = shared_vectors.fixed_vectors()
    page.write_file(f"{PAGE_ROOT}/shared_vectors.py", SHARED_FILE.read_text())
    in_page = json.loads(
        page.run_py(
            f"import json, sys\nsys.path.insert(0, {PAGE_ROOT!r})\n"
            "import shared_vectors\njson.dumps(shared_vectors.fixed_vectors())"
        )
    )
    assert native.pop("backend") == "pynacl"
    assert in_page.pop("backend") == "libsodium.js"
    assert in_page.keys() == native.keys()
    diff = {k: (native[k], in_page[k]) for k in native if native[k] != in_page[k]}
    assert not diff, "native (PyNaCl) and page (libsodium.js) differ:\n" + json.dumps(diff, indent=1)
    assert native["noise_msg2"].startswith(native["noise_msg2"][:4]) and len(native["noise_msg3"]) > 100
    assert all(native[k] == "True" for k in native if k.endswith(("_verify_initiator", "_roundtrip", "_commutes")))


def test_noise_handshake_between_two_sessions_in_the_page(page) -> None:
    page.write_file(f"{PAGE_ROOT}/shared_vectors.py", SHARED_FILE.read_text())
    res = json.loads(
        page.run_py(
            f"import json, sys\nsys.path.insert(0, {PAGE_ROOT!r})\n"
            "import shared_vectors\njson.dumps(shared_vectors.random_handshake())"
        )
    )
    assert res["backend"] == "libsodium.js"
    assert res["tamper_error"] == "HandshakeError" and res["wrong_peer_error"] == "HandshakeError"
    assert res["transfer_bytes"] >= 4 << 20
    native = shared_vectors.random_handshake(transfer_bytes=res["transfer_bytes"])
    report(
        f"Noise XX in the page: handshake {res['handshake_ms']} ms, transport {res['transfer_mb_per_s']} MB/s "
        f"(64 KiB writes; native PyNaCl: {native['handshake_ms']} ms, {native['transfer_mb_per_s']} MB/s)"
    )
