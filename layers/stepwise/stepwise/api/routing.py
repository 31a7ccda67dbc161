"""What every Router of the API shares: who calls, what a request must get right first, documented answers.

A route takes its caller as a parameter, ``caller: CurrentCaller``; resolving it is the one place a request
is identified and checked before its handler runs, in this order:

1. a valid bearer token (401, :mod:`stepwise.auth`), so nothing else is said to a stranger;
2. only the query parameters the route declares (400 naming the others: one that was ignored silently
   would answer something else than what was asked, e.g. the newest version for ``?version=1``);
3. each id in the path of the kind its name says (404 that names the kind it is: ids are
   ``<kind>_<ULID>``, see :mod:`stepwise.ids`).

Routes anyone may call (:func:`is_public`: the API's description, and the viewer's pages under ``/ui/``,
whose data calls carry the token) take no caller.

A route gets the store, the adapters' settings and the limits as a parameter too, ``wired: Wired``: the
composition root (:mod:`stepwise.wiring`) builds one :class:`ApiDependencies` per container, and the
resolver puts it in each request's context (:func:`stepwise.api.resolver.create_resolver`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args

from aws_lambda_powertools.event_handler import Depends, Request
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from stepwise import ids
from stepwise.auth import TokenVerifier
from stepwise.blobs import Blobs
from stepwise.errors import BadRequest, NotFound
from stepwise.identity import Caller, caller_from_claims
from stepwise.models.envelopes import ErrorEnvelope
from stepwise.models.events import ValueRef
from stepwise.service.executions import Idempotency, Runs
from stepwise.service.schedules import Scheduling
from stepwise.store import Store

PUBLIC_PATHS = frozenset({"/api/openapi.json", "/api/docs"})
# The viewer (stepwise.api.pages): its pages and files hold no data; the page asks the API with a token.
VIEWER_PREFIX = "/ui/"
# Where the caller is kept for the rest of the request (the resolver's context is cleared after each one).
CALLER_CONTEXT_KEY = "stepwise.caller"
# Where the resolver puts the container's dependencies for each request.
DEPENDENCIES_CONTEXT_KEY = "stepwise.dependencies"
# Path parameters that name a resource, and the kind of id each must be.
ID_PARAMETERS: dict[str, ids.Kind] = {"workflowId": "wf", "executionId": "exe", "agentId": "ag", "scheduleId": "sch"}
KIND_NAMES: dict[ids.Kind, str] = {"wf": "a workflow", "exe": "an execution", "ag": "an agent", "sch": "a schedule"}

Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Cursor = Annotated[str | None, Query(description="the nextCursor of the previous page")]

ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    status: {"description": description, "content": {"application/json": {"model": ErrorEnvelope}}}
    for status, description in {
        400: "Bad request: the message says what to fix",
        401: "No valid bearer token: the message says what is wrong with it",
        403: "Someone else's resource",
        404: "No resource with that id",
        409: "The resource's state does not allow it",
        500: "Unexpected error (the detail is only in the logs)",
        503: "AWS refused a call for now (throttled): try again after Retry-After seconds; a change may have been "
        "made already (a start retried with the same Idempotency-Key is still one execution)",
    }.items()
}
# For the routes whose change waits on another AWS service that may refuse it for now (a retry may work).
UNAVAILABLE_RESPONSE: dict[int, OpenAPIResponse] = {
    503: {
        "description": "Step Functions did not take the change for now; nothing changed: try again",
        "content": {"application/json": {"model": ErrorEnvelope}},
    }
}


def is_public(path: str) -> bool:
    """Whether anyone may call ``path`` without a token: the API's description and the viewer."""
    return path in PUBLIC_PATHS or path.startswith(VIEWER_PREFIX)


# A start or a resume over a workflow's concurrency limit that says "reject".
TOO_MANY_RUNS: OpenAPIResponse = {
    "description": "The workflow is at its concurrency limit and rejects what is over it: the message names the "
    "limit; try again after Retry-After seconds",
    "headers": {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}},
    "content": {"application/json": {"model": ErrorEnvelope}},
}


def answers(status: int, description: str, *, limited: bool = False) -> dict[int, OpenAPIResponse]:
    """A route's documented answers: ``status`` with its return type's schema, and every error envelope
    (``limited``: and the 429 of a concurrency limit that rejects)."""
    return {status: {"description": description}, **ERROR_RESPONSES, **({429: TOO_MANY_RUNS} if limited else {})}


@dataclass(frozen=True)
class ApiDependencies:
    """What the routes hand to the use cases: the table, the adapters' names and ARNs, the limits."""

    store: Store
    # An execution's values too big for its items (stepwise.blobs), kept whole in S3.
    blobs: Blobs
    verifier: TokenVerifier
    runs: Runs
    idempotency: Idempotency
    scheduling: Scheduling
    # Agent credentials are stored in Secrets Manager as <secret_prefix><agent id>.
    secret_prefix: str

    def load_value(self, ref: ValueRef) -> Any:
        """A value an execution keeps in S3 (the API only reads them)."""
        return self.blobs.get_json(ref.key)


def wired(request: Request) -> ApiDependencies:
    """The container's dependencies, which the resolver put in the request's context."""
    dependencies: ApiDependencies = request.context[DEPENDENCIES_CONTEXT_KEY]
    return dependencies


Wired = Annotated[ApiDependencies, Depends(wired)]


def identify(verifier: TokenVerifier, authorization: str | None) -> Caller:
    """The caller named by an ``Authorization`` value's token, else a 401 saying what is wrong with it."""
    return caller_from_claims(verifier.claims(authorization))


def current_caller(request: Request, dependencies: Wired) -> Caller:
    """The caller of a route, once the request passed the checks every route makes (module docstring)."""
    caller = identify(dependencies.verifier, request.headers.get("authorization"))
    request.context[CALLER_CONTEXT_KEY] = caller
    _only_declared_query_parameters(request)
    _ids_of_their_kind(request)
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def _only_declared_query_parameters(request: Request) -> None:
    # Powertools keeps the matched route under "_route", as its own validation middleware reads it.
    route: Any = request.context["_route"]
    declared = [param.alias for param in route.dependant.query_params]
    unknown = sorted(set(request.query_parameters or {}) - set(declared))
    if not unknown:
        return
    names = ", ".join(f"'{name}'" for name in unknown)
    takes = f"it takes {', '.join(declared)}" if declared else "it takes none"
    plural = "s" if len(unknown) > 1 else ""
    raise BadRequest(f"unknown query parameter{plural} {names} for {request.method} {request.route}; {takes}")


def another_kind(name: str, value: str) -> ids.Kind | None:
    """The kind of id ``value`` is, when path parameter ``name`` takes ids of another kind; else None."""
    expected = ID_PARAMETERS.get(name)
    if expected is None or ids.is_id(value, expected):
        return None
    return next((kind for kind in get_args(ids.Kind) if ids.is_id(value, kind)), None)


def _ids_of_their_kind(request: Request) -> None:
    for name, value in request.path_parameters.items():
        if isinstance(value, str) and (actual := another_kind(name, value)) is not None:
            raise NotFound(f"{value} is {KIND_NAMES[actual]} id, not {KIND_NAMES[ID_PARAMETERS[name]]} id")
