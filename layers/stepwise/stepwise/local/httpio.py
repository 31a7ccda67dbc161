"""Small pieces the local stack's HTTP servers share (the API front, the demo agents)."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalHttpServer(ThreadingHTTPServer):
    """A thread per connection; a client that hangs up (reset, broken pipe) is normal, not a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Print the traceback of a failed request, unless the client merely went away."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with Content-Length or chunked (trailers are read and dropped)."""
    if "chunked" in (request.headers.get("Transfer-Encoding") or "").lower():
        parts: list[bytes] = []
        while True:
            size = int(request.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline().strip():
                    pass
                return b"".join(parts)
            parts.append(request.rfile.read(size))
            request.rfile.readline()
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length > 0 else b""
