"""stepwise.outbound over real HTTP against AgentServer on 127.0.0.1: answers, retries, limits, redirects,
the connect-time guard, stopping and secrecy. The guard without a network is in tests/unit/test_outbound.py."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from stepwise.outbound import BlockedDestination, CallPolicy, CallStopped, OutboundError, call
from tests.support.agent_server import AgentServer, Reply

# Real HTTP on 127.0.0.1 needs allow_private; backoffs are tiny so the whole file runs in a few seconds.
LOCAL = CallPolicy(timeout_seconds=2.0, max_attempts=3, backoff_seconds=0.01, allow_private=True)


class Log:
    """Collects what call() logs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    @property
    def text(self) -> str:
        return "\n".join(f"{level}: {message}" for level, message in self.lines)


@pytest.fixture
def agent() -> Iterator[AgentServer]:
    yield from AgentServer.running()


def policy(**changes: Any) -> CallPolicy:
    values = {**LOCAL.__dict__, **changes}
    return CallPolicy(**values)


# ------------------------------------------------------------------------------------------- answers


def test_success_returns_the_answer_and_sends_json(agent: AgentServer) -> None:
    agent.script("/agent", Reply.echo_json())
    log = Log()

    answer = call(
        "post",
        f"{agent.url}/agent",
        policy=LOCAL,
        json_body={"prompt": "héllo"},
        headers={"Authorization": "Bearer t0ken"},
        log=log,
    )

    assert answer.status == 200
    assert answer.ok
    assert answer.attempts == 1
    assert answer.elapsed_ms >= 0
    assert answer.json() == {"answer": "echo: héllo", "received": {"prompt": "héllo"}}
    assert answer.header("content-type") == "application/json"
    assert answer.method == "POST"
    assert answer.url == f"{agent.url}/agent"
    [request] = agent.requests
    assert request.method == "POST"
    assert request.json == {"prompt": "héllo"}
    assert request.header("Content-Type") == "application/json"
    assert request.header("Authorization") == "Bearer t0ken"
    assert log.lines[0] == ("info", f"POST {agent.url}/agent: attempt 1 of 3")
    assert re.fullmatch(r"answered HTTP 200 in \d+ ms \(\d+ bytes\)", log.lines[-1][1])


def test_openai_shaped_answer(agent: AgentServer) -> None:
    agent.script("/v1/chat/completions", Reply.openai_echo())
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}]

    answer = call("POST", f"{agent.url}/v1/chat/completions", policy=LOCAL, json_body={"messages": messages})

    assert answer.json()["choices"][0]["message"] == {"role": "assistant", "content": "echo: ping"}


def test_text_data_is_sent_as_utf8_and_text_replaces_bad_bytes(agent: AgentServer) -> None:
    agent.script("/raw", Reply(body=b"ok \xff"))

    answer = call("PUT", f"{agent.url}/raw", policy=LOCAL, data="naïve")

    assert agent.requests[0].body == "naïve".encode()
    assert answer.text == "ok \ufffd"


def test_a_body_that_is_not_json_gives_a_clear_error(agent: AgentServer) -> None:
    agent.script("/agent", Reply.garbage())

    answer = call("POST", f"{agent.url}/agent", policy=LOCAL, json_body={})

    assert answer.status == 200
    with pytest.raises(OutboundError, match=r"answered with a body that is not JSON: <html><head>") as caught:
        answer.json()
    assert f"POST {agent.url}/agent" in str(caught.value)


def test_pooled_connection_is_reused(agent: AgentServer) -> None:
    agent.script("/agent", Reply(json={"ok": True}))
    with requests.Session() as session:
        for _ in range(3):
            call("POST", f"{agent.url}/agent", policy=LOCAL, json_body={}, session=session)

    assert len({request.client_address for request in agent.requests}) == 1


# ------------------------------------------------------------------------------------------- retries


def test_503_then_200_is_retried_and_every_attempt_is_logged(agent: AgentServer) -> None:
    agent.script("/agent", Reply(503, json={"error": "busy"}), Reply(200, json={"answer": "hi"}))
    log = Log()

    answer = call("POST", f"{agent.url}/agent", policy=LOCAL, json_body={"prompt": "p"}, log=log)

    assert answer.status == 200
    assert answer.attempts == 2
    assert len(agent.requests) == 2
    levels = [level for level, _ in log.lines]
    assert levels == ["info", "warning", "info", "info"]
    assert log.lines[0][1] == f"POST {agent.url}/agent: attempt 1 of 3"
    assert re.fullmatch(r"attempt 1 of 3 failed: HTTP 503 Service Unavailable; retrying in \d+\.\d+ s", log.lines[1][1])
    assert log.lines[2][1] == f"POST {agent.url}/agent: attempt 2 of 3"
    assert log.lines[3][1].startswith("answered HTTP 200 in ")


