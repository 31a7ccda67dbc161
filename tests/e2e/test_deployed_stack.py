"""End-to-end tests against a deployed stack, found by ``AWS_SAM_STACK_NAME`` (skipped when it is not set).

    AWS_SAM_STACK_NAME=stepwise AWS_REGION=eu-west-1 .venv/bin/pytest tests/e2e

They create a throw-away Cognito user (the stack's user pool allows admin-created users), take its id
token, and drive the deployed API over HTTPS: the seed's three endpoints, a run to COMPLETED, 401 and 403.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

STACK = os.environ.get("AWS_SAM_STACK_NAME")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not STACK, reason="AWS_SAM_STACK_NAME is not set: no deployed stack to test"),
]


@pytest.fixture(autouse=True)
def _fake_aws_environment() -> None:
    """Override the suite-wide fake credentials: these tests use the real account's."""


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _token_for(outputs: dict[str, str], username: str) -> Iterator[str]:
    import boto3

    cognito = boto3.client("cognito-idp")
    pool, client = outputs["UserPoolId"], outputs["UserPoolClientId"]
    password = "E2e-" + secrets.token_urlsafe(16) + "!1a"
    cognito.admin_create_user(UserPoolId=pool, Username=username, MessageAction="SUPPRESS")
    try:
        cognito.admin_set_user_password(UserPoolId=pool, Username=username, Password=password, Permanent=True)
        auth = cognito.admin_initiate_auth(
            UserPoolId=pool,
            ClientId=client,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
        yield auth["AuthenticationResult"]["IdToken"]
    finally:
        cognito.admin_delete_user(UserPoolId=pool, Username=username)


@pytest.fixture(scope="module")
def alice(outputs: dict[str, str]) -> Iterator[str]:
    yield from _token_for(outputs, f"e2e-alice-{secrets.token_hex(4)}@example.com")


@pytest.fixture(scope="module")
def mallory(outputs: dict[str, str]) -> Iterator[str]:
    yield from _token_for(outputs, f"e2e-mallory-{secrets.token_hex(4)}@example.com")


def _call(outputs: dict[str, str], method: str, path: str, token: str | None, body: Any = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, outputs["ApiUrl"].rstrip("/") + path, json=body, headers=headers, timeout=30)


def test_a_workflow_runs_to_completed_through_the_deployed_api(outputs: dict[str, str], alice: str) -> None:
    definition = {
        "name": "e2e",
        "variables": {"name": "world"},
        "nodes": [
            {"id": "greet", "type": "setVariables", "config": {"values": {"greeting": "Hello ${name}"}}},
            {"id": "wait", "type": "delay", "config": {"seconds": 1}},
        ],
        "output": ["greeting"],
    }
    workflow = _call(outputs, "POST", "/api/workflows", alice, definition)
    assert workflow.status_code == 201, workflow.text
    workflow_id = workflow.json()["data"]["id"]

    started = _call(outputs, "POST", f"/api/workflows/execute/{workflow_id}", alice, {"variables": {"name": "e2e"}})
    assert started.status_code == 202, started.text
    execution_id = started.json()["data"]["executionId"]

    deadline = time.monotonic() + 60
    execution: dict[str, Any] = {}
    while time.monotonic() < deadline:
        execution = _call(outputs, "GET", f"/api/workflows/execute/{execution_id}", alice).json()["data"]
        if execution["state"] in ("COMPLETED", "FAILED", "CANCELED"):
            break
        time.sleep(1)
    assert execution["state"] == "COMPLETED", execution
    assert execution["output"] == {"greeting": "Hello e2e"}

    assert _call(outputs, "DELETE", f"/api/workflows/execute/{execution_id}", alice).status_code == 409
    assert _call(outputs, "DELETE", f"/api/workflows/{workflow_id}", alice).status_code == 200


def test_identity_is_enforced_by_the_deployed_api(outputs: dict[str, str], alice: str, mallory: str) -> None:
    # The function checks tokens itself (no authorizer), so every 401 is the envelope and says why.
    missing = _call(outputs, "GET", "/api/workflows", None)
    assert (missing.status_code, missing.json()) == (
        401,
        {"success": False, "error": "No token: send the header 'Authorization: Bearer <token>'"},
    )
    malformed = _call(outputs, "GET", "/api/workflows", "not-a-jwt")
    assert malformed.status_code == 401
    assert malformed.json()["error"].startswith("The token is not a JWT")
    assert _call(outputs, "GET", "/api/openapi.json", None).status_code == 200
    workflow = _call(
        outputs,
        "POST",
        "/api/workflows",
        alice,
        {"name": "private", "nodes": [{"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}]},
    ).json()["data"]
    try:
        assert _call(outputs, "GET", f"/api/workflows/{workflow['id']}", mallory).status_code == 403
    finally:
        _call(outputs, "DELETE", f"/api/workflows/{workflow['id']}", alice)


def test_the_viewer_is_served_behind_the_stage_with_no_token(outputs: dict[str, str]) -> None:
    # Behind API Gateway the page lives under the stage; it loads its files relative to it.
    page = _call(outputs, "GET", f"/ui/executions/exe_{'0' * 26}", None)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    script = _call(outputs, "GET", "/ui/viewer.js", None)
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
