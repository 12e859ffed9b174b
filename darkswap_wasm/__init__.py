"""darkswap_wasm: DarkSwap's peer-to-peer networking core (libp2p on the wire).

Runs natively on asyncio and in-page on Pyodide. See the README for the layers.

The names below are imported on first use (PEP 562), and this module imports nothing itself,
so ``import darkswap_wasm.<module>`` costs only that module: the CLIs install their
stop-signal handlers before anything else is imported (see :mod:`darkswap_wasm.launch`).
"""

from __future__ import annotations

__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it (setuptools dynamic)

_EXPORTS = {
    "Network": ".api",
    "NetworkConfig": ".api",
    "DarkSwapError": ".errors",
    "Identity": ".identity",
    "PeerId": ".identity",
    "Multiaddr": ".wire.multiaddr",
}
__all__ = ["DarkSwapError", "Identity", "Multiaddr", "Network", "NetworkConfig", "PeerId", "__version__"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from .api import Network, NetworkConfig
    from .errors import DarkSwapError
    from .identity import Identity, PeerId
    from .wire.multiaddr import Multiaddr


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
