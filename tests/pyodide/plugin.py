"""pytest plugin: run ordinary test files inside Pyodide (node), strictly.

Load it with ``-p tests.pyodide.plugin`` next to pytest-pyodide's ``--run-in-pyodide``
(``tests/pyodide/run.sh`` does both). Without ``--run-in-pyodide`` it does nothing, so
it is harmless in a native run.

Collection happens on the host (CPython), so ``-k``/``-m``/node ids select tests as
usual. The selected tests of one module are then run by one ``pytest.main([...ids])``
inside a long-lived Pyodide on node, and each test's setup/call/teardown reports are
mapped back onto its host item. Per-test start/finish markers stream out of Pyodide
while it runs, so every test keeps its own timeout (``@pytest.mark.timeout`` or the ini
``timeout``; 900 s if neither) although a module runs as one batch.

Why a plugin on top of pytest-pyodide 0.59.2's ``--run-in-pyodide``: as shipped, that
mode copies test files to ``test_files/...`` but asks Pyodide's pytest for the node id
relative to its cwd, so nothing runs inside and every test is reported PASSED (seen
here); it also reads only ``<failure>`` elements of a junit file, so errors, skips and
"not found" pass too; and its per-runtime copies of items break parametrized tests.
This plugin replaces its runner and file copying, and:

* fails the run (exit 4, usage error) when node, the dist (``dist/pyodide`` by default)
  or its test wheels are missing, or when the project wheel in the dist differs from the
  sources (rebuild: ``python scripts/build_dist.py --out dist --with-tests``);
* deselects tests marked ``native_crypto`` or ``interop`` and the harness's own tests;
* fails a test that did not actually run inside Pyodide, maps skips and xfails, and
  fails the session if no test at all executed inside Pyodide;
* registers and selects a Hypothesis profile ``pyodide`` (no deadline, ``too_slow``
  health check suppressed); a conftest that registers a profile of that name wins;
* turns on JSPI in node when it can, so ``asyncio.run()`` works inside Pyodide;
* after a hang or a crash, kills that Pyodide, fails only the test at fault, and runs
  the rest of that module one test per ``pytest.main`` in a fresh Pyodide.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import zipfile
from collections import Counter
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import pytest

try:  # stdlib from 3.11 on, the project's minimum
    import tomllib
except ImportError:  # pragma: no cover
    tomllib = None  # type: ignore[assignment]

DESELECT_MARKERS = ("native_crypto", "native_compression", "interop", "browser")
REQUIRED_DIST_PACKAGES = ("pytest", "hypothesis", "tblib")
MIN_NODE_MAJOR = 20  # seen working: node v20.20.2 and v22.23.3 with Pyodide 314.0.7
PYODIDE_ROOT = "/home/pyodide/dsw"  # where the repo's test files are mirrored inside
COPY_EXCLUDE_PARTS = {"__pycache__", ".hypothesis", ".pytest_cache", "node_modules", ".git"}
COPY_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_TEST_TIMEOUT = 900.0  # s, when neither a timeout marker nor an ini timeout is set
BETWEEN_TESTS_TIMEOUT = 300.0  # s, for collection/import and module-level fixtures
BATCH_MAX = 50  # tests of one module per pytest.main inside Pyodide
# ini options carried into the Pyodide-side pytest, as written in the config file
# (addopts deliberately not: it may name host-only plugins).
INI_CARRY = ("python_files", "python_classes", "python_functions", "filterwarnings", "usefixtures", "xfail_strict")
MARK = "@@DSW"

HARNESS_DIR = Path(__file__).resolve().parent

_STATS: Counter[str] = Counter()
_INFO: dict[str, str] = {}
_STATE: dict[int, dict] = {}  # per Pyodide runner (id(selenium)): copied files
_CURRENT: list[pytest.Item] = []
_ORDER: list[str] = []  # selected node ids, in run order
_ITEMS: dict[str, pytest.Item] = {}
_TIMEOUTS: dict[str, float] = {}
_CACHE: dict[str, dict] = {}  # results of batch members not yet reported on the host
_DONE: set[str] = set()
_SINGLE_MODULES: set[str] = set()  # modules that hung/crashed once: one test per run
_BROKEN_MODULES: dict[str, str] = {}  # modules that hung outside any test when run alone


def _active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "run_in_pyodide", False))


# --------------------------------------------------------------------------- configure


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-pyodide's own pytest_configure: patch it, set our --dist-dir default."""
    if not _active(config):
        return
    import pytest_pyodide.hook as pp_hook
    import pytest_pyodide.run_tests_inside_pyodide as pp_run

    for mod, attr in (
        (pp_hook, "run_test_in_pyodide"),
        (pp_hook, "copy_files_to_emscripten_fs"),
        (pp_run, "_seleniums"),
        (pp_run, "ContextManagerUnwrapper"),
        (pp_run, "get_browser_pyodide"),
    ):
        if not hasattr(mod, attr):
            raise pytest.UsageError(
                f"tests/pyodide/plugin.py: pytest-pyodide internals changed ({mod.__name__}.{attr} "
                "missing); this plugin is written against pytest-pyodide==0.59.2"
            )
    pp_hook.run_test_in_pyodide = _run_test_strict
    pp_hook.copy_files_to_emscripten_fs = _no_copy
    pp_run.ContextManagerUnwrapper.close = _idempotent_close

    # pytest-pyodide's default --dist-dir is ./pyodide; ours is <rootdir>/dist/pyodide
    if (
        config.option.dist_dir in (Path("pyodide"), Path.cwd() / "pyodide")
        and not Path(config.option.dist_dir).resolve().exists()
    ):
        config.option.dist_dir = config.rootpath / "dist" / "pyodide"
    config.option.dist_dir = Path(config.option.dist_dir).resolve()