def test_429_with_retry_after_is_honoured(agent: AgentServer) -> None:
    agent.script("/agent", Reply(429, json={"error": "slow down"}, headers={"Retry-After": "1"}), Reply())
    log = Log()
    quick = policy(backoff_seconds=0.0)

    answer = call("POST", f"{agent.url}/agent", policy=quick, json_body={}, log=log)

    assert answer.status == 200
    first, second = agent.requests
    assert second.received_at - first.received_at >= 0.95
    assert "HTTP 429 Too Many Requests; retrying in 1.0 s (Retry-After)" in log.text


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_4xx_is_returned_not_retried(agent: AgentServer, status: int) -> None:
    agent.script("/agent", Reply(status, json={"error": "no"}))

    answer = call("POST", f"{agent.url}/agent", policy=LOCAL, json_body={})

    assert answer.status == status
    assert answer.attempts == 1
    assert answer.json() == {"error": "no"}
    assert len(agent.requests) == 1


def test_persistent_5xx_fails_after_all_attempts(agent: AgentServer) -> None:
    agent.script("/agent", Reply(500, json={"error": "boom"}))
    log = Log()

    with pytest.raises(OutboundError) as caught:
        call("POST", f"{agent.url}/agent", policy=LOCAL, json_body={}, log=log)

    error = caught.value
    assert str(error) == f"POST {agent.url}/agent failed after 3 attempts: HTTP 500 Internal Server Error"
    assert error.retryable
    assert error.status == 500
    assert len(agent.requests) == 3
    assert log.lines[-1] == ("error", "attempt 3 of 3 failed: HTTP 500 Internal Server Error; giving up")


def test_hanging_server_times_out_on_every_attempt(agent: AgentServer) -> None:
    agent.script("/agent", Reply.hang(10))
    started = time.monotonic()

    with pytest.raises(OutboundError) as caught:
        call("POST", f"{agent.url}/agent", policy=policy(timeout_seconds=0.3, max_attempts=2), json_body={})

    assert str(caught.value) == f"POST {agent.url}/agent failed after 2 attempts: timed out after 0.3 s"
    assert caught.value.retryable
    assert len(agent.requests) == 2
    assert time.monotonic() - started < 2.0


def test_dribbling_body_is_cut_off_by_the_attempt_deadline(agent: AgentServer) -> None:
    # One byte every 50 ms: each read is well within the timeout, only the per-attempt deadline stops it.
    agent.script("/agent", Reply(body=b"x" * 200, chunk_size=1, chunk_delay=0.05))
    started = time.monotonic()

    with pytest.raises(OutboundError, match=r"failed after 1 attempt: timed out after 0\.5 s"):
        call("GET", f"{agent.url}/agent", policy=policy(timeout_seconds=0.5, max_attempts=1))

    assert time.monotonic() - started < 1.5


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = Log()

    with pytest.raises(OutboundError) as caught:
        call("GET", f"http://127.0.0.1:{port}/x", policy=policy(max_attempts=2), log=log)

    assert str(caught.value).startswith(f"GET http://127.0.0.1:{port}/x failed after 2 attempts: connection")
    assert "refused" in str(caught.value).lower()
    assert sum(1 for _, message in log.lines if "attempt" in message and "failed" in message) == 2


# ---------------------------------------------------------------------------------------------- size


def test_oversized_body_is_refused_and_reading_stops_early(agent: AgentServer) -> None:
    total = 20 * 1024 * 1024
    agent.script("/agent", Reply.huge(total, chunk_delay=0.005))  # streaming it all takes >= 1.6 s
    limit = 256 * 1024
    started = time.monotonic()

    with pytest.raises(OutboundError) as caught:
        call("GET", f"{agent.url}/agent", policy=policy(max_response_bytes=limit))

    elapsed = time.monotonic() - started
    assert str(caught.value) == (f"GET {agent.url}/agent answered with more than {limit} bytes; the limit is {limit}")
    assert not caught.value.retryable
    assert elapsed < 1.0
    [request] = agent.requests  # not retried
    assert request.finished.wait(5)
    assert request.bytes_sent < total // 2  # the server found the client gone long before the end


