"""API Gateway's part of the local API: route, build the event, invoke the function, shape the answer.

Each request becomes the payload 2.0 event API Gateway would send (:func:`stepwise.local.events.http_api_event`)
for the route the template declares (:mod:`stepwise.local.routes`). The routes have no authorizer: the
``Authorization`` header goes through to the function, which checks the token itself (:mod:`stepwise.auth`),
so every 401 is the API's envelope. The function runs in one of its warm instances
(:mod:`stepwise.local.warm_instances`), so requests are served side by side; its answer is shaped as API
Gateway shapes it. ``POST /local/token`` (local only) mints a token for a local user; ``/local/faults`` (local
only) reads (GET), sets (PUT or POST, a fault plan as JSON or as text) and clears (DELETE) the faults the stack
injects (:mod:`stepwise.local.faults`).

Every request whose ``Host`` is not ``127.0.0.1``, ``localhost`` or ``[::1]`` with this port is refused (403)
before anything else, so a web page cannot reach the API by pointing a name of its own at 127.0.0.1 (DNS
rebinding); the ``/local/...`` routes also refuse requests a web page of another origin sends.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepwise.local.auth import USER_NAME_PATTERN, LocalUserPool
from stepwise.local.events import http_api_event
from stepwise.local.routes import Route, select_route
from stepwise.local.warm_instances import InvokeFailed, WarmInstances

if TYPE_CHECKING:
    from stepwise.local.faults import FaultInjector

LOCAL_TOKEN_PATH = "/local/token"  # noqa: S105 - a URL path, not a password
LOCAL_FAULTS_PATH = "/local/faults"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


def loopback_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values the local API answers to: a loopback name with ``port`` (or alone on port 80)."""
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:
        hosts.update(LOOPBACK_NAMES)
    return frozenset(hosts)


def host_allowed(hosts: Sequence[str], port: int) -> bool:
    """Whether a request's ``Host`` headers are exactly one loopback name for ``port`` (DNS rebinding guard)."""
    return len(hosts) == 1 and hosts[0].strip().lower() in loopback_hosts(port)


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as it reached the local API: ``target`` is the path with its query string."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    source_ip: str

    @property
    def path(self) -> str:
        """The path without the query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return next((value for key, value in self.headers if key.lower() == name), None)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        return [value for key, value in self.headers if key.lower() == name]


@dataclass
class GatewayResponse:
    """What goes back to the HTTP client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, body: Any, extra: Sequence[tuple[str, str]] = ()) -> GatewayResponse:
    """A JSON answer of the gateway's own (not the function's)."""
    return GatewayResponse(status, [("content-type", "application/json"), *extra], json.dumps(body).encode())


