"""darkswap_wasm: DarkSwap's peer-to-peer networking core (libp2p on the wire).

Runs natively on asyncio and in-page on Pyodide. See the README for the layers.

The names below are imported on first use (PEP 562), so ``import darkswap_wasm.<module>`` costs
only that module: the CLIs install their stop-signal handlers before the rest is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Network": ".api",
    "NetworkConfig": ".api",
    "DarkSwapError": ".errors",
    "Identity": ".identity",
    "PeerId": ".identity",
    "Multiaddr": ".wire.multiaddr",
}
__all__ = ["DarkSwapError", "Identity", "Multiaddr", "Network", "NetworkConfig", "PeerId", "__version__"]

if TYPE_CHECKING:
    from .api import Network, NetworkConfig
    from .errors import DarkSwapError
    from .identity import Identity, PeerId
    from .wire.multiaddr import Multiaddr


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
