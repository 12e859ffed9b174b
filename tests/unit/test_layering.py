"""The package's layering, checked on its source (``ast``), so that it stays true:

* the sans-I/O layers (``wire``, ``crypto``, ``identity``, ``compression``, ``protocols``,
  ``policy``) and the leaf transports import nothing from ``host`` or ``api``;
* no module uses another module's private names (``obj._name`` where ``_name`` is not defined
  in the module itself, ``from x import _name``);
* the host layer does not probe objects with ``hasattr``/``getattr``: every connection
  implements ``host/muxer.py``'s contract.
"""

from __future__ import annotations

import ast
import pathlib

import darkswap_wasm

PKG = pathlib.Path(darkswap_wasm.__file__).parent
LOWER = ("wire", "crypto", "identity", "compression", "protocols", "policy", "transports")
UPPER = ("host", "api")


def modules(*folders: str) -> list[pathlib.Path]:
    if not folders:
        return sorted(PKG.rglob("*.py"))
    return sorted(p for f in folders for p in (PKG / f).rglob("*.py"))


def tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imported_packages(path: pathlib.Path, source: str | None = None) -> set[str]:
    """First-level subpackages of darkswap_wasm that ``path`` (or ``source`` placed there)
    imports from."""
    rel = path.relative_to(PKG).parts[:-1]  # the module's package, inside darkswap_wasm
    out = set()
    module = tree(path) if source is None else ast.parse(source)
    for node in ast.walk(module):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[: len(rel) - (node.level - 1)]) if node.level > 1 else list(rel)
                parts = base + (node.module.split(".") if node.module else [])
                if not parts and node.module is None:
                    parts = [a.name for a in node.names]
                if parts:
                    out.add(parts[0])
            elif node.module and node.module.startswith("darkswap_wasm."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("darkswap_wasm."):
                    out.add(a.name.split(".")[1])
    return out


def test_lower_layers_import_nothing_from_host_or_api():
    bad = {
        str(p.relative_to(PKG)): sorted(imported_packages(p) & set(UPPER))
        for p in modules(*LOWER)
        if imported_packages(p) & set(UPPER)
    }
    assert bad == {}


def test_the_layer_checker_sees_imports_upwards():
    # the check above is only worth something if it catches each spelling
    where = PKG / "protocols" / "kad.py"
    assert imported_packages(where, "from ..host.stream import Stream\n") == {"host"}
    assert imported_packages(where, "from .. import api\n") == {"api"}
    assert imported_packages(where, "import darkswap_wasm.host.host\n") == {"host"}
    assert imported_packages(where, "from darkswap_wasm.api.network import Network\n") == {"api"}
    assert imported_packages(where, "from . import kad_routing\n") == {"protocols"}
    assert imported_packages(PKG / "host" / "muxer.py", "from ...x import y\n") == {"x"}


def _defined_names(module: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(module):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def private_uses(source: str) -> list[str]:
    module = ast.parse(source)
    own = _defined_names(module)
    hits = []
    for node in ast.walk(module):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if name not in own:
                hits.append(f"{node.lineno}: .{name}")
        elif isinstance(node, ast.ImportFrom):
            hits += [f"{node.lineno}: import {a.name}" for a in node.names if a.name[:1] == "_" != a.name[1:2]]
    return hits


def test_no_module_uses_another_modules_private_names():
    bad = {str(p.relative_to(PKG)): private_uses(p.read_text()) for p in modules()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_private_name_checker_catches_what_it_should():
    assert private_uses("def f(host):\n    host._emit('x')\n") == ["2: ._emit"]
    assert private_uses("from .stream import _helper\n") == ["1: import _helper"]
    assert private_uses("class A:\n    def _x(self): ...\n\ndef f(a):\n    a._x()\n") == []
    assert private_uses("class A:\n    def f(self):\n        self._y = 1\n") == []


def test_the_host_layer_does_not_probe_objects():
    bad = [
        f"{p.relative_to(PKG)}:{node.lineno}: {node.func.id}"
        for p in modules("host")
        for node in ast.walk(tree(p))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
    ]
    assert bad == []


def test_both_connection_kinds_implement_the_contract():
    from darkswap_wasm.host.connection import Connection
    from darkswap_wasm.host.datachannel import WebRTCConnection
    from darkswap_wasm.host.muxer import MuxedConnection, StreamPort

    def members(proto) -> set[str]:
        names = set()
        for klass in proto.__mro__:
            if klass in (object,) or klass.__name__ in ("Protocol", "Generic"):
                continue
            names |= {n for n in vars(klass) if not n.startswith("_")}
            names |= {n for n in getattr(klass, "__annotations__", {}) if not n.startswith("_")}
        return names

    for cls in (Connection, WebRTCConnection):
        # attributes set in __init__ are not class members: check them on the source
        src = pathlib.Path(__import__(cls.__module__, fromlist=["x"]).__file__).read_text()
        missing = [m for m in members(MuxedConnection) if not hasattr(cls, m) and f"self.{m} =" not in src]
        assert missing == [], (cls.__name__, missing)
    from darkswap_wasm.host import connection, datachannel

    for port in (connection._YamuxPort, datachannel._ChannelPort):
        missing = [m for m in members(StreamPort) if not callable(getattr(port, m, None))]
        assert missing == [], (port.__name__, missing)