def test_content_length_over_the_limit_is_refused_before_reading(agent: AgentServer) -> None:
    agent.script("/agent", Reply(body=b"y" * 5000))

    with pytest.raises(OutboundError, match=r"answered with a body of 5000 bytes \(Content-Length\)"):
        call("GET", f"{agent.url}/agent", policy=policy(max_response_bytes=1000))

    assert len(agent.requests) == 1


def test_body_exactly_at_the_limit_is_accepted(agent: AgentServer) -> None:
    agent.script("/agent", Reply.huge(1000))

    answer = call("GET", f"{agent.url}/agent", policy=policy(max_response_bytes=1000))

    assert len(answer.body) == 1000


# ------------------------------------------------------------------------------------------ redirects


def test_302_after_post_becomes_get_without_body(agent: AgentServer) -> None:
    agent.script("/start", Reply.redirect("/final", 302))
    agent.script("/final", Reply(json={"done": True}))
    log = Log()

    answer = call("POST", f"{agent.url}/start", policy=LOCAL, json_body={"a": 1}, log=log)

    assert answer.json() == {"done": True}
    assert answer.url == f"{agent.url}/final"
    assert answer.method == "GET"
    first, second = agent.requests
    assert (first.method, second.method) == ("POST", "GET")
    assert second.body == b""
    assert second.header("Content-Type") is None
    assert f"POST {agent.url}/start: HTTP 302 redirect to GET {agent.url}/final" in log.text


def test_307_keeps_method_and_body(agent: AgentServer) -> None:
    agent.script("/start", Reply.redirect("/final", 307))
    agent.script("/final", Reply.echo_json())

    answer = call("POST", f"{agent.url}/start", policy=LOCAL, json_body={"prompt": "again"})

    assert answer.json()["answer"] == "echo: again"
    assert [r.method for r in agent.requests] == ["POST", "POST"]


def test_cross_origin_redirect_drops_credentials(agent: AgentServer) -> None:
    with AgentServer() as other:
        other.script("/landing", Reply(json={"ok": True}))
        agent.script("/start", Reply.redirect(f"{other.url}/landing", 307))

        call(
            "POST",
            f"{agent.url}/start",
            policy=LOCAL,
            json_body={},
            headers={"Authorization": "Bearer secret", "X-Api-Key": "k", "Accept": "application/json"},
        )

        [landed] = other.requests
    assert landed.header("Authorization") is None
    assert landed.header("X-Api-Key") is None
    assert landed.header("Accept") == "application/json"
    assert agent.requests[0].header("Authorization") == "Bearer secret"


def test_redirect_to_a_blocked_address_is_refused(agent: AgentServer) -> None:
    agent.script("/agent", Reply.redirect("http://169.254.169.254/latest/meta-data/iam/"))

    with pytest.raises(BlockedDestination) as caught:
        call("GET", f"{agent.url}/agent", policy=LOCAL)

    assert str(caught.value) == (
        "refusing to call http://169.254.169.254/latest/meta-data/iam/: "
        "169.254.169.254 is a link-local/metadata address"
    )
    assert not caught.value.retryable
    assert len(agent.requests) == 1  # not retried


def test_redirect_loop_stops_after_max_redirects(agent: AgentServer) -> None:
    agent.script("/loop", Reply.redirect("/loop"))

    with pytest.raises(OutboundError, match="redirected more than 3 times"):
        call("GET", f"{agent.url}/loop", policy=LOCAL)

    assert len(agent.requests) == 4


# ----------------------------------------------------------------------------- guard at connect time


class RebindingResolver:
    """A fake getaddrinfo answering ``first`` to the first lookup (the guard's) and ``then`` to later ones."""

    def __init__(self, first: str, then: str) -> None:
        self.first, self.then = first, then
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        address = self.first if len(self.lookups) == 1 else self.then
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


