"""A small HTTP server on a local address, for a pool's metrics and status.

Each route is a function returning (content type, body); it runs in the server's own thread
per request, so a slow scrape never holds up the pool. Nothing is written to stderr: requests
are not logged, and a route that raises answers 500 and is logged once through loguru.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loguru import logger

Route = Callable[[], tuple[str, bytes]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: Mapping[str, Route] = {}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        route = self.server.routes.get(path)
        if route is None:
            known = ", ".join(sorted(self.server.routes))
            self._answer(404, "text/plain; charset=utf-8", f"no such path; try {known}\n".encode())
            return
        try:
            kind, body = route()
        except Exception:
            logger.opt(exception=True).error("serving {} failed", path)
            self._answer(500, "text/plain; charset=utf-8", b"internal error\n")
            return
        self._answer(200, kind, body)

    def _answer(self, code: int, kind: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class HttpServer:
    """Listens on `host:port` at construction (OSError if it cannot); serves after `start`."""

    def __init__(self, host: str, port: int, routes: Mapping[str, Route], name: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_Bound", (_Server,), {"address_family": family})
        self._server: _Server = server_class((host, port), _Handler)
        self._server.routes = dict(routes)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on (the chosen one when asked for port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5.0)
        self._server.server_close()
