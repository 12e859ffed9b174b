"""Public API: :class:`Network` for Python (the JavaScript ``DarkSwapWasm`` wraps it in a page)."""

from .network import Network, NetworkConfig

__all__ = ["Network", "NetworkConfig"]
