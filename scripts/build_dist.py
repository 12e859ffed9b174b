#!/usr/bin/env python3
"""Assemble an offline Pyodide distribution under <out>/pyodide/.

    python scripts/build_dist.py --out dist [--with-tests] [--smoke-test] [--browser] [--project-wheel WHL]

What ends up in <out>/pyodide/:
  * the Pyodide core, unpacked from the npm package ``pyodide@PYODIDE_VERSION``
    (pyodide.js/.mjs, pyodide.asm.{mjs,wasm}, python_stdlib.zip, ...); its REPL pages
    (console.html, console-v2.html) only with --with-tests;
  * pure-Python wheels from PyPI (micropip always; pytest, hypothesis, pygments, tblib and
    their dependencies only with --with-tests: a plain build ships no test code);
  * this project's own wheel, built from the working tree;
  * a rewritten ``pyodide-lock.json`` that lists exactly the shipped wheels, with their
    real sha256 (Pyodide checks it), their import names and their dependencies, so that
    ``pyodide.loadPackage(name)``, ``loadPackagesFromImports`` and micropip resolve
    them offline.

Why the lock is rewritten: the npm package carries the core only; the wheels that its
lock lists live on a CDN that this project cannot reach. PyPI's builds of the same pure
wheels have different hashes (integrity checks would refuse them), and a lock entry
without its wheel makes micropip log "Failed to fetch" without raising.

With --browser, also what a page needs besides Pyodide (see js_glue/README.md):
  * <out>/js_glue/: the repository's js_glue/ (plain ES modules: boot.js, crypto.js);
  * <out>/vendor/libsodium{,-wrappers}/: the ESM builds of the npm packages pinned in
    BROWSER_NPM (version and registry integrity), the wrappers' bare ``import "libsodium"``
    rewritten to a relative path; <out>/vendor/versions.json records what was shipped.
  It then imports <out>/js_glue/crypto.js in node and checks an RFC 8032 key.
  The JS API besides: <out>/vendor/webrtc-adapter/
  (adapter.js, a self-contained UMD bundle) and the entry points <out>/darkswap.js (classic
  script), <out>/darkswap.mjs (ES module), <out>/darkswap.d.ts, copied from js_glue/.

Downloads are cached under <repo>/.cache/build_dist/ (override with --cache-dir), so a
second run needs no network except for the isolated build of the project wheel, which
is itself cached by a hash of the sources. Standard library only; needs ``npm`` on
PATH (first run only) and ``pip`` for this interpreter. Exits non-zero with a reason on
any failure.
"""

from __future__ import annotations

import argparse
import base64
import email.parser
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

PYODIDE_VERSION = "314.0.7"

# Wheels shipped in every dist. micropip is what pytest-pyodide (and a page) uses to
# install further wheels.
RUNTIME_WHEELS = ["micropip==0.11.1"]

# Extra wheels for running the test suites inside Pyodide (--with-tests). Pinned to the
# versions used on the host (pytest < 9: pytest-pyodide 0.59.2 breaks with pytest 9).
# hypothesis >= 6.1xx no longer needs attrs; exceptiongroup/tomli are only needed
# below Python 3.11. The dependency closure is checked at build time.
TEST_WHEELS = [
    "pytest==8.4.2",
    "pluggy==1.6.0",
    "iniconfig==2.3.0",
    "packaging==26.2",
    "pygments==2.20.0",
    "hypothesis==6.155.2",
    "sortedcontainers==2.4.0",
    "tblib==3.2.2",
]

# Files of the npm package shipped only with --with-tests: Pyodide's REPL pages (a debugging aid
# for the test runs; a page of ours never loads them).
TEST_ONLY_CORE_GLOBS = ["console*.html"]

# Core files the npm package must contain.
CORE_FILES = [
    "pyodide.js",
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
    "package.json",
]

# Files copied from the repository to build the project wheel out of tree (an in-tree
# setuptools build leaves build/ and *.egg-info behind in the work tree).
PROJECT_TOP_FILES = ["pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in"]
PROJECT_TOP_GLOBS = ["README*", "LICENSE*", "COPYING*"]

REPO_ROOT = Path(__file__).resolve().parent.parent

