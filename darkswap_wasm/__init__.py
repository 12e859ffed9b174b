"""darkswap_wasm: DarkSwap's peer-to-peer networking core (libp2p on the wire).

Runs natively on asyncio and in-page on Pyodide. See the README for the layers.
"""

__version__ = "0.1.0"

from .api import Network, NetworkConfig
from .errors import DarkSwapError
from .identity import Identity, PeerId
from .wire.multiaddr import Multiaddr

__all__ = ["DarkSwapError", "Identity", "Multiaddr", "Network", "NetworkConfig", "PeerId", "__version__"]
