"""Outgoing HTTP calls: the one place stepwise talks to the outside world.

Every call to an agent's endpoint and every ``httpRequest`` node goes through :func:`call`, which adds
what a bare ``requests.request`` lacks:

* a destination guard (:func:`check_destination`), applied before every attempt and every redirect hop,
  that refuses link-local, cloud-metadata, unspecified, multicast and reserved addresses always, and
  private networks unless the :class:`CallPolicy` allows them; the same rule is applied again to the
  address each connection actually reaches, before anything is sent, so DNS rebinding cannot get round
  it (no proxy is ever used: the sessions ignore proxy environment variables);
* redirects followed by hand, so that each hop is checked by the guard and credentials are not carried
  to another origin;
* retries with exponential backoff and full jitter on connection errors, timeouts, HTTP 429 and 5xx,
  honouring ``Retry-After``;
* a response-size limit enforced while streaming, and a total per-attempt deadline, so that a huge or
  dribbling answer cannot exhaust memory or hang a workflow node;
* cooperative stopping (``should_stop``) between attempts, during backoff and between body chunks;
* logging through a callback that never sees header values, query strings or bodies.

Failures raise :class:`OutboundError` (or its subclasses :class:`BlockedDestination` and
:class:`CallStopped`); an HTTP 4xx other than 429 is *returned* so the caller can decide what it means.
"""

from __future__ import annotations

import email.utils
import functools
import http
import ipaddress
import json
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter

__all__ = [
    "BlockedDestination",
    "CallPolicy",
    "CallStopped",
    "HttpAnswer",
    "OutboundError",
    "call",
    "check_destination",
    "classify_address",
    "display_url",
]

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAX_WAIT_SECONDS: Final = 30.0
_SLEEP_SLICE_SECONDS: Final = 0.1
_CHUNK_BYTES: Final = 65_536
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# Request headers that are safe to carry to another origin when a redirect leaves the original one;
# every other caller-supplied header (Authorization, X-Api-Key, Cookie, ...) is dropped.
_CROSS_ORIGIN_SAFE_HEADERS: Final = frozenset({"accept", "accept-language", "user-agent", "content-type"})
_BODY_HEADERS: Final = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding"})


# --------------------------------------------------------------------------------------------- errors


class OutboundError(Exception):
    """An outgoing call failed.

    ``str()`` says what was called and what happened (never a header value). ``retryable`` tells whether
    making the same call again later might succeed; ``status`` is the last HTTP status seen, if any.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status

    def __str__(self) -> str:
        return self.message


class BlockedDestination(OutboundError):
    """The destination guard refused the URL (bad scheme, or an address the policy does not allow)."""


class CallStopped(OutboundError):
    """``should_stop`` returned True, so the call was abandoned."""


class _Transient(Exception):
    """An attempt failed in a way that another attempt may fix (internal; never escapes :func:`call`)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


# ----------------------------------------------------------------------------------- policy and answer


@dataclass(frozen=True)
class CallPolicy:
    """How one outgoing call behaves: timeouts, retries, size limit, destinations and redirects.

    ``timeout_seconds`` bounds connecting, each read, and the whole of one attempt (including reading the
    body). ``max_attempts`` counts the first try. ``backoff_seconds`` is the base of the exponential
    backoff between attempts. ``allow_private`` permits private networks (10/8, 172.16/12, 192.168/16,
    127/8, ::1, fc00::/7, 100.64/10 and other non-public ranges); link-local, metadata, unspecified,
    multicast and reserved addresses are refused regardless.
    """

    timeout_seconds: float = 30.0
    max_attempts: int = 3
    backoff_seconds: float = 1.0
    max_response_bytes: int = 1_048_576
    allow_private: bool = False
    max_redirects: int = 3