# --browser: npm packages for the page, pinned by version and by the registry's integrity
# (`npm pack` writes the registry's tarball unchanged; `npm view NAME@VERSION dist.integrity`).
BROWSER_NPM = {
    "libsodium": (
        "0.8.4",
        "sha512-lMcYaRi0zcs7tarATsQUYC7rstliIXZuoq0c6zXSgNtSNtdvBgkSegjWhpMJAXzKX3SUSwIp7+zEsob+j3LuRw==",
    ),
    "libsodium-wrappers": (
        "0.8.4",
        "sha512-mu8aAWucZjTB5O/BtGXtW4e1agy7uHxNYG7zPthmmD1jU43LCDmSWZLN4JhflbdPXj3yDO4lxM1O9hLDgIOXDw==",
    ),
}
# member of the npm tarball -> file name under <out>/vendor/<package>/
BROWSER_VENDOR_FILES = {
    "libsodium": {
        "package/dist/modules-esm/libsodium.mjs": "libsodium.mjs",
        "package/LICENSE": "LICENSE",
        "package/package.json": "package.json",
    },
    "libsodium-wrappers": {
        "package/dist/modules-esm/libsodium-wrappers.mjs": "libsodium-wrappers.mjs",
        "package/LICENSE": "LICENSE",
        "package/package.json": "package.json",
    },
}
# Bare module specifiers a page cannot resolve without an import map: (package, file) ->
# (specifier, relative path that replaces it). Each must occur exactly once.
BROWSER_IMPORT_REWRITES = {
    ("libsodium-wrappers", "libsodium-wrappers.mjs"): ("libsodium", "../libsodium/libsodium.mjs"),
}

# --- the JS API's packages (js_glue/compat.js) -------------------------------------------------
# zstd needs none: Pyodide 314's standard library has compression.zstd (libzstd in pyodide.asm.wasm).
# webrtc-adapter: the WebRTC shim for prefixed/legacy APIs; out/adapter.js is a self-contained
# UMD bundle (its dependency `sdp` is bundled in it) that sets the global `adapter`.
BROWSER_NPM.update(
    {
        "webrtc-adapter": (
            "9.0.6",
            "sha512-CHbl2ZQbxx164IgWRgzJno4hWtM4tFbRam1QfI3Yxhs3w/DvqluVxVWeXs3oL5/fbGkSNLKo0Ty5MgUWceNhog==",
        ),
    }
)
BROWSER_VENDOR_FILES.update(
    {
        "webrtc-adapter": {
            "package/out/adapter.js": "adapter.js",
            "package/LICENSE.md": "LICENSE.md",
            "package/package.json": "package.json",
        },
    }
)
# Several rewrites in one file: (package, file) -> [(specifier, replacement), ...]; each
# specifier must occur exactly once in its file.
BROWSER_IMPORT_REWRITES_MULTI: dict[tuple[str, str], list[tuple[str, str]]] = {}
# npm dependencies already bundled into the shipped files (not shipped separately).
BROWSER_BUNDLED_DEPS = {"webrtc-adapter": {"sdp"}}
# Files of js_glue/ that also go to the dist root: the JS API's entry points (a page loads
# <dist>/darkswap.js with a script tag, or imports <dist>/darkswap.mjs).
JS_API_ROOT_FILES = ["darkswap.js", "darkswap.mjs", "darkswap.d.ts"]
JS_GLUE_DIR = REPO_ROOT / "js_glue"
JS_GLUE_REQUIRED = ["boot.js", "crypto.js", "ffi.js", "package.json"]
JS_GLUE_SUFFIXES = {".js", ".mjs", ".json", ".md"}


class BuildError(Exception):
    pass


QUIET = False


def log(msg: str, always: bool = False) -> None:
    if always or not QUIET:
        print(f"[build_dist] {msg}", flush=True)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cmd: list[str], cwd: Path | None = None, what: str = "") -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise BuildError(f"{what or cmd[0]}: cannot run {cmd[0]!r} ({e})") from None
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
        tail = "\n".join(ln if len(ln) <= 400 else ln[:400] + " [...]" for ln in lines)
        raise BuildError(f"{what or ' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


# --------------------------------------------------------------------------- markers
# A small evaluator for PEP 508 environment markers (stdlib only), evaluated for the
# Pyodide target rather than for the host. Anything it does not understand is an error,
# never a silent guess.

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<op>===|==|!=|<=|>=|~=|<|>)|(?P<paren>[()])"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"""
)
_VERSION_VARS = {"python_version", "python_full_version", "implementation_version"}


