"""The local API's HTTP server on 127.0.0.1: HTTP/1.1 with keep-alive, one thread per connection.

It turns each request into an :class:`~stepwise.local.gateway.HttpRequest`, lets the gateway answer, writes
the answer and prints one access-log line (time, method, path, status, milliseconds). An answer leaves in
one send, with Nagle's algorithm off: written in two small sends (headers, then body), a kept-alive client
would wait for its delayed ACK, about 40 ms per request.

The port is claimed first (:func:`bind_api_server`), so a taken port fails at once, and opened only when the
stack is ready (:func:`listen`).
"""

from __future__ import annotations

import errno
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, TextIO

from stepwise.local.gateway import GatewayResponse, HttpRequest, LocalGateway, json_response
from stepwise.local.httpio import LocalHttpServer, read_body

DEFAULT_PORT = 3000
# Buffered, so the headers and a body up to this size go out in one send (the rest follows at once).
WRITE_BUFFER_BYTES = 64 * 1024


class PortInUse(Exception):
    """A port the stack needs is taken; the message is the one line to show."""


class ApiServer(LocalHttpServer):
    """The local API's listening socket; set :attr:`gateway` before :func:`listen`."""

    # socketserver's default backlog of 5 drops a burst of new connections: their SYN is retried after 1 s.
    request_queue_size = 128
    gateway: LocalGateway | None = None
    out: TextIO = sys.stdout


class _ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stepwise-local"
    disable_nagle_algorithm = True
    wbufsize = WRITE_BUFFER_BYTES
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one access-log line per request is written by _serve

    def _serve(self) -> None:
        started = time.monotonic()
        body = read_body(self)  # read even when refused, so the connection stays usable
        gateway = self.server.gateway
        if gateway is None:
            response = json_response(503, {"message": "Service Unavailable"})
        else:
            request = HttpRequest(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            response = gateway.handle(request)
        self._write(response)
        elapsed = (time.monotonic() - started) * 1000
        stamp = time.strftime("%H:%M:%S")
        # One write per line: print() writes the text and the newline apart, and another thread's line
        # (a request beside this one, an execution state change) could land in between.
        self.server.out.write(f"{stamp} {self.command} {self.path} {response.status} {elapsed:.0f} ms\n")
        self.server.out.flush()

    def _write(self, response: GatewayResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()  # into the write buffer: nothing is sent yet
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except ConnectionError:
            self.close_connection = True  # the client gave up waiting; nothing to tell it

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


def _port_in_use(port: int, hint: str) -> PortInUse:
    return PortInUse(f"stepwise dev: port {port} is already in use (set {hint}=... to use another)")


def bind_api_server(port: int) -> ApiServer:
    """Claim 127.0.0.1:``port`` now, so a taken port fails at once; :func:`listen` opens it when ready.

    Until then a client's connection is refused outright rather than left waiting in a backlog.
    """
    server = ApiServer(("127.0.0.1", port), _ApiRequestHandler, bind_and_activate=False)
    try:
        server.server_bind()
    except OSError as error:
        server.server_close()
        if error.errno == errno.EADDRINUSE:
            raise _port_in_use(port, "PORT") from error
        raise
    return server


def listen(server: ApiServer, port: int) -> None:
    """Start accepting connections on a server from :func:`bind_api_server`."""
    try:
        server.server_activate()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:  # another process bound the port at the same moment
            raise _port_in_use(port, "PORT") from error
        raise


def check_port_free(port: int, flag: str) -> None:
    """Raise :class:`PortInUse` if something listens on 127.0.0.1:``port``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise _port_in_use(port, flag) from error
        raise
    finally:
        probe.close()
