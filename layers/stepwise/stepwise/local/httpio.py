"""Small pieces the local stack's HTTP servers share (the API front, the demo agents)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


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
