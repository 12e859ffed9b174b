"""Every event name, declared once.

:data:`HOST_EVENTS` are what :meth:`~darkswap_wasm.host.host.Host.on` accepts (the host's own and
those of the services built on it); :data:`JS_EVENTS` are what a page's ``DarkSwapWasm.on``
accepts. ``js_glue/darkswap.js`` (``EVENTS``) and ``js_glue/darkswap.d.ts`` (``EventMap``) must
list exactly :data:`JS_EVENTS`; ``tests/integration/test_error_codes.py`` checks both.
"""

from __future__ import annotations

# -- the host (Python) -------------------------------------------------------------------------
PEER_CONNECT = "peer:connect"  # (peer: PeerId) its first live connection
PEER_DISCONNECT = "peer:disconnect"  # (peer: PeerId) its last connection closed
PEER_IDENTIFY = "peer:identify"  # (peer: PeerId, info: IdentifyInfo)
PEER_UNREACHABLE = "peer:unreachable"  # (peer: PeerId, error) messaging gave up on it
CONNECTION_OPEN = "connection:open"  # (conn: MuxedConnection)
CONNECTION_CLOSE = "connection:close"  # (conn: MuxedConnection)
RELAY_RESERVED = "relay:reserved"  # (relay: PeerId) a reservation was made or renewed
RELAY_LOST = "relay:lost"  # (relay: PeerId) a held reservation ended
RELAY_ERROR = "relay:error"  # (relay: PeerId, reason: str) reaching or reserving failed (retried)

HOST_EVENTS = frozenset(
    {
        PEER_CONNECT,
        PEER_DISCONNECT,
        PEER_IDENTIFY,
        PEER_UNREACHABLE,
        CONNECTION_OPEN,
        CONNECTION_CLOSE,
        RELAY_RESERVED,
        RELAY_LOST,
        RELAY_ERROR,
    }
)

# -- the page (DarkSwapWasm.on) ----------------------------------------------------------------
MESSAGE = "message"  # (peerId, bytes)
RELAY_WARNING = "relay:warning"  # (relayPeerId, reason) new_with_defaults resolved without it
CLOSE = "close"  # ()

JS_EVENTS = (
    MESSAGE,
    PEER_CONNECT,
    PEER_DISCONNECT,
    CONNECTION_OPEN,
    CONNECTION_CLOSE,
    RELAY_RESERVED,
    RELAY_LOST,
    RELAY_ERROR,
    RELAY_WARNING,
    CLOSE,
)
