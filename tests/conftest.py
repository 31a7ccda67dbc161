"""Fixtures shared by every test: fake AWS credentials, moto, the deployed local resources, an API client.

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


@pytest.fixture
def aws(token_issuer: Any) -> Iterator[Any]:
    """moto with real ASL execution, the template's resources deployed, Lambda routed to our handlers."""
    from moto import mock_aws

    from stepwise.local.stack import provision, running

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        deployment = provision(PROJECT_DIR, REGION)
        deployment.environment.update(token_issuer.api_environment())
        with running(deployment):
            yield deployment


@pytest.fixture
def api(aws: Any, token_issuer: Any) -> ApiClient:
    return ApiClient(aws.handler_for(aws.function_names["ApiFunction"]), token_issuer)
