"""The viewer's pages: an execution, live, and a workflow's recent runs. Included under ``/ui``.

Anyone may load a page and its two files (:mod:`stepwise.viewer`): they hold no data. The page asks the
API for everything it shows with the bearer token the reader gives it, so no route here takes a caller.
The OpenAPI document lists the two pages with ``security: []`` (no token), and leaves out the files.

Every answer carries a Content-Security-Policy that lets the page run only its own script and style, talk
only to this API, be framed by no one, and build its DOM only from text (Trusted Types: no ``innerHTML``),
so a value an execution holds can never run as code in the reader's browser.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from stepwise import ids, viewer
from stepwise.api.routing import ERROR_RESPONSES, KIND_NAMES
from stepwise.errors import NotFound

PREFIX = "/ui"
router = APIGatewayHttpRouter()

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
# The page is small and names its files by their hash: it is checked again on every load, the files kept.
PAGE_CACHING = "no-cache"
ASSET_CACHING = "public, max-age=31536000, immutable"
PAGE_ANSWER: dict[int, OpenAPIResponse] = {
    200: {
        "description": "The viewer's page (HTML); it reads its data from this API with the reader's bearer token",
        "content": {"text/html": {"schema": {"type": "string"}}},
    },
    404: {
        "description": "Not an id of the kind the page shows (whether it exists, the page asks with a token)",
        "content": ERROR_RESPONSES[404]["content"],
    },
    500: ERROR_RESPONSES[500],
}
# The files' paths, which take GET only (the resolver's 405 answers name it).
ASSET_PATHS = tuple(f"{PREFIX}/{name}" for name in viewer.ASSETS)


def _page(kind: ids.Kind, value: str) -> Response[str]:
    """The page, for an id of the kind it shows (any other is a 404 that says what it is)."""
    if not ids.is_id(value, kind):
        expected = KIND_NAMES[kind]
        actual = next((KIND_NAMES[other] for other in KIND_NAMES if ids.is_id(value, other)), None)
        raise NotFound(f"{value} is {actual} id, not {expected} id" if actual else f"{value} is not {expected} id")
    headers = {**SECURITY_HEADERS, "cache-control": PAGE_CACHING}
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=viewer.page(), headers=headers)


def _asset(name: str, version: str | None) -> Response[str]:
    found = viewer.asset(name)
    # Kept for a year only under the address of its current content; any other address is checked again.
    caching = ASSET_CACHING if version == found.version else PAGE_CACHING
    headers = {**SECURITY_HEADERS, "cache-control": caching, "etag": f'"{found.version}"'}
    return Response(status_code=200, content_type=found.content_type, body=found.text, headers=headers)


@router.get(
    "/executions/<executionId>",
    tags=["viewer"],
    description="The execution viewer: its graph, timeline, log, variables and output, following it live; "
    "pause, resume, cancel and rerun. No token to load the page; it asks for one (or takes #token=<jwt>).",
    responses=PAGE_ANSWER,
    compress=True,
)
def execution_page(executionId: str) -> Response[str]:
    return _page("exe", executionId)


@router.get(
    "/workflows/<workflowId>",
    tags=["viewer"],
    description="A workflow's recent executions, newest first, each linking to its viewer page. No token to load "
    "the page; it asks for one (or takes #token=<jwt>).",
    responses=PAGE_ANSWER,
    compress=True,
)
def workflow_page(workflowId: str) -> Response[str]:
    return _page("wf", workflowId)


Version = Annotated[str | None, Query(alias="v", description="the hash of the file's content")]


@router.get("/viewer.js", include_in_schema=False, compress=True)
def viewer_script(version: Version = None) -> Response[str]:
    return _asset("viewer.js", version)


@router.get("/viewer.css", include_in_schema=False, compress=True)
def viewer_stylesheet(version: Version = None) -> Response[str]:
    return _asset("viewer.css", version)
