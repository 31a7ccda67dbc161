"""Injected Lambda faults look like Lambda's own, to a direct invoke as to Step Functions.

moto runs in process; its Lambda invokes are routed to a recording handler (stepwise.local.lambda_routing) with a
scripted fault for each invoke. Throttled AWS calls are in tests/unit/test_faults.py, the faults over the local
stack's HTTP in tests/integration/test_local_state.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from stepwise.local.lambda_routing import route_lambda_invokes

FUNCTION = "stepwise-faulty"


class Recorder:
    """The routed handler: answers ``{"ok": true}`` and counts its calls (a crash-after still counts)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.calls += 1
        return {"ok": True}


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def lambda_handler(event, context):\n    raise NotImplementedError\n")
        # No client retries: a service error must reach the caller as it was injected, once.
        client = boto3.client("lambda", config=Config(retries={"total_max_attempts": 1}))
        client.create_function(
            FunctionName=FUNCTION,
            Runtime="python3.13",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": code.getvalue()},
            Timeout=7,
        )

        def run(fault: str | None) -> tuple[Recorder, Any]:
            recorder = Recorder()
            with route_lambda_invokes(lambda name: recorder, faults=lambda name: fault):
                try:
                    return recorder, client.invoke(FunctionName=FUNCTION, Payload=b"{}")
                except ClientError as error:
                    return recorder, error

        yield run


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [("lambda-error", "ServiceException", 500), ("lambda-throttle", "TooManyRequestsException", 429)],
)
def test_a_service_error_is_lambdas_error_answer_and_the_handler_never_runs(
    invoke: Any, fault: str, code: str, status: int
) -> None:
    recorder, answer = invoke(fault)

    assert isinstance(answer, ClientError)
    assert (answer.response["Error"]["Code"], answer.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert recorder.calls == 0


@pytest.mark.parametrize(
    ("fault", "error_type", "handler_calls"),
    [
        ("crash-before", "Runtime.ExitError", 0),
        ("crash-after", "Runtime.ExitError", 1),
        ("timeout", "Sandbox.Timedout", 1),
    ],
)
def test_a_crash_or_timeout_is_a_function_error_after_the_handler_ran_or_before(
    invoke: Any, fault: str, error_type: str, handler_calls: int
) -> None:
    recorder, answer = invoke(fault)

    assert answer["FunctionError"]
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == error_type
    assert recorder.calls == handler_calls
    if fault == "timeout":
        assert "Task timed out after 7.00 seconds" in error["errorMessage"]


def test_no_fault_is_the_handlers_answer(invoke: Any) -> None:
    recorder, answer = invoke(None)

    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"ok": True}
    assert recorder.calls == 1