@pytest.hookimpl(trylast=True, specname="pytest_configure")
def pytest_configure_checks(config: pytest.Config) -> None:
    """After pytest-pyodide's pytest_configure (so that its unconfigure stays happy)."""
    if not _active(config):
        return
    runtimes = {r.strip() for r in str(config.option.runtime).split(",")}
    if runtimes != {"node"}:
        raise pytest.UsageError(f"Pyodide run: this harness supports --runtime node only, got {runtimes}")
    _check_node()
    _check_dist(Path(config.option.dist_dir), config.rootpath)


def _check_node() -> None:
    node = shutil.which("node")
    if node is None:
        raise pytest.UsageError(
            "Pyodide run: `node` is not on PATH (need node >= "
            f"{MIN_NODE_MAJOR}; e.g. Debian's nodejs or `npm install node@22`)"
        )
    try:
        ver = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
        major = int(ver.strip().lstrip("v").split(".")[0])
    except Exception as e:  # noqa: BLE001
        raise pytest.UsageError(f"Pyodide run: cannot get node's version ({e})") from None
    if major < MIN_NODE_MAJOR:
        raise pytest.UsageError(f"Pyodide run: node {ver.strip()} is too old, need >= {MIN_NODE_MAJOR}")
    _INFO["node"] = ver.strip()
    # JSPI (WebAssembly stack switching) lets asyncio.run()/run_until_complete work inside
    # Pyodide; node 20 and 22 have it behind a flag, later nodes by default.
    probe = (
        "process.exit(typeof WebAssembly.Suspending === 'function' || "
        "typeof WebAssembly.Function === 'function' ? 0 : 1)"
    )
    for flags in ([], ["--experimental-wasm-jspi"], ["--experimental-wasm-stack-switching"]):
        try:
            r = subprocess.run([node, *flags, "-e", probe], capture_output=True, timeout=30)
        except Exception:  # noqa: BLE001
            continue
        if r.returncode == 0:
            from pytest_pyodide.config import get_global_config

            cfg = get_global_config()
            cfg.set_flags("node", [*cfg.get_flags("node"), *flags])
            _INFO["jspi"] = " ".join(flags) or "on"
            break
    else:
        _INFO["jspi"] = "unavailable (asyncio.run() fails inside Pyodide)"


def _project(root: Path) -> tuple[str, list[str]]:
    conf = tomllib.loads((root / "pyproject.toml").read_text()) if tomllib else {}
    name = conf.get("project", {}).get("name", "darkswap-wasm")
    inc = conf.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get("include", [])
    pkgs = sorted({i.split(".")[0].rstrip("*") for i in inc} or {"darkswap_wasm"})
    return re.sub(r"[-_.]+", "-", name).lower(), pkgs


