"""darkswap_wasm: DarkSwap's peer-to-peer networking core (libp2p on the wire).

Runs natively on asyncio and in-page on Pyodide. See the README for the layers.
"""

__version__ = "0.1.0"

from .api import Network, NetworkConfig  # noqa: E402
from .errors import DarkSwapError  # noqa: E402
from .identity import Identity, PeerId  # noqa: E402
from .wire.multiaddr import Multiaddr  # noqa: E402

__all__ = ["DarkSwapError", "Identity", "Multiaddr", "Network", "NetworkConfig", "PeerId", "__version__"]
