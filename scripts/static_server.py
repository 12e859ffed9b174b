"""A static HTTP server on 127.0.0.1 for ``dist/`` (the demo, the browser tests, the browser
benchmark): correct MIME types for the module scripts, wasm and wheels, a ``Cache-Control`` of
the caller's choice, silent logging with the requests and errors kept for inspection. Stdlib only.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

MIME_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".ts": "text/plain",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}
    cache_control = "no-cache"
    pages: dict[str, bytes] = {}
    requests: list[tuple[str, str]]
    errors: list[str]

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", self.cache_control)
        super().end_headers()

    def log_request(self, code="-", size="-") -> None:
        self.requests.append((self.path, str(code)))

    def log_message(self, format: str, *args) -> None:
        pass

    def log_error(self, format: str, *args) -> None:
        self.errors.append(format % args)


class StaticServer:
    """Serves ``root`` on 127.0.0.1 (``port`` 0: a new port, i.e. a new origin) from a thread.

    ``pages`` maps paths to fixed HTML bodies served in place of files.
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int = 0,
        cache_control: str = "no-cache",
        pages: dict[str, bytes] | None = None,
    ) -> None:
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.cache_control = cache_control
        attrs = {"cache_control": cache_control, "pages": dict(pages or {}), "requests": self.requests,
                 "errors": self.errors}
        handler = type("Handler", (_Handler,), attrs)
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), functools.partial(handler, directory=str(root))
        )
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-server", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
