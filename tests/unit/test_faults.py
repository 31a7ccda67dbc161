"""The local stack's fault plans: how they read, what they throttle, and the ClientError a throttled call raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from stepwise import aws
from stepwise.local.faults import FaultInjector, FaultPlan, InvalidFaults, throttle_hook


def test_a_spec_reads_as_probabilities_and_a_seed() -> None:
    plan = FaultPlan.parse("crash-after=0.05, throttle=0.1, throttle:SendTaskSuccess=1, seed=7")

    assert plan.probabilities == {"crash-after": 0.05, "throttle": 0.1, "throttle:SendTaskSuccess": 1.0}
    assert plan.seed == 7
    assert plan.describe() == "crash-after 5%, throttle 10%, throttle:SendTaskSuccess 100% (seed 7)"
    assert FaultPlan.from_json(plan.as_json()) == plan


@pytest.mark.parametrize("spec", ["", "off", None, "timeout=0"])
def test_no_spec_is_no_faults(spec: str | None) -> None:
    assert not FaultPlan.parse(spec).active
    assert FaultPlan.parse(spec).describe() == "off"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("crash=0.1", "'crash' is not a fault kind"),
        ("timeout=2", "a probability is between 0 and 1"),
        ("timeout=often", "not a number"),
        ("timeout", "write KIND=PROBABILITY"),
        ("crash-before=0.6,crash-after=0.6", "add up to more than 1"),
    ],
)
def test_a_wrong_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(InvalidFaults, match=message):
        FaultPlan.parse(spec)


def test_throttle_covers_the_calls_the_service_must_survive_and_names_override_it() -> None:
    plan = FaultPlan.parse("throttle=0.2,throttle:StopExecution=0.9,throttle:s3=0.5")

    assert plan.throttle_probability("stepfunctions", "StartExecution") == 0.2
    assert plan.throttle_probability("stepfunctions", "SendTaskSuccess") == 0.2
    assert plan.throttle_probability("dynamodb", "Query") == 0.2
    assert plan.throttle_probability("stepfunctions", "StopExecution") == 0.9
    assert plan.throttle_probability("s3", "PutObject") == 0.5
    assert plan.throttle_probability("secretsmanager", "GetSecretValue") == 0.0


def test_the_lambda_faults_share_one_draw() -> None:
    plan = FaultPlan.parse("lambda-error=0.1,crash-before=0.2,timeout=0.1")

    assert [plan.lambda_fault(draw) for draw in (0.05, 0.15, 0.35, 0.45)] == [
        "lambda-error",
        "crash-before",
        "timeout",
        None,
    ]


def test_a_plan_set_in_one_process_reaches_another_and_a_seed_repeats_the_draws(tmp_path: Path) -> None:
    # Given two injectors on one file (two processes of the stack) and a third with the same role
    path = tmp_path / "faults.json"
    stack, instance = FaultInjector(path, "stack", out=_Sink()), FaultInjector(path, "ApiFunction-1", out=_Sink())
    again = FaultInjector(path, "ApiFunction-1", out=_Sink())

    # When one sets a seeded plan
    stack.set(FaultPlan.parse("crash-after=0.5,seed=3"))

    # Then the others follow it, and the same role draws the same faults
    draws = [instance.lambda_fault("fn") for _ in range(20)]
    assert draws == [again.lambda_fault("fn") for _ in range(20)]
    assert set(draws) == {"crash-after", None}
    assert instance.injected["crash-after"] == draws.count("crash-after")


def test_a_throttled_call_raises_the_clients_own_throttling_error(tmp_path: Path) -> None:
    # Given clients with the hook, and every call throttled
    injector = FaultInjector(tmp_path / "faults.json", "test", out=_Sink())
    injector.set(FaultPlan.parse("throttle=1"))
    hook = throttle_hook(injector)
    dynamodb, sfn = _client("dynamodb"), _client("stepfunctions")
    hook(dynamodb)
    hook(sfn)

    # When DynamoDB and Step Functions are called, Then each raises its ClientError (no request was sent)
    with pytest.raises(dynamodb.exceptions.ProvisionedThroughputExceededException) as throttled_read:
        dynamodb.get_item(TableName="t", Key={"PK": {"S": "x"}})
    with pytest.raises(ClientError) as throttled_start:
        sfn.start_execution(stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:m", name="e")
    assert aws.error_code(throttled_read.value) == "ProvisionedThroughputExceededException"
    assert aws.error_code(throttled_start.value) == "ThrottlingException"
    assert aws.error_code(throttled_start.value) in aws.THROTTLING_CODES
    assert injector.injected["throttle"] == 2


def test_a_client_hook_reaches_the_packages_clients_until_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    seen: list[Any] = []

    undo = aws.on_new_client(seen.append)
    try:
        client = aws.dynamodb()
        assert seen == [client]
    finally:
        undo()
    aws.dynamodb()
    assert len(seen) == 1


class _Sink:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _client(service: str) -> Any:
    return boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    ).client(service)  # type: ignore[call-overload]