def _check_dist(dist: Path, root: Path) -> None:
    build = "python scripts/build_dist.py --out dist --with-tests"
    for f in ("pyodide.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"):
        if not (dist / f).is_file():
            raise pytest.UsageError(f"Pyodide run: {dist / f} is missing; build the dist first: {build}")
    lock = json.loads((dist / "pyodide-lock.json").read_text())
    pkgs = lock.get("packages", {})
    missing = [p for p in REQUIRED_DIST_PACKAGES if p not in pkgs]
    if missing:
        raise pytest.UsageError(f"Pyodide run: the dist lacks {missing}; rebuild with: {build}")
    project, roots = _project(root)
    entry = pkgs.get(project)
    if entry is None:
        raise pytest.UsageError(f"Pyodide run: the dist lacks the project wheel ({project}); {build}")
    wheel = dist / entry["file_name"]
    stale: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = {n for n in zf.namelist() if n.endswith(".py")}
        for pkg in roots:
            for p in sorted((root / pkg).rglob("*.py")):
                if "__pycache__" in p.parts:
                    continue
                rel = p.relative_to(root).as_posix()
                if rel not in in_wheel:
                    stale.append(f"{rel} (not in wheel)")
                elif zf.read(rel) != p.read_bytes():
                    stale.append(f"{rel} (changed)")
                in_wheel.discard(rel)
        stale += [f"{n} (deleted from sources)" for n in sorted(in_wheel) if n.split("/")[0] in roots]
    if stale:
        shown = ", ".join(stale[:6]) + (f", ... ({len(stale)} in all)" if len(stale) > 6 else "")
        raise pytest.UsageError(f"Pyodide run: {wheel.name} in the dist is stale: {shown}. Rebuild: {build}")
    _INFO["dist"] = str(dist)


# --------------------------------------------------------------------------- collection


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    originals = {item.nodeid: item for item in items}
    yield
    if not _active(config):
        return
    # pytest-pyodide replaced every item by a shallow copy per runtime; a copy breaks
    # parametrized tests on the host ("assert node in self.stack" at setup), so put the
    # original items back, tagged with the runtime.
    keep, drop = [], []
    for copy_ in items:
        item = originals.get(copy_.nodeid, copy_)
        item.pyodide_runtime = getattr(copy_, "pyodide_runtime", "node")
        path = Path(item.path).resolve()
        own = path.is_relative_to(HARNESS_DIR) and path.name.startswith("test_")  # host-only
        if own or any(item.get_closest_marker(m) for m in DESELECT_MARKERS):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
    has_timeout_plugin = config.pluginmanager.hasplugin("timeout")
    _ORDER[:] = [i.nodeid for i in keep]
    for item in keep:
        _ITEMS[item.nodeid] = item
        _TIMEOUTS[item.nodeid] = _item_timeout(item)
        if has_timeout_plugin:
            # the harness enforces each test's timeout itself (from the markers streamed
            # out of Pyodide); pytest-timeout would fire during a whole module's batch
            item.add_marker(pytest.mark.timeout(0), append=False)


def _item_timeout(item: pytest.Item) -> float:
    m = item.get_closest_marker("timeout")
    if m is not None:
        t = m.args[0] if m.args else m.kwargs.get("timeout")
        if t is not None:
            return float(t) if float(t) > 0 else DEFAULT_TEST_TIMEOUT
    t = getattr(item.config, "_env_timeout", None)
    return float(t) if t else DEFAULT_TEST_TIMEOUT


# --------------------------------------------------------------------------- runner setup


def _no_copy(*_args, **_kwargs) -> None:
    """Replaces pytest-pyodide's copier: this plugin mirrors files itself."""


def _idempotent_close(self) -> None:
    cm = getattr(self, "ctx_manager", None)
    if cm is not None:
        self.ctx_manager = None
        cm.__exit__(None, None, None)


