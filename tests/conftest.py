"""Fixtures shared by every test: fake AWS credentials, moto, the deployed local resources, an API client.

The template is deployed into moto once per test session (per xdist worker) and reset before each test
that asks for it (``aws``): its tables, executions, schedules, secrets and queue are emptied, its resources
kept (:meth:`stepwise.local.stack.Deployment.reset`). moto's patching is on only while such a test runs.

The API function checks bearer tokens itself; in process, they come from a test issuer whose keys are served
on 127.0.0.1 (:class:`stepwise.local.auth.LocalTokenIssuer`), so a test names any user it likes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never reach a real account, whatever the developer's shell holds.
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


@dataclass
class ApiAnswer:
    status: int
    body: Any
    headers: dict[str, str]


class ApiClient:
    """Sends HTTP API 2.0 events, built as API Gateway builds them, to the API function's handler.

    ``user`` (and ``groups``) become a bearer token of the test issuer; ``user=None`` sends none, and an
    ``authorization`` header given in ``headers`` is sent as it is.
    """

    def __init__(self, handler: Any, issuer: Any) -> None:
        self.handler = handler
        self.issuer = issuer

    def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = "alice",
        groups: list[str] | None = None,
        json_body: Any = None,
        raw_body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiAnswer:
        from stepwise.local.events import http_api_event
        from stepwise.local.lambda_routing import LocalLambdaContext

        body = raw_body if raw_body is not None else (json.dumps(json_body) if json_body is not None else None)
        all_headers = {"content-type": "application/json"}
        if user is not None:
            all_headers["authorization"] = f"Bearer {self.issuer.token(user, groups or ())}"
        all_headers.update({name.lower(): value for name, value in (headers or {}).items()})
        event = http_api_event(method, path, headers=all_headers, body=body)
        context = LocalLambdaContext(
            function_name="stepwise-local-ApiFunction",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:stepwise-local-ApiFunction",
            memory_limit_in_mb=512,
            timeout_seconds=29,
        )
        answer = self.handler(event, context)
        text = answer.get("body") or ""
        return ApiAnswer(
            status=answer["statusCode"],
            body=json.loads(text) if text else None,
            headers={k.lower(): v for k, v in (answer.get("headers") or {}).items()},
        )

    def get(self, path: str, **kwargs: Any) -> ApiAnswer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> ApiAnswer:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> ApiAnswer:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ApiAnswer:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture(scope="session")
def token_issuer() -> Iterator[Any]:
    """The issuer of the tests' bearer tokens, its keys served on 127.0.0.1 for the whole session."""
    from stepwise.local.auth import LocalTokenIssuer

    with LocalTokenIssuer().serving() as issuer:
        yield issuer


class SharedDeployment:
    """The template deployed into moto once, reset for each test, with moto's patching on only meanwhile.

    Between tests moto's data stays in this process and its patching is off, so a test that did not ask
    for it never talks to it by accident. A test that starts a moto of its own resets moto's data when
    it starts; the next test that asks for the deployment then finds it gone and deploys it again.
    """

    def __init__(self, issuer: Any) -> None:
        from moto import mock_aws

        self.mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self.issuer = issuer
        self.deployment: Any = None

    def enter(self) -> Any:
        """Turn moto on and return the deployment as provisioned (reset, or deployed again if it is gone)."""
        self.mock.start(reset=False)
        try:
            if self.deployment is not None and self.deployment.exists():
                self.deployment.reset()
            else:
                self.deployment = self._provision()
            return self.deployment
        except BaseException:
            self.mock.stop(remove_data=False)
            raise

    def leave(self) -> None:
        """Stop the runs the test left (waiting a little, so none writes into the next test), turn moto off."""
        try:
            self.deployment.stop_executions(wait_seconds=2.0)
        finally:
            self.mock.stop(remove_data=False)

    def close(self) -> None:
        """Drop moto's data at the end of the session."""
        self.mock.start(reset=False)
        self.mock.stop()

    def _provision(self) -> Any:
        from stepwise.local.stack import provision

        deployment = provision(PROJECT_DIR, REGION)
        deployment.environment.update(self.issuer.api_environment())
        return deployment


@pytest.fixture(scope="session")
def shared_deployment(token_issuer: Any) -> Iterator[SharedDeployment]:
    """One deployment of the template per test session (per xdist worker); use ``aws`` in tests."""
    shared = SharedDeployment(token_issuer)
    yield shared
    shared.close()


@pytest.fixture
def aws(shared_deployment: SharedDeployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto with real ASL execution, the template's resources deployed and empty, Lambda routed to our handlers.

    The functions' environment is set through the test's own ``monkeypatch``, not ``stack.running`` (whose
    restore would come before monkeypatch's undo, which would then put the variables back): a variable the
    test sets on top is undone first, and the environment ends as it was before the test.
    """
    from stepwise import wiring
    from stepwise.local.lambda_routing import route_lambda_invokes

    deployment = shared_deployment.enter()
    try:
        for name, value in deployment.environment.items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        with route_lambda_invokes(deployment.handler_for):
            yield deployment
    finally:
        try:
            shared_deployment.leave()
        finally:
            wiring.reset()


@pytest.fixture
def api(aws: Any, token_issuer: Any) -> ApiClient:
    return ApiClient(aws.handler_for(aws.function_names["ApiFunction"]), token_issuer)
