"""The Step Functions, Scheduler and Secrets Manager adapters: AWS's answers become answers or the adapter's
own errors, never botocore's (botocore's Stubber plays AWS: no moto, no socket)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from stepwise import aws, schedules, secrets, stepfunctions

Stub = Callable[[str], Stubber]


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stub]:
    """``stub("scheduler")``: the adapter's client for that service, answered by the returned Stubber."""
    stubbers: list[Stubber] = []

    def make(service: str) -> Stubber:
        client = boto3.session.Session(region_name="us-east-1").client(service)  # type: ignore[call-overload]
        monkeypatch.setattr(aws, service, lambda: client)
        stubber = Stubber(client)
        stubber.activate()
        stubbers.append(stubber)
        return stubber

    yield make
    for stubber in stubbers:
        stubber.deactivate()


TARGET = schedules.Target(group="g", function_arn="arn:f", role_arn="arn:r", dead_letter_arn="arn:q")
SPEC = schedules.ScheduleSpec(
    schedule_id="sch_1",
    workflow_id="wf_1",
    expression="rate(5 minutes)",
    timezone="UTC",
    enabled=True,
    description=None,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ValidationException", schedules.ScheduleRefused),
        ("ConflictException", schedules.ScheduleExists),
        ("ThrottlingException", schedules.SchedulerError),
    ],
)
def test_scheduler_refusals_are_the_adapters_errors(stub: Stub, code: str, expected: type[Exception]) -> None:
    stub("scheduler").add_client_error("create_schedule", code, "the reason Scheduler gives")

    with pytest.raises(expected) as raised:
        schedules.create(TARGET, SPEC)

    assert not isinstance(raised.value, ClientError)
    if expected is schedules.ScheduleRefused:
        assert str(raised.value) == "the reason Scheduler gives"


def test_a_schedule_missing_from_scheduler_is_an_answer(stub: Stub) -> None:
    stubber = stub("scheduler")
    stubber.add_client_error("get_schedule", "ResourceNotFoundException", "not found")
    stubber.add_client_error("delete_schedule", "ResourceNotFoundException", "not found")
    stubber.add_client_error("get_schedule", "ResourceNotFoundException", "not found")

    assert schedules.get("g", "sch_1") is None
    assert schedules.delete("g", "sch_1") is False
    assert schedules.disable("g", "sch_1") == "missing"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("TaskTimedOut", stepfunctions.TaskGone),
        ("InvalidToken", stepfunctions.TaskGone),
        ("TaskDoesNotExist", stepfunctions.TaskGone),
        ("ThrottlingException", stepfunctions.Throttled),
    ],
)
def test_resume_says_when_no_task_waits_on_the_token_and_raises_its_own_error_else(
    stub: Stub, code: str, expected: type[Exception]
) -> None:
    stub("stepfunctions").add_client_error("send_task_success", code, "no")

    with pytest.raises(expected) as raised:
        stepfunctions.resume("token", {})

    if isinstance(raised.value, stepfunctions.TaskGone):
        assert raised.value.code == code


def test_a_runs_status_is_none_when_no_run_has_its_name(stub: Stub) -> None:
    stubber = stub("stepfunctions")
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m"
    stubber.add_client_error("describe_execution", "ExecutionDoesNotExist", "no such run")
    stubber.add_response(
        "describe_execution",
        {
            "executionArn": f"{arn}:exe_1-1".replace(":stateMachine:", ":execution:"),
            "stateMachineArn": arn,
            "status": "FAILED",
            "startDate": "2030-01-01T00:00:00Z",
        },
        {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:exe_1-1"},
    )

    assert stepfunctions.status(arn, "exe_1") is None
    assert stepfunctions.status(arn, stepfunctions.run_name("exe_1", 1)) == "FAILED"


def test_a_restarted_run_is_named_after_its_execution() -> None:
    assert stepfunctions.run_name("exe_01ABC", 0) == "exe_01ABC"
    assert stepfunctions.run_name("exe_01ABC", 2) == "exe_01ABC-2"
    assert stepfunctions.execution_of("exe_01ABC-2") == stepfunctions.execution_of("exe_01ABC") == "exe_01ABC"


def test_a_start_of_a_name_that_exists_is_done_and_a_refusal_says_why(stub: Stub) -> None:
    stubber = stub("stepfunctions")
    stubber.add_client_error("start_execution", "ExecutionAlreadyExists", "exists")
    stubber.add_client_error("start_execution", "StateMachineDoesNotExist", "no such state machine")

    stepfunctions.start("arn:aws:states:us-east-1:123456789012:stateMachine:m", "exe_1")
    with pytest.raises(stepfunctions.StartRefused, match="no such state machine"):
        stepfunctions.start("arn:aws:states:us-east-1:123456789012:stateMachine:m", "exe_1")


def test_a_throttled_start_is_delayed_not_refused_and_says_it_may_be_tried_again(stub: Stub) -> None:
    # A start Step Functions did not take for now is no reason to fail the execution (it stays PENDING).
    stub("stepfunctions").add_client_error("start_execution", "ThrottlingException", "Rate exceeded")

    with pytest.raises(stepfunctions.StartDelayed) as raised:
        stepfunctions.start("arn:aws:states:us-east-1:123456789012:stateMachine:m", "exe_1")

    assert isinstance(raised.value, aws.TransientError)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (stepfunctions.Throttled("x"), True),
        (stepfunctions.StartDelayed("x"), True),
        (stepfunctions.StartRefused("x"), False),
        (stepfunctions.TaskGone("x", "TaskTimedOut"), False),
    ],
)
def test_what_step_functions_refused_for_now_is_transient(error: Exception, transient: bool) -> None:
    assert isinstance(error, aws.TransientError) is transient


def test_a_credential_that_cannot_be_read_is_a_credential_error_without_its_value(stub: Stub) -> None:
    stubber = stub("secretsmanager")
    stubber.add_client_error("get_secret_value", "ResourceNotFoundException", "Secrets Manager can't find it")
    stubber.add_client_error("delete_secret", "ResourceNotFoundException", "gone already")
    secrets.forget_credentials()

    with pytest.raises(secrets.CredentialError, match="could not be read: ResourceNotFoundException"):
        secrets.read_credential("arn:secret:gone")
    secrets.delete_credential("arn:secret:gone")  # a credential deleted already is fine
