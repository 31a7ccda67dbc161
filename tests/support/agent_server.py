"""A real HTTP server for tests: scripted agent endpoints on 127.0.0.1.

    with AgentServer() as agent:
        agent.script("/agent", Reply(503), Reply.echo_json())
        answer = call("POST", agent.url + "/agent", json_body={"prompt": "hi"}, policy=...)
        assert agent.requests[-1].json == {"prompt": "hi"}

or as a pytest fixture::

    @pytest.fixture
    def agent() -> Iterator[AgentServer]:
        yield from AgentServer.running()

Each path answers with the replies scripted for it, in order; the last reply repeats once the queue runs
out, and an unscripted path answers 404 with a JSON error. Every request is recorded (method, path,
headers, body, parsed JSON) before its reply is sent, so a test can wait for requests whose replies hang.
The server speaks HTTP/1.1 with keep-alive, so clients can pool connections.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self

from stepwise.local.httpio import LocalHttpServer, read_body

__all__ = ["AgentServer", "RecordedRequest", "Reply"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""The default of ``Reply.json``: no JSON body (distinct from ``json=None``, which sends ``null``)."""


@dataclass
class RecordedRequest:
    """One request the server received. ``json`` is the parsed body, or None if it is not JSON.

    ``bytes_sent`` counts the reply body bytes written so far and ``finished`` is set once the handler is
    done with the reply (sent it, or gave up because the client went away or the server stopped).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any | None
    client_address: tuple[str, int] = ("", 0)
    received_at: float = field(default_factory=time.monotonic)
    bytes_sent: int = 0
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass
class Reply:
    """One scripted reply.

    ``json`` (any JSON value) or ``body`` (raw bytes) is the content; ``json`` adds
    ``Content-Type: application/json`` unless ``headers`` sets one. ``delay`` waits before sending
    anything (not even the status line); ``chunk_delay`` waits between body chunks of ``chunk_size`` bytes.
    With ``content_length=False`` no Content-Length is sent and the connection closes after the body.
    ``respond`` computes the JSON from the request (used by :meth:`echo_json` and :meth:`openai_echo`).
    """

    status: int = 200
    json: Any = UNSET
    body: bytes | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_size: int = 65_536
    content_length: bool = True
    respond: Callable[[RecordedRequest], Any] | None = field(default=None, repr=False)

    @classmethod
    def garbage(cls) -> Reply:
        """200 with an HTML page: what a misconfigured proxy answers instead of the agent's JSON."""
        page = b"<html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"
        return cls(200, body=page, headers={"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def huge(cls, n_bytes: int, *, chunk_delay: float = 0.0, content_length: bool = False) -> Reply:
        """200 with ``n_bytes`` of filler, by default without Content-Length (read until close)."""
        return cls(
            200,
            body=b"x" * n_bytes,
            headers={"Content-Type": "application/octet-stream"},
            chunk_delay=chunk_delay,
            content_length=content_length,
        )

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Send nothing at all for ``seconds`` (then a JSON 200, which nobody should still be waiting for)."""
        return cls(200, json={"answer": "too late"}, delay=seconds)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        """A redirect to ``location``."""
        return cls(status, body=b"", headers={"Location": location})

    @classmethod
    def echo_json(cls) -> Reply:
        """``{"answer": "echo: <prompt>", "received": <request JSON>}``."""

        def respond(request: RecordedRequest) -> Any:
            received = request.json
            prompt = received.get("prompt", "") if isinstance(received, dict) else ""
            return {"answer": f"echo: {prompt}", "received": received}

        return cls(200, respond=respond)

    @classmethod
    def openai(cls, content: str, *, model: str = "gpt-test") -> Reply:
        """An OpenAI chat-completions answer whose assistant message is ``content``."""
        return cls(200, json=_chat_completion(content, model))

    @classmethod
    def openai_echo(cls, *, model: str = "gpt-test") -> Reply:
        """An OpenAI chat-completions answer saying ``"echo: " + <the last user message's content>``."""

        def respond(request: RecordedRequest) -> Any:
            return _chat_completion("echo: " + _last_user_message(request.json), model)

        return cls(200, respond=respond)


def _chat_completion(content: str, model: str) -> dict[str, Any]:
    words = len(content.split())
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": words, "total_tokens": 1 + words},
    }


def _last_user_message(request_json: Any) -> str:
    messages = request_json.get("messages") if isinstance(request_json, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # [{"type": "text", "text": "..."}, ...]
                return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            return "" if content is None else str(content)
    return ""


class AgentServer:
    """A scripted HTTP server on 127.0.0.1 (random port) running in a daemon thread.

    Use it as a context manager, or call :meth:`start` / :meth:`stop`. Stopping wakes any reply that is
    still hanging or dribbling, closes open connections and the listening socket, and returns in about a
    second at most.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._scripts: dict[str, deque[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        """Start serving (idempotent)."""
        if self._server is None:
            self._closing.clear()
            self._server = _Server(("127.0.0.1", 0), _Handler, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"agent-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @classmethod
    def running(cls) -> Iterator[AgentServer]:
        """For pytest fixtures: ``yield from AgentServer.running()`` starts a server and stops it after."""
        with cls() as server:
            yield server

    # -- what tests use

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the agent server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def script(self, path: str, *replies: Reply) -> None:
        """Queue ``replies`` for ``path`` (appended to any already queued); the last one repeats."""
        if not replies:
            raise ValueError("script() needs at least one reply")
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def reset(self) -> None:
        """Forget every script and recorded request."""
        with self._lock:
            self._scripts.clear()
            self._requests.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``n`` requests have arrived and return them; AssertionError on timeout."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= n, timeout=timeout):
                raise AssertionError(f"expected {n} request(s) within {timeout} s, got {len(self._requests)}")
            return list(self._requests)

    # -- used by the handler

    def _record(self, request: RecordedRequest) -> Reply:
        path_only = request.path.split("?", 1)[0]
        with self._arrived:
            self._requests.append(request)
            self._arrived.notify_all()
            queue = self._scripts.get(request.path) or self._scripts.get(path_only)
            if not queue:
                return Reply(404, json={"error": f"nothing scripted for {request.method} {path_only}"})
            return queue.popleft() if len(queue) > 1 else queue[0]

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Server(LocalHttpServer):
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        agent: AgentServer,
    ) -> None:
        self.agent = agent
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.agent._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.agent._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        return read_body(self)

    def _handle(self) -> None:
        agent = self.server.agent
        body = self._read_body()
        try:
            parsed: Any = jsonlib.loads(body) if body else None
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=body,
            json=parsed,
            client_address=(str(self.client_address[0]), int(self.client_address[1])),
        )
        reply = agent._record(request)
        try:
            self._reply(request, reply, agent._closing)
        except OSError:  # the client went away (timed out, refused a huge body, ...)
            self.close_connection = True
        finally:
            request.finished.set()

    def _reply(self, request: RecordedRequest, reply: Reply, closing: threading.Event) -> None:
        if reply.delay > 0 and closing.wait(reply.delay):
            self.close_connection = True
            return
        headers = dict(reply.headers)
        has = {name.lower() for name in headers}
        if reply.body is not None:
            payload = reply.body
        elif reply.respond is not None or reply.json is not UNSET:
            value = reply.respond(request) if reply.respond is not None else reply.json
            payload = jsonlib.dumps(value).encode("utf-8")
            if "content-type" not in has:
                headers["Content-Type"] = "application/json"
        else:
            payload = b""
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        if not reply.content_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif "content-length" not in has:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command == "HEAD" or reply.status in (204, 304):
            return
        for start in range(0, len(payload), max(1, reply.chunk_size)):
            if start and reply.chunk_delay > 0 and closing.wait(reply.chunk_delay):
                self.close_connection = True
                return
            chunk = payload[start : start + max(1, reply.chunk_size)]
            self.wfile.write(chunk)
            request.bytes_sent += len(chunk)