@pytest.hookimpl(trylast=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _active(item.config) or not hasattr(item, "pyodide_runtime"):
        return
    _CURRENT[:] = [item]
    if item.nodeid not in _CACHE:
        _prepare(item)


def _prepare(item: pytest.Item):
    from pytest_pyodide.run_tests_inside_pyodide import get_browser_pyodide

    class RequestType:
        config = item.config
        node = item

    selenium = get_browser_pyodide(request=RequestType, runtime=item.pyodide_runtime)  # type: ignore[arg-type]
    state = _init_runner(selenium, item.config)
    _mirror_files(selenium, state, item)
    return selenium


def _ini_text(config: pytest.Config) -> str:
    lines = ["[pytest]", "markers ="]
    # markers with what host plugins added (no unknown-mark warnings inside); the rest as
    # written in the config file, without host plugins' additions (pytest-asyncio, for
    # one, adds a host-only fixture to usefixtures)
    lines += [f"    {m}" for m in config.getini("markers")]
    raw = getattr(config, "inicfg", {}) or {}
    for key in INI_CARRY:
        val = raw.get(key)
        if val is None:
            continue
        if isinstance(val, str) and key != "xfail_strict":
            val = [v for v in val.splitlines() if v.strip()]
        if isinstance(val, list):
            lines.append(f"{key} =")
            lines += [f"    {v}" for v in val]
        else:
            lines.append(f"{key} = {val}")
    return "\n".join(lines) + "\n"


PY_INIT = r"""
import importlib, json, os, sys
_DSW_ROOT = {root!r}
_DSW_MARK = {mark!r}
os.makedirs(_DSW_ROOT, exist_ok=True)
with open(_DSW_ROOT + "/pytest-pyodide.ini", "w") as _f:
    _f.write({ini!r})
try:
    from hypothesis import HealthCheck as _HC, settings as _hs
    _hs.register_profile("pyodide", deadline=None, suppress_health_check=[_HC.too_slow])
    _DSW_HYP = ["--hypothesis-profile=pyodide"]
except ImportError:
    _DSW_HYP = []
from js import process as _dsw_process


class _DswRecorder:
    def __init__(self, nodeids):
        self.index = {{n: i for i, n in enumerate(nodeids)}}
        self.reports = {{}}
        self.collect = {{}}

    def _mark(self, kind, nodeid):
        # straight to node's stdout, past pytest's capturing: the host times each test
        _dsw_process.stdout.write(f"{{_DSW_MARK}}-{{kind}} {{self.index.get(nodeid, -1)}}\n")

    def pytest_runtest_logstart(self, nodeid, location):
        self._mark("S", nodeid)

    def pytest_runtest_logfinish(self, nodeid, location):
        self._mark("F", nodeid)

    @staticmethod
    def _text(report):
        lr = report.longrepr
        if report.skipped and isinstance(lr, tuple) and len(lr) == 3:
            return str(lr[2])
        return report.longreprtext.replace(_DSW_ROOT + "/", "")

    def pytest_runtest_logreport(self, report):
        self.reports.setdefault(report.nodeid, []).append({{
            "when": report.when, "outcome": report.outcome, "text": self._text(report),
            "sections": [list(s) for s in report.sections],
            "wasxfail": getattr(report, "wasxfail", None), "duration": report.duration}})

    def pytest_collectreport(self, report):
        if report.outcome != "passed":
            self.collect[report.nodeid] = {{"outcome": report.outcome, "text": self._text(report)}}


def _dsw_run(nodeids):
    import contextlib, io, pytest
    os.chdir(_DSW_ROOT)
    importlib.invalidate_caches()
    rec = _DswRecorder(nodeids)
    args = [*nodeids, "-c", _DSW_ROOT + "/pytest-pyodide.ini", "--rootdir", _DSW_ROOT,
            "-p", "no:cacheprovider", "--color=no", "-q", *_DSW_HYP]
    term = io.StringIO()  # pytest's own terminal output: kept for diagnostics only
    with contextlib.redirect_stdout(term):
        rc = pytest.main(args, plugins=[rec])
    return json.dumps({{"rc": int(rc), "reports": rec.reports, "collect": rec.collect,
                       "terminal": term.getvalue()[-8000:]}})


json.dumps({{"python": sys.version.split()[0], "platform": sys.platform}})
"""


def _init_runner(selenium, config: pytest.Config) -> dict:
    state = _STATE.get(id(selenium))
    if state is not None and state["selenium"] is selenium:
        return state
    if not hasattr(selenium, "p"):
        raise pytest.UsageError("Pyodide run: expected pytest-pyodide's NodeRunner")
    lock = json.loads((Path(config.option.dist_dir) / "pyodide-lock.json").read_text())
    selenium.load_package(sorted(lock["packages"]))  # raises on any load error
    info = json.loads(selenium.run(PY_INIT.format(root=PYODIDE_ROOT, mark=MARK, ini=_ini_text(config))))
    if info.get("platform") != "emscripten":
        raise RuntimeError(f"Pyodide runner reports {info!r}")
    _INFO["python"] = info["python"]
    _STATS["pyodide_starts"] += 1
    selenium.clean_logs()
    state = {"selenium": selenium, "copied": set()}
    _STATE[id(selenium)] = state
    return state


def _files_for(item: pytest.Item) -> list[Path]:
    root = item.config.rootpath.resolve()
    path = Path(item.path).resolve()
    if not path.is_relative_to(root):
        raise pytest.UsageError(f"Pyodide run: {path} is outside rootdir {root}")

    def ok(p: Path) -> bool:
        rel = p.relative_to(root).parts
        # hidden files are skipped too: editors' temporary files come and go mid-run
        return (
            p.is_file()
            and not COPY_EXCLUDE_PARTS.intersection(rel)
            and not any(part.startswith(".") for part in rel)
            and p.suffix not in (".pyc", ".pyo", ".tmp", ".swp")
        )

    files = [p for p in sorted(path.parent.rglob("*")) if ok(p)]
    for anc in [path.parent, *path.parent.parents]:
        if not anc.is_relative_to(root):
            break
        files += [anc / n for n in ("conftest.py", "__init__.py") if (anc / n).is_file()]
    return files


def _mirror_files(selenium, state: dict, item: pytest.Item) -> None:
    from pytest_pyodide.server import spawn_web_server

    root = item.config.rootpath.resolve()
    new = [p for p in dict.fromkeys(_files_for(item)) if p not in state["copied"]]
    if not new:
        return
    size = sum(p.stat().st_size for p in new)
    if size > COPY_MAX_BYTES:
        raise pytest.UsageError(f"Pyodide run: refusing to copy {size} bytes of test files")
    rels = [p.relative_to(root).as_posix() for p in new]
    with spawn_web_server(root) as (host, port, _log):
        failed = (
            selenium.run_js(
                f"""
            const base = {json.dumps(f"http://{host}:{port}/")}, dest = {json.dumps(PYODIDE_ROOT)};
            const rels = {json.dumps([quote(r) for r in rels])};
            const failed = [];
            for (const rel of rels) {{
                const resp = await fetch(base + rel);
                if (!resp.ok) {{ failed.push([decodeURIComponent(rel), resp.status]); continue; }}
                const data = new Uint8Array(await resp.arrayBuffer());
                const path = dest + "/" + decodeURIComponent(rel);
                pyodide.FS.mkdirTree(path.substring(0, path.lastIndexOf("/")));
                pyodide.FS.writeFile(path, data);
            }}
            return failed;
            """
            )
            or []
        )
    # a file deleted since it was listed is fine; any other failure is not
    real = [f"{rel} (HTTP {status})" for rel, status in failed if (root / rel).exists()]
    if real:
        raise RuntimeError(f"could not copy test files into Pyodide: {real}")
    state["copied"].update(new)
    _STATS["files_copied"] += len(new)


# --------------------------------------------------------------------------- running


class _Hung(Exception):
    def __init__(self, index: int | None, waited: float, logs: str):
        super().__init__(index, waited)
        self.index, self.waited, self.logs = index, waited, logs


class _Crashed(Exception):
    def __init__(self, what: str, logs: str):
        super().__init__(what)
        self.what, self.logs = what, logs


def _node_run(selenium, js: str, timeouts: list[float]) -> tuple[object, str]:
    """NodeRunner.run_js_inner with a per-test wait: same wire protocol (pytest-pyodide
    0.59.2 node_test_driver.js), but it reads the start/finish markers streamed by the
    Pyodide side and waits at most the running test's timeout for the next one."""
    import pexpect

    p = selenium.p
    logs: list[str] = []
    wrapped = f"let result = await (async () => {{ {js} }})();\nreturn result;"
    cmd_id = str(uuid4())
    try:
        p.sendline(cmd_id)
        lines = wrapped.split("\n")
        for n, line in enumerate(lines):
            for i in range(0, len(line), 128):
                p.sendline(line[i : i + 128] + "$")
                p.expect_exact("{LINE_OK}\r\n", timeout=60)
            if n < len(lines) - 1:
                p.sendline("$")
                p.expect_exact("{LINE_OK}\r\n", timeout=60)
        p.sendline(cmd_id)
        p.expect_exact(f"{cmd_id}:UUID\r\n", timeout=60)
        running: int | None = None
        patterns = [
            re.compile(re.escape(MARK.encode()) + rb"-([SF]) (-?\d+)\r\n"),
            re.compile(re.escape(f"{cmd_id}:UUID\r\n".encode())),
        ]
        while True:
            wait = timeouts[running] if running is not None and 0 <= running < len(timeouts) else BETWEEN_TESTS_TIMEOUT
            try:
                k = p.expect(patterns, timeout=wait)
            except pexpect.TIMEOUT:
                logs.append((p.before or b"").decode(errors="replace"))
                raise _Hung(running, wait, "".join(logs)[-20000:]) from None
            logs.append((p.before or b"").decode(errors="replace"))
            if k == 1:
                break
            kind, idx = p.match.group(1), int(p.match.group(2))
            running = idx if kind == b"S" else None
        p.expect("[01]\r\n", timeout=60)
        ok = p.match.group(0).startswith(b"0")
        p.expect_exact(f"\r\n{cmd_id}:UUID\r\n", timeout=60)
        payload = (p.before or b"").decode(errors="replace")
    except (pexpect.EOF, pexpect.TIMEOUT) as e:
        logs.append((p.before or b"").decode(errors="replace") if isinstance(p.before, bytes) else "")
        raise _Crashed(f"node stopped answering ({type(e).__name__})", "".join(logs)[-20000:]) from None
    text = "".join(logs)[-20000:]
    if not ok:
        raise _Crashed(f"JavaScript error: {payload[-4000:]}", text)
    return (None if payload.strip() == "undefined" else json.loads(payload)), text


def _discard_runner(selenium) -> None:
    """Kill a runner that hung or crashed; the next test starts a fresh Pyodide."""
    import pytest_pyodide.run_tests_inside_pyodide as pp_run

    _STATE.pop(id(selenium), None)
    for rt, inst in list(pp_run._seleniums.items()):
        if inst.selenium.get_value() is selenium:
            del pp_run._seleniums[rt]
            p = getattr(selenium, "p", None)
            if p is not None:
                with contextlib.suppress(Exception):  # already gone is fine
                    p.terminate(force=True)
            for cm in (inst.selenium, inst.server):
                with contextlib.suppress(Exception):
                    cm.close()
    _STATS["pyodide_restarts"] += 1


def _batch_for(nodeid: str) -> list[str]:
    """The test itself, then the following selected tests of its module not yet run."""
    item = _ITEMS.get(nodeid)
    batch = [nodeid]
    if item is None or str(item.path) in _SINGLE_MODULES or nodeid not in _ORDER:
        return batch
    for nid in _ORDER[_ORDER.index(nodeid) + 1 :]:
        if _ITEMS[nid].path != item.path or len(batch) >= BATCH_MAX:
            break
        if nid not in _DONE and nid not in _CACHE:
            batch.append(nid)
    return batch


def _run_test_strict(node_tree_id: str, selenium, ignore_fail: bool = False) -> bool:
    """Replaces pytest_pyodide.hook.run_test_in_pyodide."""
    nodeid = node_tree_id
    if nodeid in _CACHE:
        _DONE.add(nodeid)
        return _apply_result(nodeid, _CACHE.pop(nodeid))
    item = _ITEMS.get(nodeid) or (_CURRENT[0] if _CURRENT else None)
    if item is not None and str(item.path) in _BROKEN_MODULES:
        _STATS["failed"] += 1
        pytest.fail(f"[pyodide] not run: {_BROKEN_MODULES[str(item.path)]}", pytrace=False)
    batch = _batch_for(nodeid)
    _DONE.update(batch)
    timeouts = [_TIMEOUTS.get(n, DEFAULT_TEST_TIMEOUT) for n in batch]
    code = f"_dsw_run({batch!r})"
    selenium.clean_logs()
    _STATS["pytest_main_calls"] += 1
    try:
        raw, logs = _node_run(selenium, f"return await pyodide.runPythonAsync({json.dumps(code)});", timeouts)
    except (_Hung, _Crashed) as e:
        _discard_runner(selenium)
        if isinstance(e, _Hung):
            at = batch[e.index] if e.index is not None and 0 <= e.index < len(batch) else None
            why = f"timed out after {e.waited:.0f}s inside Pyodide" + (
                "" if at else " (outside any test: collection, import or a module fixture)"
            )
        else:
            at, why = None, f"Pyodide crashed: {e.what}"
        msg = f"{why} [Pyodide was restarted for the next test]\n--- Pyodide output ---\n{e.logs}"
        if len(batch) > 1:
            # isolate the culprit: the rest of this module runs one test per pytest.main
            if item is not None:
                _SINGLE_MODULES.add(str(item.path))
            if at is not None and at != nodeid:
                _CACHE[at] = {"error": msg}
            if at != nodeid and item is not None:
                _STATS["batch_retries"] += 1
                _DONE.difference_update(batch)
                return _run_test_strict(nodeid, _prepare(item))
        elif isinstance(e, _Hung) and at is None and item is not None:
            # hangs before/after any test even alone (import, collection, module fixture)
            _BROKEN_MODULES[str(item.path)] = f"an earlier test of this module: {why}"
        _STATS["failed"] += 1
        pytest.fail(f"[pyodide] {msg}", pytrace=False)
    if not isinstance(raw, str):
        pytest.fail(f"[pyodide] unexpected answer from Pyodide: {raw!r}\n{logs}", pytrace=False)
    result = json.loads(raw)
    result["logs"] = f"{logs}\n--- pytest inside Pyodide ---\n{result.get('terminal', '')}"
    for nid in batch[1:]:
        _CACHE[nid] = {
            "rc": result["rc"],
            "reports": {nid: result["reports"].get(nid)},
            "collect": result["collect"],
            "logs": result["logs"],
        }
    return _apply_result(nodeid, result)


def _skip(reason: str) -> None:
    reason = reason.removeprefix("Skipped: ")
    raise pytest.skip.Exception(f"[pyodide] {reason}", _use_item_location=True)


def _apply_result(nodeid: str, result: dict) -> bool:
    if "error" in result:
        _STATS["failed"] += 1
        pytest.fail(f"[pyodide] {result['error']}", pytrace=False)
    reports = result["reports"].get(nodeid)
    if not reports:
        # not run: a collection error/skip of its module or class, or not found at all
        owners = [
            k
            for k in result["collect"]
            if nodeid == k or nodeid.startswith(k + "::") or (k and nodeid.startswith(k.rstrip("/") + "/"))
        ]
        if owners:
            c = result["collect"][max(owners, key=len)]
            if c["outcome"] == "skipped":
                _STATS["executed"] += 1
                _STATS["skipped"] += 1
                _skip(c["text"])
            _STATS["failed"] += 1
            pytest.fail(f"[pyodide] collection error:\n{c['text']}", pytrace=False)
        _STATS["not_run"] += 1
        pytest.fail(
            f"[pyodide] test was not executed inside Pyodide (pytest exit code {result['rc']})"
            f"\n--- Pyodide output ---\n{result.get('logs', '')}",
            pytrace=False,
        )
    _STATS["executed"] += 1
    failed = [r for r in reports if r["outcome"] == "failed"]
    if failed:
        _STATS["failed"] += 1
        parts = []
        for r in failed:
            parts.append(f"[pyodide {r['when']}] {r['text']}")
            for title, content in r["sections"]:
                parts.append(f"----- {title} (pyodide) -----\n{content}")
        pytest.fail("\n".join(parts), pytrace=False)
    for r in reports:
        if r["outcome"] == "skipped":
            if r["wasxfail"] is not None:
                _STATS["xfailed"] += 1
                pytest.xfail(f"[pyodide] {r['wasxfail']}")
            _STATS["skipped"] += 1
            _skip(r["text"])
    _STATS["passed"] += 1
    return True


# --------------------------------------------------------------------------- summary


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if not _active(config):
        return
    s = _STATS
    terminalreporter.write_line(
        f"pyodide: {s['executed']} tests executed inside Pyodide (python {_INFO.get('python', '?')}, "
        f"node {_INFO.get('node', '?')}, JSPI {_INFO.get('jspi', '?')}; {s['passed']} passed, "
        f"{s['failed']} failed, {s['skipped']} skipped, {s['xfailed']} xfailed, {s['not_run']} not run; "
        f"{s['pytest_main_calls']} pytest.main calls, {s['pyodide_restarts']} Pyodide restarts) "
        f"from {_INFO.get('dist', '?')}"
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _active(session.config):
        return
    if _STATS["executed"] == 0 and exitstatus in (0, 5):
        session.exitstatus = 1
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line("pyodide: ERROR: no test was executed inside Pyodide", red=True)
