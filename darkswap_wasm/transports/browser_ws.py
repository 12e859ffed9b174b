"""The in-page WebSocket transport: libp2p ``/ws`` (and ``/wss``) over the page's ``WebSocket``.

Dial only (a page cannot listen). The glue, or whoever builds the page's ``NetworkConfig``,
hands the constructor over::

    import js
    from darkswap_wasm.transports.browser_ws import BrowserWebSocketTransport
    NetworkConfig(transports=[BrowserWebSocketTransport(js.WebSocket)], ...)

This module never imports ``js`` and imports nothing from ``pyodide`` at import time: it loads
(and runs against fakes, through :class:`JsBridge`) anywhere. Only :func:`pyodide_bridge`, used
when no bridge is given, imports ``pyodide.ffi`` and ``js``.

Rules at the boundary (see ``js_glue/README.md``):

* bytes go out as ``Uint8Array`` (``to_js``; ``ws.send(b"x")`` would send the *text* ``"b'x'"``),
  one binary message per write of at most ``max_message`` bytes; they come in as ``ArrayBuffer``
  (``binaryType = "arraybuffer"``) read with ``.to_bytes()``. A text frame is a protocol error.
* every event handler is a ``create_proxy`` registered with ``addEventListener``; all of them
  are removed and destroyed when the connection ends (remote close, error, local close, a dial
  that fails or is cancelled). :func:`live_proxies` counts the proxies alive right now (this
  module's and :mod:`.browser_webrtc`'s): tests assert it returns to 0.
* backpressure: the browser queues whatever ``send`` gets; :meth:`BrowserWebSocketConnection.drain`
  waits (polling: WebSocket has no "buffered amount low" event) while ``bufferedAmount`` is above
  ``high_water``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, ConnectionClosed, ProtocolError, Timeout
from ..wire.multiaddr import Multiaddr
from .base import ConnectionHandler, Listener, RawConnection, Transport

__all__ = [
    "BrowserWebSocketConnection",
    "BrowserWebSocketTransport",
    "JsBridge",
    "JsListeners",
    "live_proxies",
    "pyodide_bridge",
    "ws_url",
]

log = logging.getLogger(__name__)

SEND_FRAME = 1024 * 1024  # largest binary message we send (the native side accepts 16 MiB)
WRITE_HIGH_WATER = 1024 * 1024  # drain() waits while the browser holds more than this unsent
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0

# WebSocket.readyState
CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3

_live_proxies = 0


def live_proxies() -> int:
    """PyProxies created by the browser adapters (WebSocket and WebRTC) not destroyed yet."""
    return _live_proxies


class JsBridge:
    """The little of ``pyodide.ffi`` the browser adapters use, so that fakes can stand in.

    ``to_js(buffer)`` → a ``Uint8Array``; ``to_js_object(dict)`` → a plain JS object (nested dicts
    and lists converted); ``create_proxy(fn)`` → a PyProxy with ``destroy()``; ``js_error``: the
    exception a throwing JS call raises in Python; ``jsnull``: what JS ``null`` becomes where
    Pyodide does not turn it into ``None`` (``pyodide.ffi.jsnull``, e.g. ``event.candidate``);
    ``ffi``: the bulk data paths of ``js_glue/ffi.js`` (``sendSplit``, ``batchMessages``) when the
    page registered them (``boot.js`` does, as the module ``darkswap_glue``), else ``None``: the
    adapters then make one call per message, which works the same, only slower.
    """

    def __init__(
        self,
        *,
        to_js: Callable[[Any], Any],
        to_js_object: Callable[[dict], Any],
        create_proxy: Callable[[Callable], Any],
        js_error: type[BaseException] | tuple[type[BaseException], ...],
        jsnull: Any = None,
        ffi: Any = None,
    ) -> None:
        self.to_js = to_js
        self.to_js_object = to_js_object
        self.create_proxy = create_proxy
        self.js_error = js_error
        self.jsnull = jsnull
        self.ffi = ffi

    def is_null(self, value: Any) -> bool:
        """JS ``null``/``undefined`` as seen from Python."""
        return value is None or (self.jsnull is not None and value is self.jsnull)


_pyodide_bridge: JsBridge | None = None


def pyodide_bridge() -> JsBridge:
    """The real bridge (Pyodide only): ``pyodide.ffi`` and ``Object.fromEntries``."""
    global _pyodide_bridge
    if _pyodide_bridge is None:
        try:
            import js
            from pyodide.ffi import JsException, create_proxy, to_js
        except ImportError as exc:
            raise ConfigError(f"the browser adapters need Pyodide (or an explicit JsBridge): {exc}") from exc

        try:
            from pyodide.ffi import jsnull  # Pyodide >= 0.27
        except ImportError:
            jsnull = None

        try:
            import darkswap_glue as ffi  # js_glue/ffi.js, registered by js_glue/boot.js
        except ImportError:
            ffi = None
        from . import webloop

        webloop.install()

        def to_js_object(d: dict) -> Any:
            return to_js(d, dict_converter=js.Object.fromEntries)

        _pyodide_bridge = JsBridge(
            to_js=to_js,
            to_js_object=to_js_object,
            create_proxy=create_proxy,
            js_error=JsException,
            jsnull=jsnull,
            ffi=ffi,
        )
    return _pyodide_bridge


class JsListeners:
    """Event listeners registered on JS objects, all removed and destroyed together."""

    def __init__(self, bridge: JsBridge) -> None:
        self._bridge = bridge
        self._entries: list[tuple[str, Callable[[], None], Any]] = []  # (what, detach, proxy)
        self.destroyed = False

    def add(self, target: Any, event: str, handler: Callable[[Any], None]) -> None:
        def register(proxy: Any) -> Callable[[], None]:
            target.addEventListener(event, proxy)
            return lambda: target.removeEventListener(event, proxy)

        self.attach(event, handler, register)

    def attach(self, what: str, handler: Callable, register: Callable[[Any], Callable[[], None]]) -> None:
        """Hand ``handler`` to JS as a proxy through ``register(proxy)``, which returns how to
        detach it again (called by :meth:`destroy` before the proxy is destroyed)."""
        global _live_proxies
        if self.destroyed:
            raise ConnectionClosed("adding a listener after the object was released")
        proxy = self._bridge.create_proxy(handler)
        _live_proxies += 1
        try:
            detach = register(proxy)
        except BaseException:
            proxy.destroy()
            _live_proxies -= 1
            raise
        self._entries.append((what, detach, proxy))

    def destroy(self) -> None:
        """Remove every listener and destroy its proxy. Safe to call more than once; never from
        inside one of the handlers (use :meth:`destroy_soon` there)."""
        global _live_proxies
        self.destroyed = True
        entries, self._entries = self._entries, []
        for what, detach, proxy in entries:
            try:
                detach()
            except Exception as exc:  # noqa: BLE001 - the proxy goes regardless
                log.debug("detaching the %s listener: %r", what, exc)
            proxy.destroy()
            _live_proxies -= 1

    def destroy_soon(self) -> None:
        """:meth:`destroy` once the running handler has returned (a proxy is not destroyed while
        it executes). No further event reaches Python in between: ``destroyed`` is set now."""
        self.destroyed = True
        try:
            asyncio.get_running_loop().call_soon(self.destroy)
        except RuntimeError:
            self.destroy()

    def __len__(self) -> int:
        return len(self._entries)


def ws_url(addr: Multiaddr) -> str | None:
    """``ws://host:port/`` (``wss://`` for ``/wss`` or ``/tls/ws``) for a dialable address."""
    protos = addr.without_p2p().protocols()
    if len(protos) == 3 and protos[2] in ("ws", "wss"):
        scheme = "ws" if protos[2] == "ws" else "wss"
    elif len(protos) == 4 and protos[2:] == ["tls", "ws"]:
        scheme = "wss"
    else:
        return None
    family = protos[0]
    if family not in ("ip4", "ip6", "dns", "dns4", "dns6") or protos[1] != "tcp":
        return None
    host = addr.value_for(family)
    port = addr.value_for("tcp")
    if not host or port is None:
        return None
    netloc = f"[{host}]" if family == "ip6" else host
    return f"{scheme}://{netloc}:{port}/"


