"""Headless Chromium with the dist booted through ``js_glue/boot.js``: fixtures for tests/browser.

Selenium is driven directly (not through pytest-pyodide's ``selenium`` fixture): that fixture
loads Pyodide itself from its own page, while these tests must boot the way a page does, through
``<dist>/js_glue/boot.js`` served with the rest of ``dist/``; and it is parametrized by the
session-wide ``--runtime`` option, which the node-side Pyodide run of tests/unit already uses.

The tests FAIL (never skip) when Chromium, chromedriver or the dist are missing:
  * Chromium: ``$DARKSWAP_CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome``
    on PATH (Debian: ``apt-get install -y chromium chromium-driver``);
  * chromedriver: ``$SE_CHROMEDRIVER``, else ``chromedriver`` on PATH;
  * the dist: ``$DARKSWAP_DIST`` (default ``<repo>/dist``), built with
    ``python scripts/build_dist.py --out dist --with-tests --browser`` from the current sources.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from scripts.static_server import StaticServer

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_CMD = "python scripts/build_dist.py --out dist --with-tests --browser"
BLANK_PAGE = "/__darkswap_test__/blank.html"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DIST_FILES = [
    "pyodide/pyodide.mjs",
    "pyodide/pyodide.asm.wasm",
    "pyodide/python_stdlib.zip",
    "pyodide/pyodide-lock.json",
    "js_glue/boot.js",
    "js_glue/crypto.js",
    "vendor/libsodium/libsodium.mjs",
    "vendor/libsodium-wrappers/libsodium-wrappers.mjs",
]
DIST_PACKAGES = ("darkswap-wasm", "pytest", "hypothesis")
SCRIPT_TIMEOUT = 240  # s, one execute_async_script (a boot, a pytest run in the page)

SUMMARY: list[str] = []  # lines for the terminal summary (timings)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: runs in headless Chromium (chromedriver, dist/ built with --browser)")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    if SUMMARY:
        terminalreporter.write_sep("-", "browser timings")
        for line in SUMMARY:
            terminalreporter.write_line(line)


def report(line: str) -> None:
    print(line, flush=True)
    SUMMARY.append(line)


# --------------------------------------------------------------------------- the dist


def _stale_sources(wheel: Path) -> list[str]:
    stale: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = {n for n in zf.namelist() if n.endswith(".py") and n.startswith("darkswap_wasm/")}
        for p in sorted((REPO_ROOT / "darkswap_wasm").rglob("*.py")):
            if "__pycache__" in p.parts:
                continue
            rel = p.relative_to(REPO_ROOT).as_posix()
            if rel not in in_wheel:
                stale.append(f"{rel} (not in wheel)")
            elif zf.read(rel) != p.read_bytes():
                stale.append(f"{rel} (changed)")
            in_wheel.discard(rel)
    return stale + [f"{n} (deleted from sources)" for n in sorted(in_wheel)]


@pytest.fixture(scope="session")
def browser_dist() -> Path:
    dist = Path(os.environ.get("DARKSWAP_DIST", REPO_ROOT / "dist")).resolve()
    missing = [f for f in DIST_FILES if not (dist / f).is_file()]
    if missing:
        pytest.fail(f"the browser dist is incomplete ({dist}: {', '.join(missing)} missing); build it: {BUILD_CMD}")
    lock = json.loads((dist / "pyodide/pyodide-lock.json").read_text())["packages"]
    lacking = [p for p in DIST_PACKAGES if p not in lock]
    if lacking:
        pytest.fail(f"{dist}/pyodide lacks {lacking}; build it: {BUILD_CMD}")
    stale = _stale_sources(dist / "pyodide" / lock["darkswap-wasm"]["file_name"])
    if stale:
        shown = ", ".join(stale[:5]) + (f", ... ({len(stale)} in all)" if len(stale) > 5 else "")
        pytest.fail(f"the project wheel in {dist}/pyodide is stale: {shown}; rebuild: {BUILD_CMD}")
    if (REPO_ROOT / "js_glue").is_dir():
        for src in sorted((REPO_ROOT / "js_glue").glob("*.js")):
            copy = dist / "js_glue" / src.name
            if not copy.is_file() or copy.read_bytes() != src.read_bytes():
                pytest.fail(f"{copy} differs from js_glue/{src.name}; rebuild: {BUILD_CMD}")
    return dist


# --------------------------------------------------------------------------- a static server


@pytest.fixture(scope="session")
def dist_server(browser_dist: Path):
    blank = b"<!doctype html><meta charset=utf-8><title>darkswap_wasm browser tests</title>"
    server = StaticServer(browser_dist, pages={BLANK_PAGE: blank})
    yield server
    server.close()


# --------------------------------------------------------------------------- Chromium


def _find(env: str, names: list[str], what: str, install: str) -> str:
    path = os.environ.get(env)
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            pytest.fail(f"${env}={path} is not an executable file ({what})")
        return path
    for n in names:
        found = shutil.which(n)
        if found:
            return found
    pytest.fail(f"{what} not found (${env} unset, none of {names} on PATH); install: {install}")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory):
    install = "apt-get install -y chromium chromium-driver"
    browser = _find("DARKSWAP_CHROMIUM", ["chromium", "chromium-browser", "google-chrome"], "Chromium", install)
    driver_path = _find("SE_CHROMEDRIVER", ["chromedriver"], "chromedriver", install)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.fail(f"selenium is not installed ({exc}); it comes with the test extras (pytest-pyodide)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    t0 = time.perf_counter()
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as exc:
        pytest.fail(f"cannot start Chromium ({browser}) through {driver_path}: {exc}")
    driver.set_script_timeout(SCRIPT_TIMEOUT)
    report(f"chromium {driver.capabilities.get('browserVersion', '?')} started in {time.perf_counter() - t0:.2f} s")
    yield driver
    driver.quit()


# --------------------------------------------------------------------------- the booted page

BOOT_JS = """
const [baseUrl, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const t0 = performance.now();
  const glue = await import(baseUrl + "js_glue/boot.js");
  const pyodide = await glue.boot();
  const wall = performance.now() - t0;
  window.__dsw = { pyodide, glue };
  return JSON.stringify({ ...glue.lastBoot, wallMs: wall });
})().then((v) => done({ ok: true, value: v }), (e) => done({ ok: false, error: String((e && e.stack) || e) }));
"""

RUN_PY_JS = """
const [code, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const py = window.__dsw.pyodide;
  const ns = py.toPy({});
  try {
    const out = await py.runPythonAsync(code, { globals: ns });
    return typeof out === "string" ? out : String(out);
  } finally {
    ns.destroy();
  }
})().then((v) => done({ ok: true, value: v }), (e) => done({ ok: false, error: String((e && e.stack) || e) }));
"""

WRITE_FILE_JS = """
const [path, text, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
try {
  const FS = window.__dsw.pyodide.FS;
  FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
  FS.writeFile(path, text, { encoding: "utf8" });
  done({ ok: true, value: path });
} catch (e) {
  done({ ok: false, error: String((e && e.stack) || e) });
}
"""

LOAD_PACKAGES_JS = """
const [names, done] = [arguments[0], arguments[arguments.length - 1]];
const errors = [];
window.__dsw.pyodide.loadPackage(names, { messageCallback: () => {}, errorCallback: (m) => errors.push(m) })
  .then(() => done(errors.length ? { ok: false, error: errors.join("; ") } : { ok: true, value: "" }),
        (e) => done({ ok: false, error: String((e && e.stack) || e) }));
"""


class Page:
    """The page with Pyodide booted through js_glue/boot.js; Python runs in it via :meth:`run_py`."""

    def __init__(self, driver, server: StaticServer) -> None:
        self.driver = driver
        self.server = server

    def _call(self, script: str, *args):
        try:
            res = self.driver.execute_async_script(script, *args)
        except Exception as exc:
            pytest.fail(f"the page did not answer: {exc}\n{self.diagnostics()}")
        if not isinstance(res, dict) or not res.get("ok"):
            error = res.get("error") if isinstance(res, dict) else repr(res)
            pytest.fail(f"in the page: {error}\n{self.diagnostics()}")
        return res["value"]

    def diagnostics(self) -> str:
        lines = []
        try:
            lines += [f"console {e.get('level')}: {e.get('message')}" for e in self.driver.get_log("browser")][-40:]
        except Exception as exc:
            lines.append(f"(no browser log: {exc})")
        lines += [f"server: {e}" for e in self.server.errors[-20:]]
        return "\n".join(lines)

    def boot(self) -> dict:
        self.driver.get(self.server.base_url.rstrip("/") + BLANK_PAGE)
        return json.loads(self._call(BOOT_JS, self.server.base_url))

    def run_py(self, code: str) -> str:
        """Run ``code`` with ``runPythonAsync`` in a fresh namespace; its last expression must be a str."""
        return self._call(RUN_PY_JS, code)

    def write_file(self, path: str, text: str) -> None:
        self._call(WRITE_FILE_JS, path, text)

    def load_packages(self, names: list[str]) -> None:
        self._call(LOAD_PACKAGES_JS, names)


def _fmt_boot(info: dict) -> str:
    return (
        f"{info['totalMs'] / 1000:.2f} s (import pyodide.mjs + libsodium.js {info['importsMs']:.0f} ms, "
        f"loadPyodide {info['loadPyodideMs']:.0f} ms, wheel {info['loadPackagesMs']:.0f} ms, "
        f"backend {info['installBackendMs']:.0f} ms)"
    )


@pytest.fixture(scope="session")
def page(dist_server: StaticServer, chromium) -> Page:
    """Boot twice: a first load (fresh profile, empty cache), then a reload; tests use the second."""
    p = Page(chromium, dist_server)
    first = p.boot()
    report(f"pyodide {first['pyodideVersion']} + libsodium {first['sodiumVersion']}: first boot {_fmt_boot(first)}")
    again = p.boot()
    report(f"boot after a reload: {_fmt_boot(again)}")
    p.boot_info = again  # type: ignore[attr-defined]
    return p
