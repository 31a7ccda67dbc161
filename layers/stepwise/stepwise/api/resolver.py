"""The one resolver of the HTTP API (API Gateway HTTP API, payload 2.0): its Routers, its error map, its document.

:func:`create_resolver` includes one Router per resource (:mod:`stepwise.api.executions`, ``workflows``,
``agents``, ``schedules``, and the viewer's ``pages``) and maps every failure to the error envelope
``{"success": false, "error": "..."}`` here, in one place: domain errors (:mod:`stepwise.errors`) with their
status, request validation as a 400 that names the field, an unknown route as a 404, a call AWS refused for
now (:class:`stepwise.aws.TransientError`) as a 503 with ``Retry-After``, anything else as a generic 500 (the
detail is logged), a path the API has asked with another method as a 405 with an ``Allow``
header. A request for a private route without a valid token is a 401 whatever else is wrong with it.

Status codes and documented answers are declared on each route (``status_code=``, ``responses=``). The
OpenAPI document drops the one thing Powertools adds that this API never answers: 422 (a request that
fails validation is a 400 in the envelope).

The resolver is given its dependencies (the store, the adapters' settings, the token verifier) by the one
who creates it: the API function passes the composition root's ``stepwise.wiring.api``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepwise.api import agents, executions, finding, pages, schedules, workflows
from stepwise.api.routing import (
    CALLER_CONTEXT_KEY,
    DEPENDENCIES_CONTEXT_KEY,
    PUBLIC_PATHS,
    ApiDependencies,
    another_kind,
    identify,
    is_public,
)
from stepwise.auth import TokenRefused
from stepwise.aws import TransientError
from stepwise.errors import BadRequest, StepwiseError, TooManyRuns, Unauthorized, Unavailable
from stepwise.limits import parse_json_body
from stepwise.observability import logger

TITLE = "stepwise API"
VERSION = "1.0.0"
ROUTERS = (executions, finding, workflows, agents, schedules, pages)
# Powertools documents these for its own validation answer (422), which this API never gives.
UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")
# A 503 (AWS refused a call for now) says when to try again.
RETRY_AFTER_SECONDS = 1
BUSY = "The service is busy (AWS refused a call for now); try again in a moment"


class StepwiseResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, reading every request body as JSON (the API speaks nothing else).

    ``dependencies`` gives the container's :class:`ApiDependencies`; each request finds them in its context.
    """

    def __init__(self, dependencies: Callable[[], ApiDependencies]) -> None:
        # Bodies are strict JSON: Python's parser would take NaN and Infinity, and recurse without end.
        super().__init__(enable_validation=True, json_body_deserializer=parse_json_body)
        self.dependencies = dependencies

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Answer one API Gateway event (see :class:`APIGatewayHttpResolver`)."""
        self.append_context(**{DEPENDENCIES_CONTEXT_KEY: self.dependencies()})
        return super().resolve(_body_as_json(event), context)


def _body_as_json(event: Mapping[str, Any]) -> Mapping[str, Any]:
    # A body sent without its content type (`curl -d` says form-urlencoded) is read as JSON all the same,
    # rather than failing with a puzzling form-field error.
    headers = event.get("headers")
    if event.get("body") and isinstance(headers, dict) and "json" not in headers.get("content-type", ""):
        return {**event, "headers": {**headers, "content-type": "application/json"}}
    return event


def create_resolver(dependencies: Callable[[], ApiDependencies]) -> StepwiseResolver:
    """The API: every Router included under its prefix, the error map, and ``GET /api/openapi.json``.

    ``dependencies`` is called once per request (the composition root caches what it builds).
    """
    app = StepwiseResolver(dependencies)
    app.configure_openapi(
        title=TITLE,
        version=VERSION,
        security_schemes={"CognitoJwt": HTTPBearer(bearerFormat="JWT", description="the user pool's ID token")},
        security=[{"CognitoJwt": []}],
    )
    app.enable_swagger(path="/api/docs", title=TITLE, version=VERSION)
    for module in ROUTERS:
        app.include_router(module.router, prefix=module.PREFIX)
    document = cache(lambda: openapi_document(app))
    _map_errors(app, cache(lambda: _path_methods(document())))

    @app.get("/api/openapi.json", include_in_schema=False)
    def serve_openapi_document() -> Response[Any]:
        return _json(HTTPStatus.OK, document())

    return app


def openapi_document(app: StepwiseResolver) -> dict[str, Any]:
    """The API's OpenAPI 3.1 document, as ``GET /api/openapi.json`` serves it."""
    described: dict[str, Any] = json.loads(app.get_openapi_json_schema())
    for path, operations in described["paths"].items():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            if is_public(path):
                operation["security"] = []  # the viewer's pages: no token (their data calls carry one)
    for name in UNUSED_SCHEMAS:
        described["components"]["schemas"].pop(name, None)
    return described


