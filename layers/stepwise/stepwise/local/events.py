"""API Gateway HTTP API (payload format 2.0) events, built the way API Gateway builds them.

One builder serves the local stack (from a real HTTP request) and the tests (from a method, path and
body), so both hand the API function exactly what API Gateway would: ``rawPath``, ``rawQueryString``
and ``queryStringParameters`` (repeated keys joined with commas), lower-cased headers (repeated ones
joined with commas), cookies, a base64 body for binary content, ``pathParameters`` of the matched
``ANY /api/{proxy+}`` (or the viewer's ``ANY /ui/{proxy+}``) route. The routes have no authorizer (the API
function checks the bearer token itself), so the event carries no ``requestContext.authorizer``: the token is
in the ``authorization`` header.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")


# The template's routes: the OpenAPI document has a route of its own, the rest a proxy by prefix.
PROXY_ROUTES = {"/api/": "ANY /api/{proxy+}", "/ui/": "ANY /ui/{proxy+}"}
OPEN_ROUTES = frozenset({"GET /api/openapi.json"})


def route_key_for(method: str, path: str) -> str:
    """The HTTP API route a request matches, as ``template.yaml`` declares them."""
    exact = f"{method.upper()} {path}"
    if exact in OPEN_ROUTES:
        return exact
    return next((route for prefix, route in PROXY_ROUTES.items() if path.startswith(prefix)), exact)


def http_api_event(
    method: str,
    path_and_query: str,
    *,
    headers: Sequence[tuple[str, str]] | Mapping[str, str] = (),
    body: bytes | str | None = None,
    source_ip: str = "127.0.0.1",
    stage: str = "$default",
    domain: str = "localhost",
) -> dict[str, Any]:
    """The event API Gateway's HTTP API sends to a Lambda proxy integration for this request."""
    parts = urlsplit(path_and_query)
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    raw_body: bytes | None = body.encode() if isinstance(body, str) else body
    content_type = merged.get("content-type", "")
    is_text = raw_body is None or any(content_type.startswith(t) for t in _TEXT_TYPES) or not content_type
    encoded = None
    if raw_body is not None:
        try:
            encoded = raw_body.decode() if is_text else None
        except UnicodeDecodeError:
            encoded = None
    now = datetime.now(UTC)
    path = parts.path or "/"
    route_key = route_key_for(method, path)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": parts.query,
        "headers": merged,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": secrets.token_hex(8),
            "routeKey": route_key,
            "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    for prefix, route in PROXY_ROUTES.items():
        if route_key == route:
            event["pathParameters"] = {"proxy": path.removeprefix(prefix)}
    if raw_body is not None:
        if encoded is not None:
            event["body"] = encoded
        else:
            event["body"] = base64.b64encode(raw_body).decode()
            event["isBase64Encoded"] = True
    return event