class BrowserWebSocketConnection(RawConnection):
    """One page ``WebSocket`` as a :class:`~.base.RawConnection`."""

    transport = "ws"

    def __init__(
        self,
        ws: Any,
        remote_addr: Multiaddr,
        bridge: JsBridge,
        *,
        max_message: int = SEND_FRAME,
        high_water: int = WRITE_HIGH_WATER,
    ) -> None:
        self._ws = ws
        self._bridge = bridge
        self.remote_addr = remote_addr
        self.local_addr = None  # a page does not learn its socket's address
        self._max_message = max_message
        self._high_water = high_water
        self._inbox: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._eof = False
        self._error: BaseException | None = None
        self._closing = False
        self.close_code: int | None = None
        self.close_reason = ""
        ws.binaryType = "arraybuffer"
        self._listeners = JsListeners(bridge)
        self._listeners.add(ws, "open", self._on_open)
        self._listeners.add(ws, "message", self._on_message)
        self._listeners.add(ws, "error", self._on_error)
        self._listeners.add(ws, "close", self._on_close)

    # -- JS events ------------------------------------------------------------------------------
    def _on_open(self, _event: Any) -> None:
        if not self._opened.done():
            self._opened.set_result(None)

    def _on_message(self, event: Any) -> None:
        data = event.data
        if isinstance(data, str):
            self._fail(ProtocolError("libp2p over WebSocket expects binary frames, got a text frame"))
            try:
                self._ws.close(1002, "binary frames only")
            except self._bridge.js_error:
                pass
            return
        chunk = data.to_bytes()
        if chunk:  # empty binary messages happen (js-libp2p sends some); b"" means EOF to us
            self._inbox.append(chunk)
            self._readable.set()

    def _on_error(self, _event: Any) -> None:
        # the event says nothing more; a "close" event follows
        if not self._opened.done():
            self._opened.set_exception(ConnectionClosed(f"WebSocket to {self.remote_addr} failed to open"))
            self._opened.exception()

    def _on_close(self, event: Any) -> None:
        self.close_code = getattr(event, "code", None)
        self.close_reason = getattr(event, "reason", "") or ""
        if not self._opened.done():
            self._opened.set_exception(
                ConnectionClosed(f"WebSocket to {self.remote_addr} closed before opening (code {self.close_code})")
            )
            self._opened.exception()
        self._eof = True
        self._readable.set()
        self._closed_event.set()
        self._listeners.destroy_soon()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._readable.set()

    # -- life cycle -------------------------------------------------------------------------------
    async def wait_open(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), timeout)
        except TimeoutError:
            raise Timeout(f"WebSocket to {self.remote_addr} did not open within {timeout:g}s") from None

    def abort(self) -> None:
        """Drop the socket now (a dial that failed or was cancelled)."""
        self._closing = True
        self._eof = True
        self._readable.set()
        try:
            self._ws.close()
        except self._bridge.js_error as exc:  # e.g. an invalid state; released regardless
            log.debug("WebSocket close: %r", exc)
        self._listeners.destroy()
        self._closed_event.set()

    # -- RawConnection ----------------------------------------------------------------------------
    async def read(self) -> bytes:
        while not self._inbox:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        if len(self._inbox) == 1:
            return self._inbox.popleft()
        out = b"".join(self._inbox)
        self._inbox.clear()
        return out

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.closed or self._ws.readyState != OPEN:
            raise ConnectionClosed(f"WebSocket to {self.remote_addr} is closed")
        mv = memoryview(data)
        to_js = self._bridge.to_js
        try:
            for off in range(0, len(mv), self._max_message):
                self._ws.send(to_js(mv[off : off + self._max_message]))
        except self._bridge.js_error as exc:
            self._fail(ConnectionClosed(f"WebSocket send failed: {exc}"))
            raise ConnectionClosed(f"WebSocket send failed: {exc}") from None

    async def drain(self) -> None:
        delay = 0.001
        while self._ws.bufferedAmount > self._high_water:
            if self._eof or self._ws.readyState != OPEN:
                raise ConnectionClosed(f"WebSocket to {self.remote_addr} closed with data unsent")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        if self._error is not None:
            raise ConnectionClosed(f"connection lost: {self._error}")

    async def close(self) -> None:
        if not self._closing:
            self._closing = True
            try:
                # the browser sends what is queued, then the closing handshake
                self._ws.close(1000)
            except self._bridge.js_error as exc:
                log.debug("WebSocket close: %r", exc)
        try:
            await asyncio.wait_for(self._closed_event.wait(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.debug("WebSocket to %s: no close event within %gs", self.remote_addr, CLOSE_TIMEOUT)
        self._eof = True
        self._readable.set()
        self._listeners.destroy()

    @property
    def closed(self) -> bool:
        return self._closing or self._eof or self._error is not None

    def __repr__(self) -> str:
        return f"<BrowserWebSocketConnection {self.remote_addr}>"


class BrowserWebSocketTransport(Transport):
    """Dial ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/ws`` (``/wss``, ``/tls/ws``: ``wss://``)
    with the page's ``WebSocket`` constructor (``js.WebSocket``)."""

    name = "ws"

    def __init__(
        self,
        websocket: Any,
        *,
        bridge: JsBridge | None = None,
        open_timeout: float = OPEN_TIMEOUT,
        max_message: int = SEND_FRAME,
        high_water: int = WRITE_HIGH_WATER,
    ) -> None:
        if websocket is None:
            raise ConfigError("BrowserWebSocketTransport needs the page's WebSocket constructor")
        self._ctor = websocket
        self._bridge = bridge
        self.open_timeout = open_timeout
        self.max_message = max_message
        self.high_water = high_water

    @property
    def bridge(self) -> JsBridge:
        if self._bridge is None:
            self._bridge = pyodide_bridge()
        return self._bridge

    def can_dial(self, addr: Multiaddr) -> bool:
        return ws_url(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        return False

    async def dial(self, addr: Multiaddr) -> RawConnection:
        url = ws_url(addr)
        if url is None:
            raise ConfigError(f"not a WebSocket address: {addr}")
        bridge = self.bridge
        try:
            ws = self._ctor.new(url)
        except bridge.js_error as exc:  # SyntaxError (bad URL), SecurityError (ws:// from https)
            raise ConnectionClosed(f"WebSocket({url}) failed: {exc}") from None
        try:
            conn = BrowserWebSocketConnection(
                ws, addr.without_p2p(), bridge, max_message=self.max_message, high_water=self.high_water
            )
        except BaseException:
            ws.close()
            raise
        try:
            await conn.wait_open(self.open_timeout)
        except BaseException:  # failed, timed out or cancelled: release the socket and proxies
            conn.abort()
            raise
        return conn

    async def listen(self, addr: Multiaddr, handler: ConnectionHandler) -> Listener:
        raise ConfigError("a page cannot listen for WebSocket connections")