# The order methods are named in, in an Allow header and in messages.
METHOD_ORDER = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _path_methods(document: Mapping[str, Any]) -> list[tuple[re.Pattern[str], list[str]]]:
    """Each path of the API (the document's and the public ones) as a pattern, with the methods it takes."""
    paths = {path: [method.upper() for method in operations] for path, operations in document["paths"].items()}
    paths.update({path: ["GET"] for path in (*PUBLIC_PATHS, *pages.ASSET_PATHS)})
    patterns = []
    for path, methods in paths.items():
        segments = (
            f"(?P<{segment[1:-1]}>[^/]+)" if segment.startswith("{") else re.escape(segment)
            for segment in path.split("/")
        )
        patterns.append((re.compile("/".join(segments) + "/?"), methods))
    return patterns


def _json(status: HTTPStatus, body: Any, headers: Mapping[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def _error_answer(error: StepwiseError) -> Response[Any]:
    if error.status_code >= 500:
        logger.exception("request failed")
    headers = None
    if isinstance(error, Unauthorized):
        challenge = error.challenge if isinstance(error, TokenRefused) else 'Bearer error="invalid_token"'
        headers = {"www-authenticate": challenge}
    elif isinstance(error, TooManyRuns):
        headers = {"retry-after": str(error.retry_after)}
    elif isinstance(error, Unavailable):
        headers = {"retry-after": str(RETRY_AFTER_SECONDS)}
    return _json(HTTPStatus(error.status_code), {"success": False, "error": error.message}, headers)


def _validation_message(error: RequestValidationError) -> str:
    problems = []
    for detail in error.errors():
        location = [str(part) for part in detail.get("loc", ()) if part not in ("body", "query", "path", "header")]
        message = str(detail.get("msg", "invalid")).removeprefix("Value error, ")
        if detail.get("type") == "json_invalid":
            problems.append("request body is not valid JSON")
        elif detail.get("type") == "missing" and tuple(detail.get("loc", ())) == ("body",):
            problems.append("a JSON body is required")
        else:
            problems.append(f"{'.'.join(location)}: {message}" if location else message)
    return "; ".join(problems) or "invalid request"


def _unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"success": False, "error": "Internal server error"})


def _map_errors(app: StepwiseResolver, path_methods: Callable[[], list[tuple[re.Pattern[str], list[str]]]]) -> None:
    def refused(error: Exception) -> Response[Any] | None:
        # A failure met before the route knew its caller (a malformed body, say) waits behind a 401.
        if isinstance(error, Unauthorized) or CALLER_CONTEXT_KEY in app.context:
            return None
        if is_public(app.current_event.path):
            return None
        try:
            dependencies: ApiDependencies = app.context[DEPENDENCIES_CONTEXT_KEY]
            identify(dependencies.verifier, app.current_event.headers.get("authorization"))
        except Unauthorized as refusal:
            return _error_answer(refusal)
        except Exception as failure:  # a handler's own exception would escape the error map
            return _unexpected(failure)
        return None

    @app.exception_handler(StepwiseError)
    def _domain_error(error: StepwiseError) -> Response[Any]:
        return refused(error) or _error_answer(error)

    @app.exception_handler(TransientError)
    def _refused_for_now(error: TransientError) -> Response[Any]:
        return refused(error) or _error_answer(Unavailable(BUSY))

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response[Any]:
        return refused(error) or _error_answer(BadRequest(_validation_message(error)))

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(error: UnicodeDecodeError) -> Response[Any]:
        return refused(error) or _error_answer(BadRequest("request body is not valid UTF-8"))

    @app.not_found
    def _no_route(error: Exception) -> Response[Any]:
        event = app.current_event
        if refusal := refused(error):
            return refusal
        # A path the API has, asked with another method: 405 and the methods it takes (RFC 9110's Allow).
        # /api/workflows/execute/{id} is two paths of the document, told apart by the kind of id: POST for a
        # workflow's, GET and DELETE for an execution's (all three for an id of neither kind).
        matched = set()
        for pattern, methods in path_methods():
            found = pattern.fullmatch(event.path)
            if found and not any(another_kind(name, value) for name, value in found.groupdict().items()):
                matched.update(methods)
        if allowed := sorted(matched, key=METHOD_ORDER.index):
            message = f"{event.http_method} is not a method of {event.path}; it takes {', '.join(allowed)}"
            return _json(
                HTTPStatus.METHOD_NOT_ALLOWED, {"success": False, "error": message}, {"allow": ", ".join(allowed)}
            )
        return _json(HTTPStatus.NOT_FOUND, {"success": False, "error": f"No route {event.http_method} {event.path}"})

    app.exception_handler(Exception)(_unexpected)