@dataclass(frozen=True)
class HttpAnswer:
    """What the far end answered.

    ``headers`` keeps the header names as the server sent them (use :meth:`header` for a
    case-insensitive lookup). ``attempts`` is how many attempts the call took; ``elapsed_ms`` is the wall
    time of the whole call, retries and backoff included. ``method`` and ``url`` are those of the last
    request made (after redirects).
    """

    status: int
    headers: dict[str, str]
    body: bytes
    attempts: int
    elapsed_ms: int
    method: str = ""
    url: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded as UTF-8, undecodable bytes replaced."""
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`OutboundError` if it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            who = f"{_display(self.method, self.url)} " if self.url else "the endpoint "
            excerpt = self.text[:200]
            raise OutboundError(f"{who}answered with a body that is not JSON: {excerpt}") from None


# ------------------------------------------------------------------------------------ destination guard

_METADATA_ADDRESSES: Final[frozenset[IPAddress]] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_PRIVATE_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fec0::/10",  # deprecated site-local: private in spirit
    )
)
# What classify_address says of addresses that ``allow_private`` would permit.
_PRIVATE_REASONS: Final = frozenset({"a private address", "a non-public address"})
_THIS_NETWORK: Final = ipaddress.ip_network("0.0.0.0/8")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def classify_address(address: IPAddress, *, allow_private: bool) -> str | None:
    """Say why ``address`` may not be called (e.g. ``"a link-local/metadata address"``), or None if it may.

    IPv4 addresses embedded in IPv6 (IPv4-mapped ``::ffff:a.b.c.d`` and NAT64 ``64:ff9b::a.b.c.d``) are
    judged as the IPv4 address they stand for.
    """
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop any %scope so set membership works
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _METADATA_ADDRESSES:
        return "a link-local/metadata address" if address.is_link_local else "a cloud metadata address"
    if address.is_link_local:
        return "a link-local/metadata address"
    if address.is_unspecified or address in _THIS_NETWORK:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in _PRIVATE_NETWORKS):
        return None if allow_private else "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:  # documentation, benchmarking, protocol-assignment ranges and the like
        return None if allow_private else "a non-public address"
    return None


def check_destination(url: str, *, allow_private: bool = False) -> list[IPAddress]:
    """Check that ``url`` may be called and return the addresses its host resolves to.

    Only http and https URLs with a host are accepted. The host is resolved with
    :func:`socket.getaddrinfo` and the URL is refused if *any* address is not allowed (see
    :func:`classify_address`). Raises :class:`BlockedDestination` when refused, or a retryable
    :class:`OutboundError` when the host cannot be resolved.
    """
    try:
        return _guard(url, allow_private=allow_private)
    except _Transient as exc:
        raise OutboundError(f"cannot call {display_url(url)}: {exc.reason}", retryable=True) from None


def _guard(url: str, *, allow_private: bool) -> list[IPAddress]:
    shown = display_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedDestination(f"refusing to call {shown}: the URL is malformed ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BlockedDestination(f"refusing to call {shown}: only http and https URLs can be called")
    host = parts.hostname
    if not host:
        raise BlockedDestination(f"refusing to call {shown}: the URL has no host")
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80

    addresses: list[IPAddress]
    literal = True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        literal = False
        addresses = _resolve(host, port)

    hint = " (this policy does not allow private networks)"
    for address in addresses:
        why = classify_address(address, allow_private=allow_private)
        if why is None:
            continue
        tail = hint if why in _PRIVATE_REASONS else ""
        if literal:
            raise BlockedDestination(f"refusing to call {shown}: {host} is {why}{tail}")
        raise BlockedDestination(f"refusing to call {shown}: {host} resolves to {address}, {why}{tail}")
    return addresses


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _Transient(f"could not resolve {host}: {exc.strerror or exc}") from None
    except (UnicodeError, ValueError) as exc:
        raise BlockedDestination(f"refusing to call a URL with host {host!r}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addresses.append(ipaddress.ip_address(str(sockaddr[0])))
    if not addresses:
        raise _Transient(f"{host} has no IP address")
    return addresses


# --------------------------------------------------------------------------------------------- session
#
# The guard above resolves the host, but the connection resolves it again: a name that answers a public
# address to the guard and 127.0.0.1 to the connection (DNS rebinding) would slip through. So the shared
# sessions use connection classes that check the address actually connected to (the socket's peer) right
# after the TCP connect, before TLS and before a single byte of the request is sent. TLS, SNI and the Host
# header are untouched: the connection is still made by name and only its peer is judged.
#
# There is one session per ``allow_private`` value, so a pooled connection accepted under a permissive
# policy is never reused by a strict one. ``trust_env`` is off: no proxy from the environment (with a
# proxy the peer would be the proxy, not the destination, and the check would be meaningless; the adapter
# refuses proxies outright) and no .netrc credentials. REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are still
# honoured (read when the session is created), so TLS verification is what it was.


class _RefusedPeer(BlockedDestination):
    """A connection's peer is not allowed (raised inside urllib3; :func:`call` rewords it with the URL)."""

    def __init__(self, host: str, port: int, address: str, why: str) -> None:
        super().__init__(f"refusing to connect to {host}:{port}: it resolved to {address} at connect time, {why}")
        self.host = host
        self.address = address
        self.why = why