def _tokenize(marker: str) -> list[tuple[str, str]]:
    pos, out = 0, []
    marker = marker.strip()
    while pos < len(marker):
        m = _TOKEN.match(marker, pos)
        if not m or m.end() == pos:
            raise BuildError(f"cannot parse environment marker {marker!r} at {pos}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _vtuple(v: str, marker: str) -> tuple[int, ...]:
    parts = v.split(".")
    if not all(p.isdigit() for p in parts):
        raise BuildError(f"non-numeric version {v!r} in marker {marker!r}")
    return tuple(int(p) for p in parts)


def _compare(lhs: str, op: str, rhs: str, versions: bool, marker: str) -> bool:
    if op == "in":
        return lhs in rhs
    if op == "not in":
        return lhs not in rhs
    if versions and op not in ("===",):
        a, b = _vtuple(lhs, marker), _vtuple(rhs, marker)
        if op == "~=":
            return a >= b and a[: len(b) - 1] == b[: len(b) - 1]
        n = max(len(a), len(b))
        a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
        return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("==", "==="):
        return lhs == rhs
    if op == "!=":
        return lhs != rhs
    raise BuildError(f"operator {op!r} on non-version values in marker {marker!r}")


def eval_marker(marker: str, env: dict[str, str]) -> bool:
    toks = _tokenize(marker)
    i = 0

    def peek() -> tuple[str, str] | None:
        return toks[i] if i < len(toks) else None

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(toks):
            raise BuildError(f"unexpected end of marker {marker!r}")
        i += 1
        return toks[i - 1]

    def value() -> tuple[str, bool]:
        kind, text = take()
        if kind == "str":
            return text[1:-1], False
        if kind == "word":
            if text not in env:
                raise BuildError(f"unknown marker variable {text!r} in {marker!r}")
            return env[text], text in _VERSION_VARS
        raise BuildError(f"unexpected {text!r} in marker {marker!r}")

    def atom() -> bool:
        if peek() == ("paren", "("):
            take()
            r = expr()
            if take() != ("paren", ")"):
                raise BuildError(f"unbalanced parentheses in marker {marker!r}")
            return r
        lhs, lv = value()
        kind, text = take()
        if kind == "op":
            op = text
        elif (kind, text) == ("word", "in"):
            op = "in"
        elif (kind, text) == ("word", "not") and take() == ("word", "in"):
            op = "not in"
        else:
            raise BuildError(f"expected an operator, got {text!r} in marker {marker!r}")
        rhs, rv = value()
        return _compare(lhs, op, rhs, lv or rv, marker)

    def and_expr() -> bool:
        r = atom()
        while peek() == ("word", "and"):
            take()
            r = atom() and r
        return r

    def expr() -> bool:
        r = and_expr()
        while peek() == ("word", "or"):
            take()
            r = and_expr() or r
        return r

    result = expr()
    if i != len(toks):
        raise BuildError(f"trailing tokens in marker {marker!r}")
    return result


def pyodide_marker_env(lock_info: dict) -> dict[str, str]:
    full = lock_info.get("python", "")
    if not re.fullmatch(r"\d+\.\d+\.\d+", full):
        raise BuildError(f"pyodide-lock.json info.python is {full!r}, expected X.Y.Z")
    platform = lock_info.get("platform", "")  # e.g. emscripten_5_0_3
    release = ".".join(platform.split("_")[1:]) if platform.startswith("emscripten_") else ""
    # Values checked against platform/sys inside Pyodide 314 on node.
    return {
        "os_name": "posix",
        "sys_platform": "emscripten",
        "platform_system": "Emscripten",
        "platform_machine": "wasm32",
        "platform_release": release,
        "platform_version": "#1",
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "implementation_version": full,
        "python_version": ".".join(full.split(".")[:2]),
        "python_full_version": full,
        "extra": "",
    }


# --------------------------------------------------------------------------- wheels


def parse_wheel_filename(fname: str) -> tuple[str, str, str]:
    """Return (canonical name, version, tag string) of a wheel file name."""
    if not fname.endswith(".whl"):
        raise BuildError(f"not a wheel: {fname}")
    parts = fname[:-4].split("-")
    if len(parts) not in (5, 6):
        raise BuildError(f"malformed wheel file name: {fname}")
    return canonical(parts[0]), parts[1], "-".join(parts[-3:])


def wheel_metadata(path: Path) -> email.message.Message:
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise BuildError(f"{path.name}: corrupt member {bad}")
        metas = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(metas) != 1:
            raise BuildError(f"{path.name}: expected one .dist-info/METADATA, found {metas}")
        return email.parser.BytesParser().parsebytes(zf.read(metas[0]))


def wheel_imports(path: Path) -> list[str]:
    """Top-level importable names of a wheel (what loadPackagesFromImports maps)."""
    names: set[str] = set()
    with zipfile.ZipFile(path) as zf:
        for n in zf.namelist():
            top, sep, _rest = n.partition("/")
            if top.endswith((".dist-info", ".data")) or top == "__pycache__":
                continue
            if sep:
                if n.endswith(".py") or ".so" in n:
                    names.add(top)
            elif top.endswith(".py"):
                names.add(top[:-3])
            elif top.endswith(".so"):
                names.add(top.split(".")[0])
    return sorted(names)


def requirement_name(req: str) -> tuple[str, str | None]:
    spec, _, marker = req.partition(";")
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not m:
        raise BuildError(f"cannot parse requirement {req!r}")
    return canonical(m.group(1)), (marker.strip() or None)


def find_cached_wheel(cache: Path, name: str, version: str) -> Path | None:
    for p in sorted(cache.glob("*.whl")):
        n, v, _ = parse_wheel_filename(p.name)
        if n == canonical(name) and v == version:
            return p
    return None


def fetch_wheel(spec: str, cache: Path, py_version: str) -> Path:
    m = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", spec)
    if not m:
        raise BuildError(f"wheel spec must be pinned as name==version, got {spec!r}")
    name, version = m.groups()
    hit = find_cached_wheel(cache, name, version)
    if hit is None:
        log(f"downloading {spec} from PyPI")
        with tempfile.TemporaryDirectory(prefix="build_dist-pip-") as tmp:
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    py_version,
                    "--disable-pip-version-check",
                    "-d",
                    tmp,
                    spec,
                ],
                what=f"pip download {spec}",
            )
            got = list(Path(tmp).glob("*.whl"))
            if len(got) != 1:
                raise BuildError(f"pip download {spec} produced {[p.name for p in got]}")
            cache.mkdir(parents=True, exist_ok=True)
            hit = cache / got[0].name
            shutil.move(str(got[0]), str(hit))
    else:
        log(f"cached   {hit.name}")
    _n, _v, tag = parse_wheel_filename(hit.name)
    if not tag.endswith("-none-any"):
        raise BuildError(
            f"{hit.name} is not a pure-Python wheel (tag {tag}); Pyodide builds "
            "of compiled packages are not obtainable offline"
        )
    return hit