@pytest.mark.parametrize("scheme", ["http", "https"])  # https: refused before the TLS handshake
def test_dns_rebinding_is_refused_at_connect_time(
    agent: AgentServer, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    agent.script("/agent", Reply(json={"secret": "internal"}))
    port = agent.url.rsplit(":", 1)[1]
    resolver = RebindingResolver("93.184.216.34", "127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    log = Log()

    with pytest.raises(BlockedDestination) as caught:
        call("GET", f"{scheme}://rebind.example:{port}/agent?key=abc", policy=CallPolicy(max_attempts=3), log=log)

    assert str(caught.value) == (
        f"refusing to call {scheme}://rebind.example:{port}/agent: rebind.example resolved to 127.0.0.1 "
        "at connect time, a private address (this policy does not allow private networks)"
    )
    assert not caught.value.retryable
    assert len(resolver.lookups) == 2  # the guard's and the connection's: not retried
    assert "not retrying" in log.text
    assert agent.requests == []  # not one byte of the request reached the server


def test_dns_rebinding_to_loopback_is_allowed_when_private_networks_are(
    agent: AgentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent.script("/agent", Reply(json={"ok": True}))
    port = agent.url.rsplit(":", 1)[1]
    monkeypatch.setattr(socket, "getaddrinfo", RebindingResolver("93.184.216.34", "127.0.0.1"))

    answer = call("GET", f"http://rebind.example:{port}/agent", policy=LOCAL)

    assert answer.json() == {"ok": True}
    [request] = agent.requests
    assert request.header("Host") == f"rebind.example:{port}"  # connected by name: Host is untouched


def test_connect_time_check_refuses_metadata_even_when_private_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The TCP connect goes to a local listener that never answers; getpeername pretends it is the metadata service.
    monkeypatch.setattr(socket, "getaddrinfo", RebindingResolver("93.184.216.34", "127.0.0.1"))
    monkeypatch.setattr(socket.socket, "getpeername", lambda self: ("169.254.169.254", 80))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(BlockedDestination, match=r"resolved to 169\.254\.169\.254 at connect time, a link-local"):
            call("GET", f"http://rebind.example:{port}/", policy=LOCAL)


def test_environment_proxy_variables_are_ignored(agent: AgentServer, monkeypatch: pytest.MonkeyPatch) -> None:
    agent.script("/agent", Reply(json={"direct": True}))
    with AgentServer() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)

        answer = call("GET", f"{agent.url}/agent", policy=LOCAL)

        assert proxy.requests == []
    assert answer.json() == {"direct": True}
    assert len(agent.requests) == 1


def test_pooled_connection_of_the_shared_session_is_reused(agent: AgentServer) -> None:
    agent.script("/agent", Reply(json={"ok": True}))
    for _ in range(3):
        call("POST", f"{agent.url}/agent", policy=LOCAL, json_body={})

    assert len({request.client_address for request in agent.requests}) == 1


# ---------------------------------------------------------------------------------------- should_stop


def test_should_stop_during_backoff_raises_call_stopped_quickly(agent: AgentServer) -> None:
    agent.script("/agent", Reply(503, headers={"Retry-After": "20"}))
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(CallStopped, match="stopped while waiting to retry"):
            call("POST", f"{agent.url}/agent", policy=LOCAL, json_body={}, should_stop=stop.is_set)
    finally:
        timer.cancel()

    assert time.monotonic() - started < 1.0
    assert len(agent.requests) == 1


def test_should_stop_before_the_first_attempt(agent: AgentServer) -> None:
    with pytest.raises(CallStopped, match="stopped before attempt 1 of 3"):
        call("GET", f"{agent.url}/agent", policy=LOCAL, should_stop=lambda: True)

    assert agent.requests == []


def test_should_stop_while_reading_the_body(agent: AgentServer) -> None:
    agent.script("/agent", Reply(body=b"z" * 100, chunk_size=1, chunk_delay=0.02))
    deadline = time.monotonic() + 0.2

    with pytest.raises(CallStopped, match="stopped while reading the answer"):
        call("GET", f"{agent.url}/agent", policy=LOCAL, should_stop=lambda: time.monotonic() > deadline)

    assert len(agent.requests) == 1


# --------------------------------------------------------------------------------------------- secrecy


def test_no_header_value_or_query_appears_in_logs_or_errors(agent: AgentServer) -> None:
    secrets = {"Authorization": "Bearer sk-live-0123456789", "X-Api-Key": "key-abcdef", "Cookie": "sid=42z"}
    agent.script("/agent", Reply(503), Reply.redirect("/next", 307))
    agent.script("/next", Reply(500))
    log = Log()

    with pytest.raises(OutboundError) as caught:
        call(
            "POST",
            f"{agent.url}/agent?token=qs-secret-777",
            policy=LOCAL,
            headers=secrets,
            json_body={"prompt": "body-secret-999"},
            log=log,
        )

    assert len(log.lines) >= 6
    exposed = log.text + "\n" + str(caught.value)
    for value in [*secrets.values(), "sk-live", "qs-secret-777", "body-secret-999"]:
        assert value not in exposed
    assert agent.requests[0].header("X-Api-Key") == "key-abcdef"  # they were sent, just not logged