def _check_peer(sock: socket.socket, connection: urllib3.connection.HTTPConnection, allow_private: bool) -> None:
    """Close ``sock`` and raise :class:`_RefusedPeer` unless its peer address is allowed."""
    try:
        peer = str(sock.getpeername()[0])
    except OSError as exc:
        sock.close()
        raise urllib3.exceptions.NewConnectionError(connection, f"Failed to establish a new connection: {exc}") from exc
    try:
        why = classify_address(ipaddress.ip_address(peer), allow_private=allow_private)
    except ValueError:
        why = "not an IP address"
    if why is not None:
        sock.close()
        raise _RefusedPeer(connection.host, connection.port, peer.partition("%")[0], why)


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection that refuses to talk to a peer the guard would refuse."""

    allow_private: ClassVar[bool] = False

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock, self, self.allow_private)
        return sock


class _GuardedHTTPSConnection(_GuardedHTTPConnection, urllib3.connection.HTTPSConnection):
    """The HTTPS counterpart: the peer is checked after the TCP connect, before the TLS handshake."""


@functools.cache
def _guarded_pool_classes(allow_private: bool) -> dict[str, type[urllib3.connectionpool.HTTPConnectionPool]]:
    class Connection(_GuardedHTTPConnection):
        pass

    class SecureConnection(_GuardedHTTPSConnection):
        pass

    Connection.allow_private = SecureConnection.allow_private = allow_private

    class Pool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}


class _GuardedAdapter(HTTPAdapter):
    """An adapter whose pools only hand out guarded connections (see :func:`_guarded_pool_classes`)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private  # before super().__init__, which builds the pool manager
        super().__init__(pool_connections=16, pool_maxsize=16, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _guarded_pool_classes(self._allow_private)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy the peer is the proxy, so the connect-time check could not protect the call.
        raise BlockedDestination("refusing to call through a proxy: the destination could not be checked")


_sessions: dict[bool, requests.Session] = {}
_sessions_lock = threading.Lock()


def _shared_session(allow_private: bool) -> requests.Session:
    """The pooled session for ``allow_private``, created on first use."""
    session = _sessions.get(allow_private)
    if session is None:
        with _sessions_lock:
            session = _sessions.get(allow_private)
            if session is None:
                session = requests.Session()
                session.trust_env = False
                # trust_env also governed the CA bundle variables: keep honouring them, as requests did.
                session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                adapter = _GuardedAdapter(allow_private=allow_private)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                _sessions[allow_private] = session
    return session


# ------------------------------------------------------------------------------------------------ call


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
    log: Callable[[str, str], None] = _discard,
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
    target = _display(method, url)
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
    active_session = session if session is not None else _shared_session(policy.allow_private)
    total = policy.max_attempts
    plural = "attempt" if total == 1 else "attempts"

    for attempt in range(1, total + 1):
        if should_stop is not None and should_stop():
            log("info", f"{target}: stopped before attempt {attempt} of {total}")
            raise CallStopped(f"{target}: stopped before attempt {attempt} of {total}")
        log("info", f"{target}: attempt {attempt} of {total}")
        attempt_started = time.monotonic()
        try:
            status, answer_headers, answer_body, last_method, last_url = _attempt(
                active_session,
                method,
                url,
                request_headers,
                body,
                policy=policy,
                deadline=attempt_started + policy.timeout_seconds,
                log=log,
                should_stop=should_stop,
            )
        except _Transient as failure:
            if attempt == total:
                log("error", f"attempt {attempt} of {total} failed: {failure.reason}; giving up")
                raise OutboundError(
                    f"{target} failed after {total} {plural}: {failure.reason}",
                    retryable=True,
                    status=failure.status,
                ) from None
            if failure.retry_after is not None:
                wait = failure.retry_after
                why = " (Retry-After)"
            else:
                ceiling = min(_MAX_WAIT_SECONDS, policy.backoff_seconds * 2 ** (attempt - 1))
                wait = random.uniform(0.0, ceiling)  # full jitter
                why = ""
            log(
                "warning",
                f"attempt {attempt} of {total} failed: {failure.reason}; retrying in {_seconds(wait)} s{why}",
            )
            if _pause(wait, should_stop):
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
            method=last_method,
            url=last_url,
        )
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises


def _attempt(
    session: requests.Session,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    policy: CallPolicy,
    deadline: float,
    log: Callable[[str, str], None],
    should_stop: Callable[[], bool] | None,
) -> tuple[int, dict[str, str], bytes, str, str]:
    """One attempt: the request plus the redirects it leads to. Raises _Transient if worth retrying."""
    for hop in range(policy.max_redirects + 1):
        _guard(url, allow_private=policy.allow_private)
        response = _send(session, method, url, headers, body, policy=policy, deadline=deadline)
        try:
            status = response.status_code
            location = response.headers.get("Location")
            if status in _REDIRECT_STATUSES and location:
                if hop == policy.max_redirects:
                    raise OutboundError(f"{_display(method, url)} redirected more than {policy.max_redirects} times")
                next_url = urljoin(url, location.strip())
                next_method, next_body, next_headers = method, body, headers
                if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                    next_method, next_body = "GET", None
                    next_headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
                if _origin(next_url) != _origin(url):
                    dropped = sorted(k for k in next_headers if k.lower() not in _CROSS_ORIGIN_SAFE_HEADERS)
                    next_headers = {k: v for k, v in next_headers.items() if k not in dropped}
                    if dropped:
                        log("info", f"redirect leaves the origin; not sending headers {', '.join(dropped)}")
                hop_to = _display(next_method, next_url)
                log("info", f"{_display(method, url)}: HTTP {status} redirect to {hop_to}")
                method, url, body, headers = next_method, next_url, next_body, next_headers
                continue
            if status == 429 or status >= 500:
                raise _Transient(
                    f"HTTP {status} {_reason(response)}".rstrip(),
                    status=status,
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
            content = _read_body(
                response,
                target=_display(method, url),
                policy=policy,
                deadline=deadline,
                should_stop=should_stop,
            )
            response.raw.release_conn()  # fully read: the connection can go back to the pool
            return status, dict(response.headers), content, method, url
        finally:
            response.close()
    raise AssertionError("unreachable")  # pragma: no cover - the last hop returns or raises


def _send(
    session: requests.Session,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    *,
    policy: CallPolicy,
    deadline: float,
) -> requests.Response:
    target = _display(method, url)
    timeout = _seconds(policy.timeout_seconds)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Transient(f"timed out after {timeout} s")
    limit = min(policy.timeout_seconds, remaining)
    try:
        return _request(session, method, url, headers, body, limit)
    except _RefusedPeer as refused:
        tail = " (this policy does not allow private networks)" if refused.why in _PRIVATE_REASONS else ""
        raise BlockedDestination(
            f"refusing to call {display_url(url)}: {refused.host} resolved to {refused.address} "
            f"at connect time, {refused.why}{tail}"
        ) from None
    except requests.exceptions.ConnectTimeout:
        raise _Transient(f"could not connect within {timeout} s (timed out)") from None
    except requests.exceptions.Timeout:
        raise _Transient(f"timed out after {timeout} s") from None
    except requests.exceptions.SSLError as exc:
        raise OutboundError(f"{target}: TLS failed: {_root_reason(exc)}") from None
    except requests.exceptions.ProxyError as exc:
        raise _Transient(f"proxy failed: {_root_reason(exc)}") from None
    except requests.exceptions.ConnectionError as exc:
        raise _Transient(f"connection failed: {_root_reason(exc)}") from None
    except requests.exceptions.InvalidHeader:
        # requests' message quotes the header value, which may be a credential: do not pass it on.
        raise OutboundError(f"{target}: a request header is invalid") from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        what = f"{type(exc).__name__}: {_root_reason(exc)}"
        raise OutboundError(f"{target}: the request failed: {what}") from None


def _request(
    session: requests.Session,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    limit: float,
) -> requests.Response:
    """``session.request``, re-raising a :class:`BlockedDestination` that requests or urllib3 wrapped."""
    try:
        return session.request(
            method,
            url,
            headers=headers,
            data=body,
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


def _read_body(
    response: requests.Response,
    *,
    target: str,
    policy: CallPolicy,
    deadline: float,
    should_stop: Callable[[], bool] | None,
) -> bytes:
    """Stream the body, stopping as soon as it exceeds the limit, the deadline passes or we are stopped."""
    limit = policy.max_response_bytes
    announced = response.headers.get("Content-Length")
    if announced is not None and announced.strip().isdigit() and int(announced) > limit:
        raise OutboundError(
            f"{target} answered with a body of {int(announced)} bytes (Content-Length); the limit is {limit}"
        )
    timed_out = _Transient(f"timed out after {_seconds(policy.timeout_seconds)} s")
    raw = response.raw
    connection = raw.connection
    sock = getattr(connection, "sock", None) if connection is not None else None
    chunks: list[bytes] = []
    size = 0
    while True:
        if should_stop is not None and should_stop():
            raise CallStopped(f"{target}: stopped while reading the answer")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise timed_out
        if isinstance(sock, socket.socket):
            # Each read may wait at most until the attempt's deadline: a server that dribbles bytes
            # cannot keep the attempt alive past it. urllib3 resets the timeout on the next request.
            sock.settimeout(min(policy.timeout_seconds, remaining))
        try:
            chunk = raw.read1(_CHUNK_BYTES, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise timed_out from None
        except urllib3.exceptions.DecodeError as exc:
            raise OutboundError(f"{target}: could not decode the answer: {_root_reason(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Transient(f"connection broke while reading the answer: {_root_reason(exc)}") from None
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise OutboundError(f"{target} answered with more than {limit} bytes; the limit is {limit}")
        chunks.append(chunk)
    if isinstance(sock, socket.socket):
        sock.settimeout(policy.timeout_seconds)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------- helpers


def _pause(seconds: float, should_stop: Callable[[], bool] | None) -> bool:
    """Sleep ``seconds`` in small slices; return True as soon as ``should_stop`` says so."""
    end = time.monotonic() + seconds
    while True:
        if should_stop is not None and should_stop():
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(_SLEEP_SLICE_SECONDS, left))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait per a ``Retry-After`` header (delay-seconds or HTTP-date), capped; None if absent."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_WAIT_SECONDS)


def _check_headers(headers: Mapping[str, str], target: str) -> None:
    """Refuse header names/values that would split the request, naming the header but never its value."""
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise OutboundError(f"{target}: header names and values must be strings")
        if not name or any(c in name for c in "\r\n\0: \t"):
            raise OutboundError(f"{target}: invalid header name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise OutboundError(f"{target}: the value of header {name} contains a line break or NUL")


def _reason(response: requests.Response) -> str:
    if response.reason:
        return str(response.reason)
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return ""


def _root_reason(exc: BaseException) -> str:
    """A short description of what went wrong at the bottom of an exception chain, without the URL."""
    current: BaseException = exc
    for _ in range(8):
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        nested = [arg for arg in current.args if isinstance(arg, BaseException)]
        if nested:
            current = nested[-1]
            continue
        break
    text = str(current)
    for marker in ("Failed to establish a new connection: ", "Failed to resolve "):
        if marker in text:
            text = text.split(marker, 1)[1]
    if not text or " object at 0x" in text:
        text = type(current).__name__
    return text[:200]


def display_url(url: str) -> str:
    """``url`` as it may be shown in messages and logs: scheme, host, port and path only.

    Credentials (userinfo), the query string and the fragment are dropped: they may carry secrets.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if not parts.scheme and not parts.netloc:
        return parts.path[:200] or "<empty URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def _display(method: str, url: str) -> str:
    return f"{method} {display_url(url)}".strip()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, (parts.hostname or ""), port


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 0.1 or value == 0 else f"{value:.2f}"