# --------------------------------------------------------------------------- pyodide core


def sri_sha512(path: Path) -> str:
    h = hashlib.sha512()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha512-" + base64.b64encode(h.digest()).decode()


def npm_pack(cache: Path, name: str, version: str, integrity: str | None = None) -> Path:
    """``npm pack name@version`` into the cache (once). With ``integrity`` (the registry's SRI),
    the tarball must match it, when fetched and when taken from the cache."""
    tgz = cache / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if tgz.exists():
        log(f"cached   {tgz.name}")
    else:
        log(f"npm pack {name}@{version}")
        if shutil.which("npm") is None:
            raise BuildError(f"npm is not on PATH: needed once to fetch {name}@{version}")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build_dist-npm-") as tmp:
            run(
                ["npm", "pack", f"{name}@{version}", "--pack-destination", tmp, "--silent"],
                cwd=Path(tmp),
                what=f"npm pack {name}@{version}",
            )
            got = list(Path(tmp).glob("*.tgz"))
            if len(got) != 1:
                raise BuildError(f"npm pack {name}@{version} produced {[p.name for p in got]}")
            if integrity is not None and sri_sha512(got[0]) != integrity:
                raise BuildError(
                    f"npm pack {name}@{version}: integrity {sri_sha512(got[0])} differs from the pinned {integrity}"
                )
            shutil.move(str(got[0]), str(tgz))
    if integrity is not None and sri_sha512(tgz) != integrity:
        raise BuildError(f"{tgz} does not match the pinned integrity of {name}@{version}; delete it to re-download")
    return tgz


def fetch_pyodide_core(cache: Path, version: str) -> Path:
    return npm_pack(cache, "pyodide", version)


def test_only_core_file(rel: Path) -> bool:
    return len(rel.parts) == 1 and any(rel.match(g) for g in TEST_ONLY_CORE_GLOBS)


