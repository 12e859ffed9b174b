"""Every error code is declared once, by its Python class (``CODE``), and the JS declaration
(``js_glue/darkswap.d.ts``'s ``ErrorCode``) lists exactly those plus the few the JS side raises
itself. Reads the checkout, so it lives here rather than in tests/unit (which also runs in Pyodide)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import darkswap_wasm
from darkswap_wasm.errors import DarkSwapError

ROOT = Path(__file__).resolve().parents[2]
# codes no exception class carries: darkswap.js's own (closed instance, no runtime) and the API
# envelope's for what is not a DarkSwapError (a cancelled call, a bug)
JS_ONLY = {"CLOSED", "CANCELLED", "RUNTIME_UNAVAILABLE", "INTERNAL_ERROR"}


def error_classes() -> list[type[DarkSwapError]]:
    for mod in pkgutil.walk_packages(darkswap_wasm.__path__, "darkswap_wasm."):
        if mod.name.endswith("__main__"):
            continue
        importlib.import_module(mod.name)
    seen, todo = [], [DarkSwapError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def declared_codes() -> list[str]:
    dts = (ROOT / "js_glue" / "darkswap.d.ts").read_text()
    block = re.search(r"export type ErrorCode =(.*?)\(string & \{\}\);", dts, re.S)
    assert block, "darkswap.d.ts has no ErrorCode union"
    return re.findall(r'\|\s*"([A-Z_]+)"', block.group(1))


def test_the_d_ts_lists_every_python_error_code_and_only_those():
    classes = error_classes()
    codes = {c.CODE for c in classes if c is not DarkSwapError}
    declared = declared_codes()
    assert len(declared) == len(set(declared)), "a code is listed twice in darkswap.d.ts"
    assert sorted(codes - set(declared)) == [], "codes raised in Python but missing from darkswap.d.ts"
    assert sorted(set(declared) - codes - JS_ONLY) == [], "codes in darkswap.d.ts that nothing raises"
    sources = (ROOT / "js_glue" / "darkswap.js").read_text() + (ROOT / "darkswap_wasm/api/js_api.py").read_text()
    for code in JS_ONLY:
        assert f'"{code}"' in sources, f"{code} is declared JS-only but neither darkswap.js nor js_api uses it"


def test_a_code_belongs_to_one_family_of_classes():
    """Two classes share a code only when one is the other's subclass (InvalidPeerId is an
    InvalidArgument): a code names one kind of failure."""
    by_code: dict[str, list[type]] = {}
    for cls in error_classes():
        by_code.setdefault(cls.CODE, []).append(cls)
    for code, group in by_code.items():
        roots = [c for c in group if not any(issubclass(c, o) and c is not o for o in group)]
        assert len(roots) == 1, f"{code} is the code of unrelated classes: {[c.__qualname__ for c in group]}"