def lambda_result_to_response(result: Any) -> GatewayResponse:
    """Turn a handler's return value into the HTTP answer, as an HTTP API (payload 2.0) integration does.

    A dict with ``statusCode`` is a full response (``headers``, ``multiValueHeaders``, ``cookies``,
    ``body``, ``isBase64Encoded``); anything else is a 200 whose JSON body is the value.
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        return json_response(200, result)
    status = int(result["statusCode"])
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        already = {existing.lower() for existing, _ in headers}
        if str(name).lower() in already:
            continue
        headers.extend((str(name), str(value)) for value in values)
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        payload = base64.b64decode(str(body))
    else:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return GatewayResponse(status, headers, payload)


REBOUND = {"message": "Forbidden: the local stack answers only to localhost"}


class LocalGateway:
    """API Gateway's part: route, build the event, call the function, shape the answer.

    ``functions`` holds the warm instances of every routed function, by logical id. Nothing here holds a
    lock around a function: each request gets an instance of its own.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        users: LocalUserPool | None,
        functions: Mapping[str, WarmInstances],
        port: int,
        faults: FaultInjector | None = None,
    ) -> None:
        self.routes = list(routes)
        self.users = users
        self.functions = dict(functions)
        self.port = port
        self.faults = faults

    def handle(self, request: HttpRequest) -> GatewayResponse:
        """Answer one HTTP request."""
        if not host_allowed(request.header_values("host"), self.port):
            return json_response(403, REBOUND)
        if len(request.body) > MAX_BODY_BYTES:
            return json_response(413, {"message": "Request Entity Too Large"})
        if request.path == LOCAL_TOKEN_PATH:
            return self._local_token(request)
        if request.path == LOCAL_FAULTS_PATH:
            return self._local_faults(request)
        selected = select_route(self.routes, request.method, request.path)
        if selected is None:
            return json_response(404, {"message": "Not Found"})
        route, parameters = selected
        return self._invoke(route, parameters, request)

    def _invoke(self, route: Route, parameters: dict[str, str], request: HttpRequest) -> GatewayResponse:
        forwarded = [
            ("x-forwarded-for", request.source_ip),
            ("x-forwarded-port", str(self.port)),
            ("x-forwarded-proto", "http"),
        ]
        event = http_api_event(
            request.method,
            request.target,
            headers=[*request.headers, *forwarded],
            body=request.body or None,
            source_ip=request.source_ip,
            domain=f"127.0.0.1:{self.port}",
        )
        event["routeKey"] = event["requestContext"]["routeKey"] = route.key
        if parameters:
            event["pathParameters"] = parameters
        else:
            event.pop("pathParameters", None)
        try:
            response = lambda_result_to_response(self.functions[route.function].invoke(event))
        except InvokeFailed as failure:
            # API Gateway's answer when the integration fails; the details are for the developer.
            print(f"stepwise dev: {failure}", file=sys.stderr, flush=True)
            response = json_response(500, {"message": "Internal Server Error"})
        response.headers.append(("apigw-requestid", str(event["requestContext"]["requestId"])))
        return response

    def _other_page(self, request: HttpRequest) -> bool:
        # A browser names the page that sent the request; the CLI, curl and tests send no Origin.
        origin = request.header("origin")
        return origin is not None and origin.strip().lower() not in {f"http://{h}" for h in loopback_hosts(self.port)}

    def _local_faults(self, request: HttpRequest) -> GatewayResponse:
        from stepwise.local.faults import FaultPlan, InvalidFaults

        if self.faults is None:
            return json_response(404, {"message": "Not Found"})
        method = request.method.upper()
        if method not in ("GET", "PUT", "POST", "DELETE"):
            return json_response(405, {"success": False, "error": f"use GET, PUT or DELETE {LOCAL_FAULTS_PATH}"})
        if method != "GET":
            if self._other_page(request):
                return json_response(403, {"success": False, "error": "other web pages may not change faults"})
            try:
                text = request.body.decode() if request.body else ""
                if method == "DELETE":
                    plan = FaultPlan()
                elif text.lstrip().startswith("{"):
                    plan = FaultPlan.from_json(json.loads(text))
                else:
                    plan = FaultPlan.parse(text)
            except (ValueError, InvalidFaults) as error:
                return json_response(400, {"success": False, "error": str(error)})
            self.faults.set(plan)
        plan = self.faults.plan()
        return json_response(
            200,
            {
                "success": True,
                "data": {"faults": plan.as_json(), "describe": plan.describe(), "injected": dict(self.faults.injected)},
            },
        )

    def _local_token(self, request: HttpRequest) -> GatewayResponse:
        if self.users is None:
            return json_response(404, {"message": "Not Found"})  # no local user pool, no such route
        if request.method.upper() != "POST":
            return json_response(405, {"success": False, "error": f"use POST {LOCAL_TOKEN_PATH}"})
        if self._other_page(request):
            return json_response(403, {"success": False, "error": "tokens are not given to other web pages"})
        try:
            asked = json.loads(request.body or b"{}")
        except ValueError:
            asked = None
        user = asked.get("user") if isinstance(asked, dict) else None
        admin = asked.get("admin", False) if isinstance(asked, dict) else False
        if not isinstance(user, str) or not re.match(USER_NAME_PATTERN, user) or not isinstance(admin, bool):
            return json_response(
                400,
                {
                    "success": False,
                    "error": 'send {"user": "NAME", "admin": false}; NAME is 1-64 of A-Z a-z 0-9 . _ @ + -',
                },
            )
        try:
            issued = self.users.token_for(user, admin=admin)
        except Exception as error:
            traceback.print_exc()
            return json_response(500, {"success": False, "error": f"the local user pool refused: {error}"})
        if "text/plain" in (request.header("accept") or ""):
            return GatewayResponse(200, [("content-type", "text/plain")], issued.token.encode())
        return json_response(200, issued.as_json())