def extract_core(tgz: Path, dest: Path, version: str, with_tests: bool = False) -> None:
    """Unpack the npm package's core into ``dest``; the test-only files only ``with_tests``."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tgz, "r:gz") as tf:
            members = tf.getmembers()
            for m in members:
                if not m.name.startswith("package/"):
                    continue
                rel = Path(m.name[len("package/") :])
                if not m.isfile() or rel.is_absolute() or ".." in rel.parts:
                    continue
                if not with_tests and test_only_core_file(rel):
                    continue
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None
                with src, out.open("wb") as f:
                    shutil.copyfileobj(src, f)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BuildError(f"cannot unpack {tgz} ({e}); delete it to re-download") from None
    missing = [f for f in CORE_FILES if not (dest / f).is_file()]
    if missing:
        raise BuildError(f"{tgz.name} lacks {missing}; delete it to re-download")
    got = json.loads((dest / "package.json").read_text()).get("version")
    if got != version:
        raise BuildError(f"{tgz.name} holds pyodide {got}, expected {version}")


# --------------------------------------------------------------------------- project wheel


def project_sources(repo: Path) -> list[Path]:
    pyproject = repo / "pyproject.toml"
    if not pyproject.is_file():
        raise BuildError(f"no pyproject.toml in {repo}")
    files = [repo / f for f in PROJECT_TOP_FILES if (repo / f).is_file()]
    for g in PROJECT_TOP_GLOBS:
        files += sorted(p for p in repo.glob(g) if p.is_file())
    conf = tomllib.loads(pyproject.read_text())
    includes = conf.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {}).get("include", [])
    roots = sorted({inc.split(".")[0].rstrip("*") for inc in includes} or {"darkswap_wasm"})
    for root in roots:
        pkg = repo / root
        if not pkg.is_dir():
            raise BuildError(f"package directory {pkg} not found")
        for p in sorted(pkg.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
                files.append(p)
    return files


def build_project_wheel(repo: Path, cache: Path) -> Path:
    files = project_sources(repo)
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(repo)).encode() + b"\0" + p.read_bytes() + b"\0")
    key = h.hexdigest()[:16]
    slot = cache / key
    hits = list(slot.glob("*.whl")) if slot.is_dir() else []
    if len(hits) == 1:
        log(f"cached   {hits[0].name} (sources {key})")
        return hits[0]
    log(f"building project wheel (sources {key})")
    with tempfile.TemporaryDirectory(prefix="build_dist-proj-") as tmp:
        src = Path(tmp) / "src"
        for p in files:
            out = src / p.relative_to(repo)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, out)
        outdir = Path(tmp) / "out"
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--disable-pip-version-check",
                "-w",
                str(outdir),
                str(src),
            ],
            what="pip wheel (project)",
        )
        got = list(outdir.glob("*.whl"))
        if len(got) != 1:
            raise BuildError(f"pip wheel produced {[p.name for p in got]}")
        _n, _v, tag = parse_wheel_filename(got[0].name)
        if not tag.endswith("-none-any"):
            raise BuildError(f"project wheel {got[0].name} is not pure Python")
        if slot.exists():
            shutil.rmtree(slot)
        slot.mkdir(parents=True)
        final = slot / got[0].name
        shutil.move(str(got[0]), str(final))
    # keep the cache small: drop other source snapshots
    for old in cache.iterdir():
        if old.is_dir() and old != slot:
            shutil.rmtree(old, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- lock


def lock_entry(path: Path, env: dict[str, str]) -> tuple[str, dict]:
    meta = wheel_metadata(path)
    name, version = meta["Name"], meta["Version"]
    if not name or not version:
        raise BuildError(f"{path.name}: METADATA lacks Name/Version")
    depends = []
    for req in meta.get_all("Requires-Dist") or []:
        dep, marker = requirement_name(req)
        if marker is None or eval_marker(marker, env):
            depends.append(dep)
    imports = wheel_imports(path)
    if not imports:
        raise BuildError(f"{path.name}: no importable top-level names found")
    return canonical(name), {
        "name": name,
        "version": version,
        "file_name": path.name,
        "install_dir": "site",
        "sha256": sha256_of(path),
        "package_type": "package",
        "imports": imports,
        "depends": sorted(set(depends)),
        "unvendored_tests": False,
        "tool": {},
    }


def write_lock(core_lock: dict, wheels: list[Path], env: dict[str, str], dest: Path) -> dict:
    packages: dict[str, dict] = {}
    for w in wheels:
        key, entry = lock_entry(w, env)
        if key in packages:
            raise BuildError(f"two wheels for {key}: {packages[key]['file_name']}, {w.name}")
        packages[key] = entry
    missing = {f"{k} needs {d}" for k, e in packages.items() for d in e["depends"] if d not in packages}
    if missing:
        raise BuildError(
            "dependency closure incomplete for Pyodide (add pinned wheels to "
            f"RUNTIME_WHEELS/TEST_WHEELS): {sorted(missing)}"
        )
    lock = {"info": core_lock["info"], "packages": dict(sorted(packages.items())), "tool": core_lock.get("tool", {})}
    dest.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    return lock


def verify_dist(root: Path, with_tests: bool) -> None:
    lock = json.loads((root / "pyodide-lock.json").read_text())
    for key, e in lock["packages"].items():
        f = root / e["file_name"]
        if not f.is_file():
            raise BuildError(f"lock entry {key}: {e['file_name']} missing")
        if sha256_of(f) != e["sha256"]:
            raise BuildError(f"lock entry {key}: sha256 mismatch for {e['file_name']}")
    listed = {e["file_name"] for e in lock["packages"].values()}
    stray = sorted(p.name for p in root.glob("*.whl") if p.name not in listed)
    if stray:
        raise BuildError(f"wheels not in the lock: {stray}")
    test_names = {canonical(s.split("==")[0]) for s in TEST_WHEELS}
    runtime_names = {canonical(s.split("==")[0]) for s in RUNTIME_WHEELS}
    present = set(lock["packages"]) & (test_names - runtime_names)
    pages = sorted(p.name for p in root.iterdir() if test_only_core_file(Path(p.name)))
    if not with_tests and (present or pages):
        raise BuildError(f"a build without --with-tests holds test files: {sorted(present) + pages}")
    if with_tests and present != test_names - runtime_names:
        raise BuildError(f"--with-tests: {sorted(test_names - runtime_names - present)} missing from the lock")


SMOKE_JS = r"""
const { loadPyodide } = require(process.argv[2] + "/pyodide.js");
(async () => {
  const py = await loadPyodide({ indexURL: process.argv[2] + "/" });
  const errors = [];
  await py.loadPackage(JSON.parse(process.argv[3]), { errorCallback: (m) => errors.push(m) });
  if (errors.length) throw new Error("loadPackage errors: " + errors.join("; "));
  console.log(py.runPython(process.argv[4]));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def smoke_test(root: Path, lock: dict) -> None:
    node = shutil.which("node")
    if node is None:
        raise BuildError("--smoke-test needs node on PATH")
    names = sorted(lock["packages"])
    imports = sorted(
        {i for e in lock["packages"].values() for i in e["imports"] if not i.startswith("_") and i != "py"}
    )
    code = (
        "import importlib, sys\n"
        f"mods = [importlib.import_module(m) for m in {imports!r}]\n"
        "import darkswap_wasm\n"
        "f'python {sys.version.split()[0]} on {sys.platform}: imported {len(mods)} modules, "
        "darkswap_wasm ' + darkswap_wasm.__version__"
    )
    with tempfile.TemporaryDirectory(prefix="build_dist-smoke-") as tmp:
        script = Path(tmp) / "smoke.cjs"
        script.write_text(SMOKE_JS)
        out = run([node, str(script), str(root.resolve()), json.dumps(names), code], what="node smoke test")
    log(f"smoke test: {out.strip().splitlines()[-1]}", always=True)


# --------------------------------------------------------------------------- browser (--browser)


def _caret_satisfied(spec: str, version: str) -> bool:
    m = re.fullmatch(r"\^(\d+)\.(\d+)\.(\d+)", spec.strip())
    v = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not m or not v:
        raise BuildError(f"cannot check npm range {spec!r} against {version!r} (only ^X.Y.Z is understood)")
    want, have = tuple(map(int, m.groups())), tuple(map(int, v.groups()))
    if want[0] > 0:
        return have[0] == want[0] and have >= want
    if want[1] > 0:
        return have[:2] == want[:2] and have >= want
    return have == want


def rewrite_bare_import(text: str, specifier: str, replacement: str, where: str) -> str:
    pat = re.compile(r"""(\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)(["'])""" + re.escape(specifier) + r"\2")
    hits = pat.findall(text)
    if len(hits) != 1:
        raise BuildError(f"{where}: expected exactly one import of {specifier!r}, found {len(hits)}")
    return pat.sub(lambda m: m.group(1) + m.group(2) + replacement + m.group(2), text)


def build_vendor(cache: Path, dest: Path) -> dict:
    manifest: dict[str, dict] = {}
    packages: dict[str, dict] = {}
    for name, (version, integrity) in BROWSER_NPM.items():
        tgz = npm_pack(cache, name, version, integrity)
        files: dict[str, str] = {}
        outdir = dest / name
        outdir.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(tgz, "r:gz") as tf:
                for member, fname in BROWSER_VENDOR_FILES[name].items():
                    try:
                        src = tf.extractfile(member)
                    except KeyError:
                        src = None
                    if src is None:
                        raise BuildError(f"{tgz.name} lacks {member}")
                    data = src.read()
                    rw = BROWSER_IMPORT_REWRITES.get((name, fname))
                    if rw is not None:
                        data = rewrite_bare_import(data.decode(), rw[0], rw[1], f"{name}/{fname}").encode()
                    for spec, repl in BROWSER_IMPORT_REWRITES_MULTI.get((name, fname), ()):
                        data = rewrite_bare_import(data.decode(), spec, repl, f"{name}/{fname}").encode()
                    (outdir / fname).parent.mkdir(parents=True, exist_ok=True)
                    (outdir / fname).write_bytes(data)
                    files[fname] = hashlib.sha256(data).hexdigest()
        except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError) as e:
            raise BuildError(f"cannot unpack {tgz} ({e}); delete it to re-download") from None
        pkg = json.loads((outdir / "package.json").read_text())
        if pkg.get("name") != name or pkg.get("version") != version:
            raise BuildError(f"{tgz.name} holds {pkg.get('name')}@{pkg.get('version')}, expected {name}@{version}")
        packages[name] = pkg
        manifest[name] = {"version": version, "integrity": integrity, "files": files}
    # every npm dependency between shipped packages must be satisfied by the pinned version
    for name, pkg in packages.items():
        for dep, spec in (pkg.get("dependencies") or {}).items():
            if dep in BROWSER_BUNDLED_DEPS.get(name, ()):
                continue
            if dep not in BROWSER_NPM:
                raise BuildError(f"{name} depends on {dep} ({spec}), which --browser does not ship")
            if not _caret_satisfied(spec, BROWSER_NPM[dep][0]):
                raise BuildError(f"{name} wants {dep}@{spec}, pinned is {BROWSER_NPM[dep][0]}")
    (dest / "versions.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def copy_js_glue(src: Path, dest: Path) -> list[str]:
    missing = [f for f in JS_GLUE_REQUIRED if not (src / f).is_file()]
    if missing:
        raise BuildError(f"{src} lacks {missing}")
    copied = []
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if not p.is_file() or any(part.startswith(".") or part == "node_modules" for part in rel.parts):
            continue
        if p.suffix not in JS_GLUE_SUFFIXES:
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, out)
        copied.append(rel.as_posix())
    return copied


BROWSER_CHECK_JS = r"""
const glue = process.argv[1];
const { sodiumReady } = await import(glue);
const sodium = await sodiumReady();
const hex = (u) => Buffer.from(u).toString("hex");
const seed = Buffer.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "hex");
const pk = hex(sodium.crypto_sign_seed_keypair(new Uint8Array(seed)).publicKey);
if (pk !== "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a") {
  throw new Error("RFC 8032 key mismatch: " + pk);
}
console.log("libsodium " + sodium.sodium_version_string() + " via js_glue/crypto.js: RFC 8032 test 1 ok");
"""


def check_browser_glue(out_root: Path) -> None:
    node = shutil.which("node")
    if node is None:
        raise BuildError("--browser needs node on PATH (to check the glue and the vendored modules)")
    glue = (out_root / "js_glue" / "crypto.js").resolve().as_uri()
    out = run([node, "--input-type=module", "-e", BROWSER_CHECK_JS, glue], what="node check of js_glue/crypto.js")
    log(f"browser check: {out.strip().splitlines()[-1]}")


def build_browser(out_root: Path, cache: Path) -> None:
    """Fill <out>/js_glue and <out>/vendor (staged, then swapped in), and check them in node."""
    staging = out_root / ".browser.staging"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        manifest = build_vendor(cache, staging / "vendor")
        copied = copy_js_glue(JS_GLUE_DIR, staging / "js_glue")
        out_root.mkdir(parents=True, exist_ok=True)
        for sub in ("vendor", "js_glue"):
            final, old = out_root / sub, out_root / f".{sub}.old"
            if old.exists():
                shutil.rmtree(old)
            if final.exists():
                final.rename(old)
            (staging / sub).rename(final)
            if old.exists():
                shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    for name, m in manifest.items():
        log(f"vendor   {name}@{m['version']}: {', '.join(sorted(m['files']))}")
    log(f"js_glue  {', '.join(copied)}")
    check_browser_glue(out_root)
    install_js_api(out_root)


def install_js_api(out_root: Path) -> None:
    """Copy the JS API's entry points (js_glue/darkswap.{js,mjs,d.ts}) to the dist root."""
    missing = [f for f in JS_API_ROOT_FILES if not (JS_GLUE_DIR / f).is_file()]
    if missing:
        raise BuildError(f"{JS_GLUE_DIR} lacks {missing} (the JS API entry points)")
    for f in JS_API_ROOT_FILES:
        shutil.copy2(JS_GLUE_DIR / f, out_root / f)
    log(f"js api   {', '.join(JS_API_ROOT_FILES)} -> {out_root}/")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, type=Path, help="output folder; fills <out>/pyodide/")
    ap.add_argument(
        "--with-tests",
        action="store_true",
        help="also ship pytest, hypothesis, pygments, tblib and their dependencies, and Pyodide's console pages "
        "(what the test suites need in Pyodide; a plain build has none of it)",
    )
    ap.add_argument(
        "--project-wheel",
        type=Path,
        metavar="WHL",
        help="ship this darkswap_wasm wheel instead of building one from the working tree",
    )
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO_ROOT / ".cache" / "build_dist",
        help="download cache (default: %(default)s)",
    )
    ap.add_argument("--smoke-test", action="store_true", help="load the dist in node and import every shipped package")
    ap.add_argument(
        "--browser",
        action="store_true",
        help="also fill <out>/js_glue, <out>/vendor (libsodium.js, webrtc-adapter) and the JS API "
        "entry points <out>/darkswap.{js,mjs,d.ts} for pages, and check them in node",
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="print only the final line and errors")
    args = ap.parse_args(argv)
    global QUIET
    QUIET = args.quiet

    t0 = time.monotonic()
    out_root = args.out.resolve()
    cache = args.cache_dir.resolve()
    final = out_root / "pyodide"
    staging = out_root / ".pyodide.staging"
    old = out_root / ".pyodide.old"
    try:
        tgz = fetch_pyodide_core(cache / "npm", PYODIDE_VERSION)
        for d in (staging, old):
            if d.exists():
                shutil.rmtree(d)
        extract_core(tgz, staging, PYODIDE_VERSION, with_tests=args.with_tests)
        core_lock = json.loads((staging / "pyodide-lock.json").read_text())
        info = core_lock.get("info", {})
        env = pyodide_marker_env(info)
        log(
            f"pyodide {PYODIDE_VERSION}: python {info.get('python')}, abi {info.get('abi_version')}, "
            f"{len(core_lock.get('packages', {}))} packages in its lock (not shipped)"
        )

        specs = RUNTIME_WHEELS + (TEST_WHEELS if args.with_tests else [])
        wheels = [fetch_wheel(s, cache / "wheels", env["python_version"]) for s in specs]
        if args.project_wheel is not None:
            if not args.project_wheel.is_file():
                raise BuildError(f"--project-wheel {args.project_wheel}: no such file")
            wheels.append(args.project_wheel.resolve())
        else:
            wheels.append(build_project_wheel(REPO_ROOT, cache / "project"))
        for w in wheels:
            shutil.copy2(w, staging / w.name)
        lock = write_lock(core_lock, [staging / w.name for w in wheels], env, staging / "pyodide-lock.json")
        verify_dist(staging, args.with_tests)

        out_root.mkdir(parents=True, exist_ok=True)
        if final.exists():
            final.rename(old)
        staging.rename(final)
        if old.exists():
            shutil.rmtree(old)
        for e in lock["packages"].values():
            deps = ", ".join(e["depends"]) or "-"
            log(f"shipped  {e['file_name']}  (imports {', '.join(e['imports'])}; depends {deps})")
        if args.smoke_test:
            smoke_test(final, lock)
        if args.browser:
            build_browser(out_root, cache / "npm")
    except BuildError as e:
        print(f"[build_dist] ERROR: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # SIGINT, or SIGTERM (below): the staging folders are removed, no traceback
        print("[build_dist] interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    size = sum(p.stat().st_size for p in final.rglob("*") if p.is_file())
    log(
        f"done: {final} ({size / 1e6:.1f} MB, {len(lock['packages'])} wheels) in {time.monotonic() - t0:.1f}s",
        always=True,
    )
    return 0


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
