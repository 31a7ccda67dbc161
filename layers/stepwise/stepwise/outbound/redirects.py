"""Redirects, followed by hand so that each hop meets the guard and credentials stay with their origin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# Request headers that are safe to carry to another origin when a redirect leaves the original one;
# every other caller-supplied header (Authorization, X-Api-Key, Cookie, ...) is dropped.
_CROSS_ORIGIN_SAFE_HEADERS: Final = frozenset({"accept", "accept-language", "user-agent", "content-type"})
_BODY_HEADERS: Final = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding"})


@dataclass(frozen=True)
class Request:
    """One request of an attempt: the first, or where a redirect leads."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def follow(request: Request, status: int, location: str, log: Callable[[str, str], None]) -> Request:
    """The request a ``status`` redirect to ``location`` leads to, as browsers and requests make it.

    303 (and 301/302 after a POST) turns into a GET without a body; a hop to another origin keeps only
    the headers that carry no credential (and logs the names of those it drops, never their values).
    """
    method, body, headers = request.method, request.body, request.headers
    url = urljoin(request.url, location.strip())
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
    if _origin(url) != _origin(request.url):
        dropped = sorted(k for k in headers if k.lower() not in _CROSS_ORIGIN_SAFE_HEADERS)
        headers = {k: v for k, v in headers.items() if k not in dropped}
        if dropped:
            log("info", f"redirect leaves the origin; not sending headers {', '.join(dropped)}")
    return Request(method, url, headers, body)


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
