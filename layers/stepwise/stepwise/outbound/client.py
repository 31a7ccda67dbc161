"""``call``: one outgoing HTTP call, with its attempts, retries and redirects."""

from __future__ import annotations

import http
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3.exceptions

from stepwise.outbound.answers import CallPolicy, HttpAnswer
from stepwise.outbound.body import read_body
from stepwise.outbound.connections import RefusedPeer, shared_session
from stepwise.outbound.display import display_call, display_url, root_reason, seconds_text
from stepwise.outbound.errors import BlockedDestination, CallStopped, OutboundError, Transient
from stepwise.outbound.guard import PRIVATE_HINT, PRIVATE_REASONS, guard_url
from stepwise.outbound.redirects import REDIRECT_STATUSES, Request, follow
from stepwise.outbound.retries import pause, retry_after, wait_before_retry

type Log = Callable[[str, str], None]


def _discard(level: str, message: str) -> None:
    """The default ``log``: drop the message."""


def call(
    method: str,
    url: str,
    *,
    policy: CallPolicy,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    data: str | bytes | None = None,
    log: Log = _discard,
    should_stop: Callable[[], bool] | None = None,
    session: requests.Session | None = None,
) -> HttpAnswer:
    """Make one outgoing HTTP call under ``policy`` and return the answer.

    ``json_body`` is sent as UTF-8 JSON (with ``Content-Type: application/json`` unless a content type is
    given); ``data`` is sent as is (a ``str`` is encoded as UTF-8); pass at most one of them.
    ``log(level, message)`` receives one line per attempt, redirect, retry and outcome; levels are
    ``"info"``, ``"warning"`` and ``"error"``. ``should_stop`` is polled before each attempt, during
    backoff and between body chunks. A shared pooled session, which also checks the address each
    connection reaches, is used unless ``session`` is given; a caller's own session only gets the
    pre-connect check (meant for tests).

    Returns the answer for 1xx-4xx statuses except 429 (redirects are followed). Raises
    :class:`BlockedDestination` if the guard refuses a destination, :class:`CallStopped` if stopped, and
    :class:`OutboundError` when the answer is too large or every attempt failed (connection error,
    timeout, 429 or 5xx).
    """
    if json_body is not None and data is not None:
        raise ValueError("pass json_body or data, not both")
    if policy.max_attempts < 1:
        raise ValueError("policy.max_attempts must be at least 1")
    started = time.monotonic()
    method = method.upper()
    target = display_call(method, url)
    request_headers = dict(headers or {})
    _check_headers(request_headers, target)
    body: bytes | None
    if json_body is not None:
        try:
            body = json.dumps(json_body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise OutboundError(f"{target}: cannot encode the request body as JSON: {exc}") from None
        if not any(name.lower() == "content-type" for name in request_headers):
            request_headers["Content-Type"] = "application/json"
    elif isinstance(data, str):
        body = data.encode("utf-8")
    else:
        body = data
    first = Request(method, url, request_headers, body)
    active_session = session if session is not None else shared_session(policy.allow_private)
    total = policy.max_attempts
    plural = "attempt" if total == 1 else "attempts"

    for attempt in range(1, total + 1):
        if should_stop is not None and should_stop():
            log("info", f"{target}: stopped before attempt {attempt} of {total}")
            raise CallStopped(f"{target}: stopped before attempt {attempt} of {total}")
        log("info", f"{target}: attempt {attempt} of {total}")
        attempt_started = time.monotonic()
        try:
            status, answer_headers, answer_body, last = _attempt(
                active_session,
                first,
                policy=policy,
                deadline=attempt_started + policy.timeout_seconds,
                log=log,
                should_stop=should_stop,
            )
        except Transient as failure:
            if attempt == total:
                log("error", f"attempt {attempt} of {total} failed: {failure.reason}; giving up")
                raise OutboundError(
                    f"{target} failed after {total} {plural}: {failure.reason}",
                    retryable=True,
                    status=failure.status,
                ) from None
            wait, why = wait_before_retry(failure, attempt, policy.backoff_seconds)
            log(
                "warning",
                f"attempt {attempt} of {total} failed: {failure.reason}; retrying in {seconds_text(wait)} s{why}",
            )
            if pause(wait, should_stop):
                log("info", f"{target}: stopped while waiting to retry")
                raise CallStopped(
                    f"{target}: stopped while waiting to retry (after attempt {attempt} of {total})"
                ) from None
            continue
        except CallStopped:
            log("info", f"{target}: stopped during attempt {attempt} of {total}")
            raise
        except OutboundError as error:
            log("error", f"attempt {attempt} of {total} failed: {error}; not retrying")
            raise

        attempt_ms = round((time.monotonic() - attempt_started) * 1000)
        level = "warning" if status >= 400 else "info"
        log(level, f"answered HTTP {status} in {attempt_ms} ms ({len(answer_body)} bytes)")
        return HttpAnswer(
            status=status,
            headers=answer_headers,
            body=answer_body,
            attempts=attempt,
            elapsed_ms=round((time.monotonic() - started) * 1000),
            method=last.method,
            url=last.url,
        )
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises


def _attempt(
    session: requests.Session,
    request: Request,
    *,
    policy: CallPolicy,
    deadline: float,
    log: Log,
    should_stop: Callable[[], bool] | None,
) -> tuple[int, dict[str, str], bytes, Request]:
    """One attempt: the request plus the redirects it leads to. Raises Transient if worth retrying."""
    for hop in range(policy.max_redirects + 1):
        guard_url(request.url, allow_private=policy.allow_private)
        response = _send(session, request, policy=policy, deadline=deadline)
        target = display_call(request.method, request.url)
        try:
            status = response.status_code
            location = response.headers.get("Location")
            if status in REDIRECT_STATUSES and location:
                if hop == policy.max_redirects:
                    raise OutboundError(f"{target} redirected more than {policy.max_redirects} times")
                next_request = follow(request, status, location, log)
                log(
                    "info", f"{target}: HTTP {status} redirect to {display_call(next_request.method, next_request.url)}"
                )
                request = next_request
                continue
            if status == 429 or status >= 500:
                raise Transient(
                    f"HTTP {status} {_reason(response)}".rstrip(),
                    status=status,
                    retry_after=retry_after(response.headers.get("Retry-After")),
                )
            content = read_body(response, target=target, policy=policy, deadline=deadline, should_stop=should_stop)
            response.raw.release_conn()  # fully read: the connection can go back to the pool
            return status, dict(response.headers), content, request
        finally:
            response.close()
    raise AssertionError("unreachable")  # pragma: no cover - the last hop returns or raises


def _send(session: requests.Session, request: Request, *, policy: CallPolicy, deadline: float) -> requests.Response:
    target = display_call(request.method, request.url)
    timeout = seconds_text(policy.timeout_seconds)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Transient(f"timed out after {timeout} s")
    limit = min(policy.timeout_seconds, remaining)
    try:
        return _request(session, request, limit)
    except RefusedPeer as refused:
        tail = PRIVATE_HINT if refused.why in PRIVATE_REASONS else ""
        raise BlockedDestination(
            f"refusing to call {display_url(request.url)}: {refused.host} resolved to {refused.address} "
            f"at connect time, {refused.why}{tail}"
        ) from None
    except requests.exceptions.ConnectTimeout:
        raise Transient(f"could not connect within {timeout} s (timed out)") from None
    except requests.exceptions.Timeout:
        raise Transient(f"timed out after {timeout} s") from None
    except requests.exceptions.SSLError as exc:
        raise OutboundError(f"{target}: TLS failed: {root_reason(exc)}") from None
    except requests.exceptions.ProxyError as exc:
        raise Transient(f"proxy failed: {root_reason(exc)}") from None
    except requests.exceptions.ConnectionError as exc:
        raise Transient(f"connection failed: {root_reason(exc)}") from None
    except requests.exceptions.InvalidHeader:
        # requests' message quotes the header value, which may be a credential: do not pass it on.
        raise OutboundError(f"{target}: a request header is invalid") from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        what = f"{type(exc).__name__}: {root_reason(exc)}"
        raise OutboundError(f"{target}: the request failed: {what}") from None


def _request(session: requests.Session, request: Request, limit: float) -> requests.Response:
    """``session.request``, re-raising a :class:`BlockedDestination` that requests or urllib3 wrapped."""
    try:
        return session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.body,
            timeout=(limit, limit),
            allow_redirects=False,
            stream=True,
        )
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        blocked = _blocked_cause(exc)
        if blocked is None:
            raise
        raise blocked from None


def _blocked_cause(exc: BaseException) -> BlockedDestination | None:
    """The :class:`BlockedDestination` somewhere in ``exc``'s chain (reason, args, cause), if any."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BlockedDestination):
            return current
        reason = getattr(current, "reason", None)
        linked = [reason, current.__cause__, current.__context__, *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return None


def _check_headers(headers: Mapping[str, str], target: str) -> None:
    """Refuse header names/values that would split the request, naming the header but never its value."""
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise OutboundError(f"{target}: header names and values must be strings")
        if not name or any(c in name for c in "\r\n\0: \t"):
            raise OutboundError(f"{target}: invalid header name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise OutboundError(f"{target}: the value of header {name} contains a line break or NUL")
        # http.client sends names as ASCII and values as ISO-8859-1; anything else would escape as a crash.
        if not name.isascii() or any(ord(c) > 0xFF for c in value):
            raise OutboundError(f"{target}: header {name!r} has a character HTTP cannot send (beyond ISO-8859-1)")


def _reason(response: requests.Response) -> str:
    if response.reason:
        return str(response.reason)
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""
