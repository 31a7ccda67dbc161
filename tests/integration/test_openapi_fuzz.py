"""The API against its own OpenAPI document: schemathesis fuzzes ``stepwise dev`` over real HTTP.

Every operation of ``GET /api/openapi.json`` gets generated requests (valid and invalid bodies, query strings,
headers, path ids), sent with a valid bearer token and without one (then a 401, but for the viewer's pages,
which take none). Every answer must be one the document promises: no 5xx, a status code the operation
declares, its content type, a body that matches the declared schema, the declared headers; a method the path
does not take is a 405 whose Allow header names those it does.

The run is bounded (a few examples per operation, derandomized: the same requests every time) and has a
stack of its own (the module's ``stack`` fixture) and a user of its own, so what it writes and deletes
disturbs no other test. Half the generated path ids are ids of that user's real resources, so a route's
logic runs, not only its 404; deletes run last, so they do not take those resources from the others.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from stepwise import wiring
from stepwise.api.resolver import create_resolver, openapi_document
from tests.support.local_stack import Stack

pytestmark = pytest.mark.slow

FUZZER = "fuzzer"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
]
# Bounds: the whole module adds well under a minute to `make test` on two cores. Besides the generated
# requests, each operation gets the boundary cases schemathesis derives from the document (a missing field,
# a wrong type, an undeclared method...). A request that takes longer than the deadline fails the test (one
# that generous: two busy cores can make a request take seconds).
REQUEST_SECONDS = 30
BOUNDS = settings(
    max_examples=6,
    derandomize=True,
    deadline=timedelta(seconds=REQUEST_SECONDS),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
ID_PARAMETERS = ("workflowId", "executionId", "agentId", "scheduleId")
LONGEST_WAIT_SECONDS = 2


def stand_in(name: str) -> str:
    """What the fuzzer sends for a real id, swapped for the id itself once the resources exist."""
    return f"real-{name}"


# Built in process, since schemathesis makes its tests when pytest collects them, before any stack runs;
# a test checks that the stack serves this very document.
DOCUMENT = openapi_document(create_resolver(wiring.api))
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "dictionaries": {name: {"values": [stand_in(name)]} for name in ID_PARAMETERS},
            "parameters": {f"path.{name}": {"dictionary": name, "probability": 0.5} for name in ID_PARAMETERS},
            # Not TRACE and QUERY: the local stack's HTTP front serves the other methods only, and answers
            # those itself with a 501 page before the API function sees them (a gap of the local front).
            "phases": {"coverage": {"unexpected-methods": ["GET", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"]}},
        }
    ),
)


def created(stack: Stack, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = stack.call("POST", path, token, json=body)
    assert answer.status_code in (201, 202), answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


@pytest.fixture(scope="module")
def fuzzer_token(stack: Stack) -> str:
    return stack.token(FUZZER)


@pytest.fixture(scope="module")
def real_ids(stack: Stack, fuzzer_token: str) -> dict[str, str]:
    """The fuzzing user's resources, one of each kind (the execution waits), by their stand-ins."""
    waits = created(
        stack,
        fuzzer_token,
        "/api/workflows",
        {"name": "waits", "nodes": [{"id": "wait", "type": "delay", "config": {"seconds": 60}}]},
    )
    execution = created(stack, fuzzer_token, f"/api/workflows/execute/{waits['id']}", {})
    agent = created(stack, fuzzer_token, "/api/agents", {"name": "a", "endpoint": f"{stack.url}/nowhere"})
    schedule = created(
        stack, fuzzer_token, f"/api/workflows/{waits['id']}/schedules", {"expression": "cron(0 9 1 1 ? 2099)"}
    )
    ids = {
        "workflowId": waits["id"],
        "executionId": execution["executionId"],
        "agentId": agent["id"],
        "scheduleId": schedule["id"],
    }
    return {stand_in(name): value for name, value in ids.items()}


def answer_is_documented(case: Any, stack: Stack, real_ids: dict[str, str], token: str | None) -> None:
    """Send the case to the stack (stand-ins swapped for real ids) and check the answer against the document."""
    case.path_parameters = {name: real_ids.get(value, value) for name, value in (case.path_parameters or {}).items()}
    _short_long_poll(case)
    headers = {"authorization": f"Bearer {token}"} if token else None
    answer = case.call_and_validate(base_url=stack.url, headers=headers, checks=CHECKS, timeout=REQUEST_SECONDS)
    if token is None and case.operation.definition.raw.get("security") != []:  # [] is a viewer page: no token
        assert answer.status_code == 401, answer.text


def _short_long_poll(case: Any) -> None:
    """An events request waits as long as it asks (up to 25 s) when no event comes: the fuzzer asks for 2 at most."""
    waiting = (case.query or {}).get("waitSeconds")
    try:
        asked = int(waiting)
    except (TypeError, ValueError):
        return  # absent, or not a number: a 400 at once
    if LONGEST_WAIT_SECONDS < asked <= 25:  # a wait past 25 s stays as asked: a 400
        case.query["waitSeconds"] = LONGEST_WAIT_SECONDS


def test_the_stack_serves_the_document_the_fuzzer_reads(stack: Stack) -> None:
    assert stack.call("GET", "/api/openapi.json").json() == DOCUMENT


# Each test runs once with the fuzzing user's token and once without a token (then every answer is a 401).
BEARERS = ["token", "no token"]


@schema.exclude(method="DELETE").parametrize()
@pytest.mark.parametrize("bearer", BEARERS)
@BOUNDS
def test_every_answer_is_documented(
    case: Any, bearer: str, stack: Stack, real_ids: dict[str, str], fuzzer_token: str
) -> None:
    answer_is_documented(case, stack, real_ids, fuzzer_token if bearer == "token" else None)


@schema.include(method="DELETE").parametrize()
@pytest.mark.parametrize("bearer", BEARERS)
@BOUNDS
def test_every_delete_answer_is_documented(
    case: Any, bearer: str, stack: Stack, real_ids: dict[str, str], fuzzer_token: str
) -> None:
    answer_is_documented(case, stack, real_ids, fuzzer_token if bearer == "token" else None)
